/* Lookup-table nonlinearities: a 4096-entry value table and a 32-entry shift table (integer.h). */
#include "integer/integer.h"

#include <math.h>
#include <string.h>

#include "common/error.h"

double lm_lut_ref(lm_lut_fn fn, double x) {
    switch (fn) {
    case LM_LUT_SILU: return x / (1.0 + exp(-x));
    case LM_LUT_SOFTPLUS: return x > 30.0 ? x : log1p(exp(x));
    case LM_LUT_EXP: return exp(x);
    }
    return 0.0;
}

/* fn as the release's table generator evaluates it (docs/release-datapath.md section 3): PyTorch's
 * softplus returns x above its threshold 20. */
static double ref_release(lm_lut_fn fn, double x) {
    return fn == LM_LUT_SOFTPLUS && x > 20.0 ? x : lm_lut_ref(fn, x);
}

/* The entries and segment shifts for the window already in lut (alpha, k, F_in, F_out). Ours:
 * int16 at the mean of the bin's integers, rounded half up, shift the least keeping +-32767.
 * The release's (LM_DP_LUT8): int8 at the bin's left edge, rint (half to even), shift the least
 * in [0, 15] keeping +-127, then clamped to [-128, 127]. */
static lm_status lut_fill(lm_lut *lut, lm_lut_fn fn, int dp) {
    const int release = dp & LM_DP_LUT8;
    const double emax = release ? 127.0 : 32767.0;
    const double offset = release ? 0.0 : (ldexp(1.0, lut->k) - 1.0) / 2.0;
    double f[LM_LUT_ENTRIES];
    for (int i = 0; i < LM_LUT_ENTRIES; i++) {
        const double x = ldexp((double)lut->alpha + ldexp(i, lut->k) + offset, -lut->F_in);
        f[i] = ldexp(release ? ref_release(fn, x) : lm_lut_ref(fn, x), lut->F_out);
    }
    const int seg_len = LM_LUT_ENTRIES / LM_LUT_SEGMENTS;
    for (int j = 0; j < LM_LUT_SEGMENTS; j++) {
        double m = 0.0;
        for (int i = j * seg_len; i < (j + 1) * seg_len; i++) m = fmax(m, fabs(f[i]));
        int sh = 0;
        while (sh < LM_POT_SMAX && (release ? rint(ldexp(m, -sh)) : floor(ldexp(m, -sh) + 0.5)) > emax) sh++;
        if (!release && floor(ldexp(m, -sh) + 0.5) > emax)
            return lm_fail(LM_ERR_ARG, "lookup table: output %g does not fit 16 bits << 15 at F_out %d",
                           ldexp(m, -lut->F_out), lut->F_out);
        lut->shift[j] = (uint8_t)sh;
        for (int i = j * seg_len; i < (j + 1) * seg_len; i++) {
            double v = release ? rint(ldexp(f[i], -sh)) : floor(ldexp(f[i], -sh) + 0.5);
            lut->value[i] = (int16_t)(release ? fmin(fmax(v, -128.0), 127.0) : v);
        }
    }
    return LM_OK;
}

lm_status lm_lut_build_window(lm_lut *lut, lm_lut_fn fn, int64_t alpha, int k, int F_in, int F_out, int dp) {
    if (k < 0 || k > 31 || F_in < -8 || F_in > 30 || F_out < -8 || F_out > 30 || alpha < -2147483647LL ||
        alpha > 2147483647LL)
        return lm_fail(LM_ERR_ARG, "lookup table: window start %lld, bin 2^%d or sites F_in %d, F_out %d do not fit",
                       (long long)alpha, k, F_in, F_out);
    memset(lut, 0, sizeof *lut);
    lut->alpha = (int32_t)alpha;
    lut->k = k;
    lut->F_in = F_in;
    lut->F_out = F_out;
    /* SiLU and softplus approach the identity above their window: ours follows it there */
    lut->tail_identity = fn != LM_LUT_EXP && !(dp & LM_DP_LUT8);
    return lut_fill(lut, fn, dp);
}

lm_status lm_lut_build(lm_lut *lut, lm_lut_fn fn, double lo, double hi, int F_in, int F_out, int dp) {
    if (!(lo < hi) || !isfinite(lo) || !isfinite(hi) || F_in < -8 || F_in > 30 || F_out < -8 || F_out > 30)
        return lm_fail(LM_ERR_ARG, "lookup table: bad window [%g, %g] or sites F_in %d, F_out %d", lo, hi, F_in, F_out);
    double a = floor(ldexp(lo, F_in)), b = ldexp(hi, F_in);
    if (a < -2147483647.0 || b > 2147483647.0)
        return lm_fail(LM_ERR_ARG, "lookup table: window [%g, %g] does not fit 32 bits at F_in %d", lo, hi, F_in);
    int k = 0;
    while (a + ldexp(LM_LUT_ENTRIES, k) <= b) k++;
    /* exp is anchored at the top (its window ends just above hi, where dt*A <= 0 ends; the table
     * never holds exp of inputs that cannot occur), SiLU and softplus at the bottom (their
     * identity tail takes over above the window). */
    if (fn == LM_LUT_EXP) a = floor(b) + 1.0 - ldexp(LM_LUT_ENTRIES, k);
    if (a < -2147483647.0)
        return lm_fail(LM_ERR_ARG, "lookup table: window [%g, %g] does not fit 32 bits at F_in %d", lo, hi, F_in);
    return lm_lut_build_window(lut, fn, (int64_t)a, k, F_in, F_out, dp);
}

int32_t lm_lut_apply(const lm_lut *lut, int32_t X) {
    int64_t idx = ((int64_t)X - lut->alpha) >> lut->k;      /* arithmetic shift: floor */
    if (idx < 0) idx = 0;
    if (idx >= LM_LUT_ENTRIES) {
        if (lut->tail_identity) return lm_shift_sat32(X, lut->F_out - lut->F_in);
        idx = LM_LUT_ENTRIES - 1;
    }
    return (int32_t)lut->value[idx] * (1 << lut->shift[idx >> LM_LUT_SEG_SHIFT]);
}
