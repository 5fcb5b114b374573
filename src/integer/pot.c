/* PoT group quantization, the rounding shift, and static weight quantization (integer.h). */
#include "integer/integer.h"

#include <assert.h>
#include <math.h>

int lm_bitlength(uint64_t m) { return m ? 64 - __builtin_clzll(m) : 0; }

int32_t lm_shift_sat32_general(int64_t x, int L) {
    if (x == 0) return 0;
    if (L >= 0) {
        /* |x| << L > 2^31 saturates; test on the magnitude before shifting (no overflow). */
        uint64_t m = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
        if (L >= 32 || lm_bitlength(m) + L > 32) return x < 0 ? -INT32_MAX : INT32_MAX;
        return lm_sat32(x * ((int64_t)1 << L));
    }
    int n = -L;
    if (n > 63) return 0;                    /* |x| < 2^63: x / 2^n + 1/2 in [0, 1) -> 0 */
    /* floor((x + 2^(n-1)) / 2^n), the sum in 65 bits */
    return lm_sat32((int64_t)(((__int128)x + ((__int128)1 << (n - 1))) >> n));
}

int32_t lm_floor_sat32(int64_t x, int L) {
    if (L >= 0) return lm_shift_sat32(x, L);     /* a left shift is exact either way */
    return L < -63 ? (x < 0 ? -1 : 0) : lm_sat32(x >> -L);
}

int lm_pot_exponent_dp(uint32_t m, int bits, int dp) {
    /* the release's log2ceil (src/quantizer.h): m - 1 first, so 2^k keeps the exponent of 2^k - 1 */
    if (dp & LM_DP_QRULE && m > 0) m--;
    int s = lm_bitlength(m) - (bits - 1);
    return s < 0 ? 0 : s > LM_POT_SMAX ? LM_POT_SMAX : s;
}

void lm_pot_quantize_strided(int8_t *q, uint8_t *s, const int32_t *X, int n, int stride, int bits, int dp) {
    assert(bits >= 2 && bits <= 8 && n >= 0 && stride >= 1);
    const int32_t qmax = (1 << (bits - 1)) - 1, qmin = dp & LM_DP_QRULE ? -qmax - 1 : -qmax;
    for (int g0 = 0; g0 < n; g0 += LM_POT_GROUP) {
        int g1 = g0 + LM_POT_GROUP < n ? g0 + LM_POT_GROUP : n;
        uint32_t m = 0;
        for (int i = g0; i < g1; i++) {
            int32_t v = X[(size_t)i * stride];
            uint32_t a = v < 0 ? (uint32_t)0 - (uint32_t)v : (uint32_t)v;
            if (a > m) m = a;
        }
        int e = lm_pot_exponent_dp(m, bits, dp);
        s[g0 / LM_POT_GROUP] = (uint8_t)e;
        for (int i = g0; i < g1; i++) {
            int32_t v = lm_shift_sat32(X[(size_t)i * stride], -e);
            q[i] = (int8_t)(v > qmax ? qmax : v < qmin ? qmin : v);
        }
    }
}

void lm_pot_quantize_dp(int8_t *q, uint8_t *s, const int32_t *X, int n, int bits, int dp) {
    lm_pot_quantize_strided(q, s, X, n, 1, bits, dp);
}

void lm_pot_quantize(int8_t *q, uint8_t *s, const int32_t *X, int n, int bits) {
    lm_pot_quantize_strided(q, s, X, n, 1, bits, 0);
}

/* round_half_up(x * 2^F) saturated to int32, the one float -> wide conversion. */
static int32_t to_wide(float x, int F) {
    double v = floor(ldexp((double)x, F) + 0.5);
    if (!(v < 2147483647.0)) return v != v ? 0 : INT32_MAX;   /* NaN -> 0 */
    if (v < -2147483647.0) return -INT32_MAX;
    return (int32_t)v;
}

void lm_pot_quantize_f32(int8_t *q, uint8_t *s, const float *x, int n, int bits, int F) {
    int32_t X[LM_POT_GROUP];
    for (int g0 = 0; g0 < n; g0 += LM_POT_GROUP) {
        int len = g0 + LM_POT_GROUP < n ? LM_POT_GROUP : n - g0;
        for (int i = 0; i < len; i++) X[i] = to_wide(x[g0 + i], F);
        lm_pot_quantize(q + g0, s + g0 / LM_POT_GROUP, X, len, bits);
    }
}

void lm_pot_dequantize(float *x, const int8_t *q, const uint8_t *s, int n, int F) {
    for (int i = 0; i < n; i++) x[i] = ldexpf((float)q[i], s[i / LM_POT_GROUP] - F);
}

void lm_pot_to_wide(int32_t *X, const int8_t *q, const uint8_t *s, int n, int F_in, int F_out) {
    for (int i = 0; i < n; i++) X[i] = lm_shift_sat32(q[i], s[i / LM_POT_GROUP] - F_in + F_out);
}

int lm_pot_weight_exponent(float m, int bits) {
    if (!(m > 0.0f)) return 0;
    int E;
    frexpf(m, &E);                 /* m = f * 2^E, f in [0.5, 1): floor(log2 m) = E - 1 */
    return E - 1 - (bits - 2);
}

void lm_pot_weight_quantize(int16_t *q, int8_t *e, const float *w, int n, int group, int bits) {
    assert(bits >= 2 && bits <= 16 && group >= 1);
    const double qmax = (double)((1 << (bits - 1)) - 1);
    for (int g0 = 0; g0 < n; g0 += group) {
        int g1 = g0 + group < n ? g0 + group : n;
        float m = 0.0f;
        for (int i = g0; i < g1; i++) m = fmaxf(m, fabsf(w[i]));
        int ex = lm_pot_weight_exponent(m, bits);
        if (ex < -128) ex = -128;
        if (ex > 127) ex = 127;
        e[g0 / group] = (int8_t)ex;
        for (int i = g0; i < g1; i++) {
            double v = floor(ldexp((double)w[i], -ex) + 0.5);
            q[i] = (int16_t)(v > qmax ? qmax : v < -qmax ? -qmax : v);
        }
    }
}

int lm_site_F(double absmax, int bits) {
    if (!(absmax > 0.0)) return 30;
    int E;
    double f = frexp(absmax, &E);            /* absmax = f * 2^E, f in [0.5, 1) */
    int ceil_log2 = f == 0.5 ? E - 1 : E;    /* absmax <= 2^ceil_log2 */
    int F = LM_SITE_TOP - (8 - bits) - ceil_log2;
    return F < -8 ? -8 : F > 30 ? 30 : F;
}
