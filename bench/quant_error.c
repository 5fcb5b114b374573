/* Per-layer quantization error of the in_proj and out_proj layers (the paper's "error of the
 * 4-bit out_proj input", docs/quantization-quality.md), for one quantization method, measured on
 * float activations of the bundled WikiText-2 validation text:
 *   act%   ||X - Q(X)||^2 / ||X||^2            X the layer input as the quantized model sees it
 *                                               (after smoothing / rotation), Q the kernels' PoT rule
 *   W%     ||W - Q(W)||^2 / ||W||^2            the transformed weights
 *   out_a% ||X W^T - Q(X) W^T||^2 / ||X W^T||^2   output error of activation quantization alone
 *   out_w% ||X W^T - X Q(W)^T||^2 / ||X W^T||^2   ... of weight quantization alone
 *   out%   ||X W^T - Q(X) Q(W)^T||^2 / ||X W^T||^2 both (what the W4A4 layer does)
 * Output errors are comparable across methods (smoothing and rotation leave X W^T unchanged, up
 * to a rotation of out_proj's output, which keeps norms).
 * Usage: bench_quant_error -m MODEL [--method rtn|smoothquant|lightmamba] [--rotate both|residual|online]
 *                          [--alpha A] [--wbits B] [--abits B] [--gptq] [--windows N]
 *                          [--act-group 8|16|32|64|128|token] [--act-scale pow2|real]
 *                          [--hist FILE --hist-layer L --hist-name NAME]
 * --act-group / --act-scale: Q(X) in that activation format (kernels.h), not the hardware's.
 * --hist: appends to FILE the histogram of layer L's out_proj input values as the quantized model
 * sees them (after the rotation when there is one), in units of their RMS (a rotation keeps the
 * RMS, so before and after share the axis), bins of 0.25: rows "NAME centre count" for bench_plot. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"
#include "model/model.h"
#include "model/session.h"
#include "quant/calib.h"
#include "quant/quantize.h"
#include "quant/transform.h"

#define WINDOW 512 /* tokens per evaluation window */

typedef struct { double x2, ex, y2, ea, ew, eq; } site_error;

typedef struct {
    const lm_model *m;
    float **wq;          /* [n_layer * 2] dequantized weights */
    site_error *err;     /* [n_layer * 2] */
    lm_qact act[2];
    int hist_layer;      /* -1: none */
    float *hist_x;       /* the out_proj input values of hist_layer, as observed */
    size_t hist_n, hist_cap;
} measure;

static double sq_diff(const float *a, const float *b, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return e;
}

/* y [T, O] = x [T, K] W^T */
static void matmul(float *y, const float *x, const float *W, int T, int K, int O) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, O, K, 1.0f, x, K, W, K, 0.0f, y, O);
}

static void observe(void *ctx, int l, lm_site site, const float *x, int T, int K) {
    measure *ms = ctx;
    const lm_layer *L = &ms->m->layers[l];
    const lm_linear *lin = site == LM_SITE_IN_PROJ ? &L->in_proj : &L->out_proj;
    const float *wq = ms->wq[2 * l + site];
    const int O = lin->rows, n_groups = (K + LM_ACT_GROUP - 1) / LM_ACT_GROUP;
    lm_qact *a = &ms->act[site];
    site_error *e = &ms->err[2 * l + site];
    float *xq = malloc((size_t)T * K * sizeof *xq), *y = malloc((size_t)T * O * sizeof *y),
          *yq = malloc((size_t)T * O * sizeof *yq);
    if (!xq || !y || !yq || lm_quantize_act(a, x, T) != LM_OK) {
        fprintf(stderr, "bench_quant_error: out of memory\n");
        exit(1);
    }
    const size_t nx = (size_t)T * K, ny = (size_t)T * O;
    for (int t = 0; t < T; t++) /* Q(X): q * 2^(eb + sa), or the real-scale values */
        for (int k = 0; k < K; k++)
            xq[(size_t)t * K + k] = a->scale == LM_ACT_SCALE_REAL ? a->xhat[(size_t)t * K + k]
                : ldexpf(a->q[(size_t)t * K + k], a->eb[t] + a->sa[(size_t)t * n_groups + k / LM_ACT_GROUP]);
    if (site == LM_SITE_OUT_PROJ && l == ms->hist_layer) {
        if (ms->hist_n + nx > ms->hist_cap) {
            ms->hist_cap = 2 * (ms->hist_n + nx);
            if (!(ms->hist_x = realloc(ms->hist_x, ms->hist_cap * sizeof *ms->hist_x))) {
                fprintf(stderr, "bench_quant_error: out of memory\n");
                exit(1);
            }
        }
        memcpy(ms->hist_x + ms->hist_n, x, nx * sizeof *x);
        ms->hist_n += nx;
    }
    e->x2 += cblas_sdot((int)nx, x, 1, x, 1);
    e->ex += sq_diff(x, xq, nx);
    matmul(y, x, lin->w, T, K, O);
    e->y2 += cblas_sdot((int)ny, y, 1, y, 1);
    matmul(yq, xq, lin->w, T, K, O);
    e->ea += sq_diff(y, yq, ny);
    matmul(yq, x, wq, T, K, O);
    e->ew += sq_diff(y, yq, ny);
    matmul(yq, xq, wq, T, K, O);
    e->eq += sq_diff(y, yq, ny);
    free(xq), free(y), free(yq);
}

static void die(const char *what) {
    fprintf(stderr, "bench_quant_error: %s\n", what ? what : lm_last_error());
    exit(1);
}

/* The histogram of x[0, n) in units of its RMS, bins of 0.25 centred on multiples of 0.25, appended
 * to path as "name centre count" rows (empty bins left out). */
static void write_histogram(const char *path, const char *name, const float *x, size_t n) {
    double ss = 0, mx = 0;
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i], mx = fmax(mx, fabs(x[i]));
    const double rms = sqrt(ss / (double)n), step = 0.25;
    const int half = (int)ceil(mx / rms / step) + 1;
    size_t *count = calloc(2 * (size_t)half + 1, sizeof *count);
    FILE *f = fopen(path, "a");
    if (!count || !f || !(rms > 0)) die("cannot write the histogram");
    for (size_t i = 0; i < n; i++) count[half + (int)lround(x[i] / rms / step)]++;
    fprintf(f, "# %s: %zu values, max |x| / rms %.2f\n", name, n, mx / rms);
    for (int b = 0; b <= 2 * half; b++)
        if (count[b]) fprintf(f, "%s %.2f %zu\n", name, (b - half) * step, count[b]);
    if (fclose(f)) die("cannot write the histogram");
    free(count);
}

int main(int argc, char **argv) {
    const char *path = NULL, *method = "lightmamba", *rotate = "both", *act_group = "8", *act_scale = "pow2";
    const char *hist = NULL, *hist_name = "values";
    float alpha = 0.5f;
    int wbits = 4, abits = 4, gptq = 0, windows = 32, hist_layer = -1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--gptq")) { gptq = 1; continue; }
        if (!v) die("usage: bench_quant_error -m MODEL [--method rtn|smoothquant|lightmamba] [--rotate both|residual|online] "
                    "[--alpha A] [--wbits B] [--abits B] [--gptq] [--windows N] [--act-group G] [--act-scale S] "
                    "[--hist FILE --hist-layer L --hist-name NAME]");
        if (!strcmp(o, "-m")) path = v;
        else if (!strcmp(o, "--method")) method = v;
        else if (!strcmp(o, "--rotate")) rotate = v;
        else if (!strcmp(o, "--alpha")) alpha = strtof(v, NULL);
        else if (!strcmp(o, "--wbits")) wbits = atoi(v);
        else if (!strcmp(o, "--abits")) abits = atoi(v);
        else if (!strcmp(o, "--windows")) windows = atoi(v);
        else if (!strcmp(o, "--act-group")) act_group = v;
        else if (!strcmp(o, "--act-scale")) act_scale = v;
        else if (!strcmp(o, "--hist")) hist = v;
        else if (!strcmp(o, "--hist-layer")) hist_layer = atoi(v);
        else if (!strcmp(o, "--hist-name")) hist_name = v;
        else die("unknown option (see the usage in bench/quant_error.c)");
        i++;
    }
    const int is_sq = !strcmp(method, "smoothquant"), is_lm = !strcmp(method, "lightmamba");
    const int residual = is_lm && strcmp(rotate, "online"), online = is_lm && strcmp(rotate, "residual");
    if (!path || !(is_sq || is_lm || !strcmp(method, "rtn"))) die("need -m MODEL and --method rtn|smoothquant|lightmamba");
    if (strcmp(rotate, "both") && strcmp(rotate, "residual") && strcmp(rotate, "online")) die("--rotate both|residual|online");
    if ((wbits != 4 && wbits != 8) || (abits != 4 && abits != 8) || windows < 1) die("bits 4 or 8, windows >= 1");
    const int group = !strcmp(act_group, "token") ? LM_ACT_PER_TOKEN : atoi(act_group);
    const lm_act_scale scale = !strcmp(act_scale, "real") ? LM_ACT_SCALE_REAL : LM_ACT_SCALE_POW2;
    if (!lm_act_format_valid(group, scale) || (strcmp(act_scale, "real") && strcmp(act_scale, "pow2")))
        die("--act-group 8|16|32|64|128|token, --act-scale pow2|real");
    if (hist && hist_layer < 0) die("--hist needs --hist-layer L");

    lm_model *src, *m;
    lm_tokenizer *tok;
    char *text;
    size_t len, n_ids;
    int32_t *ids;
    if (lm_model_init(&src, path) || lm_model_clone_f32(&m, src)) die(NULL);
    if (lm_read_file(LM_SOURCE_DIR "/data/calib_wikitext2_valid.txt", &text, &len) ||
        lm_tokenizer_init_for_model(&tok, src) || lm_tokenizer_encode(tok, text, len, &ids, &n_ids))
        die(NULL);
    if (n_ids < 2 * WINDOW) die("calibration text too short");
    const lm_config *c = &m->cfg;
    lm_calib_stats st;
    /* The quantizer's own pipeline (quant.c): smoothing from 128 x 512 calibration tokens, or the rotation. */
    if (is_sq) {
        if (lm_calibrate(m, ids, n_ids, 128, 512, 0, 1, 0, &st, NULL, NULL)) die(NULL);
        for (int l = 0; l < c->n_layer; l++)
            for (int site = 0; site < 2; site++)
                lm_fuse_smoothing(m, l, (lm_site)site, st.amax[site] + (size_t)l * st.K[site], alpha);
        lm_calib_stats_free(&st);
    }
    if ((residual || online) && lm_fuse_rotation_parts(m, residual, online)) die(NULL);
    if (gptq && lm_calibrate(m, ids, n_ids, 128, 512, 0, 0, 1, &st, NULL, NULL)) die(NULL);

    if (hist_layer >= c->n_layer) die("--hist-layer beyond the model's layers");
    measure ms = {.m = m, .hist_layer = hist ? hist_layer : -1};
    ms.wq = calloc((size_t)c->n_layer * 2, sizeof *ms.wq);
    ms.err = calloc((size_t)c->n_layer * 2, sizeof *ms.err);
    double *wrel = calloc((size_t)c->n_layer * 2, sizeof *wrel);
    lm_pool *pool;
    if (!ms.wq || !ms.err || !wrel || lm_pool_init(&pool, 0)) die("out of memory");
    for (int l = 0; l < c->n_layer; l++)
        for (int site = 0; site < 2; site++) {
            const lm_linear *lin = site ? &m->layers[l].out_proj : &m->layers[l].in_proj;
            const size_t K = (size_t)lin->cols, n = (size_t)lin->rows * K;
            lm_qweight_buf b;
            lm_status s;
            if (gptq) {
                double *H = malloc(K * K * sizeof *H);
                if (!H) die("out of memory");
                for (size_t i = 0; i < K * K; i++) H[i] = st.hessian[site][(size_t)l * K * K + i];
                s = lm_quantize_gptq(&b, lin->w, lin->rows, lin->cols, wbits, H, 0.01, pool);
                free(H);
            } else {
                s = lm_quantize_rtn(&b, lin->w, lin->rows, lin->cols, wbits, pool);
            }
            float *wq = ms.wq[2 * l + site] = malloc(n * sizeof *wq);
            if (s || !wq) die(NULL);
            lm_qweight_dequantize(&b.view, wq);
            lm_qweight_buf_free(&b);
            wrel[2 * l + site] = sq_diff(lin->w, wq, n) / cblas_sdot((int)n, lin->w, 1, lin->w, 1);
        }
    if (gptq) lm_calib_stats_free(&st);

    lm_session *session;
    if (lm_qact_init(&ms.act[0], LM_SESSION_CHUNK, c->d_model, abits, wbits) ||
        lm_qact_init(&ms.act[1], LM_SESSION_CHUNK, c->d_inner, abits, wbits) || lm_session_init(&session, m, NULL) ||
        lm_qact_set_format(&ms.act[0], group, scale) || lm_qact_set_format(&ms.act[1], group, scale))
        die(NULL);
    lm_session_set_observer(session, observe, &ms);
    /* Windows centred between the calibration samples' starts. */
    for (int i = 0; i < windows; i++) {
        size_t start = (size_t)((double)(n_ids - WINDOW) * (i + 0.5) / windows);
        lm_session_reset(session);
        if (lm_session_forward(session, ids + start, WINDOW, NULL, NULL)) die(NULL);
    }
    if (hist) write_histogram(hist, hist_name, ms.hist_x, ms.hist_n);
    printf("%s%s%s W%dA%d%s, activations per %s %s, %d windows of %d tokens; relative squared errors in %%\n", method,
           is_lm ? " rotate " : "", is_lm ? rotate : "", wbits, abits, gptq ? " gptq" : "", act_group, act_scale, windows,
           WINDOW);
    printf("| layer | site | act%% | W%% | out_a%% | out_w%% | out%% |\n|---:|---|---:|---:|---:|---:|---:|\n");
    double mean[2][5] = {{0}};
    for (int l = 0; l <= c->n_layer; l++)
        for (int site = 0; site < 2; site++) {
            const char *name = site ? "out_proj" : "in_proj";
            if (l == c->n_layer) {
                printf("| mean | %s | %.3f | %.3f | %.3f | %.3f | %.3f |\n", name, mean[site][0], mean[site][1],
                       mean[site][2], mean[site][3], mean[site][4]);
                continue;
            }
            const site_error *e = &ms.err[2 * l + site];
            double v[5] = {100 * e->ex / e->x2, 100 * wrel[2 * l + site], 100 * e->ea / e->y2, 100 * e->ew / e->y2,
                           100 * e->eq / e->y2};
            printf("| %d | %s | %.3f | %.3f | %.3f | %.3f | %.3f |\n", l, name, v[0], v[1], v[2], v[3], v[4]);
            for (int k = 0; k < 5; k++) mean[site][k] += v[k] / c->n_layer;
        }
    return 0;
}
