/* Memory traffic of one decode step (T = 1), counted from the model's tensors as they are
 * held in memory (what the kernels actually read: integer weights packed as stored, with
 * their scale bytes and row exponents; the embedding and lm_head of a quantized file as stored,
 * float16 or integer rows, used in place; other float tensors as float32):
 *   weights  every tensor of every block (norms, in_proj, conv, dt_bias, A, D, gated norm,
 *            out_proj, biases), norm_f, lm_head (once, even when tied) and one embedding row
 *   state    the recurrent state, conv [n_layer, d_conv-1, conv_dim] and SSM [n_layer, H, P, N]
 *            float32 (SSM mode pot8: int8 with one exponent byte per 8 values), read once and
 *            written once per step (it is larger than the caches at real sizes: 168 MB for
 *            Mamba2-2.7B in float32)
 *   total    weights + 2 * state
 * Activations (a few d_inner-wide vectors per layer) stay in cache and are not counted. */
#ifndef LM_MODEL_TRAFFIC_H
#define LM_MODEL_TRAFFIC_H
#include <stdint.h>
#include "model/model.h"

typedef struct {
    uint64_t weights, lm_head, state, total; /* bytes; lm_head is part of weights */
} lm_decode_traffic;

void lm_decode_traffic_count(const lm_model *m, lm_decode_traffic *t);

#endif
