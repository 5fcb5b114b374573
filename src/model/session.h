/* The run state of one sequence (struct lm_session, public API in lightmamba.h).
 * Internal so the rest of src/model (perplexity) can share the session's thread pool, and the
 * quantizer can watch the linear layers' inputs (the calibration observer). */
#ifndef LM_MODEL_SESSION_H
#define LM_MODEL_SESSION_H
#include "model/model.h"

/* Calibration observer: called with the input x [T, K] of every in_proj (K = d_model,
 * the block's RMSNorm output) and every out_proj (K = d_inner, the gated RMSNorm output)
 * of each chunk of T tokens, before the product. */
typedef enum { LM_SITE_IN_PROJ = 0, LM_SITE_OUT_PROJ = 1 } lm_site;
typedef void (*lm_observer_fn)(void *ctx, int layer, lm_site site, const float *x, int T, int K);

struct lm_session {
    const lm_model *m;
    lm_pool *pool;
    lm_abort_fn abort;   /* polled before each chunk (lm_session_params) */
    void *abort_ctx;
    lm_observer_fn observer;
    void *observer_ctx;
    /* recurrent state, per layer */
    float *conv_state;   /* [n_layer, d_conv-1, conv_dim] */
    float *ssm_state;    /* [n_layer, H, P, N] */
    /* where the sequence stands: tokens fed since the last reset, and the residual stream after
     * the last block for the last of them (norm_f + lm_head of it give its logits again) */
    uint64_t n_tokens;
    float *last_hidden;  /* [d_model] */
    /* scratch for one chunk of up to LM_SESSION_CHUNK tokens (T) */
    float *x;            /* [T, d_model]  residual stream */
    float *xn;           /* [T, d_model]  RMSNorm output */
    float *zxbcdt;       /* [T, E]        in_proj output, E = 2*d_inner + 2*G*N + H */
    float *xbc;          /* [T, conv_dim] conv + SiLU output */
    float *y;            /* [T, d_inner]  SSM output, then gated RMSNorm output */
    float *out;          /* [T, d_model]  out_proj output */
    float *ssd_scratch;  /* [pool size, ssm_chunked_scratch_floats]: each part's scratch of the chunked scan */
    /* quantized activations of the integer in_proj (K = d_model) and out_proj (K = d_inner)
     * inputs; allocated only for a quantized model */
    lm_qact act_in, act_out;
    /* an integer lm_head's input (K = d_model, the hardware's activation format, LM_HEAD_ABITS) */
    lm_qact act_head;
    /* SSM mode pot8 (LightMamba*): the integer blocks' state and scratch (model/int_forward.h);
     * NULL otherwise. conv_state/ssm_state are then unused. */
    struct lm_int_session *int_s;
    /* where the time goes (lm_session_set_profile); NULL: not measured */
    struct lm_stage_profile *profile;
};

/* Wall time of lm_session_forward / lm_session_last_logits by stage (as seen by the calling
 * thread; a parallel stage counts once), for `lightmamba bench --profile`. Costs one clock read
 * per stage when set, one branch when not. */
typedef enum {
    LM_STAGE_NORM,        /* block RMSNorm, gated RMSNorm, norm_f */
    LM_STAGE_LINEAR,      /* in_proj, out_proj (integer layers: with the activation quantization) */
    LM_STAGE_CONV,        /* causal conv1d + SiLU */
    LM_STAGE_SSM,         /* the selective scan */
    LM_STAGE_HADAMARD,    /* LightMamba's online rotation of out_proj's input */
    LM_STAGE_HEAD,        /* lm_head */
    LM_STAGE_INT_BLOCKS,  /* SSM mode pot8: the integer blocks, not broken down */
    LM_STAGE_OTHER,       /* embedding rows, residual adds, copies */
    LM_STAGE_COUNT
} lm_stage;

typedef struct lm_stage_profile {
    double seconds[LM_STAGE_COUNT];
    double mark;          /* the end of the last stage (internal) */
} lm_stage_profile;

/* fn = NULL removes it. */
void lm_session_set_observer(lm_session *s, lm_observer_fn fn, void *ctx);

/* Accumulate into p (zero it first) from now on; NULL stops. */
void lm_session_set_profile(lm_session *s, lm_stage_profile *p);
const char *lm_stage_name(lm_stage stage);

#endif
