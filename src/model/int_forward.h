/* The LightMamba* forward (SSM mode pot8): every block in integers, per docs/integer-datapath.md,
 * over chunks of tokens. The golden model (src/integer, lm_int_block_forward) defines the bits;
 * this runs the same stages with in_proj/out_proj batched over the chunk through the SIMD
 * integer kernels (lm_qlinear_acc + lm_int_linear_round, exactly lm_int_linear_fixed), the
 * per-token stages spread over the pool by token, the conv by channel tile (in token order) and
 * the state step by head (every unit at the best SIMD level). Every stage is per token, and the
 * channels of the conv and the heads are independent, so the result is the same for any
 * chunking and any thread count. */
#ifndef LM_MODEL_INT_FORWARD_H
#define LM_MODEL_INT_FORWARD_H
#include "model/model.h"

typedef struct lm_int_session lm_int_session;

/* State (zeroed) and scratch for chunks of up to max_T tokens of m (m->int_layers set). */
lm_status lm_int_session_init(lm_int_session **is, const lm_model *m, lm_pool *pool, int max_T);
void lm_int_session_free(lm_int_session *is);
void lm_int_session_reset(lm_int_session *is);

/* x [T, d_model]: the embedding rows in, the residual stream after the last block out
 * (Q10 -> float, exact for |x| < 2^14). */
void lm_int_session_forward(lm_int_session *is, float *x, int T);

/* Layer l's state (views into the session's per-model arrays below). */
lm_int_state *lm_int_session_state(lm_int_session *is, int l);
/* The whole state, for state files: conv_q [n_layer, W-1, C], conv_s [n_layer, W-1, C/8],
 * h_q [n_layer, H, P, N], h_s [n_layer, H, P/8, N]. */
typedef struct {
    int8_t *conv_q; uint8_t *conv_s;
    int8_t *h_q; uint8_t *h_s;
    size_t conv_n, h_n;          /* elements of conv_q and of h_q */
} lm_int_session_arrays;
lm_int_session_arrays lm_int_session_all(lm_int_session *is);

#endif
