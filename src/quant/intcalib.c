/* Calibration and build of the integer blocks (intcalib.h). */
#include "quant/intcalib.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"
#include "model/ops.h"
#include "quant/calib.h"

/* One chunk of T tokens through the model, mixers token by token (recording ranges). */
typedef struct {
    const lm_model *m;
    lm_pool *pool;
    lm_qact act_in, act_out;          /* integer in_proj/out_proj (synthetic models): their inputs */
    float *x, *xn, *zx, *v, *out;     /* [T, D], [T, D], [T, E], [T, di], [T, D] */
    float *conv_state, *ssm_state;    /* [n_layer, W-1, C], [n_layer, H, P, N] */
} calib_run;

static void chunk_forward(calib_run *r, lm_int_calib *cal, int T) {
    const lm_config *c = &r->m->cfg;
    const int D = c->d_model, di = c->d_inner, G = c->n_groups, gs = di / G;
    const size_t C = (size_t)di + 2 * (size_t)G * c->d_state, E = C + di + c->n_heads;
    const size_t conv_n = (size_t)(c->d_conv - 1) * C, ssm_n = (size_t)c->n_heads * c->head_dim * c->d_state;
    for (int l = 0; l < c->n_layer; l++) {
        const lm_layer *L = &r->m->layers[l];
        for (int t = 0; t < T; t++) lm_int_calib_norm_input(&cal[l], r->x + (size_t)t * D, D);
        rmsnorm_forward(r->xn, r->x, L->norm, T, D, c->eps);
        linear_forward(r->zx, r->xn, &L->in_proj, T, r->pool, &r->act_in);
        for (int t = 0; t < T; t++) {
            float *v = r->v + (size_t)t * di;
            lm_int_calib_mixer(&cal[l], v, r->conv_state + l * conv_n, r->ssm_state + l * ssm_n, r->zx + t * E,
                               L->conv_w, L->conv_b, L->dt_bias, L->A, L->D, c);
            for (int g = 0; g < G; g++)   /* the gated norm: an RMSNorm per group of v = y * SiLU(z) */
                rmsnorm_forward(v + (size_t)g * gs, v + (size_t)g * gs, L->gnorm + (size_t)g * gs, 1, gs, c->eps);
        }
        if (r->m->rot_inner) lm_hadamard_rotate(r->m->rot_inner, r->v, T);
        linear_forward(r->out, r->v, &L->out_proj, T, r->pool, &r->act_out);
        for (size_t i = 0; i < (size_t)T * D; i++) r->x[i] += r->out[i];
    }
}

lm_status lm_int_calibrate(const lm_model *m, const int32_t *ids, size_t n_ids, int n_samples, int len, int n_threads,
                           lm_int_calib *cal, lm_quant_progress_fn progress, void *progress_ctx) {
    const lm_config *c = &m->cfg;
    if (n_samples < 1 || len < 1) return lm_fail(LM_ERR_ARG, "integer calibration: %d samples of %d tokens", n_samples, len);
    if ((size_t)len > n_ids)
        return lm_fail(LM_ERR_ARG, "integer calibration: the text has %zu tokens, fewer than one sample of %d", n_ids, len);
    const lm_linear *in0 = &m->layers[0].in_proj, *out0 = &m->layers[0].out_proj;
    if (in0->kind == LM_LINEAR_F16 || (in0->kind == LM_LINEAR_INT && m->quant.act_scale != LM_ACT_SCALE_POW2))
        return lm_fail(LM_ERR_ARG, "integer calibration needs float32 or integer (hardware format) linear layers");
    for (int l = 0; l < c->n_layer; l++) lm_int_calib_init(&cal[l]);
    const size_t T = LM_SESSION_CHUNK, D = (size_t)c->d_model, di = (size_t)c->d_inner;
    const size_t C = di + 2 * (size_t)c->n_groups * c->d_state, E = C + di + c->n_heads;
    const size_t conv_n = (size_t)c->n_layer * (c->d_conv - 1) * C;
    const size_t ssm_n = (size_t)c->n_layer * c->n_heads * c->head_dim * c->d_state;
    calib_run r = {.m = m};
    lm_status s = lm_pool_init(&r.pool, n_threads);
    if (!s && in0->kind == LM_LINEAR_INT) s = lm_qact_init(&r.act_in, (int)T, (int)D, in0->abits, in0->q.wbits);
    if (!s && in0->kind == LM_LINEAR_INT) s = lm_qact_init(&r.act_out, (int)T, (int)di, out0->abits, out0->q.wbits);
    if (!s) s = lm_calloc(&r.x, T * D, sizeof(float), "calibration");
    if (!s) s = lm_calloc(&r.xn, T * D, sizeof(float), "calibration");
    if (!s) s = lm_calloc(&r.zx, T * E, sizeof(float), "calibration");
    if (!s) s = lm_calloc(&r.v, T * di, sizeof(float), "calibration");
    if (!s) s = lm_calloc(&r.out, T * D, sizeof(float), "calibration");
    if (!s) s = lm_calloc(&r.conv_state, conv_n ? conv_n : 1, sizeof(float), "calibration");
    if (!s) s = lm_calloc(&r.ssm_state, ssm_n, sizeof(float), "calibration");
    for (int i = 0; i < n_samples && !s; i++) {
        size_t start = n_samples == 1 ? 0 : (size_t)((double)(n_ids - (size_t)len) * i / (n_samples - 1));
        memset(r.conv_state, 0, conv_n * sizeof(float));
        memset(r.ssm_state, 0, ssm_n * sizeof(float));
        for (int done = 0; done < len;) {
            int n = len - done < (int)T ? len - done : (int)T;
            for (int t = 0; t < n; t++) {
                int32_t id = ids[start + (size_t)done + t];
                if (id < 0 || id >= c->vocab_size) {
                    s = lm_fail(LM_ERR_ARG, "integer calibration: token id %d is outside the vocabulary", (int)id);
                    break;
                }
                embedding_forward(r.x + t * D, m, &id, 1);
            }
            if (s) break;
            chunk_forward(&r, cal, n);
            done += n;
        }
        if (!s) s = lm_quant_report(progress, progress_ctx, "integer calibration", (size_t)i + 1, (size_t)n_samples);
    }
    lm_pool_free(r.pool);
    lm_qact_free(&r.act_in);
    lm_qact_free(&r.act_out);
    free(r.x); free(r.xn); free(r.zx); free(r.v); free(r.out); free(r.conv_state); free(r.ssm_state);
    return s;
}

lm_status lm_int_build_layers(lm_int_layer *layers, const lm_model *m, const lm_int_calib *cal, int abits, int dp) {
    const lm_config *c = &m->cfg;
    if (c->proj_bias) return lm_fail(LM_ERR_UNSUPPORTED, "--ssm pot8: in_proj/out_proj biases have no integer datapath");
    memset(layers, 0, sizeof *layers * (size_t)c->n_layer);
    for (int l = 0; l < c->n_layer; l++) {
        const lm_layer *L = &m->layers[l];
        if (L->in_proj.kind != LM_LINEAR_INT || L->out_proj.kind != LM_LINEAR_INT)
            return lm_fail(LM_ERR_ARG, "--ssm pot8: in_proj/out_proj must be integer first");
        lm_status s = lm_int_layer_build(&layers[l], L->norm, L->conv_w, L->conv_b, L->dt_bias, L->A, L->D, L->gnorm,
                                         &L->in_proj.q, &L->out_proj.q, c, &cal[l], abits, dp);
        if (!s && m->rot_inner)
            s = lm_int_layer_set_rotation(&layers[l], L->gnorm, lm_hadamard_base_matrix(m->rot_inner),
                                          lm_hadamard_base(m->rot_inner));
        if (s) {
            for (int k = 0; k <= l; k++) lm_int_layer_free(&layers[k]);
            return s;
        }
    }
    return LM_OK;
}
