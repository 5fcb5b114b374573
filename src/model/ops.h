/* The float32 operators of a Mamba2 block, each over a chunk of T tokens (row-major).
 *
 * Shape legend: T tokens, D d_model, K/O a linear layer's input/output width,
 * E in_proj width = 2*d_inner + 2*G*N + H (rows [z | x | B | C | dt]),
 * C conv channels = d_inner + 2*G*N (the [x | B | C] part), W conv kernel width,
 * H heads, P head_dim, N d_state, G groups (head hd reads B, C of group hd / (H/G)). */
#ifndef LM_MODEL_OPS_H
#define LM_MODEL_OPS_H
#include "model/model.h"

/* out[t] = x[t] / sqrt(mean_i x[t][i]^2 + eps) * w          x, out [T, D], w [D]; out may be x */
void rmsnorm_forward(float *out, const float *x, const float *w, int T, int D, float eps);

/* x[t] = embedding row tokens[t] as float32 (exact from float16 or integer rows)   x [T, D]; tokens in [0, vocab) */
void embedding_forward(float *x, const lm_model *m, const int32_t *tokens, int T);

/* y[t] = W x[t] (+ bias)                                      x [T, K], y [T, O]
 * Every linear layer goes through here, whatever its storage (float32, float16 or integer).
 * act: scratch for an integer layer's quantized activations (room for T tokens of K
 * channels, L->abits, L->q.wbits); NULL for float layers. */
void linear_forward(float *y, const float *x, const lm_linear *L, int T, lm_pool *pool, lm_qact *act);

/* Causal depthwise convolution, bias and SiLU, of channels [c0, c1):
 *   out[t][c] = SiLU(b[c] + sum_{k<W} w[c][k] * in[t - (W-1) + k][c])
 * where rows before the chunk come from state [W-1, C] (the previous W-1 inputs, oldest
 * first), which is then advanced to the chunk's last W-1 inputs. Channels are independent:
 * disjoint ranges may run in parallel.
 * in [T, C] with row stride in_stride (a column slice of in_proj's output), out [T, C],
 * w [C, W], b [C] or NULL. */
void conv1d_silu_forward(float *out, float *state, const float *in, int in_stride,
                         const float *w, const float *b, int T, int C, int W, int c0, int c1);

/* The selective scan of heads [h0, h1) over T tokens, one token at a time:
 *   dt  = clamp(softplus(dt_raw[t][hd] + dt_bias[hd]), dt_min, dt_max)
 *   dA  = exp(dt * A[hd])
 *   h[hd][p][n] = dA * h[hd][p][n] + dt * x[t][hd*P+p] * B[t][g][n]
 *   y[t][hd*P+p] = sum_n h[hd][p][n] * C[t][g][n] + D[hd] * x[t][hd*P+p]
 * xbc [T, C] = [x (d_inner) | B (G*N) | C (G*N)] after the conv; dt_raw [T, H] with row
 * stride dt_stride; state [H, P, N]; y [T, d_inner] (only heads [h0, h1) written). */
void ssm_forward(float *y, float *state, const float *xbc, const float *dt_raw, int dt_stride,
                 const lm_layer *L, const lm_config *cfg, int T, int h0, int h1);

/* The same scan in the chunked ("state space duality") form of docs/mamba2.md section 7, for a
 * prefill: per chunk of Q <= LM_SSD_CHUNK tokens and head, with a(t, s) = dA[s+1] ... dA[t]
 * (a(t, t) = 1, a(t, -1) the decay of the state h entering the chunk),
 *   y[t] = a(t, -1) h C[t] + sum_{s<=t} a(t, s) (C[t] . B[s]) dt[s] x[s] + D x[t]
 *   h    = a(Q-1, -1) h + sum_s a(Q-1, s) dt[s] x[s] B[s]^T
 * as four matrix products (lm_sgemm): C B^T [Q, Q] once per group, then per head the state's
 * share [Q, N] x [N, P], the masked [Q, Q] x [Q, P] and the state update [P, Q] x [Q, N].
 * Equal to ssm_forward within float rounding (tests/test_model_ssd.c); the result of a head does
 * not depend on [h0, h1). Arguments as ssm_forward's, plus scratch of
 * ssm_chunked_scratch_floats(cfg) floats for the calling part alone. */
#define LM_SSD_CHUNK 64
size_t ssm_chunked_scratch_floats(const lm_config *cfg);
void ssm_chunked_forward(float *y, float *state, const float *xbc, const float *dt_raw, int dt_stride,
                         const lm_layer *L, const lm_config *cfg, int T, int h0, int h1, float *scratch);
/* 1 when the chunked form is the faster of the two for T tokens of this shape on this CPU
 * (bench_scan measures both). */
int ssm_chunked_pays(const lm_config *cfg, int T);

/* Gated RMSNorm (norm_before_gate = false) is the two steps below:
 *   v = y[t] * SiLU(z[t]);  out[t][i] = v[i] / sqrt(mean_{group(i)} v^2 + eps) * w[i]
 * The gate, of channels [i0, i1) (disjoint ranges may run in parallel), in place:
 *   y[t][i] *= SiLU(z[t][i])          y [T, d_inner], z [T, d_inner] with row stride z_stride */
void silu_gate_forward(float *y, const float *z, int z_stride, int T, int d_inner, int i0, int i1);
/* RMSNorm of each group of d_inner/G channels, in place     y [T, d_inner], w [d_inner] */
void group_rmsnorm_forward(float *y, const float *w, int T, int d_inner, int G, float eps);

#endif
