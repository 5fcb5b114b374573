/* lightmamba: Mamba2 inference, LightMamba post-training quantization and the
 * LightMamba accelerator's golden model and simulator.
 *
 * Conventions: every fallible function returns lm_status (LM_OK == 0); on failure
 * lm_last_error() gives a one-line message naming the problem (thread-local, valid
 * until the next failing call on the same thread). Handles are opaque and come in
 * lm_X_init / lm_X_free pairs; lm_X_free(NULL) is a no-op. */
#ifndef LIGHTMAMBA_H
#define LIGHTMAMBA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LM_OK = 0,
    LM_ERR_IO,          /* a file could not be opened, read, mapped or written */
    LM_ERR_FORMAT,      /* a file's content is malformed, truncated or inconsistent */
    LM_ERR_ARG,         /* a caller-supplied argument is out of range */
    LM_ERR_NOMEM,       /* an allocation failed or a request exceeds the memory limit */
    LM_ERR_UNSUPPORTED  /* well-formed input that this build cannot handle */
} lm_status;

/* The message of the last failure on this thread ("" if none). */
const char *lm_last_error(void);
/* A short name of a status code ("io error", "format error", ...). */
const char *lm_status_name(lm_status s);

/* The folder holding the bundled data (tokenizer.json, calib_wikitext2_valid.txt, platforms/):
 * by default found beside the binary (DIR/share/lightmamba or DIR/../share/lightmamba) or in the
 * install folder. dir = NULL restores the search. Not thread-safe: call it before anything else. */
lm_status lm_set_data_dir(const char *dir);

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
lm_status lm_config_load(lm_config *cfg, const char *config_json_path);

typedef struct lm_model lm_model;

/* Loads a model directory in the Hugging Face layout: config.json plus model.safetensors
 * or a sharded model.safetensors.index.json; tensors F32, F16 or BF16 (held as float32;
 * F32 data is used in place from the memory map). Every tensor's shape is checked against
 * the config; a missing one is an error naming it; unknown extra tensors are ignored (listed
 * as unused in the tensor table). lm_tokenizer_init_for_model gives its tokenizer: the
 * directory's tokenizer.json, else the bundled GPT-NeoX one. */
lm_status lm_model_init(lm_model **model, const char *path);
void lm_model_free(lm_model *model);
const lm_config *lm_model_config(const lm_model *model);
const char *lm_model_tokenizer_path(const lm_model *model);

/* The checkpoint's tensor table (for inspection: lightmamba info). */
#define LM_TENSOR_MAX_DIMS 8
typedef struct {
    const char *name;
    const char *dtype;      /* as stored: "F32", "F16", "BF16" */
    int ndim;
    int64_t shape[LM_TENSOR_MAX_DIMS];
    uint64_t nbytes;        /* as stored */
    int used;               /* 0: in the checkpoint but not part of the model (ignored) */
} lm_tensor_info;
int lm_model_n_tensors(const lm_model *model);
const lm_tensor_info *lm_model_tensor(const lm_model *model, int i);
/* Parameter count: elements of the tensors the model uses (a tied lm_head counted once). */
uint64_t lm_model_n_params(const lm_model *model);

/* ---- tokenizer: GPT-NeoX byte-level BPE from a Hugging Face tokenizer.json ---- */
/* Encoding follows the `tokenizers` pipeline: added tokens (e.g. "<|endoftext|>" in the text)
 * matched first, NFC, the GPT-2 pattern, byte-level BPE; no BOS/EOS is added. Decoding
 * concatenates the tokens' bytes, so decode(encode(t)) == NFC(t). A NULL path is the bundled
 * GPT-NeoX tokenizer (data/tokenizer.json). Encoding does not modify the tokenizer: one
 * tokenizer may serve several threads. */
typedef struct lm_tokenizer lm_tokenizer;
lm_status lm_tokenizer_init(lm_tokenizer **tok, const char *tokenizer_json_path);
/* The same from the bytes of a tokenizer.json (len bytes, need not be NUL-terminated); `what`
 * names the source in error messages (NULL: "tokenizer.json"). */
lm_status lm_tokenizer_init_json(lm_tokenizer **tok, const char *json, size_t len, const char *what);
/* The tokenizer that belongs to a model: the one embedded in a quantized model file, else the
 * model directory's tokenizer.json, else the bundled GPT-NeoX one. */
lm_status lm_tokenizer_init_for_model(lm_tokenizer **tok, const lm_model *model);
void lm_tokenizer_free(lm_tokenizer *tok);
/* UTF-8 text (len bytes) -> token ids (*ids malloc'd, caller frees). Invalid UTF-8 -> LM_ERR_FORMAT naming the byte offset. */
lm_status lm_tokenizer_encode(const lm_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n_ids);
/* token ids -> text (*text malloc'd, NUL-terminated; *len excludes the NUL). An id out of range -> LM_ERR_ARG. */
lm_status lm_tokenizer_decode(const lm_tokenizer *tok, const int32_t *ids, size_t n_ids, char **text, size_t *len);
/* The raw bytes of one token, for streaming output (NULL and *len = 0 for an id out of range). */
const char *lm_tokenizer_token(const lm_tokenizer *tok, int32_t id, size_t *len);
int lm_tokenizer_vocab_size(const lm_tokenizer *tok);

/* ---- session: the run state of one sequence over a loaded model ----
 * Holds the recurrent state (per layer: conv state [d_conv-1, conv_dim] and SSM state
 * [H, P, N]), scratch for a fixed chunk of LM_SESSION_CHUNK tokens and a thread pool.
 * Its memory does not depend on how many tokens it is fed: longer inputs are processed
 * in chunks. A session reads the model and never changes it; one model can serve many
 * sessions (each used by one thread at a time). */
#define LM_SESSION_CHUNK 64
typedef struct lm_session lm_session;
/* n_threads <= 0: all cores. */
lm_status lm_session_init(lm_session **s, const lm_model *m, int n_threads);
void lm_session_free(lm_session *s);
/* Zeroes the state: the next token is the first of a new sequence. */
void lm_session_reset(lm_session *s);
/* Feeds n tokens (continuing the current state) and advances the state past them.
 * logits: NULL, or [n, vocab_size] receiving the logits after every token;
 * last_logits: NULL, or [vocab_size] receiving the logits after the last token.
 * With both NULL only the state advances (lm_head is skipped). Prefill and decode are
 * the same call (decode is n = 1). A token id out of [0, vocab_size) -> LM_ERR_ARG, and
 * the state is then left unchanged. */
lm_status lm_session_forward(lm_session *s, const int32_t *tokens, size_t n, float *logits, float *last_logits);
int lm_session_vocab_size(const lm_session *s);
/* Tokens fed since the session was created or last reset (or that a loaded state had consumed). */
uint64_t lm_session_n_tokens(const lm_session *s);
/* [vocab_size] logits after the last token fed, recomputed from the state (bit-identical to the
 * last_logits of the lm_session_forward call that fed it with logits == NULL). None fed yet -> LM_ERR_ARG. */
lm_status lm_session_last_logits(lm_session *s, float *logits);

/* ---- session state files (docs/state-format.md) ----
 * Save a session's state (e.g. after a prompt) and resume it later, in this or another
 * process, over the same model: the continuation is then bit for bit what running straight on
 * would have given. The file records the model's configuration and a hash of its weights;
 * loading it into another model fails (LM_ERR_ARG, naming what differs). lm_state_save writes
 * atomically. lm_state_load validates the whole file (magic, version, size, CRC-32C, model,
 * every array's name, type and shape) before it touches the session: on failure the session is
 * as it was. Corrupt or truncated files -> LM_ERR_FORMAT, a missing one -> LM_ERR_IO. */
lm_status lm_state_save(const lm_session *s, const char *path);
lm_status lm_state_load(lm_session *s, const char *path);

/* Calibration observer: called with the input x [T, K] of every in_proj (K = d_model,
 * the block's RMSNorm output) and every out_proj (K = d_inner, the gated RMSNorm output)
 * of each chunk of T tokens, before the product. fn = NULL removes it. */
typedef enum { LM_SITE_IN_PROJ = 0, LM_SITE_OUT_PROJ = 1 } lm_site;
typedef void (*lm_observer_fn)(void *ctx, int layer, lm_site site, const float *x, int T, int K);
void lm_session_set_observer(lm_session *s, lm_observer_fn fn, void *ctx);

/* ---- sampling ----
 * temperature 0: greedy (argmax, lowest id on ties). Otherwise softmax(logits / temperature)
 * restricted to the top_p nucleus (top_p in (0, 1]; 1 = no restriction), drawn with a
 * small PRNG seeded by seed (the same seed gives the same draws on every platform).
 * Only ids [0, n_candidates) are considered (e.g. the tokenizer's ids of a padded vocabulary). */
typedef struct lm_sampler lm_sampler;
/* The n_candidates of a model's output with tokenizer tok: the ids both the model's rows and the
 * tokenizer have, min(vocab_size, the tokenizer's vocabulary). A padded vocabulary (e.g. 50288
 * rows for the 50277 GPT-NeoX ids) has rows no token maps to; they are never chosen. */
int lm_token_candidates(const lm_model *model, const lm_tokenizer *tok);
lm_status lm_sampler_init(lm_sampler **s, int n_candidates, float temperature, float top_p, uint64_t seed);
void lm_sampler_free(lm_sampler *s);
int32_t lm_sampler_sample(lm_sampler *s, const float *logits);

/* ---- perplexity ----
 * The protocol of shared/models/README.md: ids split into consecutive chunks of ctx
 * tokens (the last may be shorter), the state reset at each chunk start, every token but
 * each chunk's first scored by nll = -log softmax(logits of the previous position)[id];
 * ppl = exp(mean nll). Fewer than one scored token -> LM_ERR_ARG ("nothing to score"). */
typedef struct {
    double ppl;
    double nll_mean;
    size_t tokens;       /* scored tokens */
    double seconds;      /* wall time of the evaluation */
} lm_perplexity_result;
/* Called after each chunk of ctx tokens with the tokens processed so far and the total. */
typedef void (*lm_progress_fn)(void *ctx, size_t done, size_t total);
lm_status lm_perplexity(lm_session *s, const int32_t *ids, size_t n_ids, int ctx,
                        lm_progress_fn progress, void *progress_ctx, lm_perplexity_result *result);
/* -log softmax(logits)[target] over n logits, computed stably (max subtracted, double sums). */
double lm_nll(const float *logits, int n, int32_t target);

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
lm_status lm_saved_base_load(lm_saved_base **b, const char *path);
void lm_saved_base_free(lm_saved_base *b);

/* Compares `model` with its base over ids, in chunks of ctx as lm_perplexity. The base is exactly
 * one of: `base`, a session over the base model run alongside, or `saved`, a base saved on the same
 * ids and ctx (anything else -> LM_ERR_ARG naming what differs). save_path: NULL, or a file that
 * receives the base (needs `base`; written atomically, memory does not grow with the text).
 * The vocabularies must match. */
lm_status lm_kl_divergence(lm_session *model, lm_session *base, const lm_saved_base *saved, const char *save_path,
                           const int32_t *ids, size_t n_ids, int ctx, lm_progress_fn progress, void *progress_ctx,
                           lm_kl_result *result);
/* lm_perplexity of s's model that also saves it to path as a base for later comparisons (as
 * lm_kl_divergence's save_path does for a base run alongside). */
lm_status lm_save_base(lm_session *s, const int32_t *ids, size_t n_ids, int ctx, const char *path,
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
const char *lm_task_name(lm_task_kind kind);   /* "lambada", "hellaswag", "piqa", "arc", "winogrande" */
typedef struct lm_task lm_task;
/* Reads a task file and tokenizes every request with tok. A line that is not a JSON object with
 * the task's fields -> LM_ERR_FORMAT, the message naming the file and line. Blank lines are
 * skipped; no items -> LM_ERR_FORMAT. */
lm_status lm_task_load(lm_task **task, lm_task_kind kind, const char *path, const lm_tokenizer *tok);
void lm_task_free(lm_task *task);
size_t lm_task_items(const lm_task *task);

typedef struct {
    size_t items;
    double acc, acc_stderr;            /* fraction correct and the standard error of that mean */
    double acc_norm, acc_norm_stderr;  /* length-normalised; NAN where not defined */
    double ppl;                        /* lambada: the targets' perplexity; NAN otherwise */
    double seconds;
} lm_task_result;
/* Scores the first `limit` items (0: all). Progress is called after each item. */
lm_status lm_task_eval(lm_session *s, const lm_task *task, size_t limit, lm_progress_fn progress, void *progress_ctx,
                       lm_task_result *result);

/* The log-likelihood of cont after context (the state reset first): sum over the continuation's
 * tokens of log softmax(logits after all tokens before it)[token], and *greedy = 1 when every one
 * of them is the argmax (the lower id on ties). n_context >= 1, n_cont >= 1. */
lm_status lm_loglikelihood(lm_session *s, const int32_t *context, size_t n_context, const int32_t *cont, size_t n_cont,
                           double *loglik, int *greedy);

/* ---- post-training quantization (src/quant; docs/quantized-format.md) ----
 * lm_quantize turns a float model into one self-contained quantized model file, which
 * lm_model_init then loads like a model directory. in_proj and out_proj become integer
 * linear layers (src/kernels/kernels.h: weights wbits with a 2^e0 (2^s1 + 2^s2) scale per
 * row and 128 inputs; activations abits, dynamic per token, a power-of-two exponent per 8
 * channels); embedding, conv, SSM, norms and lm_head stay float.
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
    int act_group;             /* 8, 16, 32, 64, 128 or LM_ACT_PER_TOKEN; pot8 needs 8 */
    lm_act_scale act_scale;    /* pot8 needs LM_ACT_SCALE_POW2 */
    int calib_samples;         /* calibration: samples of calib_len consecutive tokens */
    int calib_len;
    int rotated;               /* set by lm_quantize: Hadamard rotations applied (lightmamba) */
} lm_quant_settings;
/* lightmamba W4A4, round to nearest, alpha 0.5, the hardware's activation format (8 channels,
 * power of two), 128 samples of 512 tokens. */
lm_quant_settings lm_quant_defaults(void);
const char *lm_quant_method_name(lm_quant_method m);   /* "float", "rtn", "smoothquant", "lightmamba" */
/* Progress: stage names what is running ("calibration", "quantize"), done of total units. */
typedef void (*lm_quant_progress_fn)(void *ctx, const char *stage, size_t done, size_t total);
/* Quantizes m into out_path (written atomically). calib_path: UTF-8 text whose tokens give the
 * calibration samples (used by smoothquant and gptq); NULL: the bundled WikiText-2 validation
 * text (data/calib_wikitext2_valid.txt). n_threads <= 0: all cores. */
lm_status lm_quantize(const lm_model *m, const lm_quant_settings *settings, const char *calib_path, int n_threads,
                      const char *out_path, lm_quant_progress_fn progress, void *progress_ctx);
/* How a loaded model was quantized (method LM_QUANT_NONE for a float checkpoint). */
const lm_quant_settings *lm_model_quant(const lm_model *m);

#ifdef __cplusplus
}
#endif
#endif
