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

/* The release's norm of one group (Rmsnorm1::forward, Rmsnorm2::forward): the raw sum of
 * squares picks a table and an entry R ~ 2^(12 + F_n) sqrt(len / S); ((x R) >> 12) gamma >> 8. */
static void norm8_group(int32_t *out, const int32_t *x, const int16_t *gq, int len, const lm_rsqrt8 *t) {
    unsigned __int128 acc = 0;
    for (int i = 0; i < len; i++) acc += (unsigned __int128)((int64_t)x[i] * x[i]);
    const int64_t S = acc > (unsigned __int128)INT64_MAX ? INT64_MAX : (int64_t)acc;   /* the release: 64 bits */
    int tab = 0;
    for (int i = 0; i < LM_RSQRT_TABLES; i++)
        if (S >= t->alpha[i]) tab = i;
    int64_t idx = (S - t->alpha[tab]) >> t->ld[tab];
    idx = idx < 0 ? 0 : idx > LM_RSQRT_ENTRIES - 1 ? LM_RSQRT_ENTRIES - 1 : idx;
    const int64_t R = (int64_t)t->value[tab * LM_RSQRT_ENTRIES + idx] << t->off[tab];
    for (int i = 0; i < len; i++) {
        __int128 a = ((__int128)x[i] * R) >> LM_NORM8_TRUNC1;
        __int128 y = (a * gq[i]) >> LM_NORM8_TRUNC2;
        out[i] = y > INT32_MAX ? INT32_MAX : y < -INT32_MAX ? -INT32_MAX : (int32_t)y;
    }
}

void lm_int_rmsnorm(int32_t *out, const int32_t *x, const lm_int_norm *p) {
    assert(p->group > 0 && p->n % p->group == 0);
    if (p->rsqrt8) {
        for (int g = 0; g < p->n; g += p->group) norm8_group(out + g, x + g, p->gq + g, p->group, p->rsqrt8);
        return;
    }
    const int16_t *table = lm_rsqrt_table();
    const uint8_t *tshift = lm_rsqrt_shift();
    for (int g = 0; g < p->n; g += p->group) norm_group(out + g, x + g, p->gq + g, p->group, p, table, tshift);
}

lm_status lm_rsqrt8_build(lm_rsqrt8 *t, int group, int F_n, double lo, double span) {
    /* F_n <= 28 and a first bin at most 2^20 lo wide keep x R and ((x R) >> 12) gamma within int64
     * (|x| <= sqrt(S) and R ~ 2^(12 + F_n) sqrt(group / S)), so a 64-bit datapath gives these bits */
    if (group < 1 || group > (1 << 15) || F_n < -8 || F_n > 28 || !(lo > 0.0) || !(span > 0.0) || !(lo + span < 0x1p62))
        return lm_fail(LM_ERR_ARG, "release RMSNorm tables: bad group %d, site %d or sum range [%g, %g + %g]", group,
                       F_n, lo, lo, span);
    double b[LM_RSQRT_TABLES + 1];
    b[0] = lo;
    for (int i = 1; i <= LM_RSQRT_TABLES; i++) b[i] = lo + span * ldexp(1.0, 3 * (i - LM_RSQRT_TABLES));
    for (int i = 0; i < LM_RSQRT_TABLES; i++) {
        int k = 0;
        while (ldexp(LM_RSQRT_ENTRIES, k) <= b[i + 1] - b[i]) k++;
        if (i == 0 && ldexp(1.0, k) > ldexp(lo, 20))
            return lm_fail(LM_ERR_ARG, "release RMSNorm tables: the first bin (2^%d) is over 2^20 times lo (%g)", k, lo);
        t->alpha[i] = (int64_t)floor(b[i]);
        t->ld[i] = (uint8_t)k;
        double f[LM_RSQRT_ENTRIES];
        for (int e = 0; e < LM_RSQRT_ENTRIES; e++)
            f[e] = sqrt((double)group / (b[i] + ldexp(e, k))) * ldexp(1.0, LM_NORM8_TRUNC1 + F_n);
        int off = 0;
        while (rint(ldexp(f[0], -off)) > 255.0) off++;   /* entry 0 is the table's largest */
        if (off > 40) return lm_fail(LM_ERR_ARG, "release RMSNorm tables: entries need a shift of %d", off);
        t->off[i] = (uint8_t)off;
        for (int e = 0; e < LM_RSQRT_ENTRIES; e++) t->value[i * LM_RSQRT_ENTRIES + e] = (uint8_t)rint(ldexp(f[e], -off));
    }
    return LM_OK;
}

int lm_norm8_gamma_exponent(const float *gamma, int n, double extra_scale, int gamma_bits, int e_min) {
    float m = 0.0f;
    for (int i = 0; i < n; i++) m = fmaxf(m, fabsf((float)((gamma ? gamma[i] : 1.0f) * extra_scale)));
    int e = m > 0.0f && isfinite(m) ? lm_pot_weight_exponent(m, gamma_bits) : 0;
    return e < e_min ? e_min : e;
}

lm_status lm_int_norm8_build(lm_int_norm *p, int16_t *gq, lm_rsqrt8 *tab, const float *gamma, int n, int group,
                             int F_in, int F_n, double extra_scale, int gamma_bits, int e, double lo, double span) {
    if (n < 1 || group < 1 || n % group != 0 || !(extra_scale > 0.0) || gamma_bits < 2 || gamma_bits > 16)
        return lm_fail(LM_ERR_ARG, "release RMSNorm: bad shape %d / %d, scale %g or gamma bits %d", n, group,
                       extra_scale, gamma_bits);
    for (int i = 0; gamma && i < n; i++)
        if (!isfinite(gamma[i])) return lm_fail(LM_ERR_ARG, "release RMSNorm: gamma is not finite");
    LM_TRY(lm_rsqrt8_build(tab, group, F_n, lo, span));
    /* LNW: an integer per channel, its fixed point -e shared by the vector */
    const double qmax = (1 << (gamma_bits - 1)) - 1;
    for (int i = 0; i < n; i++) {
        double v = floor(ldexp((gamma ? gamma[i] : 1.0f) * extra_scale, -e) + 0.5);
        gq[i] = (int16_t)(v > qmax ? qmax : v < -qmax ? -qmax : v);
    }
    *p = (lm_int_norm){.n = n, .group = group, .F_in = F_in, .F_out = F_n - e - LM_NORM8_TRUNC2, .e_gamma = e,
                       .eps_term = 0, .gq = gq, .rsqrt8 = tab};
    return LM_OK;
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
    p->rsqrt8 = NULL;
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
