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

#ifdef __cplusplus
}
#endif
#endif
