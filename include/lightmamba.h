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

typedef struct lm_model lm_model;

/* ---- tokenizer: GPT-NeoX byte-level BPE from a Hugging Face tokenizer.json ---- */
typedef struct lm_tokenizer lm_tokenizer;
lm_status lm_tokenizer_init(lm_tokenizer **tok, const char *tokenizer_json_path);
void lm_tokenizer_free(lm_tokenizer *tok);
/* UTF-8 text (len bytes) -> token ids (*ids malloc'd, caller frees). Invalid UTF-8 -> LM_ERR_FORMAT naming the byte offset. */
lm_status lm_tokenizer_encode(const lm_tokenizer *tok, const char *text, size_t len, int32_t **ids, size_t *n_ids);
/* token ids -> text (*text malloc'd, NUL-terminated; *len excludes the NUL). An id out of range -> LM_ERR_ARG. */
lm_status lm_tokenizer_decode(const lm_tokenizer *tok, const int32_t *ids, size_t n_ids, char **text, size_t *len);
/* The raw bytes of one token, for streaming output (NULL and *len = 0 for an id out of range). */
const char *lm_tokenizer_token(const lm_tokenizer *tok, int32_t id, size_t *len);
int lm_tokenizer_vocab_size(const lm_tokenizer *tok);

#ifdef __cplusplus
}
#endif
#endif
