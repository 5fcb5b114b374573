/* Synthetic models of any Mamba2 shape, for measuring speed at sizes whose checkpoints are
 * not at hand: random weights drawn like a real initialisation, written straight to a model
 * file without a float checkpoint on the way.
 *
 * Every value depends only on (seed, tensor name, element index), so the quantized and the
 * float variant of one seed hold the same weights (up to quantization), whatever the thread
 * count. Distributions (per tensor, K = a linear layer's input width):
 *   in_proj, out_proj, untied lm_head    N(0, 1/K)                 (variance-preserving)
 *   embedding                            N(0, 0.02^2)              (the HF initializer_range)
 *   norm weights (block, gated, norm_f)  1 + N(0, 0.05^2)
 *   conv1d weight, bias                  U(-1/sqrt(d_conv), 1/sqrt(d_conv))  (PyTorch's Conv1d init)
 *   A_log                                log U(1, 16)              (Mamba2's A_init_range)
 *   dt_bias                              softplus^-1(dt), dt = exp(U(log 1e-3, log 0.1))
 *   D                                    1
 *   projection biases (proj_bias)        0 */
#ifndef LM_QUANT_SYNTH_H
#define LM_QUANT_SYNTH_H
#include <stdint.h>
#include "lightmamba.h"

/* A quantized model file (docs/quantized-format.md) of config c with settings q (method rtn
 * or lightmamba; lightmamba marks the model rotated so it runs the online Hadamard, the same
 * work as a real LightMamba model: rotating Gaussian weights gives Gaussian weights). The
 * weights are quantized one layer at a time (round to nearest, each group's scale by the real
 * quantizer's pair search, the row exponent by a rule: synth.c), so the float weights held at
 * any moment are one linear layer's. SSM mode pot8 (LightMamba*, our datapath) also builds every
 * block's integer parameters, its sites calibrated on a short run of the model itself (synth.c).
 * The activation format is the hardware's. The bundled GPT-NeoX tokenizer.json is embedded. */
lm_status lm_synth_quantized(const char *path, const lm_config *c, const lm_quant_settings *q, uint64_t seed,
                             int n_threads);

/* A float32 model directory (config.json in the Hugging Face keys, model.safetensors F32,
 * the bundled tokenizer.json), each tensor generated and written in turn. dir is created if missing. */
lm_status lm_synth_float(const char *dir, const lm_config *c, uint64_t seed, int n_threads);

#endif
