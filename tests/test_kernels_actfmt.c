/* The research activation formats of kernels.h (lm_qact_set_format): power-of-two scales over groups
 * of 16..128 channels or the whole token (one exponent per group, shared by its 8-channel groups,
 * through the integer kernels) and real-valued scales (the float reference path). Each format's
 * quantized values follow its rule exactly, the product equals a double-precision product of the
 * dequantized operands to float rounding, the reference path gives the same bits on 1 and 2
 * threads, and on activations with an outlier channel finer groups and real scales lose less. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "kernels/kernels.h"
#include "quant/quantize.h"

enum { T = 5, K = 200, O = 24 }; /* K: a partial last weight group and partial activation groups */

static unsigned rng = 7;
static float frand(void) { /* uniform in [-1, 1) */
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) / 8388608.0 - 1.0);
}

/* The quantized activations of a token as floats: q * 2^(eb + sa) or xhat. */
static void dequantized(const lm_qact *a, int t, float *out) {
    const int n_groups = (K + LM_ACT_GROUP - 1) / LM_ACT_GROUP;
    for (int k = 0; k < K; k++)
        out[k] = a->scale == LM_ACT_SCALE_REAL ? a->xhat[(size_t)t * K + k]
                                               : ldexpf(a->q[(size_t)t * K + k], a->eb[t] + a->sa[(size_t)t * n_groups + k / 8]);
}

/* The format's rule, written out again for one token: the expected dequantized values. */
static void expected(const float *x, int group, lm_act_scale scale, int bits, float *out) {
    const int qmax = (1 << (bits - 1)) - 1, sa_max = bits == 4 ? 15 : 7;
    int e_max = LM_ACT_EXP_ZERO;
    for (int k0 = 0; k0 < K; k0 += group) {
        float m = 0;
        for (int k = k0; k < K && k < k0 + group; k++) m = fmaxf(m, fabsf(x[k]));
        int e = lm_act_exponent(m, bits);
        e_max = e > e_max ? e : e_max;
    }
    for (int k0 = 0; k0 < K; k0 += group) {
        float m = 0;
        for (int k = k0; k < K && k < k0 + group; k++) m = fmaxf(m, fabsf(x[k]));
        int e = lm_act_exponent(m, bits);
        if (e < e_max - sa_max) e = e_max - sa_max;
        double s = (double)m / qmax;
        for (int k = k0; k < K && k < k0 + group; k++) {
            if (scale == LM_ACT_SCALE_POW2) {
                out[k] = ldexpf((float)lm_act_quantize(x[k], e, bits), e);
            } else {
                double v = floor(x[k] / s + 0.5);
                out[k] = (float)(fmin(fmax(v, -qmax), qmax) * s);
            }
        }
    }
}

int main(void) {
    float x[T * K], W[O * K], xq[K], want[K], Wd[O * K], y[T * O], y2[T * O];
    for (int i = 0; i < T * K; i++) x[i] = frand();
    for (int t = 0; t < T; t++) x[t * K + 37] *= 60.0f; /* an outlier channel */
    for (int i = 0; i < O * K; i++) W[i] = frand();
    lm_pool *pool1 = NULL, *pool2 = NULL;
    CHECK_OK(lm_pool_init(&pool1, 1));
    CHECK_OK(lm_pool_init(&pool2, 2));
    lm_qweight_buf wb;
    CHECK_OK(lm_quantize_rtn(&wb, W, O, K, 4, pool1));
    lm_qweight_dequantize(&wb.view, Wd);

    const int groups[] = {8, 16, 32, 64, 128, LM_ACT_PER_TOKEN};
    double err[2][6] = {{0}}; /* [scale][group]: squared error of the quantized activations */
    for (int bits = 4; bits <= 8; bits += 4) {
        for (int sc = 0; sc < 2; sc++) {
            for (int gi = 0; gi < 6; gi++) {
                lm_qact a;
                CHECK_OK(lm_qact_init(&a, T, K, bits, 4));
                CHECK_OK(lm_qact_set_format(&a, groups[gi], (lm_act_scale)sc));
                CHECK_OK(lm_quantize_act(&a, x, T));
                CHECK_OK(lm_qlinear(y, &a, &wb.view, pool1));
                CHECK_OK(lm_qlinear(y2, &a, &wb.view, pool2));
                CHECK(!memcmp(y, y2, sizeof y), "bits %d scale %d group %d: 1 and 2 threads differ", bits, sc, groups[gi]);
                int64_t acc[T * O];
                CHECK((sc == LM_ACT_SCALE_REAL) == (lm_qlinear_acc(acc, &a, &wb.view, pool1) != LM_OK),
                      "integer accumulators: offered for real scales or refused for powers of two");
                double worst = 0;
                for (int t = 0; t < T; t++) {
                    dequantized(&a, t, xq);
                    expected(x + t * K, groups[gi] ? groups[gi] : K, (lm_act_scale)sc, bits, want);
                    CHECK(!memcmp(xq, want, sizeof xq), "bits %d scale %d group %d token %d: values off the rule", bits, sc,
                          groups[gi], t);
                    for (int k = 0; k < K; k++)
                        if (bits == 4) err[sc][gi] += (xq[k] - x[t * K + k]) * (double)(xq[k] - x[t * K + k]);
                    for (int o = 0; o < O; o++) {
                        double ref = 0, mag = 0;
                        for (int k = 0; k < K; k++) ref += (double)xq[k] * Wd[o * K + k], mag += fabs((double)xq[k] * Wd[o * K + k]);
                        worst = fmax(worst, fabs(y[t * O + o] - ref) / fmax(mag, 1e-30));
                    }
                }
                /* the integer path rounds once; the reference path sums in float */
                CHECK(worst < (sc == LM_ACT_SCALE_REAL ? 1e-5 : 1e-7), "bits %d scale %d group %d: product off by %g",
                      bits, sc, groups[gi], worst);
                lm_qact_free(&a);
            }
        }
    }
    printf("4-bit activation squared error, power of two by group 8..128, token: %.3g %.3g %.3g %.3g %.3g %.3g\n", err[0][0],
           err[0][1], err[0][2], err[0][3], err[0][4], err[0][5]);
    printf("                                real:                                 %.3g %.3g %.3g %.3g %.3g %.3g\n", err[1][0],
           err[1][1], err[1][2], err[1][3], err[1][4], err[1][5]);
    /* an outlier channel coarsens its own group only: finer is better, real better than power of two */
    CHECK(err[0][0] < err[0][2] && err[0][2] < err[0][5] && err[1][0] < err[0][0] && err[1][0] < err[1][5],
          "granularity ordering");

    lm_qact a;
    CHECK_OK(lm_qact_init(&a, T, K, 4, 4));
    CHECK(lm_qact_set_format(&a, 24, LM_ACT_SCALE_POW2) == LM_ERR_ARG, "group 24 accepted");
    CHECK(lm_qact_set_format(&a, 256, LM_ACT_SCALE_POW2) == LM_ERR_ARG, "group 256 accepted");
    CHECK(lm_qact_set_format(&a, 8, (lm_act_scale)2) == LM_ERR_ARG, "scale type 2 accepted");
    lm_qact_free(&a);
    lm_qweight_buf_free(&wb);
    lm_pool_free(pool1);
    lm_pool_free(pool2);
    return test_finish();
}
