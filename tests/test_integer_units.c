/* The integer datapath units (src/integer) against float references, within error bounds derived
 * in docs/integer-datapath.md section 6, plus hand-checked edge cases and determinism. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "integer/integer.h"

/* A small deterministic generator (xorshift64*), so every run draws the same inputs. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_u64(void) {
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static double rng_uniform(double a, double b) { return a + (b - a) * (double)(rng_u64() >> 11) * 0x1p-53; }
static int rng_int(int a, int b) { return a + (int)(rng_u64() % (uint64_t)(b - a + 1)); }

static double pot_err(int q, int s, int F);

/* ------------------------------------------------------------------------- primitives */
static void test_shift(void) {
    /* round half up: ties go toward +inf */
    CHECK(lm_shift_sat32(5, -1) == 3, "2.5 -> 3");
    CHECK(lm_shift_sat32(-5, -1) == -2, "-2.5 -> -2");
    CHECK(lm_shift_sat32(-6, -2) == -1, "-1.5 -> -1");
    CHECK(lm_shift_sat32(7, -2) == 2, "1.75 -> 2");
    CHECK(lm_shift_sat32(-7, -2) == -2, "-1.75 -> -2");
    CHECK(lm_shift_sat32(3, 4) == 48, "left shift");
    CHECK(lm_shift_sat32(1, 31) == INT32_MAX, "2^31 saturates");
    CHECK(lm_shift_sat32(-1, 40) == -INT32_MAX, "negative saturates symmetric");
    CHECK(lm_shift_sat32(INT64_MAX, -63) == 1, "huge right shift rounds: %d", lm_shift_sat32(INT64_MAX, -63));
    CHECK(lm_shift_sat32(123456, -80) == 0, "shift past every bit");
    CHECK(lm_sat32((int64_t)INT32_MIN) == -INT32_MAX, "-2^31 never appears");
    CHECK(lm_bitlength(0) == 0 && lm_bitlength(1) == 1 && lm_bitlength(255) == 8 && lm_bitlength(256) == 9, "bitlength");
}

static void test_pot_quantizer(void) {
    /* hand-checked groups, 8-bit */
    int32_t X[8] = {127, -127, 0, 1, 2, 3, -3, 64};
    int8_t q[8]; uint8_t s[1];
    lm_pot_quantize(q, s, X, 8, 8);
    CHECK(s[0] == 0 && q[0] == 127 && q[1] == -127 && q[5] == 3, "max 127 keeps s = 0");
    int32_t Y[8] = {128, -3, 5, -5, 1, -1, 0, 255};
    lm_pot_quantize(q, s, Y, 8, 8);
    /* bitlength(255) = 8 -> s = 1; 255/2 = 127.5 -> 128 -> clamp 127; -3/2 = -1.5 -> -1; 5/2 -> 3; -5/2 -> -2 */
    CHECK(s[0] == 1, "s = bitlength(255) - 7 = 1, got %d", s[0]);
    CHECK(q[0] == 64 && q[1] == -1 && q[2] == 3 && q[3] == -2 && q[4] == 1 && q[5] == 0 && q[7] == 127,
          "round half up and clamp: %d %d %d %d %d %d %d", q[0], q[1], q[2], q[3], q[4], q[5], q[7]);
    int32_t Z[8] = {0};
    lm_pot_quantize(q, s, Z, 8, 8);
    CHECK(s[0] == 0 && q[0] == 0, "zeros");
    int32_t M[3] = {INT32_MAX, -INT32_MAX, 1 << 22};          /* beyond 127 * 2^15: saturates at s = 15 */
    lm_pot_quantize(q, s, M, 3, 8);
    CHECK(s[0] == 15 && q[0] == 127 && q[1] == -127 && q[2] == 127, "saturation at the 4-bit exponent");
    /* 4-bit: qmax 7, s = bitlength - 3 */
    int32_t A4[8] = {7, -8, 15, 16, 0, 0, 0, 0};
    lm_pot_quantize(q, s, A4, 8, 4);
    CHECK(s[0] == 2 && q[0] == 2 && q[1] == -2 && q[2] == 4 && q[3] == 4, "4-bit: s %d q %d %d %d %d", s[0], q[0], q[1], q[2], q[3]);
    /* partial last group: 11 values = one group of 8 and one of 3 */
    int32_t P11[11] = {1, 1, 1, 1, 1, 1, 1, 1, 1000, 2, -3};
    int8_t q11[11]; uint8_t s11[2];
    lm_pot_quantize(q11, s11, P11, 11, 8);
    CHECK(s11[0] == 0 && s11[1] == 3 && q11[8] == 125 && q11[9] == 0 && q11[10] == 0, "partial group: s %d", s11[1]);

    /* random wide values: the error is at most half an LSB of the group (2^(s-1)) unless the
     * group saturated; the float counterpart gives the same bits; wide -> pot -> wide -> pot is
     * a fixed point (re-quantization by shifts loses nothing the first rounding kept). */
    for (int it = 0; it < 2000; it++) {
        int32_t x[8]; int8_t qq[8], qf[8], q2[8]; uint8_t ss[1], sf[1], s2[1]; float xf[8];
        int mag = rng_int(0, 23), F = rng_int(-4, 24);
        for (int i = 0; i < 8; i++) {
            x[i] = (int32_t)rng_uniform(-ldexp(1.0, mag), ldexp(1.0, mag));
            xf[i] = ldexpf((float)x[i], -F);       /* exact in float for |x| < 2^24 */
        }
        lm_pot_quantize(qq, ss, x, 8, 8);
        lm_pot_quantize_f32(qf, sf, xf, 8, 8, F);
        CHECK(memcmp(qq, qf, 8) == 0 && ss[0] == sf[0], "float counterpart differs (it %d)", it);
        for (int i = 0; i < 8; i++) {
            double err = fabs((double)qq[i] * ldexp(1.0, ss[0]) - x[i]);
            CHECK(ss[0] == 15 || err <= pot_err(qq[i], ss[0], 0), "pot error %g > half LSB 2^%d (x %d)", err, ss[0] - 1, x[i]);
        }
        int32_t back[8];
        lm_pot_to_wide(back, qq, ss, 8, F, F + 3);
        lm_pot_quantize(q2, s2, back, 8, 8);
        for (int i = 0; i < 8 && ss[0] + 3 <= LM_POT_SMAX; i++)   /* the new site must still hold it */
            CHECK(q2[i] * ldexp(1.0, s2[0] - F - 3) == qq[i] * ldexp(1.0, ss[0] - F), "requantize by shifts changed a value");
    }
    float deq[8]; int8_t qd[8] = {1, -2, 3, 0, 0, 0, 0, 127}; uint8_t sd[1] = {5};
    lm_pot_dequantize(deq, qd, sd, 8, 10);
    CHECK(deq[0] == 0x1p-5f && deq[1] == -0x1p-4f && deq[7] == 127 * 0x1p-5f, "dequantize q * 2^(s - F)");
}

static void test_weight_quantizer(void) {
    CHECK(lm_pot_weight_exponent(1.0f, 8) == -6, "1.0 at 8 bits: q = 64, e = -6");
    CHECK(lm_pot_weight_exponent(127.0f, 8) == 0 && lm_pot_weight_exponent(128.0f, 8) == 1, "exponent steps at 128");
    CHECK(lm_pot_weight_exponent(0.0f, 8) == 0, "zero group");
    for (int it = 0; it < 200; it++) {
        float w[16]; int16_t q[16]; int8_t e[2];
        int bits = it % 2 ? 16 : 8;
        double scale = ldexp(1.0, rng_int(-12, 6));
        for (int i = 0; i < 16; i++) w[i] = (float)(rng_uniform(-1, 1) * scale);
        lm_pot_weight_quantize(q, e, w, 16, 8, bits);
        for (int i = 0; i < 16; i++) {
            double step = ldexp(1.0, e[i / 8]), err = fabs(q[i] * step - w[i]);
            int qmax = (1 << (bits - 1)) - 1;
            /* half a step, or the clamp at qmax (max |w| may round to 2^(bits-1): one step) */
            CHECK(err <= 0.5 * step || (abs(q[i]) == qmax && err <= step), "weight error %g, step %g", err, step);
        }
    }
    CHECK(lm_site_F(1.0, 8) == 21 && lm_site_F(1.5, 8) == 20 && lm_site_F(2.0, 8) == 20 && lm_site_F(0.0, 8) == 30 &&
          lm_site_F(1.0, 4) == 17, "site rule");
}

/* ------------------------------------------------------------------------------- LUTs */
static double max_slope(lm_lut_fn fn, double lo, double hi) {
    if (fn == LM_LUT_EXP) return exp(hi);
    return fn == LM_LUT_SILU ? 1.1 : 1.0;                 /* max SiLU' = 1.0998 */
}

static void test_lut_one(lm_lut_fn fn, double lo, double hi, int F_in, int F_out) {
    static lm_lut lut;
    CHECK_OK(lm_lut_build(&lut, fn, lo, hi, F_in, F_out, 0));
    const double bin = ldexp(1.0, lut.k - F_in);
    for (int it = 0; it < 20000; it++) {
        double x = rng_uniform(lo, hi);
        int32_t X = (int32_t)floor(ldexp(x, F_in) + 0.5);
        if (X < lut.alpha) continue;                       /* lo rounded below alpha: tested as an edge */
        double xr = ldexp((double)X, -F_in);
        int32_t out = lm_lut_apply(&lut, X);
        int64_t idx = ((int64_t)X - lut.alpha) >> lut.k;
        /* bound: the slope times the distance to the bin's centre (half a bin) plus half an entry LSB */
        double bound = max_slope(fn, lo, hi) * 0.5 * bin + ldexp(0.5, lut.shift[idx >> 7] - F_out) + 1e-12;
        double err = fabs(ldexp((double)out, -F_out) - lm_lut_ref(fn, xr));
        CHECK(err <= bound, "LUT fn %d at x %g: error %g > bound %g", fn, xr, err, bound);
        if (err > bound) break;
    }
    /* below the window the first entry holds; above it the last (exp) or the identity */
    int32_t below = lm_lut_apply(&lut, lut.alpha - 12345);
    CHECK(below == lut.value[0] * (1 << lut.shift[0]), "below the window: first entry");
    CHECK(lm_lut_apply(&lut, INT32_MIN + 1) == below, "far below the window");
    int64_t top = (int64_t)lut.alpha + ((int64_t)LM_LUT_ENTRIES << lut.k);
    if (top < INT32_MAX - 1000) {
        int32_t X = (int32_t)top + 777, out = lm_lut_apply(&lut, X);
        if (fn == LM_LUT_EXP)
            CHECK(out == lut.value[4095] * (1 << lut.shift[31]), "above the window: last entry");
        else
            CHECK(out == lm_shift_sat32(X, F_out - F_in), "above the window: identity");
    }
    /* the last in-window input still reads the table */
    int32_t last = (int32_t)(top - 1 < INT32_MAX ? top - 1 : INT32_MAX);
    CHECK(lm_lut_apply(&lut, last) == lut.value[4095] * (1 << lut.shift[31]) || top - 1 > INT32_MAX, "window edge");
}

static void test_luts(void) {
    test_lut_one(LM_LUT_SILU, -8.0, 8.0, 16, 16);
    test_lut_one(LM_LUT_SILU, -30.0, 45.0, 12, 14);
    test_lut_one(LM_LUT_SOFTPLUS, -12.0, 8.0, 18, 20);
    test_lut_one(LM_LUT_EXP, -20.0, 0.0, 16, 21);
    test_lut_one(LM_LUT_EXP, -3.0, 0.0, 24, 21);             /* k = 0 at fine input sites */
    static lm_lut lut;
    CHECK(lm_lut_build(&lut, LM_LUT_SILU, 1.0, 1.0, 10, 10, 0) == LM_ERR_ARG, "empty window refused");
    CHECK(lm_lut_build(&lut, LM_LUT_EXP, -1e9, 0.0, 20, 10, 0) == LM_ERR_ARG, "window beyond 32 bits refused");
    CHECK(lm_lut_build(&lut, LM_LUT_SILU, -8, 8, 10, 40, 0) == LM_ERR_ARG, "bad site refused");
}

/* ---------------------------------------------------------------------------- RMSNorm */
static void test_rmsnorm(void) {
    enum { n = 256 };
    int32_t x[n], out[n];
    int16_t gq[n];
    float gamma[n];
    for (int G = 1; G <= 4; G *= 4)
        for (int it = 0; it < 300; it++) {
            const int group = n / G;
            for (int i = 0; i < n; i++) gamma[i] = (float)rng_uniform(-2.0, 2.0);
            int F_in = rng_int(4, 20);
            lm_int_norm p;
            CHECK_OK(lm_int_norm_build(&p, gq, it % 3 ? gamma : NULL, n, group, 1e-5f, F_in, 1.0, 8));
            int mag = rng_int(2, 30);                  /* includes inputs that need the pre-shift k */
            for (int i = 0; i < n; i++) x[i] = (int32_t)rng_uniform(-ldexp(1.0, mag), ldexp(1.0, mag));
            if (it == 0) x[3] = INT32_MAX, x[4] = -INT32_MAX;
            lm_int_rmsnorm(out, x, &p);
            double m = 0.0;
            for (int i = 0; i < n; i++) m = fmax(m, fabs((it % 3 ? gamma[i] : 1.0) * sqrt(group)));
            /* bound: rsqrt relative error 2^-9 (S truncated to 12 bits: 2^-11; table rounding: <= 2^-10.5;
             * Q16 rounding of x / sqrt(S): 2^-17) times max|gamma sqrt(group)|, plus half a gamma step,
             * plus half an output LSB. */
            double bound = m * 0x1p-9 + ldexp(0.5, p.e_gamma) + ldexp(0.5, -p.F_out);
            for (int g = 0; g < n; g += group) {
                double ss = 0.0;
                for (int i = g; i < g + group; i++) ss += ldexp((double)x[i], -F_in) * ldexp((double)x[i], -F_in);
                double r = 1.0 / sqrt(ss / group + 1e-5);
                for (int i = g; i < g + group; i++) {
                    double ref = ldexp((double)x[i], -F_in) * r * (it % 3 ? gamma[i] : 1.0);
                    double err = fabs(ldexp((double)out[i], -p.F_out) - ref);
                    CHECK(err <= bound, "rmsnorm error %g > %g (it %d, i %d, mag %d)", err, bound, it, i, mag);
                    if (err > bound) return;
                }
            }
        }
    /* a zero vector gives zeros; bad parameters are refused */
    lm_int_norm p;
    CHECK_OK(lm_int_norm_build(&p, gq, NULL, n, n, 1e-5f, 10, 1.0, 8));
    memset(x, 0, sizeof x);
    lm_int_rmsnorm(out, x, &p);
    int nz = 0;
    for (int i = 0; i < n; i++) nz += out[i] != 0;
    CHECK(nz == 0, "zero input -> zero output");
    CHECK(lm_int_norm_build(&p, gq, NULL, n, 100, 1e-5f, 10, 1.0, 8) == LM_ERR_ARG, "group must divide n");
    memset(gamma, 0, sizeof gamma);
    CHECK(lm_int_norm_build(&p, gq, gamma, n, n, 1e-5f, 10, 1.0, 8) == LM_ERR_ARG, "zero gamma refused");
}

/* --------------------------------------------------------------------- conv and SSM */
static void random_pot(int8_t *q, uint8_t *s, int n, int smax) {
    for (int i = 0; i < n; i++) q[i] = (int8_t)rng_int(-127, 127);
    for (int g = 0; g < lm_pot_groups(n); g++) s[g] = (uint8_t)rng_int(0, smax);
}
static double deq(const int8_t *q, const uint8_t *s, int i, int F) { return ldexp((double)q[i], s[i / 8] - F); }
/* The pot quantizer's error on one value: half an LSB of its group, or one LSB where the value
 * was clamped at +-127 (a group max in [127.5, 128) * 2^s rounds to 128, which does not fit). */
static double pot_err(int q, int s, int F) { return ldexp(abs(q) == 127 ? 1.0 : 0.5, s - F); }

static void test_conv(void) {
    enum { C = 48, W = 4 };
    int8_t w[C * W], b[C], ew[C / 8 * W], eb[C / 8], st_q[(W - 1) * C], q[C];
    uint8_t st_s[(W - 1) * C / 8], s[C / 8];
    int32_t out[C];
    for (int it = 0; it < 200; it++) {
        for (int i = 0; i < C * W; i++) w[i] = (int8_t)rng_int(-127, 127);
        for (int i = 0; i < C; i++) b[i] = (int8_t)rng_int(-127, 127);
        for (int i = 0; i < C / 8 * W; i++) ew[i] = (int8_t)rng_int(-10, -4);
        for (int i = 0; i < C / 8; i++) eb[i] = (int8_t)rng_int(-10, -4);
        random_pot(st_q, st_s, (W - 1) * C, 12);          /* rows share the layout: groups of 8 channels */
        random_pot(q, s, C, 12);
        lm_int_conv p = {.C = C, .W = W, .F_in = 14, .F_out = 16, .w = w, .ew = ew, .b = b, .eb = eb};
        int8_t old_q[(W - 1) * C]; uint8_t old_s[(W - 1) * C / 8];
        memcpy(old_q, st_q, sizeof st_q); memcpy(old_s, st_s, sizeof st_s);
        lm_int_conv_forward(out, st_q, st_s, q, s, &p);
        for (int c = 0; c < C; c++) {
            double ref = ldexp(b[c], eb[c / 8]);
            for (int k = 0; k < W; k++) {
                double xv = k < W - 1 ? ldexp((double)old_q[k * C + c], old_s[k * C / 8 + c / 8] - 14) : deq(q, s, c, 14);
                ref += xv * ldexp(w[c * W + k], ew[c / 8 * W + k]);
            }
            /* each of the W taps and the bias is rounded once: (W + 1) half LSBs */
            double err = fabs(ldexp((double)out[c], -16) - ref);
            CHECK(err <= (W + 1) * ldexp(0.5, -16), "conv error %g at c %d", err, c);
        }
        CHECK(memcmp(st_q, old_q + C, (W - 2) * C) == 0 && memcmp(st_q + (W - 2) * C, q, C) == 0 &&
              memcmp(st_s + (W - 2) * C / 8, s, C / 8) == 0, "conv state advances by one row");
    }
}

static void test_dt_dA_dB(void) {
    enum { H = 12, G = 1, N = 32 };
    static lm_lut softplus, expl;
    const int F_ip = 16, F_dt = 20, F_dtA = 16, F_dA = 21, F_B = 18, F_dB = 22;
    CHECK_OK(lm_lut_build(&softplus, LM_LUT_SOFTPLUS, -12, 8, F_ip, F_dt, 0));
    CHECK_OK(lm_lut_build(&expl, LM_LUT_EXP, -20, 0, F_dtA, F_dA, 0));
    float dt_bias[H], A[H];
    int16_t bq[H], Aq[H]; int8_t be[2], Ae[2];
    for (int h = 0; h < H; h++) {
        dt_bias[h] = (float)log(expm1(rng_uniform(0.001, 0.1)));
        A[h] = (float)-rng_uniform(1.0, 16.0);
    }
    lm_pot_weight_quantize(bq, be, dt_bias, H, 8, 16);
    lm_pot_weight_quantize(Aq, Ae, A, H, 8, 16);
    for (int it = 0; it < 300; it++) {
        int32_t dt_raw[H];
        for (int h = 0; h < H; h++) dt_raw[h] = (int32_t)(rng_uniform(-3, 3) * 65536);
        int8_t dtq[H], dAq[H], Bq[G * N], dBq[H * N]; uint8_t dts[2], dAs[2], Bs[G * N / 8], dBs[H * N / 8];
        lm_int_dt(dtq, dts, dt_raw, bq, be, 0, INT32_MAX, &softplus, H, 0);
        for (int h = 0; h < H; h++) {
            double xin = ldexp(dt_raw[h], -F_ip) + ldexp(bq[h], be[h / 8]);
            double ref = log1p(exp(xin)), got = deq(dtq, dts, h, F_dt);
            /* LUT bound (slope 1, half a bin, half an entry) + half the pot8 LSB */
            double bound = 0.5 * ldexp(1.0, softplus.k - F_ip) + ldexp(0.5, softplus.shift[31] - F_dt) + pot_err(dtq[h], dts[h / 8], F_dt) + ldexp(0.5, -F_ip);
            CHECK(fabs(got - ref) <= bound, "dt error %g > %g", fabs(got - ref), bound);
        }
        lm_int_dA(dAq, dAs, dtq, dts, F_dt, Aq, Ae, &expl, H, 0);
        for (int h = 0; h < H; h++) {
            double xin = deq(dtq, dts, h, F_dt) * ldexp(Aq[h], Ae[h / 8]);
            double ref = exp(xin), got = deq(dAq, dAs, h, F_dA);
            /* exp' <= 1 on the window: half a bin + the input's rounding at F_dtA + half an entry + half the pot8 LSB */
            double bound = 0.5 * ldexp(1.0, expl.k - F_dtA) + ldexp(0.5, -F_dtA) + ldexp(0.5, expl.shift[31] - F_dA) + pot_err(dAq[h], dAs[h / 8], F_dA);
            if (xin < -20) bound += exp(-20);                 /* below the window the edge holds */
            CHECK(fabs(got - ref) <= bound, "dA error %g > %g (x %g)", fabs(got - ref), bound, xin);
        }
        random_pot(Bq, Bs, G * N, 8);
        lm_int_dB(dBq, dBs, dtq, dts, F_dt, Bq, Bs, F_B, F_dB, H, G, N, 0);
        for (int h = 0; h < H; h++)
            for (int n = 0; n < N; n++) {
                double ref = deq(dtq, dts, h, F_dt) * deq(Bq, Bs, n, F_B), got = deq(dBq + h * N, dBs + h * N / 8, n, F_dB);
                double bound = ldexp(0.5, -F_dB) + pot_err(dBq[h * N + n], dBs[h * N / 8 + n / 8], F_dB);
                CHECK(fabs(got - ref) <= bound || dBs[h * N / 8 + n / 8] == 15, "dB error %g > %g", fabs(got - ref), bound);
            }
    }
}

static void test_ssm_head(void) {
    enum { P = 16, N = 32 };
    const lm_int_head_sites f = {.P = P, .N = N, .F_x = 18, .F_dA = 21, .F_dB = 24, .F_h = 20, .F_C = 18, .F_y = 19};
    int8_t h_q[P * N], h2_q[P * N], dB_q[N], x_q[P], C_q[N], h_old[P * N];
    uint8_t h_s[P / 8 * N], h2_s[P * N / 8], dB_s[N / 8], dB_e[N], x_s[P / 8], C_s[N / 8], hs_old[P / 8 * N];
    int32_t hw[P * N], y[P];
    for (int it = 0; it < 300; it++) {
        random_pot(h_q, h_s, P * N, 10);
        random_pot(dB_q, dB_s, N, 10);
        random_pot(x_q, x_s, P, 10);
        random_pot(C_q, C_s, N, 10);
        int8_t dA_q = (int8_t)rng_int(0, 127); uint8_t dA_s = (uint8_t)rng_int(12, 14);
        int16_t Dq = (int16_t)rng_int(-127, 127); int eD = rng_int(-9, -5);
        memcpy(h_old, h_q, sizeof h_q); memcpy(hs_old, h_s, sizeof h_s);
        lm_int_dB_exps(dB_e, dB_s, 0, 1, N, 0);   /* one head: its exponent per state */
        lm_int_ssm_head(y, h_q, h_s, h2_q, h2_s, hw, dA_q, dA_s, dB_q, dB_e, x_q, x_s, C_q, C_s, Dq, eD, &f);
        for (int p = 0; p < P; p++) {
            double yC = 0.0;
            for (int n = 0; n < N; n++) {
                double hold = ldexp((double)h_old[p * N + n], hs_old[(p / 8) * N + n] - f.F_h);
                double ref = ldexp(dA_q, dA_s - f.F_dA) * hold + deq(dB_q, dB_s, n, f.F_dB) * deq(x_q, x_s, p, f.F_x);
                /* wide h: two products each rounded once (1 LSB); stored and C-side pot8: + half a group LSB */
                double wide = ldexp((double)hw[p * N + n], -f.F_h);
                CHECK(fabs(wide - ref) <= ldexp(1.0, -f.F_h), "h wide error %g", fabs(wide - ref));
                double st = ldexp((double)h_q[p * N + n], h_s[(p / 8) * N + n] - f.F_h);
                double h2 = ldexp((double)h2_q[p * N + n], h2_s[p * N / 8 + n / 8] - f.F_h);
                CHECK(fabs(st - wide) <= pot_err(h_q[p * N + n], h_s[(p / 8) * N + n], f.F_h), "stored state error");
                CHECK(fabs(h2 - wide) <= pot_err(h2_q[p * N + n], h2_s[p * N / 8 + n / 8], f.F_h), "per-8-states state error");
                yC += h2 * deq(C_q, C_s, n, f.F_C);
            }
            double ref = yC + deq(x_q, x_s, p, f.F_x) * ldexp(Dq, eD);
            /* the exact C contraction and D x are each rounded once at F_y */
            CHECK(fabs(ldexp((double)y[p], -f.F_y) - ref) <= ldexp(1.0, -f.F_y), "y error %g", fabs(ldexp((double)y[p], -f.F_y) - ref));
        }
    }
    /* gate */
    int8_t qy[16], qz[16]; uint8_t sy[2], sz[2]; int32_t g[16];
    random_pot(qy, sy, 16, 15); random_pot(qz, sz, 16, 15);
    lm_int_gate(g, qy, sy, 20, qz, sz, 22, 18, 16, 0);
    for (int i = 0; i < 16; i++) {
        double ref = deq(qy, sy, i, 20) * deq(qz, sz, i, 22);
        CHECK(fabs(ldexp((double)g[i], -18) - ref) <= ldexp(0.5, -18), "gate error");
    }
}

static void test_residual_and_linear(void) {
    float x[4] = {1.0f, -0.00048828125f, 3.14159f, -1e9f};
    int32_t u[4], d[4] = {1, -1, 1024, -5};
    lm_int_residual_from_f32(u, x, 4, 0);
    CHECK(u[0] == 1024 && u[1] == 0 && u[2] == 3217 && u[3] == -INT32_MAX, "Q10: %d %d %d %d", u[0], u[1], u[2], u[3]);
    lm_int_residual_add(u, d, 4);
    CHECK(u[0] == 1025 && u[1] == -1 && u[2] == 4241 && u[3] == -INT32_MAX, "residual add saturates");
    /* act_pack: 8-bit, groups more than 7 octaves below the top are re-quantized to the base */
    int8_t q[16] = {100, 0, 0, 0, 0, 0, 0, 0, 101, 3, 0, 0, 0, 0, 0, -3}, qa[16];
    uint8_t s[2] = {12, 3}, sa[2];
    int eb;
    lm_int_act_pack(qa, sa, &eb, q, s, 10, 16, 8);
    CHECK(eb == 12 - 10 - 7 && sa[0] == 7 && sa[1] == 0, "pack: eb %d sa %d %d", eb, sa[0], sa[1]);
    CHECK(qa[8] == 25 && qa[9] == 1 && qa[15] == -1, "re-quantized to the base: %d %d %d", qa[8], qa[9], qa[15]);
}

int main(void) {
    test_shift();
    test_pot_quantizer();
    test_weight_quantizer();
    test_luts();
    test_rmsnorm();
    test_conv();
    test_dt_dA_dB();
    test_ssm_head();
    test_residual_and_linear();
    return test_finish();
}
