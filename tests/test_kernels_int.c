/* The integer linear layer: hand-checked cases (packing order, exponent choice, rounding,
 * clamping, a small product), the scalar path against the contract's formula written out
 * plainly below, and every SIMD level this CPU has against the scalar path, bit for bit,
 * on random shapes with ragged tails, T = 1..70, 1-3 threads. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels/kernels.h"

static unsigned rng = 2024;
static int irand(int lo, int hi) { /* uniform in [lo, hi] */
    rng = rng * 1664525u + 1013904223u;
    return lo + (int)((rng >> 8) % (unsigned)(hi - lo + 1));
}
/* Values in [-max, max] with the extremes common (they are what overflows). */
static int ivalue(int max) {
    int r = irand(0, 9);
    return r == 0 ? max : r == 1 ? -max : irand(-max, max);
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

typedef struct {
    int O, K, wbits;
    int8_t *qw;       /* [O][K] unpacked */
    uint8_t *packed, *scale;
    int8_t *e0;
    lm_qweight w;
} test_weights;

static void weights_random(test_weights *tw, int O, int K, int wbits, int extreme) {
    int n_wg = (K + 127) / 128, qmax = wbits == 4 ? 7 : 127;
    size_t stride = wbits == 4 ? (size_t)(K + 1) / 2 : (size_t)K;
    tw->O = O, tw->K = K, tw->wbits = wbits;
    tw->qw = malloc((size_t)O * K);
    tw->packed = malloc((size_t)O * stride);
    tw->scale = malloc((size_t)O * n_wg);
    tw->e0 = malloc((size_t)O);
    for (int o = 0; o < O; o++) {
        int8_t *row = tw->qw + (size_t)o * K;
        for (int k = 0; k < K; k++) row[k] = (int8_t)(extreme ? qmax : ivalue(qmax));
        if (wbits == 4)
            lm_pack_int4_row(tw->packed + o * stride, row, K);
        else
            memcpy(tw->packed + o * stride, row, (size_t)K);
        for (int G = 0; G < n_wg; G++) tw->scale[o * n_wg + G] = extreme ? lm_wscale_byte(7, 7) : lm_wscale_byte(irand(0, 7), irand(0, 7));
        tw->e0[o] = (int8_t)irand(-12, 3);
    }
    tw->w = (lm_qweight){O, K, wbits, tw->packed, stride, tw->scale, tw->e0};
}

static void weights_free(test_weights *tw) { free(tw->qw), free(tw->packed), free(tw->scale), free(tw->e0); }

/* The contract, plainly: acc_G in int64 (checked to fit int32), acc_o in int64. */
static float contract_output(const lm_qact *a, int t, const test_weights *tw, int o, int *acc_g_overflow) {
    int K = a->K, n_ag = (K + 7) / 8, n_wg = (K + 127) / 128;
    int64_t acc_o = 0;
    for (int G = 0; G < n_wg; G++) {
        int64_t acc_G = 0;
        for (int g = G * 16; g < n_ag && g < G * 16 + 16; g++) {
            int64_t s = 0;
            for (int k = g * 8; k < K && k < g * 8 + 8; k++)
                s += (int64_t)a->q[(size_t)t * K + k] * tw->qw[(size_t)o * K + k];
            acc_G += s * ((int64_t)1 << a->sa[(size_t)t * n_ag + g]);
        }
        if (acc_G > INT32_MAX || acc_G < INT32_MIN) (*acc_g_overflow)++;
        uint8_t sb = tw->scale[o * n_wg + G];
        acc_o += acc_G * (((int64_t)1 << (sb & 7)) + ((int64_t)1 << (sb >> 4)));
    }
    return ldexpf((float)acc_o, a->eb[t] + tw->e0[o]);
}

static void act_random(lm_qact *a, int T, int extreme) {
    int qmax = (1 << (a->abits - 1)) - 1, samax = a->abits == 4 ? 15 : 7, n_ag = (a->K + 7) / 8;
    for (int i = 0; i < T * a->K; i++) a->q[i] = (int8_t)(extreme ? (i & 1 ? qmax : -qmax) * (i % 3 ? 1 : -1) : ivalue(qmax));
    for (int i = 0; i < T * n_ag; i++) a->sa[i] = (uint8_t)(extreme ? samax : irand(0, samax));
    for (int t = 0; t < T; t++) a->eb[t] = irand(-20, 4);
}

static void hand_checked(void) {
    /* 4-bit packing: column 0 in the low nibble, two's complement, odd tail high nibble 0. */
    int8_t v[3] = {1, -2, 3}, back[3];
    uint8_t p[2] = {0xAA, 0xAA};
    lm_pack_int4_row(p, v, 3);
    CHECK(p[0] == 0xE1 && p[1] == 0x03, "packed %02x %02x, expected e1 03", p[0], p[1]);
    lm_unpack_int4_row(back, p, 3);
    CHECK(memcmp(back, v, 3) == 0, "unpack(pack) differs");
    for (int x = -8; x <= 7; x++) {
        int8_t one = (int8_t)x, got;
        uint8_t b;
        lm_pack_int4_row(&b, &one, 1);
        lm_unpack_int4_row(&got, &b, 1);
        CHECK(got == x, "nibble round trip of %d gave %d", x, got);
    }
    CHECK(lm_wscale_byte(3, 5) == 0x53 && lm_wscale_mult(0x53) == 8 + 32, "scale byte");

    /* Exponent choice: |x| / 2^e in [2^(bits-2), 2^(bits-1)) before rounding. */
    CHECK(lm_act_exponent(1.0f, 4) == -2, "e(1.0, 4 bits) = %d", lm_act_exponent(1.0f, 4));
    CHECK(lm_act_exponent(7.99f, 4) == 0, "e(7.99, 4 bits) = %d", lm_act_exponent(7.99f, 4));
    CHECK(lm_act_exponent(8.0f, 4) == 1, "e(8, 4 bits) = %d", lm_act_exponent(8.0f, 4));
    CHECK(lm_act_exponent(0.75f, 8) == -7, "e(0.75, 8 bits) = %d", lm_act_exponent(0.75f, 8));
    CHECK(lm_act_exponent(100.0f, 8) == 0, "e(100, 8 bits) = %d", lm_act_exponent(100.0f, 8)); /* integer-datapath.md section 1: bitlength 7 - 7 */
    CHECK(lm_act_exponent(300.0f, 8) == 2, "e(300, 8 bits) = %d", lm_act_exponent(300.0f, 8)); /* bitlength 9 - 7 */
    CHECK(lm_act_exponent(0.0f, 4) == LM_ACT_EXP_ZERO && lm_act_exponent(NAN, 4) == LM_ACT_EXP_ZERO, "e(0), e(NaN)");
    /* Round half up (toward +inf), clamp at qmax. */
    CHECK(lm_act_quantize(2.5f, 0, 4) == 3 && lm_act_quantize(-2.5f, 0, 4) == -2, "round half up at 2.5");
    CHECK(lm_act_quantize(0.5f, 0, 4) == 1 && lm_act_quantize(-0.5f, 0, 4) == 0, "round half up at 0.5");
    CHECK(lm_act_quantize(0.49999997f, 0, 8) == 0, "just below a half rounds down");
    CHECK(lm_act_quantize(1.25f, -1, 4) == 3, "1.25 / 2^-1 = 2.5 -> 3");
    CHECK(lm_act_quantize(7.5f, 0, 4) == 7 && lm_act_quantize(-7.6f, 0, 4) == -7, "clamp to +-7");
    CHECK(lm_act_quantize(1000.0f, 0, 8) == 127 && lm_act_quantize(-INFINITY, 0, 8) == -127, "clamp to +-127");
    CHECK(lm_act_quantize(NAN, 0, 8) == 0, "NaN -> 0");

    /* A token: group 0 sets the exponent, group 1 falls below eb and uses eb. */
    lm_qact a;
    CHECK_OK(lm_qact_init(&a, 2, 16, 4, 4));
    float x[32] = {0};
    x[0] = 7.5f * 65536.0f; /* e = floor(log2) - 2 = 18 - 2 = 16 -> q = round(7.5) = 8 -> 7 */
    x[1] = -1.5f * 65536.0f; /* -1.5 rounds half up -> -1 */
    x[8] = 1.0f;            /* own e = -2 < eb = 16 - 15 = 1: quantized with 2^1 -> 0.5 -> 1 */
    x[9] = -1.0f;           /* -0.5 rounds half up -> 0 */
    /* token 1 all zero */
    CHECK_OK(lm_quantize_act(&a, x, 2));
    CHECK(a.eb[0] == 1 && a.sa[0] == 15 && a.sa[1] == 0, "eb %d sa %d %d", a.eb[0], a.sa[0], a.sa[1]);
    CHECK(a.q[0] == 7 && a.q[1] == -1 && a.q[8] == 1 && a.q[9] == 0, "q %d %d %d %d", a.q[0], a.q[1], a.q[8], a.q[9]);
    CHECK(a.eb[1] == 0 && a.sa[2] == 0 && a.sa[3] == 0 && a.q[16] == 0, "zero token: eb %d", a.eb[1]);

    /* A product by hand: K = 3, one group, qw = [1, -2, 3], q = [2, 1, -1], sa = 1, eb = -3,
     * scale 2^0 + 2^1 = 3, e0 = 2: acc_G = (2 - 2 - 3) << 1 = -6, acc_o = -18, y = -18 * 2^-1. */
    lm_qact b;
    CHECK_OK(lm_qact_init(&b, 1, 3, 8, 4));
    b.q[0] = 2, b.q[1] = 1, b.q[2] = -1, b.sa[0] = 1, b.eb[0] = -3;
    CHECK_OK(lm_qact_pack(&b, 1));
    uint8_t wq[2], sc = lm_wscale_byte(0, 1);
    int8_t e0 = 2;
    lm_pack_int4_row(wq, v, 3);
    lm_qweight w = {1, 3, 4, wq, 2, &sc, &e0};
    for (int level = LM_SIMD_SCALAR; level <= (int)lm_simd_detect(); level++) {
        CHECK_OK(lm_simd_level_set((lm_simd_level)level));
        float y = 0;
        CHECK_OK(lm_qlinear(&y, &b, &w, NULL));
        CHECK(y == -9.0f, "%s: hand product %g, expected -9", lm_simd_level_name(level), y);
    }

    /* Bad input is refused with a message. */
    lm_qact c;
    CHECK(lm_qact_init(&c, 1, 8, 4, 8) == LM_ERR_UNSUPPORTED, "W8A4 refused");
    CHECK(lm_qact_init(&c, 1, 8, 5, 4) == LM_ERR_ARG, "abits 5 refused");
    CHECK(lm_qact_init(&c, 0, 8, 4, 4) == LM_ERR_ARG, "T 0 refused");
    CHECK(lm_quantize_act(&a, x, 3) == LM_ERR_ARG, "more tokens than room refused");
    b.q[0] = 127;
    CHECK(lm_qact_pack(&b, 1) == LM_OK, "127 fits 8 bits");
    a.q[0] = 8;
    CHECK(lm_qact_pack(&a, 1) == LM_ERR_ARG, "q = 8 with 4-bit activations refused");
    a.q[0] = 0, a.sa[0] = 16;
    CHECK(lm_qact_pack(&a, 1) == LM_ERR_ARG, "sa = 16 refused");
    w.cols = 4;
    CHECK(lm_qlinear(&x[0], &b, &w, NULL) == LM_ERR_ARG, "column mismatch refused");
    w.cols = 3, w.wbits = 8;
    CHECK(lm_qlinear(&x[0], &b, &w, NULL) == LM_ERR_ARG, "weight bits mismatch refused");
    w.wbits = 4, w.row_stride = 1;
    CHECK(lm_qlinear(&x[0], &b, &w, NULL) == LM_ERR_ARG, "short row stride refused");
    lm_qact_free(&a);
    lm_qact_free(&b);
}

/* A float meant to be hard for the quantizer: ties (k + 1/2) * 2^j, their neighbours, zeros of
 * both signs, subnormals, huge values, infinities and NaNs, among ordinary random values. */
static float nasty_float(void) {
    switch (irand(0, 11)) {
    case 0: return ldexpf((float)irand(-255, 255) * 0.5f, irand(-12, 12)); /* ties at many exponents */
    case 1: return nextafterf(ldexpf((float)irand(-255, 255) * 0.5f, irand(-12, 12)), irand(0, 1) ? INFINITY : -INFINITY);
    case 2: return irand(0, 1) ? 0.0f : -0.0f;
    case 3: return ldexpf((float)irand(-1000, 1000), irand(-160, -130)); /* subnormal */
    case 4: return irand(0, 3) ? ldexpf((float)irand(-1000, 1000), irand(100, 118)) : (irand(0, 1) ? FLT_MAX : -FLT_MAX);
    case 5: return irand(0, 20) ? (float)irand(-1000, 1000) * 0.01f : (irand(0, 2) ? (irand(0, 1) ? INFINITY : -INFINITY) : NAN);
    default: return ldexpf((float)irand(-(1 << 20), 1 << 20), irand(-40, 10));
    }
}

/* lm_quantize_act at every SIMD level against the scalar one, bit for bit (q, sa, eb and the kernel
 * layouts for 4- and 8-bit weights), on ragged K: random tokens, tokens of zeros, of NaNs, of infinities, with zero groups. */
static void quantize_levels(void) {
    const int Ks[] = {1, 5, 7, 8, 9, 15, 16, 17, 31, 100, 777, 2560};
    const int T = 7;
    const int bits_of[3][2] = {{4, 4}, {8, 4}, {8, 8}}; /* {abits, wbits} */
    for (int b = 0; b < 3; b++)
        for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
            int bits = bits_of[b][0], wbits = bits_of[b][1];
            int K = Ks[ki], n_ag = (K + 7) / 8;
            float *x = malloc(sizeof(float) * T * K);
            for (int t = 0; t < T; t++)
                for (int k = 0; k < K; k++) {
                    float *v = &x[t * K + k];
                    *v = t == 0 ? 0.0f : t == 1 ? NAN : t == 2 ? (k % 3 ? INFINITY : -INFINITY) : nasty_float();
                    if (t >= 5 && (k / 8) % 3 == 1) *v = 0.0f; /* zero groups among others */
                }
            /* Tie groups: the first channel fixes the group's exponent e, the others lie on or
             * next to (n + 1/2) * 2^e, where rounding x * 2^-e + 1/2 in float would go wrong. */
            for (int t = 3; t < T; t++)
                for (int g = 0; g < n_ag; g += 2) {
                    int j = irand(-30, 30), e = j - (bits - 2);
                    x[t * K + g * 8] = ldexpf(irand(0, 1) ? 1.5f : -1.0f, j);
                    for (int k = g * 8 + 1; k < K && k < g * 8 + 8; k++) {
                        float tie = ldexpf((float)irand(-4, 3) + 0.5f, e);
                        x[t * K + k] = irand(0, 2) ? nextafterf(tie, irand(0, 1) ? INFINITY : -INFINITY) : tie;
                    }
                }
            lm_qact ref, got;
            CHECK_OK(lm_qact_init(&ref, T, K, bits, wbits));
            CHECK_OK(lm_qact_init(&got, T, K, bits, wbits));
            CHECK_OK(lm_simd_level_set(LM_SIMD_SCALAR));
            CHECK_OK(lm_quantize_act(&ref, x, T));
            for (int level = LM_SIMD_AVX2; level <= (int)lm_simd_detect(); level++) {
                CHECK_OK(lm_simd_level_set((lm_simd_level)level));
                memset(got.q, 0x55, (size_t)T * K), memset(got.sa, 0x55, (size_t)T * n_ag);
                CHECK_OK(lm_quantize_act(&got, x, T));
                for (int t = 0; t < T; t++) {
                    int bad_q = -1, bad_sa = -1;
                    for (int k = K - 1; k >= 0; k--)
                        if (got.q[t * K + k] != ref.q[t * K + k]) bad_q = k;
                    for (int g = n_ag - 1; g >= 0; g--)
                        if (got.sa[t * n_ag + g] != ref.sa[t * n_ag + g]) bad_sa = g;
                    CHECK(got.eb[t] == ref.eb[t], "%s A%d K=%d token %d: eb %d, scalar %d", lm_simd_level_name(level),
                          bits, K, t, got.eb[t], ref.eb[t]);
                    CHECK(bad_q < 0, "%s A%d K=%d token %d channel %d: x = %.9g -> q %d, scalar %d", lm_simd_level_name(level),
                          bits, K, t, bad_q, bad_q < 0 ? 0.0 : x[t * K + bad_q], bad_q < 0 ? 0 : got.q[t * K + bad_q],
                          bad_q < 0 ? 0 : ref.q[t * K + bad_q]);
                    CHECK(bad_sa < 0, "%s A%d K=%d token %d group %d: sa %d, scalar %d", lm_simd_level_name(level), bits,
                          K, t, bad_sa, bad_sa < 0 ? 0 : got.sa[t * n_ag + bad_sa], bad_sa < 0 ? 0 : ref.sa[t * n_ag + bad_sa]);
                }
                CHECK(memcmp(got.kq, ref.kq, (size_t)T * ref.Kp) == 0 &&
                          memcmp(got.ksa, ref.ksa, sizeof(int32_t) * T * ref.lanes) == 0 &&
                          memcmp(got.kcorr, ref.kcorr, sizeof(int32_t) * T * ref.lanes) == 0,
                      "%s A%d K=%d: kernel layout for %d-bit weights differs", lm_simd_level_name(level), bits, K, wbits);
            }
            lm_qact_free(&ref), lm_qact_free(&got);
            free(x);
        }
}

/* One shape: scalar == contract, each SIMD level == scalar, for 1-3 threads. */
static void compare_shape(lm_pool **pools, int T, int K, int O, int abits, int wbits, int extreme, int quantize_floats) {
    test_weights tw;
    weights_random(&tw, O, K, wbits, extreme);
    lm_qact a;
    CHECK_OK(lm_qact_init(&a, T, K, abits, wbits));
    if (quantize_floats) {
        float *x = malloc(sizeof(float) * T * K);
        for (int i = 0; i < T * K; i++) /* outliers a few hundred times the bulk */
            x[i] = (float)irand(-1000, 1000) * (irand(0, 50) == 0 ? 0.5f : 0.001f);
        CHECK_OK(lm_quantize_act(&a, x, T));
        free(x);
    } else {
        act_random(&a, T, extreme);
        CHECK_OK(lm_qact_pack(&a, T));
    }
    float *ref = malloc(sizeof(float) * T * O), *y = malloc(sizeof(float) * T * O);
    int overflow = 0;
    for (int t = 0; t < T; t++)
        for (int o = 0; o < O; o++) ref[t * O + o] = contract_output(&a, t, &tw, o, &overflow);
    CHECK(overflow == 0, "W%dA%d K=%d: %d group accumulators outside int32", wbits, abits, K, overflow);
    for (int level = LM_SIMD_SCALAR; level <= (int)lm_simd_detect(); level++) {
        CHECK_OK(lm_simd_level_set((lm_simd_level)level));
        for (int th = 0; th < 3; th++) {
            for (int i = 0; i < T * O; i++) y[i] = NAN;
            CHECK_OK(lm_qlinear(y, &a, &tw.w, pools[th]));
            int bad = 0, first = -1;
            for (int i = 0; i < T * O; i++)
                if (!same_bits(y[i], ref[i]) && bad++ == 0) first = i;
            CHECK(bad == 0, "%s W%dA%d T=%d K=%d O=%d threads=%d%s: %d outputs differ (first [%d]: %.9g vs %.9g)",
                  lm_simd_level_name(level), wbits, abits, T, K, O, th + 1, extreme ? " extreme" : "", bad, first,
                  first >= 0 ? y[first] : 0.0, first >= 0 ? ref[first] : 0.0);
        }
    }
    free(ref), free(y);
    lm_qact_free(&a);
    weights_free(&tw);
}

int main(void) {
    hand_checked();
    quantize_levels();
    lm_pool *pools[3];
    for (int i = 0; i < 3; i++) CHECK_OK(lm_pool_init(&pools[i], i + 1));
    /* Ragged K (partial weight and activation groups, several scale chunks), O around the
     * kernels' row blocks (8 and 4 rows, split over threads), T = 1 (decode) and T around the
     * prefill token block, up to more than a 64-token chunk. */
    const int Ks[] = {1, 7, 8, 63, 64, 65, 127, 128, 129, 200, 255, 300, 777, 4100, 5000};
    const int Os[] = {1, 3, 8, 17, 33, 67};
    const int Ts[] = {1, 2, 3, 4, 5, 7, 8, 9, 1, 64, 70};
    const int bits[3][2] = {{4, 4}, {8, 4}, {8, 8}}; /* {abits, wbits}: W4A4, W4A8, W8A8 */
    int n_T = (int)(sizeof Ts / sizeof *Ts), shape = 0;
    for (int b = 0; b < 3; b++)
        for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
            for (size_t oi = 0; oi < sizeof Os / sizeof *Os; oi++, shape++) {
                int T = Ts[shape % n_T];
                if (Ks[ki] > 1000 && T > 9) T = 9; /* keeps the plain reference quick */
                compare_shape(pools, T, Ks[ki], Os[oi], bits[b][0], bits[b][1], 0, 0);
                compare_shape(pools, T, Ks[ki], Os[oi], bits[b][0], bits[b][1], 0, 1);
            }
    /* The largest magnitudes everywhere (q = +-qmax, qw = qmax, sa = SA_MAX, s1 = s2 = 7):
     * no accumulator may overflow, at a 2.7B-like K. */
    for (int b = 0; b < 3; b++)
        for (int T = 1; T <= 9; T += 4) compare_shape(pools, T, 5120, 19, bits[b][0], bits[b][1], 1, 0);
    for (int i = 0; i < 3; i++) lm_pool_free(pools[i]);
    return test_finish();
}
