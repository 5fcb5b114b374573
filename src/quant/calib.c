/* Calibration statistics through the session's observer hook. */
#include "quant/calib.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"

void lm_calib_stats_free(lm_calib_stats *st) {
    for (int s = 0; s < 2; s++) {
        free(st->amax[s]);
        free(st->hessian[s]);
    }
    memset(st, 0, sizeof *st);
}

/* x [T, K] seen at (layer, site). */
static void observe(void *ctx, int layer, lm_site site, const float *x, int T, int K) {
    lm_calib_stats *st = ctx;
    if (st->amax[site]) {
        float *m = st->amax[site] + (size_t)layer * K;
        for (int t = 0; t < T; t++)
            for (int j = 0; j < K; j++) m[j] = fmaxf(m[j], fabsf(x[(size_t)t * K + j]));
    }
    if (st->hessian[site]) /* H += x^T x (upper triangle) */
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, K, T, 1.0f, x, K, 1.0f,
                    st->hessian[site] + (size_t)layer * K * K, K);
    if (layer == 0 && site == LM_SITE_IN_PROJ) st->tokens += (size_t)T;
}

lm_status lm_quant_report(lm_quant_progress_fn fn, void *ctx, const char *stage, size_t done, size_t total) {
    if (fn && fn(ctx, stage, done, total)) return lm_fail(LM_ERR_ABORTED, "quantize: stopped by the caller during %s", stage);
    return LM_OK;
}

lm_status lm_calibrate(const lm_model *m, const int32_t *ids, size_t n_ids, int n_samples, int len, int n_threads,
                       int want_amax, int want_hessian, lm_calib_stats *st, lm_quant_progress_fn progress,
                       void *progress_ctx) {
    memset(st, 0, sizeof *st);
    if (n_samples < 1 || len < 1) return lm_fail(LM_ERR_ARG, "calibration: %d samples of %d tokens", n_samples, len);
    if ((size_t)len > n_ids)
        return lm_fail(LM_ERR_ARG, "calibration: the text has %zu tokens, fewer than one sample of %d", n_ids, len);
    const lm_config *c = &m->cfg;
    st->n_layer = c->n_layer;
    st->K[LM_SITE_IN_PROJ] = c->d_model;
    st->K[LM_SITE_OUT_PROJ] = c->d_inner;
    lm_status s = LM_OK;
    for (int site = 0; site < 2 && !s; site++) {
        size_t K = (size_t)st->K[site];
        if (want_amax) s = lm_calloc(&st->amax[site], (size_t)c->n_layer * K, sizeof(float), "calibration maxima");
        if (!s && want_hessian)
            s = lm_calloc(&st->hessian[site], (size_t)c->n_layer * K * K, sizeof(float), "calibration Hessians");
    }
    lm_session *session = NULL;
    lm_session_params sp = lm_session_default_params();
    sp.n_threads = n_threads;
    if (!s) s = lm_session_init(&session, m, &sp);
    if (!s) lm_session_set_observer(session, observe, st);
    for (int i = 0; i < n_samples && !s; i++) {
        size_t start = n_samples == 1 ? 0 : (size_t)((double)(n_ids - (size_t)len) * i / (n_samples - 1));
        lm_session_reset(session);
        s = lm_session_forward(session, ids + start, (size_t)len, NULL, NULL);
        if (!s) s = lm_quant_report(progress, progress_ctx, "calibration", (size_t)i + 1, (size_t)n_samples);
    }
    lm_session_free(session);
    /* Mirror the upper triangles: full symmetric Hessians. */
    for (int site = 0; site < 2 && !s; site++) {
        if (!st->hessian[site]) continue;
        size_t K = (size_t)st->K[site];
        for (int l = 0; l < c->n_layer; l++) {
            float *H = st->hessian[site] + (size_t)l * K * K;
            for (size_t i = 0; i < K; i++)
                for (size_t j = 0; j < i; j++) H[i * K + j] = H[j * K + i];
        }
    }
    if (s) lm_calib_stats_free(st);
    return s;
}
