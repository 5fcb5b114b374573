/* Integer RMSNorm with a piecewise lookup-table reciprocal square root (integer.h). */
#include "integer/integer.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>

#include "common/error.h"

/* rsqrt_table[M] = round(2^shift[t] / sqrt(max(M, 1))), t = M >> 9, shift[t] the largest that
 * keeps table t within 32767. Built once, the same on every machine (integer-valued results of
 * sqrt on exact small integers, then a rounding well away from ties). */
static int16_t rsqrt_value[LM_RSQRT_TABLES * LM_RSQRT_ENTRIES];
static uint8_t rsqrt_sh[LM_RSQRT_TABLES];
static pthread_once_t rsqrt_once = PTHREAD_ONCE_INIT;

static void rsqrt_build(void) {
    for (int t = 0; t < LM_RSQRT_TABLES; t++) {
        double first = t == 0 ? 1.0 : (double)(t * LM_RSQRT_ENTRIES);   /* the table's largest value */
        int sh = 0;
        while (floor(ldexp(1.0, sh + 1) / sqrt(first) + 0.5) <= 32767.0) sh++;
        rsqrt_sh[t] = (uint8_t)sh;
        for (int i = 0; i < LM_RSQRT_ENTRIES; i++) {
            int M = t * LM_RSQRT_ENTRIES + i;
            rsqrt_value[M] = (int16_t)floor(ldexp(1.0, sh) / sqrt(M > 0 ? (double)M : 1.0) + 0.5);
        }
    }
}

const int16_t *lm_rsqrt_table(void) { pthread_once(&rsqrt_once, rsqrt_build); return rsqrt_value; }
const uint8_t *lm_rsqrt_shift(void) { pthread_once(&rsqrt_once, rsqrt_build); return rsqrt_sh; }

/* One normalization group of len channels. */
static void norm_group(int32_t *out, const int32_t *x, const int16_t *gq, int len, const lm_int_norm *p,
                       const int16_t *table, const uint8_t *tshift) {
    uint32_t m = 0;
    for (int i = 0; i < len; i++) {
        uint32_t a = x[i] < 0 ? (uint32_t)0 - (uint32_t)x[i] : (uint32_t)x[i];
        if (a > m) m = a;
    }
    int k = lm_bitlength(m) - 24;
    if (k < 0) k = 0;
    uint64_t S = 0;                               /* < 2^48 per term, len <= 2^15 terms */
    for (int i = 0; i < len; i++) {
        int64_t v = x[i] >> k;
        S += (uint64_t)(v * v);
    }
    S += p->eps_term >> (2 * k);
    int j = (lm_bitlength(S) - 12 + 1) / 2;
    if (j < 0) j = 0;
    uint64_t M = S >> (2 * j);                    /* < 4096 */
    int32_t R = table[M];
    int sh = tshift[M >> 9] + j + k - 16;         /* x * R * 2^-sh: x / sqrt(S) in Q16 */
    const int L_out = p->e_gamma - 16 + p->F_out;
    for (int i = 0; i < len; i++) {
        int32_t a = lm_shift_sat32((int64_t)x[i] * R, -sh);
        if (a > 65536) a = 65536;
        if (a < -65536) a = -65536;
        out[i] = lm_shift_sat32((int64_t)a * gq[i], L_out);
    }
}

void lm_int_rmsnorm(int32_t *out, const int32_t *x, const lm_int_norm *p) {
    assert(p->group > 0 && p->n % p->group == 0);
    const int16_t *table = lm_rsqrt_table();
    const uint8_t *tshift = lm_rsqrt_shift();
    for (int g = 0; g < p->n; g += p->group) norm_group(out + g, x + g, p->gq + g, p->group, p, table, tshift);
}

lm_status lm_int_norm_build(lm_int_norm *p, int16_t *gq, const float *gamma, int n, int group, float eps,
                            int F_in, double extra_scale, int out_bits) {
    if (n < 1 || group < 1 || n % group != 0 || group > (1 << 15) || !(eps >= 0.0f) || !(extra_scale > 0.0) || out_bits < 2 || out_bits > 8)
        return lm_fail(LM_ERR_ARG, "integer RMSNorm: bad shape %d / %d, eps %g or scale %g", n, group, eps, extra_scale);
    const double c = sqrt((double)group) * extra_scale;
    float m = 0.0f;
    for (int i = 0; i < n; i++) m = fmaxf(m, fabsf((float)((gamma ? gamma[i] : 1.0f) * c)));
    if (!(m > 0.0f) || !isfinite(m)) return lm_fail(LM_ERR_ARG, "integer RMSNorm: gamma is zero or not finite");
    /* one exponent for the vector, from its largest entry: |gq| <= 2^12 - 1 (13-bit signed) */
    const int e = lm_pot_weight_exponent(m, LM_GAMMA_BITS);
    const double qmax = (1 << (LM_GAMMA_BITS - 1)) - 1;
    for (int i = 0; i < n; i++) {
        double v = floor(ldexp((gamma ? gamma[i] : 1.0f) * c, -e) + 0.5);
        gq[i] = (int16_t)(v > qmax ? qmax : v < -qmax ? -qmax : v);
    }
    p->n = n;
    p->group = group;
    p->F_in = F_in;
    p->e_gamma = e;
    p->gq = gq;
    double et = floor((double)group * eps * ldexp(1.0, 2 * F_in) + 0.5);
    p->eps_term = et > 0x1p62 ? (uint64_t)1 << 62 : (uint64_t)et;
    /* |out_i| = |x_i / sqrt(S)| * |gamma_i c| <= m, and the 2-norm of the whole output is at
     * most m * sqrt(n / group) (each group's x / sqrt(S) has norm <= 1), which also bounds every
     * entry after an orthogonal rotation (the online Hadamard before out_proj). */
    p->F_out = lm_site_F(sqrt((double)n / group) * m, out_bits);
    return LM_OK;
}
