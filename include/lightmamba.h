/* lightmamba: Mamba2 inference, LightMamba post-training quantization and the
 * LightMamba accelerator's golden model and simulator.
 *
 * Conventions: every fallible function returns lm_status (LM_OK == 0); on failure
 * lm_last_error() gives a one-line message naming the problem (thread-local, valid
 * until the next failing call on the same thread). Handles are opaque and come in
 * lm_X_init / lm_X_free pairs; lm_X_free(NULL) is a no-op. Settings come in structs
 * with a lm_X_default_params() to start from; the library reads no environment variable.
 *
 * THREAD SAFETY
 *   "any": may be called from any thread at any time, also concurrently on the same handles;
 *   "per handle": calls on different handles may run concurrently, calls on one handle must not
 *   overlap (one thread at a time, or the caller's lock). Handles a call only reads ("read")
 *   may be shared by concurrent calls that also only read them: one model serves many sessions
 *   on many threads, one tokenizer many encoders. Only the kernel level and the data folder are global.
 *
 *   lm_last_error ....................................... any (each thread has its own message)
 *   lm_status_name, lm_nll, lm_kernels, lm_quant_defaults, lm_quant_method_name,
 *   lm_session_default_params, lm_sampler_default_params ..... any
 *   lm_set_kernels, lm_set_data_dir ..................... global: not while other calls run
 *   lm_config_load ...................................... any
 *   lm_model_init, lm_tokenizer_init, lm_tokenizer_init_json,
 *   lm_sampler_init ..................................... any (each creates its own handle)
 *   lm_tokenizer_init_for_model ......................... any (model read)
 *   lm_model_free ....................................... per handle, after its sessions are freed
 *   lm_model_config, lm_model_tokenizer_path, lm_model_n_tensors, lm_model_tensor,
 *   lm_model_n_params, lm_model_quant ................... any (model read)
 *   lm_tokenizer_free ................................... per handle
 *   lm_tokenizer_encode, lm_tokenizer_decode, lm_tokenizer_token, lm_tokenizer_vocab_size,
 *   lm_tokenizer_eos, lm_token_candidates ............... any (tokenizer, model read)
 *   lm_session_init ..................................... any (model read)
 *   lm_session_free, lm_session_reset, lm_session_forward, lm_session_last_logits,
 *   lm_perplexity, lm_state_set, lm_state_load .......... per session
 *   lm_session_vocab_size, lm_session_n_tokens, lm_state_size,
 *   lm_state_get, lm_state_save ......................... per session (session read)
 *   lm_session_copy ..................................... per session (dst written, src read)
 *   lm_sampler_free, lm_sampler_accept, lm_sampler_sample ... per sampler
 *   lm_quantize ......................................... any (model read; one output path per call)
 * Callbacks (abort, progress) run on the thread that made the call, before it returns. */
#ifndef LIGHTMAMBA_H
#define LIGHTMAMBA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* LM_API marks the functions the shared library exports; the library is built with every other
 * symbol hidden, so these declarations are the whole of its ABI. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define LM_API __attribute__((visibility("default")))
#else
#define LM_API
#endif

typedef enum {
    LM_OK = 0,
    LM_ERR_IO,          /* a file could not be opened, read, mapped or written */
    LM_ERR_FORMAT,      /* a file's content is malformed, truncated or inconsistent */
    LM_ERR_ARG,         /* a caller-supplied argument is out of range */
    LM_ERR_NOMEM,       /* an allocation failed or a request exceeds the memory limit */
    LM_ERR_UNSUPPORTED, /* well-formed input that this build cannot handle */
    LM_ERR_ABORTED      /* the caller's abort callback asked a long call to stop */
} lm_status;

/* The library's version, "MAJOR.MINOR.PATCH". */
LM_API const char *lm_version(void);

/* The message of the last failure on this thread ("" if none). */
LM_API const char *lm_last_error(void);
/* A short name of a status code ("io error", "format error", ...). */
LM_API const char *lm_status_name(lm_status s);

/* The folder holding the bundled data (tokenizer.json, calib_wikitext2_valid.txt, platforms/):
 * by default found beside the binary (DIR/share/lightmamba or DIR/../share/lightmamba) or in the
 * install folder. dir = NULL restores the search. Global: call it before anything else. */
LM_API lm_status lm_set_data_dir(const char *dir);

/* ---- kernels ----
 * The linear layers, log-softmax and integer SSM run SIMD code chosen at run time: the best
 * level the CPU has ("avx512" with VNNI, "avx2" with FMA, or "scalar"). lm_set_kernels caps it
 * for the whole process (e.g. to compare levels): "scalar", "avx2", "avx512", or NULL / ""
 * for the best; a level above the CPU's leaves the CPU's best; another name -> LM_ERR_ARG.
 * Every level gives the same integer results; float results agree to rounding. */
LM_API lm_status lm_set_kernels(const char *level);
/* The level in use: "scalar", "avx2" or "avx512". */
LM_API const char *lm_kernels(void);

/* ---- model ---- */
/* A Mamba2 configuration, every field read from the checkpoint's config.json. */
typedef struct {
    int d_model;          /* hidden_size / d_model */
    int n_layer;
    int d_inner;          /* num_heads * head_dim == expand * d_model */
    int n_heads;          /* H */
    int head_dim;         /* P */
    int d_state;          /* N */
    int n_groups;         /* G */
    int d_conv;           /* conv kernel width */
    int vocab_size;       /* rows of the (padded) embedding */
    float eps;            /* layer_norm_epsilon, used by every RMSNorm */
    float dt_limit_min;   /* time_step_limit, (0, inf) when absent */
    float dt_limit_max;
    int tie_embeddings;
    int conv_bias;        /* use_conv_bias */
    int proj_bias;        /* use_bias (in_proj / out_proj biases) */
} lm_config;

/* Reads a config.json with the Hugging Face keys (hidden_size, num_hidden_layers, state_size,
 * num_heads, head_dim, n_groups, expand, conv_kernel, ...) or the original state-spaces ones
 * (d_model, n_layer, ssm_cfg, pad_vocab_size_multiple, tie_embeddings). Missing or mistyped
 * keys and inconsistent sizes -> LM_ERR_FORMAT naming the file and key; a valid config of
 * something other than a Mamba2 RMSNorm model -> LM_ERR_UNSUPPORTED. */
LM_API lm_status lm_config_load(lm_config *cfg, const char *config_json_path);

typedef struct lm_model lm_model;

/* Loads a model (docs/checkpoint-formats.md):
 *   - a directory: config.json (Hugging Face or state-spaces keys) plus model.safetensors, a
 *     sharded model.safetensors.index.json, or a PyTorch pytorch_model.bin;
 *   - a PyTorch zip checkpoint (.bin/.pt, torch.save of a state dict) with config.json beside it;
 *   - a GGUF file in llama.cpp's mamba2 layout (F32, F16, BF16 or Q8_0 tensors);
 *   - a quantized model file written by lm_quantize.
 * Float tensors are held as float32 (F32 data is used in place from the memory map). Every
 * tensor's shape is checked against the config; a missing one is an error naming it; unknown
 * extra tensors are ignored (listed as unused in the tensor table). lm_tokenizer_init_for_model
 * gives its tokenizer: a directory's or PyTorch file's tokenizer.json beside it; a GGUF file's
 * tokenizer.json beside it, else its own tokenizer.ggml.*; a quantized file's own; failing
 * those the bundled GPT-NeoX one. */
LM_API lm_status lm_model_init(lm_model **model, const char *path);
LM_API void lm_model_free(lm_model *model);
LM_API const lm_config *lm_model_config(const lm_model *model);
LM_API const char *lm_model_tokenizer_path(const lm_model *model);
/* The format the model was read from: "safetensors", "pytorch", "gguf" or "quantized". */
LM_API const char *lm_model_format(const lm_model *model);

/* Writes a float model as a GGUF file in llama.cpp's mamba2 layout with its tokenizer
 * (tokenizer.ggml.*), atomically: matrices in the given type (Q8_0 rows must be whole blocks of
 * 32, else F16), everything else F32. A quantized model, in_proj/out_proj biases or a
 * time_step_limit (which llama.cpp's mamba2 cannot express) -> LM_ERR_UNSUPPORTED; a tokenizer
 * with more tokens than the embedding has rows -> LM_ERR_ARG. */
typedef enum { LM_GGUF_WEIGHTS_F32 = 0, LM_GGUF_WEIGHTS_F16, LM_GGUF_WEIGHTS_Q8_0 } lm_gguf_weights;
LM_API lm_status lm_model_write_gguf(const lm_model *model, lm_gguf_weights weights, const char *path);

/* The checkpoint's tensor table (for inspection: lightmamba info). */
#define LM_TENSOR_MAX_DIMS 8
typedef struct {
    const char *name;
    const char *dtype;      /* as stored: "F32", "F16", "BF16", "Q8_0", ... */
    int ndim;
    int64_t shape[LM_TENSOR_MAX_DIMS];
    uint64_t nbytes;        /* as stored */
    int used;               /* 0: in the checkpoint but not part of the model (ignored) */
} lm_tensor_info;
LM_API int lm_model_n_tensors(const lm_model *model);
LM_API const lm_tensor_info *lm_model_tensor(const lm_model *model, int i);
/* Parameter count: elements of the tensors the model uses (a tied lm_head counted once). */
LM_API uint64_t lm_model_n_params(const lm_model *model);

/* ---- tokenizer: GPT-NeoX byte-level BPE from a Hugging Face tokenizer.json ---- */
/* Encoding follows the `tokenizers` pipeline: added tokens (e.g. "<|endoftext|>" in the text)
 * matched first, NFC, the GPT-2 pattern, byte-level BPE; no BOS/EOS is added. Decoding
 * concatenates the tokens' bytes, so decode(encode(t)) == NFC(t). A NULL path is the bundled
 * GPT-NeoX tokenizer (data/tokenizer.json). Encoding does not modify the tokenizer: one
 * tokenizer may serve several threads. */
typedef struct lm_tokenizer lm_tokenizer;
LM_API lm_status lm_tokenizer_init(lm_tokenizer **tok, const char *tokenizer_json_path);
/* The same from the bytes of a tokenizer.json (len bytes, need not be NUL-terminated); `what`
 * names the source in error messages (NULL: "tokenizer.json"). */
LM_API lm_status lm_tokenizer_init_json(lm_tokenizer **tok, const char *json, size_t len, const char *what);
/* The tokenizer that belongs to a model (see lm_model_init for which one). */
LM_API lm_status lm_tokenizer_init_for_model(lm_tokenizer **tok, const lm_model *model);
LM_API void lm_tokenizer_free(lm_tokenizer *tok);
/* UTF-8 text (len bytes) -> token ids (*ids malloc'd, caller frees). Invalid UTF-8 -> LM_ERR_FORMAT naming the byte offset. */
LM_API lm_status lm_tokenizer_encode(const lm_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n_ids);
/* token ids -> text (*text malloc'd, NUL-terminated; *len excludes the NUL). An id out of range -> LM_ERR_ARG. */
LM_API lm_status lm_tokenizer_decode(const lm_tokenizer *tok, const int32_t *ids, size_t n_ids, char **text, size_t *len);
/* The raw bytes of one token, for streaming output (NULL and *len = 0 for an id out of range). */
LM_API const char *lm_tokenizer_token(const lm_tokenizer *tok, int32_t id, size_t *len);
LM_API int lm_tokenizer_vocab_size(const lm_tokenizer *tok);
/* The id of the added token "<|endoftext|>", which GPT-NeoX models emit where a text ends
 * (generation stops there), or -1 when the tokenizer has no such added token. */
LM_API int32_t lm_tokenizer_eos(const lm_tokenizer *tok);

/* ---- session: the run state of one sequence over a loaded model ----
 * Holds the recurrent state (per layer: conv state [d_conv-1, conv_dim] and SSM state
 * [H, P, N]), scratch for a fixed chunk of LM_SESSION_CHUNK tokens and a thread pool.
 * Its memory does not depend on how many tokens it is fed: longer inputs are processed
 * in chunks. A session reads the model and never changes it; one model can serve many
 * sessions (each used by one thread at a time). */
#define LM_SESSION_CHUNK 64
typedef struct lm_session lm_session;
/* Abort callback: returns non-zero to stop the call that polls it (see lm_session_forward). */
typedef int (*lm_abort_fn)(void *ctx);
typedef struct {
    int n_threads;          /* worker threads, the calling one included; <= 0: all cores */
    lm_abort_fn abort;      /* NULL: never stop early */
    void *abort_ctx;
} lm_session_params;
/* All cores, no abort callback. */
LM_API lm_session_params lm_session_default_params(void);
/* params NULL: lm_session_default_params(). */
LM_API lm_status lm_session_init(lm_session **s, const lm_model *m, const lm_session_params *params);
LM_API void lm_session_free(lm_session *s);
/* Zeroes the state: the next token is the first of a new sequence. */
LM_API void lm_session_reset(lm_session *s);
/* Feeds n tokens (continuing the current state) and advances the state past them.
 * logits: NULL, or [n, vocab_size] receiving the logits after every token;
 * last_logits: NULL, or [vocab_size] receiving the logits after the last token.
 * With both NULL only the state advances (lm_head is skipped). Prefill and decode are
 * the same call (decode is n = 1). A token id out of [0, vocab_size) -> LM_ERR_ARG, and
 * the state is then left unchanged.
 * The abort callback is polled before each chunk of LM_SESSION_CHUNK tokens (the first
 * included); non-zero -> LM_ERR_ABORTED, and the session holds the state after the chunks
 * already done: lm_session_n_tokens() grew by k, a multiple of LM_SESSION_CHUNK (0 when it stops
 * at the first poll), rows [0, k) of logits are filled, last_logits is not written, and
 * lm_session_last_logits gives the logits after token k - 1. Feeding tokens[k, n) then continues
 * exactly as the uninterrupted call would have. */
LM_API lm_status lm_session_forward(lm_session *s, const int32_t *tokens, size_t n, float *logits, float *last_logits);
LM_API int lm_session_vocab_size(const lm_session *s);
/* Tokens fed since the session was created or last reset (or that a loaded state had consumed). */
LM_API uint64_t lm_session_n_tokens(const lm_session *s);
/* [vocab_size] logits after the last token fed, recomputed from the state (bit-identical to the
 * last_logits of the lm_session_forward call that fed it with logits == NULL). None fed yet -> LM_ERR_ARG. */
LM_API lm_status lm_session_last_logits(lm_session *s, float *logits);
/* Copies src's sequence (recurrent state, token count, last logits) into dst, e.g. to fork one
 * prompt into several continuations: dst then continues bit for bit as src would. Both must be
 * sessions of the same lm_model (else LM_ERR_ARG, dst unchanged); their settings stay their own. */
LM_API lm_status lm_session_copy(lm_session *dst, const lm_session *src);

/* ---- session state: in memory and in files (docs/state-format.md) ----
 * Save a session's state (e.g. after a prompt) and resume it later, in this or another
 * process, over the same model: the continuation is then bit for bit what running straight on
 * would have given. The bytes are those of the state file, in memory or on disk: they record the
 * model's configuration and a hash of its weights; setting them into another model fails
 * (LM_ERR_ARG, naming what differs). lm_state_set and lm_state_load validate everything (magic,
 * version, size, CRC-32C, model, every array's name, type and shape) before they touch the
 * session: on failure the session is as it was. Corrupt or truncated bytes -> LM_ERR_FORMAT,
 * another format version -> LM_ERR_UNSUPPORTED, a missing file -> LM_ERR_IO.
 * The size depends on the model, never on the tokens consumed. */
/* Bytes of s's state; 0 when its kind of model has no state format (lm_last_error says why). */
LM_API size_t lm_state_size(const lm_session *s);
/* Writes the state into buf [size]; size < lm_state_size(s) -> LM_ERR_ARG. */
LM_API lm_status lm_state_get(const lm_session *s, void *buf, size_t size);
/* Sets the state from buf [size] (exactly the bytes lm_state_get wrote, or a state file's). */
LM_API lm_status lm_state_set(lm_session *s, const void *buf, size_t size);
/* The same bytes in a file; lm_state_save writes atomically (a temporary file renamed). */
LM_API lm_status lm_state_save(const lm_session *s, const char *path);
LM_API lm_status lm_state_load(lm_session *s, const char *path);

/* ---- sampling ----
 * In this order: the repetition penalty (each distinct id among the last repeat_last_n accepted
 * tokens has its logit divided by repeat_penalty when positive, multiplied when negative, as
 * llama.cpp's penalty_repeat / penalty_last_n); temperature 0: greedy (argmax, lowest id on ties);
 * otherwise p = softmax(logits / temperature), then top-k (the k most probable ids), top-p (the
 * most probable ids whose mass reaches top_p of what is left), min-p (the ids with p >= min_p times
 * the largest p), and one draw from the rest, renormalised, with a small PRNG seeded by seed (the
 * same seed gives the same draws on every platform). Only ids [0, n_candidates) are considered
 * (e.g. the tokenizer's ids of a padded vocabulary). Generation should stop at lm_tokenizer_eos. */
typedef struct {
    float temperature;      /* >= 0; 0: greedy */
    int top_k;              /* >= 0; 0: off */
    float top_p;            /* (0, 1]; 1: off */
    float min_p;            /* [0, 1]; 0: off */
    float repeat_penalty;   /* > 0; 1: off */
    int repeat_last_n;      /* the penalty's window in accepted tokens, [0, 2^20]; 0: off */
    uint64_t seed;
} lm_sampler_params;
/* temperature 0.8, top-p 0.9, top-k, min-p and the penalty off (window 64), seed 0. */
LM_API lm_sampler_params lm_sampler_default_params(void);
typedef struct lm_sampler lm_sampler;
/* The n_candidates of a model's output with tokenizer tok: the ids both the model's rows and the
 * tokenizer have, min(vocab_size, the tokenizer's vocabulary). A padded vocabulary (e.g. 50288
 * rows for the 50277 GPT-NeoX ids) has rows no token maps to; they are never chosen. */
LM_API int lm_token_candidates(const lm_model *model, const lm_tokenizer *tok);
/* params NULL: lm_sampler_default_params(). A parameter out of range -> LM_ERR_ARG naming it. */
LM_API lm_status lm_sampler_init(lm_sampler **s, int n_candidates, const lm_sampler_params *params);
LM_API void lm_sampler_free(lm_sampler *s);
/* Adds ids to the penalty's window (e.g. the prompt); lm_sampler_sample adds what it draws. */
LM_API void lm_sampler_accept(lm_sampler *s, const int32_t *ids, size_t n);
/* logits [>= n_candidates] -> the drawn id, which is accepted into the window. */
LM_API int32_t lm_sampler_sample(lm_sampler *s, const float *logits);

/* ---- perplexity ----
 * The protocol of shared/models/README.md: ids split into consecutive chunks of ctx
 * tokens (the last may be shorter), the state reset at each chunk start, every token but
 * each chunk's first scored by nll = -log softmax(logits of the previous position)[id];
 * ppl = exp(mean nll). Fewer than one scored token -> LM_ERR_ARG ("nothing to score").
 * The session's abort callback is polled before each chunk of LM_SESSION_CHUNK tokens: non-zero
 * -> LM_ERR_ABORTED, result not written. Either way the session is left mid-text: reset it before
 * feeding it another sequence. */
typedef struct {
    double ppl;
    double nll_mean;
    size_t tokens;       /* scored tokens */
    double seconds;      /* wall time of the evaluation */
} lm_perplexity_result;
/* Called after each chunk of ctx tokens with the tokens processed so far and the total. */
typedef void (*lm_progress_fn)(void *ctx, size_t done, size_t total);
LM_API lm_status lm_perplexity(lm_session *s, const int32_t *ids, size_t n_ids, int ctx,
                               lm_progress_fn progress, void *progress_ctx, lm_perplexity_result *result);
/* -log softmax(logits)[target] over n logits, computed stably (max subtracted, double sums). */
LM_API double lm_nll(const float *logits, int n, int32_t target);

/* ---- comparison with a base model (docs/evaluation.md) ----
 * A model Q (e.g. quantized) against its base P (the float original) on one text, by the
 * perplexity protocol above: at every scored position, KL(P || Q) of the two next-token
 * distributions over the whole vocabulary, whether their most probable tokens agree (argmax, the
 * lower id on ties), and each model's nll. The base is either run alongside or read from a file
 * saved by an earlier run (lm_saved_base): its lm_head and, at every position, the hidden state
 * lm_head reads, from which its logits are recomputed exactly (the same numbers as running it). */
typedef struct {
    lm_perplexity_result model, base;  /* each one's perplexity */
    size_t tokens;                     /* scored positions */
    double kl_mean, kl_median, kl_p99, kl_max;  /* nats; median of an even count: the mean of the middle two;
                                                 * p99: the nearest-rank 99th percentile */
    double top1_agreement;             /* fraction of positions where the argmax of Q equals that of P */
    double ppl_delta, ppl_delta_se;    /* model.ppl - base.ppl and its standard error (delta method over
                                        * the per-token nll of both, positions taken as independent) */
} lm_kl_result;

/* A base model saved on one text by lm_kl_divergence (save_path): validated whole on load (magic,
 * version, sizes, CRC-32C, finite values); a missing file -> LM_ERR_IO, a corrupt one -> LM_ERR_FORMAT. */
typedef struct lm_saved_base lm_saved_base;
LM_API lm_status lm_saved_base_load(lm_saved_base **b, const char *path);
LM_API void lm_saved_base_free(lm_saved_base *b);

/* Compares `model` with its base over ids, in chunks of ctx as lm_perplexity. The base is exactly
 * one of: `base`, a session over the base model run alongside, or `saved`, a base saved on the same
 * ids and ctx (anything else -> LM_ERR_ARG naming what differs). save_path: NULL, or a file that
 * receives the base (needs `base`; written atomically, memory does not grow with the text).
 * The vocabularies must match. */
LM_API lm_status lm_kl_divergence(lm_session *model, lm_session *base, const lm_saved_base *saved, const char *save_path,
                           const int32_t *ids, size_t n_ids, int ctx, lm_progress_fn progress, void *progress_ctx,
                           lm_kl_result *result);
/* lm_perplexity of s's model that also saves it to path as a base for later comparisons (as
 * lm_kl_divergence's save_path does for a base run alongside). */
LM_API lm_status lm_save_base(lm_session *s, const int32_t *ids, size_t n_ids, int ctx, const char *path,
                       lm_progress_fn progress, void *progress_ctx, lm_perplexity_result *result);

/* ---- zero-shot tasks (docs/evaluation.md) ----
 * Scored by log-likelihood as lm-evaluation-harness does, from the task files the user brings (one
 * JSON object per line, the datasets' public layouts):
 *   lambada      last-word prediction: accuracy (every target token the model's argmax) and the
 *                perplexity of the target, exp(-mean over items of its total log-likelihood)
 *   hellaswag, piqa, arc (easy and challenge alike), winogrande   multiple choice: the choice of
 *                highest log-likelihood (acc) and of highest log-likelihood per character of the
 *                choice (acc_norm; not for winogrande, whose choices share one continuation) */
typedef enum { LM_TASK_LAMBADA = 0, LM_TASK_HELLASWAG, LM_TASK_PIQA, LM_TASK_ARC, LM_TASK_WINOGRANDE, LM_TASK_COUNT } lm_task_kind;
LM_API const char *lm_task_name(lm_task_kind kind);   /* "lambada", "hellaswag", "piqa", "arc", "winogrande" */
typedef struct lm_task lm_task;
/* Reads a task file and tokenizes every request with tok. A line that is not a JSON object with
 * the task's fields -> LM_ERR_FORMAT, the message naming the file and line. Blank lines are
 * skipped; no items -> LM_ERR_FORMAT. */
LM_API lm_status lm_task_load(lm_task **task, lm_task_kind kind, const char *path, const lm_tokenizer *tok);
LM_API void lm_task_free(lm_task *task);
LM_API size_t lm_task_items(const lm_task *task);

typedef struct {
    size_t items;
    double acc, acc_stderr;            /* fraction correct and the standard error of that mean */
    double acc_norm, acc_norm_stderr;  /* length-normalised; NAN where not defined */
    double ppl;                        /* lambada: the targets' perplexity; NAN otherwise */
    double seconds;
} lm_task_result;
/* Scores the first `limit` items (0: all). Progress is called after each item. */
LM_API lm_status lm_task_eval(lm_session *s, const lm_task *task, size_t limit, lm_progress_fn progress, void *progress_ctx,
                       lm_task_result *result);

/* The log-likelihood of cont after context (the state reset first): sum over the continuation's
 * tokens of log softmax(logits after all tokens before it)[token], and *greedy = 1 when every one
 * of them is the argmax (the lower id on ties). n_context >= 1, n_cont >= 1. */
LM_API lm_status lm_loglikelihood(lm_session *s, const int32_t *context, size_t n_context, const int32_t *cont, size_t n_cont,
                           double *loglik, int *greedy);

/* ---- post-training quantization (src/quant; docs/quantized-format.md) ----
 * lm_quantize turns a float model into one self-contained quantized model file, which
 * lm_model_init then loads like a model directory. in_proj and out_proj become integer
 * linear layers (src/kernels/kernels.h: weights wbits with a 2^e0 (2^s1 + 2^s2) scale per
 * row and 128 inputs; activations abits, dynamic per token, a power-of-two exponent per 8
 * channels); conv, SSM and norms stay float, the embedding and lm_head float16 unless embedding_bits,
 * head_bits.
 *   rtn          round to nearest, nothing else
 *   smoothquant  per-channel smoothing s_j = max|X_j|^alpha / max|W_j|^(1-alpha) from calibration,
 *                folded into the preceding norm weights
 *   lightmamba   the residual stream rotated by a Hadamard matrix fused offline, and an online
 *                d_inner Hadamard before out_proj (its transpose fused into out_proj) */
typedef enum { LM_QUANT_NONE = 0, LM_QUANT_RTN, LM_QUANT_SMOOTHQUANT, LM_QUANT_LIGHTMAMBA } lm_quant_method;
/* How the blocks compute besides in_proj/out_proj. float: conv, SSM and norms in float32.
 * pot8 (LightMamba*): every block in integers (docs/integer-datapath.md: power-of-two INT8 SSM,
 * lookup-table nonlinearities, integer RMSNorm, 32-bit fixed-point residual), calibrated by the
 * quantizer; float only for the embedding lookup and norm_f + lm_head. */
typedef enum { LM_SSM_FLOAT = 0, LM_SSM_POT8 = 1 } lm_ssm_mode;
/* The pot8 datapath (docs/release-datapath.md): 0 is ours (docs/integer-datapath.md); each flag
 * switches on one of the arithmetic choices of the authors' released golden model, and
 * LM_DP_RELEASE is all of them (that model, bit for bit). */
enum {
    LM_DP_TRUNC = 1 << 0,      /* every rescale floors (a plain >>); the conv sums exactly and floors once;
                                * the embedding enters Q10 truncated toward zero */
    LM_DP_QRULE = 1 << 1,      /* group quantizer: s from bitlength(max - 1), q in [-2^(b-1), 2^(b-1) - 1] */
    LM_DP_LUT8 = 1 << 2,       /* LUT entries int8 at the bins' left edges, rounded half to even, no identity tail */
    LM_DP_NORM8 = 1 << 3,      /* RMSNorm: 8 tables of 512 uint8 chosen by thresholds on the raw sum of
                                * squares, no epsilon, 11-/13-bit gamma per channel */
    LM_DP_DB_HEADS = 1 << 4,   /* dB: one exponent per 8 heads of each state (ours: per 8 states of each head) */
    LM_DP_SITES = 1 << 5,      /* the release's fixed points, LUT windows and static weight formats */
    LM_DP_RELEASE = (1 << 6) - 1
};
/* "ours", "release", or the flags' names joined by '+' ("trunc", "qrule", "lut8", "norm8",
 * "dbheads", "sites") into buf; lm_datapath_parse reads any of these (and a ',' list) back. */
LM_API const char *lm_datapath_name(int dp, char *buf, size_t size);
LM_API lm_status lm_datapath_parse(const char *s, int *dp);
/* The activation format of in_proj and out_proj, for research into granularity: act_group channels
 * per scale (8: the hardware's, 16, 32, 64, 128, or LM_ACT_PER_TOKEN: one scale for the whole token),
 * each scale a power of two (the hardware's, run by the integer kernels at any group size) or
 * real-valued (absmax / qmax; run by a slower float reference path). The default is the paper's
 * hardware format, 8 channels, power of two. */
#define LM_ACT_PER_TOKEN 0
typedef enum { LM_ACT_SCALE_POW2 = 0, LM_ACT_SCALE_REAL = 1 } lm_act_scale;
typedef struct {
    lm_quant_method method;
    int wbits, abits;          /* 4 or 8 each */
    int gptq;                  /* GPTQ weight rounding from calibration Hessians, else round to nearest */
    float alpha;               /* SmoothQuant migration strength, [0, 1] */
    lm_ssm_mode ssm_mode;
    int datapath;              /* pot8: 0 ours, or LM_DP_* flags (LM_DP_RELEASE: the authors' release) */
    int act_group;             /* 8, 16, 32, 64, 128 or LM_ACT_PER_TOKEN; pot8 needs 8 */
    lm_act_scale act_scale;    /* pot8 needs LM_ACT_SCALE_POW2 */
    int head_bits;             /* lm_head: 0 float16 (default), 8 or 4 bits in the weight format of in_proj,
                                * run on the integer kernels with 8-bit activations per 8 channels */
    int embedding_bits;        /* the embedding: 0 float16 (default), 8 or 4 bits, the same format (its row
                                * dequantized); a tied lm_head of another format is stored untied */
    int calib_samples;         /* calibration: samples of calib_len consecutive tokens */
    int calib_len;
    int rotated;               /* set by lm_quantize: Hadamard rotations applied (lightmamba) */
} lm_quant_settings;
/* lightmamba W4A4, round to nearest, alpha 0.5, 128 samples of 512 tokens. */
LM_API lm_quant_settings lm_quant_defaults(void);
LM_API const char *lm_quant_method_name(lm_quant_method m);   /* "float", "rtn", "smoothquant", "lightmamba" */
/* Progress: stage names what is running ("calibration", "quantize"), done of total units (a
 * calibration sample, a layer). Returns non-zero to stop: lm_quantize then returns LM_ERR_ABORTED
 * and writes no file. */
typedef int (*lm_quant_progress_fn)(void *ctx, const char *stage, size_t done, size_t total);
/* Quantizes m into out_path (written atomically). calib_path: UTF-8 text whose tokens give the
 * calibration samples (used by smoothquant and gptq); NULL: the bundled WikiText-2 validation
 * text (data/calib_wikitext2_valid.txt). n_threads <= 0: all cores. */
LM_API lm_status lm_quantize(const lm_model *m, const lm_quant_settings *settings, const char *calib_path, int n_threads,
                             const char *out_path, lm_quant_progress_fn progress, void *progress_ctx);
/* How a loaded model was quantized (method LM_QUANT_NONE for a float checkpoint). */
LM_API const lm_quant_settings *lm_model_quant(const lm_model *m);

#ifdef __cplusplus
}
#endif
#endif
