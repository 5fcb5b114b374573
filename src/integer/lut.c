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

lm_status lm_lut_build(lm_lut *lut, lm_lut_fn fn, double lo, double hi, int F_in, int F_out) {
    if (!(lo < hi) || !isfinite(lo) || !isfinite(hi) || F_in < -8 || F_in > 30 || F_out < -8 || F_out > 30)
        return lm_fail(LM_ERR_ARG, "lookup table: bad window [%g, %g] or sites F_in %d, F_out %d", lo, hi, F_in, F_out);
    double a = floor(ldexp(lo, F_in)), b = ldexp(hi, F_in);
    if (a < -2147483647.0 || b > 2147483647.0)
        return lm_fail(LM_ERR_ARG, "lookup table: window [%g, %g] does not fit 32 bits at F_in %d", lo, hi, F_in);
    memset(lut, 0, sizeof *lut);
    lut->k = 0;
    while (a + ldexp(LM_LUT_ENTRIES, lut->k) <= b) lut->k++;
    /* exp is anchored at the top (its window ends just above hi, where dt*A <= 0 ends; the table
     * never holds exp of inputs that cannot occur), SiLU and softplus at the bottom (their
     * identity tail takes over above the window). */
    if (fn == LM_LUT_EXP) a = floor(b) + 1.0 - ldexp(LM_LUT_ENTRIES, lut->k);
    if (a < -2147483647.0)
        return lm_fail(LM_ERR_ARG, "lookup table: window [%g, %g] does not fit 32 bits at F_in %d", lo, hi, F_in);
    lut->alpha = (int32_t)a;
    lut->F_in = F_in;
    lut->F_out = F_out;
    lut->tail_identity = fn != LM_LUT_EXP;
    double f[LM_LUT_ENTRIES];
    const double half_bin = (ldexp(1.0, lut->k) - 1.0) / 2.0;
    for (int i = 0; i < LM_LUT_ENTRIES; i++)
        f[i] = ldexp(lm_lut_ref(fn, ldexp(a + ldexp(i, lut->k) + half_bin, -F_in)), F_out);
    const int seg_len = LM_LUT_ENTRIES / LM_LUT_SEGMENTS;
    for (int j = 0; j < LM_LUT_SEGMENTS; j++) {
        double m = 0.0;
        for (int i = j * seg_len; i < (j + 1) * seg_len; i++) m = fmax(m, fabs(f[i]));
        int sh = 0;
        while (sh < LM_POT_SMAX && floor(ldexp(m, -sh) + 0.5) > 32767.0) sh++;
        if (floor(ldexp(m, -sh) + 0.5) > 32767.0)
            return lm_fail(LM_ERR_ARG, "lookup table: output %g does not fit 16 bits << 15 at F_out %d",
                           ldexp(m, -F_out), F_out);
        lut->shift[j] = (uint8_t)sh;
        for (int i = j * seg_len; i < (j + 1) * seg_len; i++)
            lut->value[i] = (int16_t)floor(ldexp(f[i], -sh) + 0.5);
    }
    return LM_OK;
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
