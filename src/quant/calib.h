/* Calibration: runs token samples through a float model and collects, at the input of every
 * in_proj (K = d_model) and out_proj (K = d_inner), the statistics the quantizers need:
 *   amax[j] = max over tokens |x_j|          (SmoothQuant's smoothing factors)
 *   H       = sum over tokens x x^T          (GPTQ's Hessian; upper triangle accumulated, then mirrored)
 * The inputs are observed exactly as the model's linear layers receive them (after any fused
 * transform and the online rotation), through the session's observer hook. */
#ifndef LM_QUANT_CALIB_H
#define LM_QUANT_CALIB_H
#include <stddef.h>
#include <stdint.h>
#include "model/session.h" /* lm_site */

typedef struct {
    int n_layer, K[2];     /* K[site]: d_model for LM_SITE_IN_PROJ, d_inner for LM_SITE_OUT_PROJ */
    float *amax[2];        /* [n_layer, K[site]] or NULL when not collected */
    float *hessian[2];     /* [n_layer, K[site], K[site]] or NULL when not collected */
    size_t tokens;         /* tokens observed */
} lm_calib_stats;

/* Samples: n_samples windows of len consecutive tokens of ids, their starts evenly spaced over
 * the text (overlapping when the text is short; len > n_ids is an error). Each sample starts
 * from a zero state. progress(ctx, "calibration", done, n_samples) after each sample. */
lm_status lm_calibrate(const lm_model *m, const int32_t *ids, size_t n_ids, int n_samples, int len, int n_threads,
                       int want_amax, int want_hessian, lm_calib_stats *stats, lm_quant_progress_fn progress,
                       void *progress_ctx);
void lm_calib_stats_free(lm_calib_stats *stats);

/* Reports progress (fn may be NULL); LM_ERR_ABORTED when fn asks to stop. */
lm_status lm_quant_report(lm_quant_progress_fn fn, void *ctx, const char *stage, size_t done, size_t total);

#endif
