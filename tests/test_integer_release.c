/* The release datapath (LM_DP_RELEASE, docs/release-datapath.md) against the authors' released
 * golden model: every unit against the release's arithmetic written out plainly from its source
 * (PKU-SEC-Lab/LightMamba, mamba_cpp/layers.h and main.cpp; the function is named at each
 * reference), on random, zero, tie, saturating and maximal inputs; the release's own tables
 * (ref/tables, copies in tests/data/release) rebuilt bit for bit; and the datapath names. Where
 * the release asserts a 32-bit width (util.h: X_T) its value is undefined past it; the references
 * saturate there (sat32), our rule. Whole blocks, the kernels and the engine in release mode:
 * tests/test_hw_kernels_release.c. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "integer/integer.h"
#include "kernels/kernels.h"
#include "quant/quantize.h"

static uint64_t rng_state = 0xD1B54A32D192ED03ull;
static uint64_t rng_u64(void) {
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static int rng_int(int a, int b) { return a + (int)(rng_u64() % (uint64_t)(b - a + 1)); }
static double rng_uniform(double a, double b) { return a + (b - a) * (double)(rng_u64() >> 11) * 0x1p-53; }
/* A value of about `bits` bits, either sign. */
static int64_t rng_bits(int bits) {
    if (bits <= 0) return 0;
    int64_t m = (int64_t)(rng_u64() >> (64 - bits));
    return rng_u64() & 1 ? -m : m;
}

/* Inputs of one kind for a group of n wide values: random, zero, ties (odd multiples of half a
 * step at some exponent), saturating (beyond the 15-exponent range) and maximal (+-(2^31 - 1),
 * powers of two: where bitlength(m) and bitlength(m - 1) part). */
enum { RANDOM, ZERO, TIE, SATURATING, MAXIMAL, KINDS };
static void draw(int32_t *x, int n, int kind) {
    const int s = rng_int(1, 12);
    for (int i = 0; i < n; i++) {
        switch (kind) {
        case ZERO: x[i] = 0; break;
        case TIE: x[i] = (int32_t)((2 * rng_int(-40, 40) + 1) * (1 << (s - 1))); break;
        case SATURATING: x[i] = (int32_t)(rng_u64() & 1 ? rng_int(1 << 23, INT32_MAX) : -rng_int(1 << 23, INT32_MAX)); break;
        case MAXIMAL: {
            const int r = rng_int(0, 3);
            x[i] = r == 0 ? INT32_MAX : r == 1 ? -INT32_MAX : (int32_t)((rng_u64() & 1 ? 1 : -1) * (1 << rng_int(0, 30)));
            break;
        }
        default: x[i] = (int32_t)rng_bits(rng_int(0, 24));
        }
    }
}

/* ---------------------------------------------------------------- the release, written out */

/* v << s of layers.h (well defined there for negative v, in C as a product). */
static int64_t shl(int64_t v, int s) { return v * ((int64_t)1 << s); }

/* Where layers.h asserts abs(v) <= 2^31 - 1 (X_T): our saturation. */
static int64_t sat(int64_t v) { return v > INT32_MAX ? INT32_MAX : v < -INT32_MAX ? -INT32_MAX : v; }

/* layers.h: Quant::forward (= src/quantizer.h: QUANTIZER::do_quant) on one group. */
static int ref_quant(int8_t *q, const int64_t *x, int n, int bits) {
    const int64_t qmax = (1 << (bits - 1)) - 1, qmin = -(1 << (bits - 1));
    int64_t m = 0;
    for (int i = 0; i < n; i++) m = llabs(x[i]) > m ? llabs(x[i]) : m;
    if (m >= 1) m = m - 1;
    int s = 0;
    for (int i = 32; i >= 1; i--)
        if (m & (1ll << (i - 1))) { s = i; break; }
    s = s - (bits - 1);
    s = s < 0 ? 0 : s > 15 ? 15 : s;
    for (int i = 0; i < n; i++) {
        int64_t v = x[i];
        if (s != 0) v = ((v >> (s - 1)) + 1) >> 1;
        q[i] = (int8_t)(v < qmin ? qmin : v > qmax ? qmax : v);
    }
    return s;
}

/* layers.h: Silu/DtAdapt/Exp::forward, the lookup (before the quantizer). */
static int64_t ref_lut(int64_t x, int64_t alpha, int log2denom, const int64_t *table, const int64_t *table_s) {
    int64_t cursor = (x - alpha) >> log2denom, cursor_s = (x - alpha) >> (log2denom + 7);
    cursor = cursor < 0 ? 0 : cursor > 4095 ? 4095 : cursor;
    cursor_s = cursor_s < 0 ? 0 : cursor_s > 31 ? 31 : cursor_s;
    return shl(table[cursor], (int)table_s[cursor_s]);
}

/* layers.h: Rmsnorm1/Rmsnorm2::forward over n channels (before the quantizer). */
static void ref_rmsnorm(int64_t *y, const int64_t *x, int n, const int64_t *alphas, const int64_t *log2denoms,
                        const int64_t *offsets_diff, const int64_t *tables, const int64_t *LNW) {
    int64_t sum = 0;
    for (int c = 0; c < n; c++) sum += x[c] * x[c];
    int64_t t = 0;
    for (int i = 0; i < 8; i++)
        if (sum >= alphas[i]) t = i;
    int64_t idx = (sum - alphas[t]) >> log2denoms[t];
    idx = idx < 0 ? 0 : idx > 511 ? 511 : idx;
    const int64_t R = shl(tables[t * 512 + idx], (int)offsets_diff[t]);
    for (int c = 0; c < n; c++) y[c] = (((x[c] * R) >> 12) * LNW[c]) >> 8;
}

/* ---------------------------------------------------------------- the release's tables */

/* tests/data/release/NAME: comma-separated integers (the release's format). */
static int load_table(int64_t *v, int n, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/release/%s", test_root(), name);
    FILE *f = fopen(path, "r");
    if (!f) { CHECK(0, "cannot open %s", path); return 0; }
    int k = 0;
    long long x;
    while (k < n && fscanf(f, " %lld ,", &x) == 1) v[k++] = x;
    const int extra = fscanf(f, " %lld", &x) == 1;
    fclose(f);
    CHECK(k == n && !extra, "%s: %d values, expected %d", name, k + extra, n);
    return k == n && !extra;
}

static void test_release_tables(void) {
    static const struct { const char *name; lm_lut_fn fn; int alpha, k, F_out; } luts[] = {
        {"silu", LM_LUT_SILU, -25600, 5, 10}, {"softplus", LM_LUT_SOFTPLUS, -25600, 4, 10}, {"exp", LM_LUT_EXP, -20480, 3, 6}};
    for (size_t i = 0; i < sizeof luts / sizeof luts[0]; i++) {
        int64_t value[LM_LUT_ENTRIES], shift[LM_LUT_SEGMENTS];
        char name[64];
        snprintf(name, sizeof name, "%s_table.txt", luts[i].name);
        if (!load_table(value, LM_LUT_ENTRIES, name)) continue;
        snprintf(name, sizeof name, "%s_table_s.txt", luts[i].name);
        if (!load_table(shift, LM_LUT_SEGMENTS, name)) continue;
        lm_lut lut;
        CHECK_OK(lm_lut_build_window(&lut, luts[i].fn, luts[i].alpha, luts[i].k, 10, luts[i].F_out, LM_DP_RELEASE));
        int bad = 0, first = -1;
        for (int e = 0; e < LM_LUT_ENTRIES; e++)
            if (lut.value[e] != value[e]) { bad++; if (first < 0) first = e; }
        for (int j = 0; j < LM_LUT_SEGMENTS; j++) bad += lut.shift[j] != shift[j];
        CHECK(bad == 0, "%s table: %d entries differ from the release's (first at %d)", luts[i].name, bad, first);
        CHECK(!lut.tail_identity, "%s: the release has no identity tail", luts[i].name);
        if (!bad) printf("release %s table (4096 entries, 32 shifts): rebuilt bit for bit\n", luts[i].name);
    }
    /* the two RMSNorm table sets: C channels, normalised values at F_in, sums over [lo, lo + span] */
    static const struct { const char *name; int C, F; double lo, span; } norms[] = {
        {"rmsnorm1", 2560, 10, 1e-4 * 1048576.0, 0.6 * 0x1p45}, {"rmsnorm2", 5120, 12, 0.1 * 16777216.0, 0x1p48}};
    for (size_t i = 0; i < sizeof norms / sizeof norms[0]; i++) {
        int64_t alpha[8], ld[8], off[8], *tab = malloc(sizeof(int64_t) * 8 * 512);
        char name[64];
        int ok = 1;
        snprintf(name, sizeof name, "%s_alphas.txt", norms[i].name); ok &= load_table(alpha, 8, name);
        snprintf(name, sizeof name, "%s_log2denoms.txt", norms[i].name); ok &= load_table(ld, 8, name);
        snprintf(name, sizeof name, "%s_offsets_diff.txt", norms[i].name); ok &= load_table(off, 8, name);
        snprintf(name, sizeof name, "%s_tables.txt", norms[i].name); ok &= load_table(tab, 8 * 512, name);
        lm_rsqrt8 t;
        CHECK_OK(lm_rsqrt8_build(&t, norms[i].C, norms[i].F, norms[i].lo, norms[i].span));
        int bad = 0;
        for (int j = 0; ok && j < 8; j++) bad += t.alpha[j] != alpha[j] || t.ld[j] != ld[j] || t.off[j] != off[j];
        for (int e = 0; ok && e < 8 * 512; e++) bad += t.value[e] != tab[e];
        CHECK(ok && bad == 0, "%s: %d thresholds/shifts/entries differ from the release's", norms[i].name, bad);
        if (ok && !bad) printf("release %s tables (8 thresholds, bin widths, shifts, 4096 entries): rebuilt bit for bit\n", norms[i].name);
        free(tab);
    }
}

/* ---------------------------------------------------------------- units */

static void test_quantizer(void) {
    int bad = 0, n_kind[KINDS] = {0};
    for (int t = 0; t < 60000; t++) {
        const int kind = t % KINDS, bits = t & 1 ? 8 : 4, n = rng_int(1, 8);
        int32_t X[8];
        int64_t x[8];
        int8_t q[8], qr[8];
        uint8_t s;
        draw(X, n, kind);
        for (int i = 0; i < n; i++) x[i] = X[i];
        const int sr = ref_quant(qr, x, n, bits);
        lm_pot_quantize_dp(q, &s, X, n, bits, LM_DP_RELEASE);
        bad += s != sr || memcmp(q, qr, (size_t)n) != 0;
        n_kind[kind]++;
    }
    CHECK(bad == 0, "quantizer vs Quant::forward: %d of 60000 groups differ", bad);
    /* the two rules part at powers of two: max 128 keeps s = 0 and clamps to 127; -128 is kept */
    int32_t X[2] = {128, -128};
    int8_t q[2];
    uint8_t s;
    lm_pot_quantize_dp(q, &s, X, 2, 8, LM_DP_RELEASE);
    CHECK(s == 0 && q[0] == 127 && q[1] == -128, "release rule on +-128: s %d q %d %d", s, q[0], q[1]);
    lm_pot_quantize(q, &s, X, 2, 8);
    CHECK(s == 1 && q[0] == 64 && q[1] == -64, "our rule on +-128: s %d q %d %d", s, q[0], q[1]);
}

static void test_rescale(void) {
    int bad = 0;
    for (int t = 0; t < 200000; t++) {
        const int64_t x = rng_bits(rng_int(0, 40));
        const int L = rng_int(-40, 0);
        const int64_t ref = x >> -L;                         /* every Trunc_d of layers.h */
        const int64_t sat = ref > INT32_MAX ? INT32_MAX : ref < -INT32_MAX ? -INT32_MAX : ref;
        bad += lm_rescale(x, L, LM_DP_RELEASE) != sat;
    }
    CHECK(bad == 0, "floor rescale: %d mismatches", bad);
    CHECK(lm_rescale(-5, -1, LM_DP_RELEASE) == -3 && lm_rescale(5, -1, LM_DP_RELEASE) == 2 &&
          lm_rescale(-1, -70, LM_DP_RELEASE) == -1 && lm_rescale(3, 4, LM_DP_RELEASE) == 48, "floor on ties and edges");
}

/* IN_PROJ/OUT_PROJ::forward: 4-bit q (-8 included), absolute exponents xs per 8 inputs, weights
 * with s1, s2 per (row, 128 inputs), acc >> T, against lm_int_act_pack + lm_int_linear_fixed with
 * the release's sites (inputs at F, weights at Q10 via e0 = -10: -F - 10 + F_out = -T), and
 * against the SIMD kernels' exact accumulators at every level. */
static void test_linear(void) {
    enum { O = 24, K = 256 };
    lm_qweight_buf W;
    CHECK_OK(lm_qweight_buf_init(&W, O, K, 4));
    int8_t qw[O][K], row[K];
    for (int o = 0; o < O; o++) {
        for (int k = 0; k < K; k++) row[k] = qw[o][k] = (int8_t)rng_int(-7, 7);
        lm_pack_int4_row(W.q + (size_t)o * W.view.row_stride, row, K);
        for (int g = 0; g < K / 128; g++) W.scale[(size_t)o * (K / 128) + g] = lm_wscale_byte(rng_int(0, 7), rng_int(0, 7));
        W.e0[o] = -10;
    }
    int bad = 0, bad_simd = 0;
    for (int t = 0; t < 200; t++) {
        const int T = t & 1 ? 12 : 10, F = t & 1 ? 12 : 10;   /* out_proj: >> 12 from Q12; in_proj: >> 10 from Q10 */
        int8_t q[K], qa[K];
        uint8_t xs[K / 8], sa[K / 8];
        for (int g = 0; g < K / 8; g++) {
            xs[g] = (uint8_t)(t % 5 == 0 ? 15 : rng_int(0, 15));
            for (int i = 0; i < 8; i++) q[g * 8 + i] = (int8_t)(t % 7 == 0 ? -8 : rng_int(-8, 7));
        }
        int32_t y[O];
        int eb;
        lm_int_act_pack(qa, sa, &eb, q, xs, F, K, 4);
        lm_int_linear_fixed(y, qa, sa, eb, &W.view, 10, LM_DP_RELEASE);
        for (int o = 0; o < O; o++) {
            int64_t acc = 0;
            for (int g = 0; g < K / 8; g++) {
                int64_t acc_g = 0;
                for (int i = 0; i < 8; i++) acc_g += q[g * 8 + i] * qw[o][g * 8 + i];
                const uint8_t b = W.scale[(size_t)o * (K / 128) + g / 16];
                acc += shl(acc_g, xs[g] + lm_wscale_s1(b));
                acc += shl(acc_g, xs[g] + lm_wscale_s2(b));
            }
            bad += y[o] != (int32_t)(acc >> T);
        }
        /* the batched SIMD accumulators (the engine's path) with -8 inputs: same integers */
        lm_qact a;
        int64_t acc_k[O];
        int32_t yk[O];
        if (lm_qact_init(&a, 1, K, 4, 4)) { bad_simd++; continue; }
        memcpy(a.q, qa, K); memcpy(a.sa, sa, K / 8); a.eb[0] = eb;
        for (int level = LM_SIMD_SCALAR; level <= (int)lm_simd_detect(); level++) {
            if (lm_simd_level_set((lm_simd_level)level) || lm_qact_pack(&a, 1) || lm_qlinear_acc(acc_k, &a, &W.view, NULL)) {
                bad_simd++;
                continue;
            }
            lm_int_linear_round(yk, acc_k, eb, &W.view, 10, LM_DP_RELEASE);
            bad_simd += memcmp(yk, y, sizeof y) != 0;
        }
        lm_simd_level_set(lm_simd_detect());
        lm_qact_free(&a);
    }
    CHECK(bad == 0, "linear vs IN_PROJ/OUT_PROJ::forward: %d mismatches", bad);
    CHECK(bad_simd == 0, "linear: the kernels' accumulators differ or fail on %d runs (-8 inputs): %s", bad_simd,
          lm_last_error());
    lm_qweight_buf_free(&W);
}

/* Conv::forward: acc = (b << bs) + sum_k (q_k w_k) << (s_k + ws_k), then >> 10 once; weights at
 * Q10 (ew = ws - 10), bias at Q20 (eb = bs - 20), in and out at Q10. */
static void test_conv(void) {
    enum { C = 32, W = 4 };
    int8_t w[C * W], ew[C / 8 * W], b[C], eb[C / 8], st_q[(W - 1) * C], x[C];
    uint8_t st_s[(W - 1) * C / 8], xs[C / 8];
    int bad = 0;
    for (int t = 0; t < 2000; t++) {
        const int kind = t % KINDS;
        for (int i = 0; i < C * W; i++) w[i] = (int8_t)(kind == MAXIMAL ? (rng_u64() & 1 ? 127 : -128) : rng_int(-128, 127));
        for (int i = 0; i < C; i++) b[i] = (int8_t)(kind == ZERO ? 0 : rng_int(-128, 127));
        for (int g = 0; g < C / 8; g++) {
            for (int k = 0; k < W; k++) ew[g * W + k] = (int8_t)(rng_int(0, kind == SATURATING ? 15 : 7) - 10);
            eb[g] = (int8_t)(rng_int(0, kind == SATURATING ? 31 : 12) - 20);
        }
        for (int i = 0; i < (W - 1) * C; i++) st_q[i] = (int8_t)rng_int(-128, 127);
        for (int i = 0; i < (W - 1) * C / 8; i++) st_s[i] = (uint8_t)rng_int(0, 15);
        for (int i = 0; i < C; i++) x[i] = (int8_t)(kind == ZERO ? 0 : rng_int(-128, 127));
        for (int i = 0; i < C / 8; i++) xs[i] = (uint8_t)(kind == TIE ? 0 : rng_int(0, 15));
        int64_t ref[C];
        for (int c = 0; c < C; c++) {
            const int g = c / 8;
            int64_t acc = shl(b[c], eb[g] + 20);
            for (int k = 0; k < W; k++) {
                const int64_t xq = k < W - 1 ? st_q[k * C + c] : x[c];
                const int s = k < W - 1 ? st_s[k * (C / 8) + g] : xs[g];
                acc += shl(xq * w[c * W + k], s + ew[g * W + k] + 10);
            }
            ref[c] = sat(acc >> 10);
        }
        const lm_int_conv p = {.C = C, .W = W, .F_in = 10, .F_out = 10, .dp = LM_DP_RELEASE, .w = w, .ew = ew, .b = b, .eb = eb};
        int32_t out[C];
        lm_int_conv_forward(out, st_q, st_s, x, xs, &p);
        for (int c = 0; c < C; c++) bad += out[c] != ref[c];
    }
    CHECK(bad == 0, "conv vs Conv::forward: %d mismatches", bad);
}

/* The three lookups with the release's tables (fixtures), then the quantizer: Silu, DtAdapt
 * (with its bias b << bs) and Exp (after dA's >> 10) of layers.h, against lm_int_lut_quantize,
 * lm_int_dt and lm_int_dA on the rebuilt tables. */
static void test_luts(void) {
    int64_t sv[4096], ss[32], pv[4096], ps[32], ev[4096], es[32];
    if (!load_table(sv, 4096, "silu_table.txt") || !load_table(ss, 32, "silu_table_s.txt") ||
        !load_table(pv, 4096, "softplus_table.txt") || !load_table(ps, 32, "softplus_table_s.txt") ||
        !load_table(ev, 4096, "exp_table.txt") || !load_table(es, 32, "exp_table_s.txt"))
        return;
    lm_lut silu, sp, ex;
    CHECK_OK(lm_lut_build_window(&silu, LM_LUT_SILU, -25600, 5, 10, 10, LM_DP_RELEASE));
    CHECK_OK(lm_lut_build_window(&sp, LM_LUT_SOFTPLUS, -25600, 4, 10, 10, LM_DP_RELEASE));
    CHECK_OK(lm_lut_build_window(&ex, LM_LUT_EXP, -20480, 3, 10, 6, LM_DP_RELEASE));
    int bad_silu = 0, bad_dt = 0, bad_dA = 0;
    for (int t = 0; t < 20000; t++) {
        const int kind = t % KINDS;
        /* SiLU over 8 values */
        int32_t X[8];
        draw(X, 8, kind);
        if (kind == RANDOM) for (int i = 0; i < 8; i++) X[i] = rng_int(-40000, 120000);
        int64_t y[8];
        int8_t q[8], qr[8];
        uint8_t s;
        for (int i = 0; i < 8; i++) y[i] = ref_lut(X[i], -25600, 5, sv, ss);
        int sr = ref_quant(qr, y, 8, 8);
        lm_int_lut_quantize(q, &s, X, 8, &silu, 8, LM_DP_RELEASE);
        bad_silu += s != sr || memcmp(q, qr, 8) != 0;
        /* dt of 8 heads: bias 8-bit, exponent bs per 8 heads, then softplus and the quantizer */
        int16_t bq[8];
        const int bs = rng_int(0, 7);
        for (int i = 0; i < 8; i++) {
            bq[i] = (int16_t)rng_int(-128, 127);
            if (kind == RANDOM) X[i] = rng_int(-60000, 60000);
            y[i] = ref_lut((int64_t)X[i] + shl(bq[i], bs), -25600, 4, pv, ps);
        }
        sr = ref_quant(qr, y, 8, 8);
        const int8_t be = (int8_t)(bs - 10);
        lm_int_dt(q, &s, X, bq, &be, 0, INT32_MAX, &sp, 8, LM_DP_RELEASE);
        bad_dt += s != sr || memcmp(q, qr, 8) != 0;
        /* dA = exp of ((dt A) << (dts + As)) >> 10 (SSM::forward), dt and A as the release holds them */
        int8_t dtq[8], dAq[8];
        int16_t Aq[8];
        uint8_t dts = (uint8_t)rng_int(0, 15), dAs;
        const int As = rng_int(0, 3);
        for (int i = 0; i < 8; i++) {
            dtq[i] = (int8_t)(kind == ZERO ? 0 : rng_int(-128, 127));
            Aq[i] = (int16_t)(kind == MAXIMAL ? -32768 + (i & 1) : rng_int(-32767, -1));
            y[i] = ref_lut(shl((int64_t)dtq[i] * Aq[i], dts + As) >> 10, -20480, 3, ev, es);
        }
        sr = ref_quant(qr, y, 8, 8);
        const int8_t eA = (int8_t)(As - 10);
        lm_int_dA(dAq, &dAs, dtq, &dts, 10, Aq, &eA, &ex, 8, LM_DP_RELEASE);
        bad_dA += dAs != sr || memcmp(dAq, qr, 8) != 0;
    }
    CHECK(bad_silu == 0, "SiLU vs Silu::forward: %d mismatches", bad_silu);
    CHECK(bad_dt == 0, "dt vs DtAdapt::forward: %d mismatches", bad_dt);
    CHECK(bad_dA == 0, "dA vs SSM::forward (dt A, Exp): %d mismatches", bad_dA);
}

/* dB (per 8 heads of each state), the state update, h C, D x and the gate of SSM::forward for
 * one token, at the release's sites (dt, B, x, C Q10; dA Q6; dB Q20; h Q19; y Q12; D Q10). */
static void test_ssm(void) {
    enum { H = 12, P = 16, N = 24, Hg = 2 };
    int bad_dB = 0, bad_y = 0, bad_h = 0, bad_gate = 0;
    for (int t = 0; t < 300; t++) {
        const int kind = t % KINDS;
        int8_t dtq[H], Bq[N], Cq[N], xq[H * P], zq[H * P], dAq[H], Dq[H], hq[H * P * N];
        uint8_t dts[Hg], Bs[N / 8], Cs[N / 8], xs[H * P / 8], zs[H * P / 8], dAs[Hg], hs[H * P / 8 * N];
        int8_t De[Hg];
        for (int h = 0; h < H; h++) {
            dtq[h] = (int8_t)(kind == ZERO ? 0 : rng_int(-128, 127));
            dAq[h] = (int8_t)rng_int(0, 64);
            Dq[h] = (int8_t)rng_int(-128, 127);
        }
        for (int g = 0; g < Hg; g++) { dts[g] = (uint8_t)rng_int(0, 15); dAs[g] = 0; De[g] = (int8_t)(rng_int(0, 5) - 10); }
        for (int n = 0; n < N; n++) { Bq[n] = (int8_t)rng_int(-128, 127); Cq[n] = (int8_t)rng_int(-128, 127); }
        for (int g = 0; g < N / 8; g++) { Bs[g] = (uint8_t)rng_int(0, kind == SATURATING ? 15 : 8); Cs[g] = (uint8_t)rng_int(0, 8); }
        for (int i = 0; i < H * P; i++) { xq[i] = (int8_t)rng_int(-128, 127); zq[i] = (int8_t)rng_int(-128, 127); }
        for (int i = 0; i < H * P / 8; i++) { xs[i] = (uint8_t)rng_int(0, 8); zs[i] = (uint8_t)rng_int(0, 8); }
        for (int i = 0; i < H * P * N; i++) hq[i] = (int8_t)(kind == ZERO ? 0 : rng_int(-128, 127));
        for (int i = 0; i < H * P / 8 * N; i++) hs[i] = (uint8_t)rng_int(0, kind == MAXIMAL ? 15 : 10);

        /* the release: dB[n][h] = (dt B) << (dts + Bs), quantized per 8 heads of each n */
        int8_t rdBq[N][H];
        uint8_t rdBs[N][Hg];
        for (int n = 0; n < N; n++)
            for (int g = 0; g < Hg; g++) {   /* the last group of heads holds H - 8 of them */
                const int len = H - 8 * g < 8 ? H - 8 * g : 8;
                int64_t v[8];
                for (int i = 0; i < len; i++) v[i] = sat(shl((int64_t)dtq[g * 8 + i] * Bq[n], dts[g] + Bs[n / 8]));
                rdBs[n][g] = (uint8_t)ref_quant(&rdBq[n][g * 8], v, len, 8);
            }
        int8_t dBq[H * N];
        uint8_t dBs[N * Hg], dBe[N];
        lm_int_dB(dBq, dBs, dtq, dts, 10, Bq, Bs, 10, 20, H, 1, N, LM_DP_RELEASE);
        for (int n = 0; n < N; n++)
            for (int h = 0; h < H; h++) bad_dB += dBq[h * N + n] != rdBq[n][h] || dBs[n * Hg + h / 8] != rdBs[n][h / 8];

        const lm_int_head_sites f = {.P = P, .N = N, .F_x = 10, .F_dA = 6, .F_dB = 20, .F_h = 19, .F_C = 10, .F_y = 12,
                                     .dp = LM_DP_RELEASE};
        int8_t h2q[P * N];
        uint8_t h2s[P * N / 8];
        int32_t hw[P * N], y[H * P];
        for (int h = 0; h < H; h++) {
            /* the release, one head: dBx, dAh, h, the two quantizations, htC, xD, y */
            int64_t hr[P][N];
            int8_t ref_hq[P][N], ref_h2q[P][N];
            uint8_t ref_hs[P / 8][N], ref_h2s[P][N / 8];
            for (int p = 0; p < P; p++)
                for (int n = 0; n < N; n++) {
                    const int64_t dBx = shl((int64_t)rdBq[n][h] * xq[h * P + p], rdBs[n][h / 8] + xs[(h * P + p) / 8]);
                    const int64_t dAh = shl((int64_t)dAq[h] * hq[(h * P + p) * N + n], dAs[h / 8] + hs[(h * (P / 8) + p / 8) * N + n]);
                    hr[p][n] = sat(sat(dAh >> 6) + sat(dBx >> 11));
                }
            for (int pg = 0; pg < P / 8; pg++)
                for (int n = 0; n < N; n++) {
                    int64_t col[8];
                    int8_t qc[8];
                    for (int i = 0; i < 8; i++) col[i] = hr[pg * 8 + i][n];
                    ref_hs[pg][n] = (uint8_t)ref_quant(qc, col, 8, 8);
                    for (int i = 0; i < 8; i++) ref_hq[pg * 8 + i][n] = qc[i];
                }
            int64_t yr[P];
            for (int p = 0; p < P; p++) {
                int64_t acc = 0;
                for (int ng = 0; ng < N / 8; ng++) {
                    ref_h2s[p][ng] = (uint8_t)ref_quant(&ref_h2q[p][ng * 8], &hr[p][ng * 8], 8, 8);
                    int64_t acc_g = 0;
                    for (int i = 0; i < 8; i++) acc_g += ref_h2q[p][ng * 8 + i] * Cq[ng * 8 + i];
                    acc += shl(acc_g, ref_h2s[p][ng] + Cs[ng]);
                }
                const int64_t xD = shl((int64_t)xq[h * P + p] * Dq[h], xs[(h * P + p) / 8] + De[h / 8] + 10) >> 8;
                yr[p] = sat(sat(acc >> 17) + sat(xD));
            }
            lm_int_dB_exps(dBe, dBs, h, H, N, LM_DP_RELEASE);
            int8_t *hq_h = hq + (size_t)h * P * N;
            uint8_t *hs_h = hs + (size_t)h * (P / 8) * N;
            lm_int_ssm_head(y + h * P, hq_h, hs_h, h2q, h2s, hw, dAq[h], dAs[h / 8], dBq + h * N, dBe, xq + h * P,
                            xs + h * P / 8, Cq, Cs, Dq[h], De[h / 8], &f);
            for (int p = 0; p < P; p++) {
                bad_y += y[h * P + p] != (int32_t)yr[p];
                for (int n = 0; n < N; n++)
                    bad_h += hw[p * N + n] != (int32_t)hr[p][n] || hq_h[p * N + n] != ref_hq[p][n] ||
                             hs_h[(p / 8) * N + n] != ref_hs[p / 8][n] || h2q[p * N + n] != ref_h2q[p][n] ||
                             h2s[p * (N / 8) + n / 8] != ref_h2s[p][n / 8];
            }
        }
        /* y quantized, then the gate ((y z) << (ys + zs)) >> 10 */
        int8_t yq[H * P];
        uint8_t ys[H * P / 8];
        int32_t g[H * P];
        lm_pot_quantize_dp(yq, ys, y, H * P, 8, LM_DP_RELEASE);
        lm_int_gate(g, yq, ys, 12, zq, zs, 10, 12, H * P, LM_DP_RELEASE);
        for (int i = 0; i < H * P; i++) bad_gate += g[i] != sat(shl((int64_t)yq[i] * zq[i], ys[i / 8] + zs[i / 8]) >> 10);
    }
    CHECK(bad_dB == 0, "dB vs SSM::forward (dB_quant over [N, H]): %d mismatches", bad_dB);
    CHECK(bad_h == 0, "state update and its quantizations vs SSM::forward: %d mismatches", bad_h);
    CHECK(bad_y == 0, "h C + D x vs SSM::forward: %d mismatches", bad_y);
    CHECK(bad_gate == 0, "gate vs SSM::forward (yz): %d mismatches", bad_gate);
}

/* Rmsnorm1/2::forward with the release's own tables (fixtures) and random LNW at Q8, against
 * lm_int_rmsnorm with those tables; the sums cover every table and both clamps. */
static void test_rmsnorm(void) {
    static const struct { const char *name; int C, F_in, lnw_bits; } norms[] = {{"rmsnorm1", 2560, 10, 11}, {"rmsnorm2", 5120, 12, 13}};
    for (size_t c = 0; c < sizeof norms / sizeof norms[0]; c++) {
        const int C = norms[c].C;
        int64_t al[8], ld[8], off[8], *tab = malloc(sizeof(int64_t) * 4096), *x = malloc(sizeof(int64_t) * C);
        int64_t *LNW = malloc(sizeof(int64_t) * C), *yr = malloc(sizeof(int64_t) * C);
        int32_t *xi = malloc(sizeof(int32_t) * C), *yo = malloc(sizeof(int32_t) * C);
        int16_t *gq = malloc(sizeof(int16_t) * C);
        char name[64];
        int ok = 1;
        snprintf(name, sizeof name, "%s_alphas.txt", norms[c].name); ok &= load_table(al, 8, name);
        snprintf(name, sizeof name, "%s_log2denoms.txt", norms[c].name); ok &= load_table(ld, 8, name);
        snprintf(name, sizeof name, "%s_offsets_diff.txt", norms[c].name); ok &= load_table(off, 8, name);
        snprintf(name, sizeof name, "%s_tables.txt", norms[c].name); ok &= load_table(tab, 4096, name);
        lm_rsqrt8 t;
        for (int i = 0; i < 8; i++) { t.alpha[i] = al[i]; t.ld[i] = (uint8_t)ld[i]; t.off[i] = (uint8_t)off[i]; }
        for (int i = 0; i < 4096; i++) t.value[i] = (uint8_t)tab[i];
        const int lmax = (1 << (norms[c].lnw_bits - 1)) - 1;
        for (int i = 0; i < C; i++) { LNW[i] = rng_int(-lmax, lmax); gq[i] = (int16_t)LNW[i]; }
        const lm_int_norm p = {.n = C, .group = C, .F_in = norms[c].F_in, .F_out = norms[c].F_in, .e_gamma = -8,
                               .gq = gq, .rsqrt8 = &t};
        int bad = 0, tables_hit = 0;
        for (int it = 0; ok && it < 64; it++) {
            /* magnitudes from below the first threshold to the last table */
            const int mag = it < 4 ? 0 : 1 + it / 3, kind = it % KINDS;
            for (int i = 0; i < C; i++) {
                int64_t v = kind == ZERO ? 0 : rng_bits(rng_int(0, mag));
                if (kind == TIE) v = shl(v | 1, 3);
                x[i] = v;
                xi[i] = (int32_t)v;
            }
            ref_rmsnorm(yr, x, C, al, ld, off, tab, LNW);
            for (int i = 0; i < C; i++) yr[i] = sat(yr[i]);
            lm_int_rmsnorm(yo, xi, &p);
            int64_t sum = 0;
            for (int i = 0; i < C; i++) { bad += yo[i] != yr[i]; sum += x[i] * x[i]; }
            for (int i = 1; i < 8; i++) tables_hit |= (sum >= al[i]) << i;
        }
        CHECK(ok && bad == 0, "%s vs Rmsnorm::forward: %d mismatches", norms[c].name, bad);
        CHECK(tables_hit == 0xFE, "%s: the inputs reached tables %#x only", norms[c].name, tables_hit);
        free(tab); free(x); free(LNW); free(yr); free(xi); free(yo); free(gq);
    }
}

/* main.cpp: Embedding's (long long)(x * 2^10); the residual add of Mamba::forward. */
static void test_residual(void) {
    static const float x[] = {0.0f, 1.5f, -1.5f, 0.00048828125f, -0.00048828125f, 0.0009765625f, -2.9995f, 1000.25f};
    int32_t u[8], d[8];
    lm_int_residual_from_f32(u, x, 8, LM_DP_RELEASE);
    int bad = 0;
    for (int i = 0; i < 8; i++) bad += u[i] != (int32_t)(long long)((double)x[i] * 1024.0);
    CHECK(bad == 0, "embedding vs Embedding (truncation toward zero): %d mismatches", bad);
    lm_int_residual_from_f32(d, x, 8, 0);
    CHECK(d[3] == 1 && u[3] == 0 && d[4] == 0 && u[4] == 0 && d[6] == -3071 && u[6] == -3071, "ours rounds, the release truncates");
    for (int i = 0; i < 8; i++) d[i] = rng_int(-100000, 100000);
    int32_t ref[8];
    for (int i = 0; i < 8; i++) ref[i] = u[i] + d[i];
    lm_int_residual_add(u, d, 8);
    CHECK(!memcmp(u, ref, sizeof ref), "residual add");
}

static void test_names(void) {
    char b[64];
    int dp = -1;
    CHECK(!strcmp(lm_datapath_name(0, b, sizeof b), "ours") && !strcmp(lm_datapath_name(LM_DP_RELEASE, b, sizeof b), "release"),
          "names");
    CHECK(!strcmp(lm_datapath_name(LM_DP_TRUNC | LM_DP_NORM8, b, sizeof b), "trunc+norm8"), "flag names: %s", b);
    CHECK_OK(lm_datapath_parse("qrule,dbheads", &dp));
    CHECK(dp == (LM_DP_QRULE | LM_DP_DB_HEADS), "parse a list: %d", dp);
    CHECK_OK(lm_datapath_parse("release", &dp));
    CHECK(dp == LM_DP_RELEASE, "parse release");
    for (int v = 1; v <= LM_DP_RELEASE; v++) {
        int back = -1;
        CHECK(lm_datapath_parse(lm_datapath_name(v, b, sizeof b), &back) == LM_OK && back == v, "round trip %d (%s)", v, b);
    }
    CHECK(lm_datapath_parse("fast", &dp) == LM_ERR_ARG && strstr(lm_last_error(), "fast"), "unknown name refused");
    CHECK(lm_datapath_parse("", &dp) == LM_ERR_ARG, "empty refused");
}

/* The builders' refusals for the release's tables. */
static void test_refused(void) {
    lm_rsqrt8 t;
    CHECK(lm_rsqrt8_build(&t, 64, 10, 0.0, 1e6) == LM_ERR_ARG, "lo 0 refused");
    CHECK(lm_rsqrt8_build(&t, 64, 10, 1.0, 0x1p63) == LM_ERR_ARG, "a range past 2^62 refused");
    CHECK(lm_rsqrt8_build(&t, 64, 40, 1.0, 1e6) == LM_ERR_ARG, "a site past 28 refused");
    CHECK(lm_rsqrt8_build(&t, 64, 10, 1.0, 0x1p50) == LM_ERR_ARG && strstr(lm_last_error(), "first bin"),
          "a first bin far wider than lo refused (%s)", lm_last_error());
    lm_lut lut;
    CHECK(lm_lut_build_window(&lut, LM_LUT_SILU, -25600, 40, 10, 10, LM_DP_RELEASE) == LM_ERR_ARG, "bin 2^40 refused");
}

int main(void) {
    test_release_tables();
    test_quantizer();
    test_rescale();
    test_linear();
    test_conv();
    test_luts();
    test_ssm();
    test_rmsnorm();
    test_residual();
    test_names();
    test_refused();
    (void)rng_uniform;
    return test_finish();
}
