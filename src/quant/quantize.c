/* Weight quantizers: scale search, round to nearest, GPTQ. */
#include "quant/quantize.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"

lm_status lm_qweight_buf_init(lm_qweight_buf *b, int rows, int cols, int wbits) {
    memset(b, 0, sizeof *b);
    if (rows < 1 || cols < 1 || (wbits != 4 && wbits != 8))
        return lm_fail(LM_ERR_ARG, "quantized weight: bad shape %d x %d or bits %d", rows, cols, wbits);
    size_t stride = wbits == 4 ? ((size_t)cols + 1) / 2 : (size_t)cols;
    LM_TRY(lm_calloc(&b->q, (size_t)rows, stride, "quantized weights"));
    if (lm_calloc(&b->scale, (size_t)rows, (size_t)lm_wgroups(cols), "weight scales") != LM_OK ||
        lm_calloc(&b->e0, (size_t)rows, 1, "weight exponents") != LM_OK) {
        lm_qweight_buf_free(b);
        return LM_ERR_NOMEM;
    }
    b->view = (lm_qweight){.rows = rows, .cols = cols, .wbits = wbits, .q = b->q, .row_stride = stride,
                           .scale = b->scale, .e0 = b->e0};
    return LM_OK;
}

void lm_qweight_buf_free(lm_qweight_buf *b) {
    free(b->q);
    free(b->scale);
    free(b->e0);
    memset(b, 0, sizeof *b);
}

lm_status lm_qweight_buf_give(lm_qweight_buf *b, lm_model *m) {
    lm_status s = lm_model_adopt(m, b->q);
    if (s == LM_OK) s = lm_model_adopt(m, b->scale);
    else free(b->scale);
    if (s == LM_OK) s = lm_model_adopt(m, b->e0);
    else free(b->e0);
    return s;
}

static float pair_scale(uint8_t pair, int e0) { return ldexpf((float)lm_wscale_mult(pair), e0); }

/* Stores row o from its K integer values. */
static void store_row(lm_qweight_buf *b, int o, const int8_t *q) {
    uint8_t *row = b->q + (size_t)o * b->view.row_stride;
    if (b->view.wbits == 4)
        lm_pack_int4_row(row, q, b->view.cols);
    else
        memcpy(row, q, (size_t)b->view.cols);
}

static inline int quantize_value(float w, float s, int qmax) {
    float r = roundf(w / s);
    return r > qmax ? qmax : r < -qmax ? -qmax : (int)r;
}

/* The 36 exponent pairs s1 <= s2, in increasing order of their mantissa 2^s1 + 2^s2. */
static int n_pairs;
static uint8_t pairs[36];
static float pair_mant[36];
static void build_pairs(void) {
    int n = 0;
    for (int s2 = 0; s2 <= LM_WEXP_MAX; s2++)
        for (int s1 = 0; s1 <= s2; s1++) {
            float v = (float)((1 << s1) + (1 << s2));
            int i = n++;
            while (i > 0 && pair_mant[i - 1] > v) {
                pair_mant[i] = pair_mant[i - 1];
                pairs[i] = pairs[i - 1];
                i--;
            }
            pair_mant[i] = v;
            pairs[i] = lm_wscale_byte(s1, s2);
        }
    n_pairs = n;
}
static pthread_once_t pairs_once = PTHREAD_ONCE_INIT;
static void init_pairs(void) { pthread_once(&pairs_once, build_pairs); }

static double group_error(const float *w, int n, float s, int qmax) {
    double e = 0;
    for (int i = 0; i < n; i++) {
        double d = (double)w[i] - (double)quantize_value(w[i], s, qmax) * s;
        e += d * d;
    }
    return e;
}

double lm_wgroup_best_pair(const float *w, int n, int e0, int qmax, uint8_t *pair) {
    init_pairs();
    float m = 0;
    for (int i = 0; i < n; i++) m = fmaxf(m, fabsf(w[i]));
    /* Scales far from m / qmax cannot win (too coarse, or clipping most of the range): look only in
     * [0.3, 2.5] x m / qmax, and at all pairs when none lies there. */
    float ideal = m / (float)qmax, lo = 0.3f * ideal, hi = 2.5f * ideal;
    double best = INFINITY;
    *pair = pairs[0];
    for (int pass = 0; pass < 2 && best == INFINITY; pass++)
        for (int i = 0; i < n_pairs; i++) {
            float s = ldexpf(pair_mant[i], e0);
            if (pass == 0 && (s < lo || s > hi)) continue;
            double e = group_error(w, n, s, qmax);
            if (e < best) {
                best = e;
                *pair = pairs[i];
            }
        }
    return best;
}

/* e0 for one row: every candidate in [E - 8, E], E = floor(log2(max|w| / qmax)) (below E - 8 even
 * the largest scale, 2^(e0+8), clips the row's largest value; above E even the smallest, 2^(e0+1),
 * is coarser than that value needs), keeping the one of least total error. */
static int row_best_e0(const float *w, int K, int qmax) {
    float m = 0;
    for (int k = 0; k < K; k++) m = fmaxf(m, fabsf(w[k]));
    if (m == 0) return 0;
    int E;
    frexpf(m / (float)qmax, &E); /* m/qmax = f * 2^E, f in [0.5, 1): floor(log2) = E - 1 */
    E -= 1;
    int best_e0 = 0;
    double best = INFINITY;
    for (int e0 = E - 8; e0 <= E; e0++) {
        if (e0 < INT8_MIN || e0 > INT8_MAX - LM_WEXP_MAX) continue;
        double err = 0;
        uint8_t pair;
        for (int k0 = 0; k0 < K && err < best; k0 += LM_WEIGHT_GROUP)
            err += lm_wgroup_best_pair(w + k0, K - k0 < LM_WEIGHT_GROUP ? K - k0 : LM_WEIGHT_GROUP, e0, qmax, &pair);
        if (err < best) {
            best = err;
            best_e0 = e0;
        }
    }
    if (best == INFINITY) best_e0 = E < INT8_MIN ? INT8_MIN : INT8_MAX - LM_WEXP_MAX;
    return best_e0;
}


/* ---- round to nearest ---- */
typedef struct {
    lm_qweight_buf *out;
    const float *W;
    int O, K;
    int8_t *qrows; /* [workers, K] scratch */
} rtn_task;

static void rtn_rows(void *ctx, int i, int n) {
    rtn_task *t = ctx;
    int qmax = lm_qmax(t->out->view.wbits), G = lm_wgroups(t->K);
    int8_t *q = t->qrows + (size_t)i * t->K;
    for (int o = (int)((long)t->O * i / n); o < (int)((long)t->O * (i + 1) / n); o++) {
        const float *w = t->W + (size_t)o * t->K;
        int e0 = row_best_e0(w, t->K, qmax);
        t->out->e0[o] = (int8_t)e0;
        for (int g = 0; g < G; g++) {
            int k0 = g * LM_WEIGHT_GROUP, len = t->K - k0 < LM_WEIGHT_GROUP ? t->K - k0 : LM_WEIGHT_GROUP;
            uint8_t *pair = &t->out->scale[(size_t)o * G + g];
            lm_wgroup_best_pair(w + k0, len, e0, qmax, pair);
            float s = pair_scale(*pair, e0);
            for (int k = k0; k < k0 + len; k++) q[k] = (int8_t)quantize_value(w[k], s, qmax);
        }
        store_row(t->out, o, q);
    }
}

lm_status lm_quantize_rtn(lm_qweight_buf *out, const float *W, int O, int K, int wbits, lm_pool *pool) {
    init_pairs();
    LM_TRY(lm_qweight_buf_init(out, O, K, wbits));
    rtn_task t = {out, W, O, K, NULL};
    if (lm_calloc(&t.qrows, (size_t)(pool ? lm_pool_size(pool) : 1), (size_t)K, "weight rows") != LM_OK) {
        lm_qweight_buf_free(out);
        return LM_ERR_NOMEM;
    }
    lm_pool_run(pool, rtn_rows, &t);
    free(t.qrows);
    return LM_OK;
}

/* ---- GPTQ ---- */

/* In place: A = L L^T, L lower (the upper triangle is left alone). 0 when A is not positive definite. */
static int cholesky_lower(double *A, int n) {
    for (int j = 0; j < n; j++) {
        double d = A[(size_t)j * n + j];
        for (int k = 0; k < j; k++) d -= A[(size_t)j * n + k] * A[(size_t)j * n + k];
        if (!(d > 0)) return 0;
        d = sqrt(d);
        A[(size_t)j * n + j] = d;
        for (int i = j + 1; i < n; i++) {
            double s = A[(size_t)i * n + j];
            for (int k = 0; k < j; k++) s -= A[(size_t)i * n + k] * A[(size_t)j * n + k];
            A[(size_t)i * n + j] = s / d;
        }
    }
    return 1;
}

/* U upper triangular with H^-1 = U^T U, the factor GPTQ steps through (its row i gives the
 * update of the columns after i when column i is quantized). Computed as: H = L L^T;
 * H^-1 = L^-T L^-1; U = upper Cholesky factor of H^-1. 0 when H is not positive definite. */
static int inverse_upper_cholesky(const double *H, int n, float *U) {
    double *L = malloc((size_t)n * n * sizeof *L), *Li = calloc((size_t)n * n, sizeof *Li);
    int ok = L && Li;
    if (ok) {
        memcpy(L, H, (size_t)n * n * sizeof *L);
        ok = cholesky_lower(L, n);
    }
    if (ok) {
        /* Li = L^-1 (lower), column by column by forward substitution. */
        for (int j = 0; j < n; j++) {
            Li[(size_t)j * n + j] = 1.0 / L[(size_t)j * n + j];
            for (int i = j + 1; i < n; i++) {
                double s = 0;
                for (int k = j; k < i; k++) s += L[(size_t)i * n + k] * Li[(size_t)k * n + j];
                Li[(size_t)i * n + j] = -s / L[(size_t)i * n + i];
            }
        }
        /* L <- H^-1 = Li^T Li: (i, j) = sum_{k >= max(i,j)} Li[k][i] Li[k][j]; lower triangle suffices. */
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) {
                double s = 0;
                for (int k = i; k < n; k++) s += Li[(size_t)k * n + i] * Li[(size_t)k * n + j];
                L[(size_t)i * n + j] = s;
            }
        ok = cholesky_lower(L, n); /* H^-1 = C C^T, and U = C^T */
    }
    if (ok)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) U[(size_t)i * n + j] = j >= i ? (float)L[(size_t)j * n + i] : 0.0f;
    free(L);
    free(Li);
    return ok;
}

typedef struct {
    lm_qweight_buf *out;
    const float *W;
    const float *U;      /* [K, K] */
    const uint8_t *dead; /* [K] columns never seen in calibration */
    int O, K;
    lm_status status;
} gptq_task;

/* GPTQ over rows [o0, o1): rows are independent given U. Columns go in blocks of one scale
 * group; within a block each column's error is pushed to the block's later columns at once
 * and, after the block, to all later columns by one rank-LM_WEIGHT_GROUP update (the "lazy batch"). */
static void gptq_rows(void *ctx, int i, int n) {
    gptq_task *t = ctx;
    const int K = t->K, G = lm_wgroups(K), qmax = lm_qmax(t->out->view.wbits);
    int o0 = (int)((long)t->O * i / n), o1 = (int)((long)t->O * (i + 1) / n), R = o1 - o0;
    if (R <= 0) return;
    float *W = malloc((size_t)R * K * sizeof *W), *Err = malloc((size_t)R * LM_WEIGHT_GROUP * sizeof *Err);
    int8_t *Q = malloc((size_t)R * K);
    if (!W || !Err || !Q) {
        free(W);
        free(Err);
        free(Q);
        t->status = lm_fail(LM_ERR_NOMEM, "GPTQ: out of memory for %d x %d weights", R, K);
        return;
    }
    memcpy(W, t->W + (size_t)o0 * K, (size_t)R * K * sizeof *W);
    for (int r = 0; r < R; r++) {
        t->out->e0[o0 + r] = (int8_t)row_best_e0(W + (size_t)r * K, K, qmax);
        for (int k = 0; k < K; k++)
            if (t->dead[k]) W[(size_t)r * K + k] = 0.0f;
    }
    for (int g = 0; g < G; g++) {
        int k0 = g * LM_WEIGHT_GROUP, k1 = k0 + LM_WEIGHT_GROUP < K ? k0 + LM_WEIGHT_GROUP : K, B = k1 - k0;
        for (int r = 0; r < R; r++) {
            int o = o0 + r;
            float *w = W + (size_t)r * K;
            uint8_t *pair = &t->out->scale[(size_t)o * G + g];
            lm_wgroup_best_pair(w + k0, B, t->out->e0[o], qmax, pair);
            float s = pair_scale(*pair, t->out->e0[o]);
            for (int k = k0; k < k1; k++) {
                int q = quantize_value(w[k], s, qmax);
                Q[(size_t)r * K + k] = (int8_t)q;
                const float *u = t->U + (size_t)k * K;
                float err = (w[k] - (float)q * s) / u[k];
                for (int j = k + 1; j < k1; j++) w[j] -= err * u[j];
                Err[(size_t)r * LM_WEIGHT_GROUP + (k - k0)] = err;
            }
            /* w[k1:] -= Err[r, :B] @ U[k0:k1, k1:] */
            for (int b = 0; b < B; b++) {
                float e = Err[(size_t)r * LM_WEIGHT_GROUP + b];
                const float *u = t->U + (size_t)(k0 + b) * K;
                for (int j = k1; j < K; j++) w[j] -= e * u[j];
            }
        }
    }
    for (int r = 0; r < R; r++) store_row(t->out, o0 + r, Q + (size_t)r * K);
    free(W);
    free(Err);
    free(Q);
}

lm_status lm_quantize_gptq(lm_qweight_buf *out, const float *W, int O, int K, int wbits,
                           const double *H, double damp, lm_pool *pool) {
    init_pairs();
    if (!(damp >= 0)) return lm_fail(LM_ERR_ARG, "GPTQ: damping %g must be >= 0", damp);
    double *Hd = malloc((size_t)K * K * sizeof *Hd);
    float *U = malloc((size_t)K * K * sizeof *U);
    uint8_t *dead = calloc((size_t)K, 1);
    lm_status s = LM_OK;
    if (!Hd || !U || !dead) {
        s = lm_fail(LM_ERR_NOMEM, "GPTQ: out of memory for a %d x %d Hessian", K, K);
        goto done;
    }
    memcpy(Hd, H, (size_t)K * K * sizeof *Hd);
    double mean_diag = 0;
    for (int k = 0; k < K; k++) {
        if (Hd[(size_t)k * K + k] <= 0) {
            dead[k] = 1;
            Hd[(size_t)k * K + k] = 1;
        }
        mean_diag += Hd[(size_t)k * K + k] / K;
    }
    /* Damping keeps H^-1 well conditioned; raise it if H is still numerically singular. */
    int ok = 0;
    for (int attempt = 0; attempt < 6 && !ok; attempt++, damp = damp > 0 ? damp * 10 : 1e-6) {
        double add = damp * mean_diag;
        for (int k = 0; k < K; k++) Hd[(size_t)k * K + k] += add;
        ok = inverse_upper_cholesky(Hd, K, U);
        for (int k = 0; k < K; k++) Hd[(size_t)k * K + k] -= add;
    }
    if (!ok) {
        s = lm_fail(LM_ERR_FORMAT, "GPTQ: the %d x %d calibration Hessian is not positive definite even with damping", K, K);
        goto done;
    }
    if ((s = lm_qweight_buf_init(out, O, K, wbits)) != LM_OK) goto done;
    gptq_task t = {out, W, U, dead, O, K, LM_OK};
    lm_pool_run(pool, gptq_rows, &t);
    if ((s = t.status) != LM_OK) lm_qweight_buf_free(out);
done:
    free(Hd);
    free(U);
    free(dead);
    return s;
}
