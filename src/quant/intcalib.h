/* LightMamba* (SSM mode pot8): calibration of the integer datapath's sites and the build of
 * every block's integer parameters (docs/integer-datapath.md section 5).
 *
 * Calibration is a dedicated float pass (not the observer hook, which only sees the linear
 * layers' inputs): samples of consecutive tokens through the float model as the quantizer holds
 * it after its offline transforms (rotation or smoothing fused, linear layers still float), each
 * block's mixer stepped token by token by lm_int_calib_mixer, which records every site's range
 * (in_proj output, conv output, SiLU outputs, softplus input, dt, dt*A, dt*B, the state h,
 * y, the gate) in the order the integer block computes them. */
#ifndef LM_QUANT_INTCALIB_H
#define LM_QUANT_INTCALIB_H
#include "model/model.h"

/* cal [n_layer]: ranges over n_samples windows of len tokens of ids (evenly spaced starts, a zero
 * state each). m: the float model (the quantizer), or one whose in_proj/out_proj are already
 * integer in the hardware's activation format (synthetic models: synth.h), whose products the
 * ranges then follow. progress(ctx, "integer calibration", done, n_samples). */
lm_status lm_int_calibrate(const lm_model *m, const int32_t *ids, size_t n_ids, int n_samples, int len, int n_threads,
                           lm_int_calib *cal, lm_quant_progress_fn progress, void *progress_ctx);

/* Every layer's integer parameters from the model's float SSM weights, its (already integer)
 * in_proj/out_proj, the calibrated ranges, m->rot_inner (the online Hadamard, if any) and the
 * datapath dp (0 ours, LM_DP_RELEASE the release's; integer.h).
 * layers [n_layer] (lm_int_layer_free each; they point at m's linear weights). */
lm_status lm_int_build_layers(lm_int_layer *layers, const lm_model *m, const lm_int_calib *cal, int abits, int dp);

#endif
