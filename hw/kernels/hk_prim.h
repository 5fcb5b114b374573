/* Integer primitives of the kernels (hw/kernels): the rounding shift, saturation, the PoT group
 * quantizer and the LUT lookup, as small combinational functions (HLS inlines them). They
 * restate docs/integer-datapath.md section 1 and 4 without calling the golden model; the
 * testbench checks them against it. */
#ifndef HK_PRIM_H
#define HK_PRIM_H
#include <stdint.h>
#include "hk_config.h"

#define HK_POT_SMAX 15                 /* 4-bit group exponent */
#define HK_LUT_ENTRIES 4096
#define HK_LUT_SEGMENTS 32
#define HK_LUT_SEG_SHIFT 7

/* position of the highest set bit + 1 (a priority encoder) */
static inline int hk_bitlength(uint64_t m) {
    int b = 0;
    for (int i = 0; i < 64; i++) {
        HK_PRAGMA(HLS unroll)
        if ((m >> i) & 1) b = i + 1;
    }
    return b;
}

/* symmetric saturation to int32: [-(2^31 - 1), 2^31 - 1] */
static inline int32_t hk_sat32(int64_t x) {
    return x > INT32_MAX ? INT32_MAX : x < -INT32_MAX ? -INT32_MAX : (int32_t)x;
}

/* sat32(round_half_up(x * 2^L)). Right shifts add half an LSB: floor(x / 2^n + 1/2) =
 * (x >> n) + bit n-1 of x, which needs no wider adder than x itself. */
static inline int32_t hk_shift_sat32(int64_t x, int L) {
    if (L >= 0) {
        uint64_t m = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
        if (m == 0) return 0;
        if (L >= 32 || hk_bitlength(m) + L > 32) return x < 0 ? -INT32_MAX : INT32_MAX;
        return hk_sat32(x * ((int64_t)1 << L));
    }
    const int n = -L;
    if (n > 63) return 0;
    return hk_sat32((x >> n) + ((x >> (n - 1)) & 1));
}

/* The datapath's rescale: sat32(floor(x * 2^L)) under HK_DP_TRUNC (a plain arithmetic shift),
 * else hk_shift_sat32. */
static inline int32_t hk_rescale(int64_t x, int L) {
    if (!(HK_DATAPATH & HK_DP_TRUNC) || L >= 0) return hk_shift_sat32(x, L);
    return L < -63 ? (x < 0 ? -1 : 0) : hk_sat32(x >> -L);
}

/* One PoT group of len <= 8 wide values: s = clamp(bitlength(max |X|) - (bits - 1), 0, 15),
 * q = clamp(round_half_up(X / 2^s), +-qmax); entries past len are 0. Returns s. Under HK_DP_QRULE
 * bitlength(max |X| - 1) and the clamp [-qmax - 1, qmax] (the release's QUANTIZER::do_quant). */
static inline uint8_t hk_pot_group(int8_t q[HK_GROUP], const int32_t X[HK_GROUP], int len, int bits) {
    const int32_t qmax = (1 << (bits - 1)) - 1, qmin = HK_DATAPATH & HK_DP_QRULE ? -qmax - 1 : -qmax;
    uint32_t m = 0;
    for (int i = 0; i < HK_GROUP; i++) {
        HK_PRAGMA(HLS unroll)
        uint32_t a = X[i] < 0 ? (uint32_t)0 - (uint32_t)X[i] : (uint32_t)X[i];
        if (i < len && a > m) m = a;
    }
    if (HK_DATAPATH & HK_DP_QRULE && m > 0) m--;
    int s = hk_bitlength(m) - (bits - 1);
    s = s < 0 ? 0 : s > HK_POT_SMAX ? HK_POT_SMAX : s;
    for (int i = 0; i < HK_GROUP; i++) {
        HK_PRAGMA(HLS unroll)
        int32_t v = hk_shift_sat32(X[i], -s);
        q[i] = (int8_t)(i >= len ? 0 : v > qmax ? qmax : v < qmin ? qmin : v);
    }
    return (uint8_t)s;
}

/* A lookup-table nonlinearity (integer-datapath.md section 4): 4096 int16 values, 32 shifts. */
typedef struct {
    int32_t alpha, k, F_in, F_out, tail_identity;
    int16_t value[HK_LUT_ENTRIES];
    uint8_t shift[HK_LUT_SEGMENTS];
} hk_lut;

static inline int32_t hk_lut_apply(const hk_lut *t, int32_t X) {
    int64_t idx = ((int64_t)X - t->alpha) >> t->k;
    if (idx < 0) idx = 0;
    if (idx >= HK_LUT_ENTRIES) {
        if (t->tail_identity) return hk_shift_sat32(X, t->F_out - t->F_in);
        idx = HK_LUT_ENTRIES - 1;
    }
    return (int32_t)t->value[idx] * (1 << t->shift[idx >> HK_LUT_SEG_SHIFT]);
}
#endif
