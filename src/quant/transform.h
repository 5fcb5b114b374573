/* Offline transforms of a float model before quantization (docs/quantization.md sections 3, 4 and 7), done on
 * a private float32 copy so the source model (possibly memory-mapped) is never written.
 *
 * Shape legend: D d_model, DI d_inner, E in_proj width, V vocab_size. */
#ifndef LM_QUANT_TRANSFORM_H
#define LM_QUANT_TRANSFORM_H
#include "model/session.h" /* lm_site */

/* A deep copy of src with every tensor in float32 memory it owns (released by lm_model_free),
 * linear layers float, no tensor table. src must be a float model. */
lm_status lm_model_clone_f32(lm_model **out, const lm_model *src);

/* LightMamba rotation, in place on a clone; the model computes the same function afterwards.
 * With R = H_D / sqrt(D) and R_i = H_DI / sqrt(DI) (kernels/hadamard.h):
 *   embedding rows      e      <- R e                      the residual stream becomes R u
 *   in_proj (norm g)    W      <- W diag(g) R^T,  g <- 1   RMSNorm(R u) = R RMSNorm(u)
 *   out_proj            W      <- R W R_i^T,  bias <- R bias
 *   online              y      <- R_i y before out_proj    (m->rot_inner; the gated norm's weight stays in the norm)
 *   lm_head (norm_f g_f) W     <- W diag(g_f) R^T, g_f <- 1 (untied from the embedding unless g_f == 1)
 * Sets m->rot_inner and m->quant.rotated. */
lm_status lm_fuse_rotation(lm_model *m);

/* One part of it, for ablations (docs/quantization-quality.md): residual: the d_model rotation
 * (embedding, in_proj with the norm weight folded, out_proj output side, lm_head); online: the
 * d_inner rotation (m->rot_inner, out_proj input side, m->quant.rotated). Both: lm_fuse_rotation.
 * Applying R_i to out_proj's rows and R to its columns commute, so the order does not matter. */
lm_status lm_fuse_rotation_parts(lm_model *m, int residual, int online);

/* SmoothQuant on one linear layer of a clone: X W^T = (X diag(s)^-1)(W diag(s))^T with
 *   s_j = max|X_j|^alpha / max_o |W[o][j]|^(1 - alpha)
 * (s_j = 1 where either maximum is 0), the 1/s_j folded into the norm weight that produces X:
 * the block RMSNorm for in_proj, the gated RMSNorm for out_proj. act_max [K] from calibration. */
void lm_fuse_smoothing(lm_model *m, int layer, lm_site site, const float *act_max, float alpha);

#endif
