/* Testbench of the HLS kernels (hw/kernels) against the golden model (src/integer), bit for bit.
 * Included by tests/test_hw_kernels*.c, each with its own parallelism factors (#define HK_* before
 * including): the kernel sources are compiled into each test executable with those factors.
 *   1. primitives: rounding shift, PoT group quantizer, LUT lookup
 *   2. each unit on random inputs: activation quantizer + MMU (random integer weights and scales,
 *      and float weights quantized by lm_quantize_rtn), RMSNorm, HTU, conv, dt/dA, the SSMU stages
 *   3. decode steps of a layer (hk_layer_step) vs lm_int_block_forward, several tokens in
 *      sequence (states carried), several shapes, W4A4 / W4A8 / W8A8, with and without the online
 *      Hadamard (HTU bases 1, 12, 28, 40), a 4-layer random stack, all layers of mamba2-tiny (real
 *      weights, RTN layers built here, no rotation) over 24 tokens, and all layers of mamba2-tiny
 *      quantized by lm_quantize as LightMamba* (rotated, HTU on) over 12 tokens, also against the
 *      engine's integer forward
 *   4. refused shapes.
 * The datapath is HK_DATAPATH (hk_config.h; 0 ours, HK_DP_RELEASE the authors' release): the
 * kernels are compiled for it and the golden layers are built with it (TB_DP). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "integer/integer.h"
#include "kernels/hadamard.h"
#include "model/int_forward.h"
#include "model/model.h"
#include "quant/quantize.h"

#include "../hw/kernels/hk_mmu.c"
#include "../hw/kernels/hk_norm.c"
#include "../hw/kernels/hk_ssmu.c"
#include "../hw/kernels/hk_top.c"
#include "../hw/kernels/hk_host.c"

#define TB_DP HK_DATAPATH
_Static_assert(HK_DP_TRUNC == LM_DP_TRUNC && HK_DP_QRULE == LM_DP_QRULE && HK_DP_LUT8 == LM_DP_LUT8 &&
               HK_DP_NORM8 == LM_DP_NORM8 && HK_DP_DB_HEADS == LM_DP_DB_HEADS && HK_DP_SITES == LM_DP_SITES &&
               HK_DP_RELEASE == LM_DP_RELEASE, "the kernels' datapath flags differ from lightmamba.h's");

/* ------------------------------------------------------------------ random numbers */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_u64(void) {
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static int rng_int(int lo, int hi) { return lo + (int)(rng_u64() % (uint64_t)(hi - lo + 1)); }   /* [lo, hi] */
static double rng_uniform(double a, double b) { return a + (b - a) * (double)(rng_u64() >> 11) * 0x1p-53; }
static void fill(float *x, size_t n, double a, double b) { for (size_t i = 0; i < n; i++) x[i] = (float)rng_uniform(a, b); }
/* A wide value of about `bits` bits, either sign (bits 0..31). */
static int32_t rng_wide(int bits) {
    if (bits <= 0) return 0;
    int64_t m = (int64_t)(rng_u64() >> (64 - bits));
    if (m > INT32_MAX) m = INT32_MAX;
    return rng_u64() & 1 ? -(int32_t)m : (int32_t)m;
}
static void fill_wide(int32_t *x, int n, int bits) { for (int i = 0; i < n; i++) x[i] = rng_wide(rng_int(0, bits)); }

static void push_wide(hk_wide_s *s, const int32_t *x, int n) { for (int i = 0; i < n; i++) hk_wide_s_push(s, x[i]); }
static int pop_compare(hk_wide_s *s, const int32_t *ref, int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) bad += hk_wide_s_pop(s) != ref[i];
    return bad + !hk_wide_s_empty(s);
}
static hk_layer *layer_alloc(void) {
    hk_layer *K = calloc(1, sizeof *K);
    if (!K) abort();
    memcpy(K->rsqrt, lm_rsqrt_table(), sizeof K->rsqrt);
    memcpy(K->rsqrt_shift, lm_rsqrt_shift(), sizeof K->rsqrt_shift);
    return K;
}

/* ------------------------------------------------------------------ 1. primitives */
static void test_primitives(void) {
    int bad = 0;
    static const int64_t edge[] = {0, 1, -1, 2, -2, 3, INT32_MAX, -INT32_MAX, INT32_MIN, (int64_t)INT32_MAX + 1,
                                   INT64_MAX, -INT64_MAX, INT64_MIN, (int64_t)1 << 62, -((int64_t)1 << 62)};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        for (int L = -70; L <= 40; L++) bad += hk_shift_sat32(edge[i], L) != lm_shift_sat32(edge[i], L);
    for (int t = 0; t < 200000; t++) {
        int64_t x = (int64_t)(rng_u64() >> rng_int(1, 63));
        if (rng_u64() & 1) x = -x;
        int L = rng_int(-66, 36);
        bad += hk_shift_sat32(x, L) != lm_shift_sat32(x, L) || hk_rescale(x, L) != lm_rescale(x, L, TB_DP);
    }
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        for (int L = -70; L <= 40; L++) bad += hk_rescale(edge[i], L) != lm_rescale(edge[i], L, TB_DP);
    CHECK(bad == 0, "rounding shift / rescale: %d mismatches", bad);

    bad = 0;
    for (int t = 0; t < 50000; t++) {
        int32_t X[8] = {0};
        int len = rng_int(1, 8), bits = rng_int(2, 8), mag = rng_int(0, 31);
        for (int i = 0; i < len; i++) X[i] = rng_wide(rng_int(0, mag));
        int8_t q[8], qg[8];
        uint8_t sg;
        if (t % 7 == 0) X[rng_int(0, len - 1)] = (rng_u64() & 1 ? -1 : 1) * (1 << rng_int(0, 30));   /* a power of two */
        uint8_t s = hk_pot_group(q, X, len, bits);
        lm_pot_quantize_dp(qg, &sg, X, len, bits, TB_DP);
        bad += s != sg || memcmp(q, qg, (size_t)len) != 0;
    }
    CHECK(bad == 0, "PoT group quantizer: %d mismatches", bad);

    bad = 0;
    static const struct { lm_lut_fn fn; double lo, hi; int F_in, F_out; } luts[] = {
        {LM_LUT_SILU, -8, 8, 16, 16}, {LM_LUT_SILU, -20, 12, 9, 18}, {LM_LUT_SOFTPLUS, -12, 8, 14, 20},
        {LM_LUT_EXP, -20, 0, 16, 21}, {LM_LUT_EXP, -3, 0, 24, 21}};
    for (size_t i = 0; i < sizeof luts / sizeof luts[0]; i++) {
        lm_lut lut;
        hk_lut klut;
        CHECK_OK(lm_lut_build(&lut, luts[i].fn, luts[i].lo, luts[i].hi, luts[i].F_in, luts[i].F_out, TB_DP));
        lut_from_int(&klut, &lut);
        for (int t = 0; t < 100000; t++) {
            int32_t X = t % 2 ? rng_wide(rng_int(0, 31))
                              : (int32_t)ldexp(rng_uniform(luts[i].lo * 1.2 - 1, luts[i].hi * 1.2 + 1), luts[i].F_in);
            bad += hk_lut_apply(&klut, X) != lm_lut_apply(&lut, X);
        }
    }
    CHECK(bad == 0, "LUT lookup: %d mismatches", bad);
}

/* ------------------------------------------------------------------ 2. units */

/* One linear layer through hk_act_quant + hk_weight_reader + hk_mmu against lm_pot_quantize +
 * lm_int_act_pack + lm_int_linear_fixed. Returns the number of mismatches. */
static int linear_case(const lm_qweight *W, int abits, int F_act, int F_out) {
    const int O = W->rows, K = W->cols;
    int32_t *X = calloc((size_t)K, sizeof(int32_t)), *y = malloc(sizeof(int32_t) * O);
    int8_t *q = malloc(K), *qa = malloc(K);
    uint8_t *s = malloc(K / 8), *sa = malloc(K / 8);
    int eb, bad = 0;
    /* activation groups of mixed magnitudes (some far below the max: re-quantized to eb) */
    for (int g = 0; g < K / 8; g++) {
        int mag = rng_int(0, 24);
        for (int i = 0; i < 8; i++) X[g * 8 + i] = rng_wide(rng_int(0, mag));
    }
    lm_pot_quantize_dp(q, s, X, K, abits, TB_DP);
    lm_int_act_pack(qa, sa, &eb, q, s, F_act, K, abits);
    lm_int_linear_fixed(y, qa, sa, eb, W, F_out, TB_DP);

    static hk_act a;
    static hk_wide_s in, out;
    static hk_wbeat_s wb;
    static hk_wscale_s wsc;
    static hk_we0_s we;
    push_wide(&in, X, K);
    hk_act_quant(&a, &in, K, F_act, abits);
    bad += a.eb != eb || memcmp(a.q, qa, (size_t)K) != 0 || memcmp(a.sa, sa, (size_t)K / 8) != 0;
    hk_weight_reader(&wb, &wsc, &we, W->q, W->scale, W->e0, O, K, W->wbits);
    hk_mmu(&out, &a, &wb, &wsc, &we, O, K, W->wbits, F_out);
    bad += pop_compare(&out, y, O);
    bad += !hk_wbeat_s_empty(&wb) || !hk_wscale_s_empty(&wsc) || !hk_we0_s_empty(&we);
    free(X); free(y); free(q); free(qa); free(s); free(sa);
    return bad;
}

static void test_mmu(void) {
    static const struct { int O, K, wbits, abits; } cases[] = {
        {37, 200, 4, 4}, {64, 256, 8, 8}, {13, 136, 4, 8}, {20, 384, 8, 4}, {9, 8, 4, 4}, {70, 512, 4, 4}};
    int bad_int = 0, bad_rtn = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int O = cases[c].O, K = cases[c].K, wb = cases[c].wbits, qmax = (1 << (wb - 1)) - 1;
        /* random integer weights, scale pairs and e0 over the contract's whole range */
        lm_qweight_buf buf;
        CHECK_OK(lm_qweight_buf_init(&buf, O, K, wb));
        int8_t *row = malloc(K);
        for (int o = 0; o < O; o++) {
            for (int k = 0; k < K; k++) row[k] = (int8_t)rng_int(-qmax, qmax);
            if (wb == 4) lm_pack_int4_row(buf.q + (size_t)o * buf.view.row_stride, row, K);
            else memcpy(buf.q + (size_t)o * buf.view.row_stride, row, (size_t)K);
            for (int g = 0; g < lm_wgroups(K); g++) buf.scale[(size_t)o * lm_wgroups(K) + g] = lm_wscale_byte(rng_int(0, 7), rng_int(0, 7));
            buf.e0[o] = (int8_t)rng_int(-24, 2);
        }
        for (int t = 0; t < 4; t++) bad_int += linear_case(&buf.view, cases[c].abits, rng_int(-4, 20), rng_int(-4, 24));
        lm_qweight_buf_free(&buf);
        /* float weights quantized by the golden model's builder */
        float *w = malloc(sizeof(float) * O * K);
        fill(w, (size_t)O * K, -1.0, 1.0);
        for (int k = 0; k < K; k += 37) w[k] *= 30.0f;   /* a few outlier columns */
        lm_qweight_buf rtn;
        CHECK_OK(lm_quantize_rtn(&rtn, w, O, K, wb, NULL));
        for (int t = 0; t < 4; t++) bad_rtn += linear_case(&rtn.view, cases[c].abits, rng_int(-4, 20), rng_int(0, 24));
        lm_qweight_buf_free(&rtn);
        free(w); free(row);
    }
    CHECK(bad_int == 0, "MMU, random integer weights: %d mismatches", bad_int);
    CHECK(bad_rtn == 0, "MMU, lm_quantize_rtn weights: %d mismatches", bad_rtn);
}

static void test_rmsnorm(void) {
    static const struct { int n, group, F_in, bits; double extra; } cases[] = {
        {64, 64, 10, 4, 1.0}, {128, 64, 16, 8, 1.0}, {256, 128, 20, 4, 0.0625}, {512, 512, 4, 8, 1.0}};
    hk_layer *K = layer_alloc();
    int bad = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int n = cases[c].n;
        float *gamma = malloc(sizeof(float) * n);
        int16_t *gq = malloc(sizeof(int16_t) * n);
        int32_t *x = malloc(sizeof(int32_t) * n), *ref = malloc(sizeof(int32_t) * n);
        fill(gamma, n, -2.0, 2.0);
        lm_int_norm p;
        lm_rsqrt8 tab;
        if (TB_DP & LM_DP_NORM8) {   /* tables over sums 2^12 .. 2^60, random normalised site and gamma bits */
            const int bits = rng_int(0, 1) ? 11 : 13;
            CHECK_OK(lm_int_norm8_build(&p, gq, &tab, gamma, n, cases[c].group, cases[c].F_in, rng_int(0, 20),
                                        cases[c].extra, bits, lm_norm8_gamma_exponent(gamma, n, cases[c].extra, bits, -64),
                                        0x1p12, 0x1p60));
        } else {
            CHECK_OK(lm_int_norm_build(&p, gq, gamma, n, cases[c].group, 1e-5f, cases[c].F_in, cases[c].extra,
                                       cases[c].bits));
        }
        hk_norm kn;
        norm_from_int(&kn, &p);
        for (int t = 0; t < 12; t++) {
            int mag = t == 0 ? 0 : rng_int(1, 31);   /* t = 0: a zero vector (eps only) */
            fill_wide(x, n, mag);
            if (t >= 10)                               /* one channel per group: |x| / rms at the clamp 2^16 */
                for (int i = 0; i < n; i++) x[i] = i % cases[c].group == t ? rng_wide(rng_int(12, 31)) : 0;
            lm_int_rmsnorm(ref, x, &p);
            static hk_wide_s in, out;
            push_wide(&in, x, n);
            hk_rmsnorm(&out, &in, &kn, K);
            bad += pop_compare(&out, ref, n);
        }
        free(gamma); free(gq); free(x); free(ref);
    }
    free(K);
    CHECK(bad == 0, "RMSNorm: %d mismatches", bad);
}

static void test_htu(void) {
    /* m = 1, 12, 40, 28, 40, 1, 40, 20, 1 (n = 256: mamba2-tiny's d_inner); lm_hadamard picks the largest m */
    static const int sizes[] = {128, 192, 160, 224, 320, 8, 40, 20, 256};
    hk_layer *K = layer_alloc();
    int bad = 0;
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        const int n = sizes[c];
        if (n > HK_MAX_DI) continue;
        lm_hadamard *h;
        CHECK_OK(lm_hadamard_init(&h, n));
        const int m = lm_hadamard_base(h);
        K->di = n; K->rot_m = m;
        for (int b = 0; b < m; b++)
            for (int bb = 0; bb < m; bb++) K->rot_base[b][bb] = lm_hadamard_base_matrix(h)[b * m + bb];
        int32_t *x = malloc(sizeof(int32_t) * n), *ref = malloc(sizeof(int32_t) * n);
        int64_t *scratch = malloc(sizeof(int64_t) * n);
        for (int t = 0; t < 8; t++) {
            fill_wide(x, n, t < 6 ? 24 : 31);        /* the last ones saturate */
            K->rot_L = rng_int(-9, 1);
            lm_int_hadamard(ref, x, lm_hadamard_base_matrix(h), m, n, K->rot_L, scratch);
            static hk_wide_s in, out;
            static hk_long_s mid;
            push_wide(&in, x, n);
            hk_htu_fwht(&mid, &in, K);
            hk_htu_matrix(&out, &mid, K);
            bad += pop_compare(&out, ref, n) + !hk_long_s_empty(&mid);
        }
        free(x); free(ref); free(scratch);
        lm_hadamard_free(h);
    }
    free(K);
    CHECK(bad == 0, "HTU: %d mismatches", bad);
}

/* ------------------------------------------------------------------ random layers */
typedef struct {
    lm_config cfg;
    float *norm, *gnorm, *conv_w, *conv_b, *dt_bias, *A, *D;
    lm_qweight_buf in_q, out_q;
    lm_int_layer L;
} tb_layer;

static void rms_f(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

static void matvec_f(float *y, const float *W, const float *x, int O, int K) {
    for (int o = 0; o < O; o++) {
        double acc = 0.0;
        for (int k = 0; k < K; k++) acc += (double)W[(size_t)o * K + k] * x[k];
        y[o] = (float)acc;
    }
}

/* Random float weights, in_proj/out_proj quantized (round to nearest), sites calibrated by the
 * float block (lm_int_calib_mixer) over 24 random tokens, then lm_int_layer_build. */
static void tb_layer_build(tb_layer *b, int D, int H, int P, int N, int G, int wbits, int abits) {
    memset(b, 0, sizeof *b);
    b->cfg = (lm_config){.d_model = D, .n_layer = 1, .d_inner = H * P, .n_heads = H, .head_dim = P, .d_state = N,
                         .n_groups = G, .d_conv = 4, .vocab_size = 16, .eps = 1e-5f, .dt_limit_min = 0.0f,
                         .dt_limit_max = INFINITY, .conv_bias = 1};
    const int di = H * P, C = di + 2 * G * N, E = di + C + H;
    b->norm = malloc(sizeof(float) * D); b->gnorm = malloc(sizeof(float) * di);
    b->conv_w = malloc(sizeof(float) * C * 4); b->conv_b = malloc(sizeof(float) * C);
    b->dt_bias = malloc(sizeof(float) * H); b->A = malloc(sizeof(float) * H); b->D = malloc(sizeof(float) * H);
    float *w_in = malloc(sizeof(float) * E * D), *w_out = malloc(sizeof(float) * D * di);
    fill(b->norm, D, 0.5, 1.5); fill(b->gnorm, di, 0.5, 1.5);
    fill(b->conv_w, (size_t)C * 4, -0.5, 0.5); fill(b->conv_b, C, -0.2, 0.2);
    for (int h = 0; h < H; h++) {
        b->dt_bias[h] = (float)log(expm1(rng_uniform(0.001, 0.1)));
        b->A[h] = (float)-rng_uniform(1.0, 16.0);
        b->D[h] = (float)rng_uniform(0.5, 1.5);
    }
    fill(w_in, (size_t)E * D, -1.7 / sqrt(D), 1.7 / sqrt(D));
    fill(w_out, (size_t)D * di, -1.7 / sqrt(di), 1.7 / sqrt(di));
    CHECK_OK(lm_quantize_rtn(&b->in_q, w_in, E, D, wbits, NULL));
    CHECK_OK(lm_quantize_rtn(&b->out_q, w_out, D, di, wbits, NULL));
    lm_qweight_dequantize(&b->in_q.view, w_in);

    float *conv_state = calloc((size_t)3 * C, sizeof(float)), *ssm_state = calloc((size_t)H * P * N, sizeof(float));
    float *u = malloc(sizeof(float) * D), *t = malloc(sizeof(float) * D), *zx = malloc(sizeof(float) * E);
    float *v = malloc(sizeof(float) * di);
    lm_int_calib cal;
    lm_int_calib_init(&cal);
    for (int tok = 0; tok < 24; tok++) {
        fill(u, D, -1.0, 1.0);
        lm_int_calib_norm_input(&cal, u, D);
        rms_f(t, u, b->norm, D, b->cfg.eps);
        matvec_f(zx, w_in, t, E, D);
        lm_int_calib_mixer(&cal, v, conv_state, ssm_state, zx, b->conv_w, b->conv_b, b->dt_bias, b->A, b->D, &b->cfg);
    }
    CHECK_OK(lm_int_layer_build(&b->L, b->norm, b->conv_w, b->conv_b, b->dt_bias, b->A, b->D, b->gnorm,
                                &b->in_q.view, &b->out_q.view, &b->cfg, &cal, abits, TB_DP));
    free(conv_state); free(ssm_state); free(u); free(t); free(zx); free(v); free(w_in); free(w_out);
}

static void tb_layer_free(tb_layer *b) {
    lm_int_layer_free(&b->L);
    lm_qweight_buf_free(&b->in_q); lm_qweight_buf_free(&b->out_q);
    free(b->norm); free(b->gnorm); free(b->conv_w); free(b->conv_b); free(b->dt_bias); free(b->A); free(b->D);
}

/* conv + SiLU, z path, dt/dA, and the four SSMU stages with the state movers, on random inputs
 * (wider ranges than a real token: saturating paths included), several steps with the states
 * carried, against lm_int_conv_forward + lm_int_lut_quantize, lm_int_dt + lm_int_dA, and
 * lm_int_dB + lm_int_ssm_head + lm_pot_quantize + lm_int_gate. */
static void test_ssm_units(int D, int H, int P, int N, int G) {
    tb_layer b;
    tb_layer_build(&b, D, H, P, N, G, 4, 8);
    const lm_int_layer *L = &b.L;
    hk_layer *K = layer_alloc();
    CHECK_OK(hk_layer_from_int(K, L));
    const int di = L->d_inner, C = L->C, Cg = C / 8, GN = G * N;
    lm_int_state gst, kst;
    CHECK_OK(lm_int_state_init(&gst, L));
    CHECK_OK(lm_int_state_init(&kst, L));
    int32_t *xbc = malloc(sizeof(int32_t) * C), *conv_out = malloc(sizeof(int32_t) * C), *z = malloc(sizeof(int32_t) * di);
    int32_t *dt_raw = malloc(sizeof(int32_t) * H), *y = malloc(sizeof(int32_t) * di), *gate = malloc(sizeof(int32_t) * di);
    int32_t *hw = malloc(sizeof(int32_t) * P * N);
    int8_t *xq = malloc(C), *uq = malloc(C), *zq = malloc(di), *yq = malloc(di), *dBq = malloc((size_t)H * N);
    int8_t *h2q = malloc((size_t)P * N), dtq[HK_MAX_H], dAq[HK_MAX_H];
    uint8_t *xs = malloc(Cg), *us = malloc(Cg), *zs = malloc(di / 8), *ys = malloc(di / 8);
    uint8_t *dBs = malloc((size_t)lm_int_dB_exp_count(H, N, TB_DP)), *dBe = malloc((size_t)N);
    uint8_t *h2s = malloc((size_t)P * N / 8), dts[HK_MAX_HG], dAs[HK_MAX_HG];
    int bad_conv = 0, bad_z = 0, bad_dt = 0, bad_ssm = 0, bad_state = 0;
    static hk_wide_s s_xbc, s_z, s_dt, s_yc, s_g;
    static hk_pot8_s s_u8, s_z8, s_xf, s_cf;
    static hk_headc_s s_hc1, s_hc2;
    static hk_state_s s_st_in, s_st_out;
    static hk_dbx_s s_dbx;
    static hk_h2_s s_h2;
    for (int step = 0; step < 5; step++) {
        /* conv: xBC at F_ip, pushed in the emitted order B, C, x */
        fill_wide(xbc, C, step < 4 ? 24 : 31);
        lm_pot_quantize_dp(xq, xs, xbc, C, 8, TB_DP);
        lm_int_conv_forward(conv_out, gst.conv_q, gst.conv_s, xq, xs, &L->conv);
        lm_int_lut_quantize(uq, us, conv_out, C, &L->silu_xbc, 8, TB_DP);
        push_wide(&s_xbc, xbc + di, 2 * GN);
        push_wide(&s_xbc, xbc, di);
        hk_conv(&s_u8, &s_xbc, kst.conv_q, kst.conv_s, K);
        for (int i = 0; i < Cg; i++) {
            const int g = i < 2 * GN / 8 ? di / 8 + i : i - 2 * GN / 8;
            const hk_pot8 o = hk_pot8_s_pop(&s_u8);
            bad_conv += o.s != us[g] || memcmp(o.q, uq + g * 8, 8) != 0;
            hk_pot8 r = o;          /* put back for stage 1, in arrival order */
            hk_pot8_s_push(&s_u8, r);
        }
        bad_conv += memcmp(gst.conv_q, kst.conv_q, (size_t)3 * C) != 0 || memcmp(gst.conv_s, kst.conv_s, (size_t)3 * Cg) != 0;
        /* z */
        fill_wide(z, di, 28);
        lm_int_lut_quantize(zq, zs, z, di, &L->silu_z, 8, TB_DP);
        push_wide(&s_z, z, di);
        hk_zpath(&s_z8, &s_z, K);
        for (int i = 0; i < di / 8; i++) {
            const hk_pot8 o = hk_pot8_s_pop(&s_z8);
            bad_z += o.s != zs[i] || memcmp(o.q, zq + i * 8, 8) != 0;
            hk_pot8_s_push(&s_z8, o);
        }
        /* dt, dA */
        fill_wide(dt_raw, H, L->F_ip + 4);
        lm_int_dt(dtq, dts, dt_raw, L->dt_bq, L->dt_be, L->dt_lo, L->dt_hi, &L->softplus, H, TB_DP);
        lm_int_dA(dAq, dAs, dtq, dts, L->F_dt, L->A_q, L->A_e, &L->exp, H, TB_DP);
        push_wide(&s_dt, dt_raw, H);
        hk_dt_unit(&s_hc1, &s_hc2, &s_dt, K);
        for (int h = 0; h < H; h++) {
            const hk_headc c = hk_headc_s_pop(&s_hc1);
            bad_dt += c.q_dt != dtq[h] || c.s_dt != dts[h / 8] || c.q_dA != dAq[h] || c.s_dA != dAs[h / 8];
            hk_headc_s_push(&s_hc1, c);
        }
        /* the SSM on the golden conv/z/dt outputs */
        const int8_t *Bq = uq + di, *Cq = Bq + GN;
        const uint8_t *Bs = us + di / 8, *Cs = Bs + GN / 8;
        lm_int_dB(dBq, dBs, dtq, dts, L->F_dt, Bq, Bs, L->F_u, L->F_dB, H, G, N, TB_DP);
        const lm_int_head_sites f = {.P = P, .N = N, .F_x = L->F_u, .F_dA = L->F_dA, .F_dB = L->F_dB, .F_h = L->F_h,
                                     .F_C = L->F_u, .F_y = L->F_y, .dp = TB_DP};
        for (int h = 0; h < H; h++) {
            const int g = h / (H / G);
            lm_int_dB_exps(dBe, dBs, h, H, N, TB_DP);
            lm_int_ssm_head(y + h * P, gst.h_q + (size_t)h * P * N, gst.h_s + (size_t)h * (P / 8) * N, h2q, h2s, hw,
                            dAq[h], dAs[h / 8], dBq + (size_t)h * N, dBe, uq + h * P, us + h * P / 8,
                            Cq + g * N, Cs + g * N / 8, L->D_q[h], L->D_e[h / 8], &f);
        }
        lm_pot_quantize_dp(yq, ys, y, di, 8, TB_DP);
        lm_int_gate(gate, yq, ys, L->F_y, zq, zs, L->F_zs, L->F_g, di, TB_DP);
        hk_state_reader(&s_st_in, kst.h_q, kst.h_s, K);
        hk_ssm_dbx(&s_dbx, &s_xf, &s_cf, &s_u8, &s_hc1, K);
        hk_ssm_update(&s_st_out, &s_h2, &s_dbx, &s_st_in, &s_hc2, K);
        hk_state_writer(kst.h_q, kst.h_s, &s_st_out, K);
        hk_ssm_hc(&s_yc, &s_h2, &s_cf, K);
        hk_ssm_y(&s_g, &s_yc, &s_xf, &s_z8, K);
        bad_ssm += pop_compare(&s_g, gate, di);
        bad_state += memcmp(gst.h_q, kst.h_q, (size_t)H * P * N) != 0 || memcmp(gst.h_s, kst.h_s, (size_t)H * P * N / 8) != 0;
    }
    CHECK(bad_conv == 0, "conv + SiLU (H %d P %d N %d G %d): %d mismatches", H, P, N, G, bad_conv);
    CHECK(bad_z == 0, "SiLU(z): %d mismatches", bad_z);
    CHECK(bad_dt == 0, "dt/dA: %d mismatches", bad_dt);
    CHECK(bad_ssm == 0, "SSMU stages (H %d P %d N %d G %d): %d mismatches in the gated output", H, P, N, G, bad_ssm);
    CHECK(bad_state == 0, "SSMU state: %d steps differ", bad_state);
    free(xbc); free(conv_out); free(z); free(dt_raw); free(y); free(gate); free(hw); free(xq); free(uq); free(zq);
    free(yq); free(dBq); free(h2q); free(xs); free(us); free(zs); free(ys); free(dBs); free(dBe); free(h2s);
    lm_int_state_free(&gst); lm_int_state_free(&kst);
    free(K);
    tb_layer_free(&b);
}

/* ------------------------------------------------------------------ 3. decode steps of layers */
/* One layer on both sides: the golden layer and state, the kernel parameters, the reordered
 * in_proj and out_proj in DRAM layout, the kernel's copy of the state. */
typedef struct {
    const lm_int_layer *L;
    hk_layer *K;
    hk_weights win, wout;
    lm_int_state gst, kst;
} tb_stack_layer;

static void stack_layer_init(tb_stack_layer *s, const lm_int_layer *L) {
    s->L = L;
    s->K = layer_alloc();
    CHECK_OK(hk_layer_from_int(s->K, L));
    int *src = malloc(sizeof(int) * L->E), *seen = calloc((size_t)L->E, sizeof(int));
    hk_inproj_order(src, L->d_inner, L->H, L->P, L->G, L->N);
    int perm_ok = 1;
    for (int i = 0; i < L->E; i++) perm_ok &= src[i] >= 0 && src[i] < L->E && !seen[src[i]]++;
    CHECK(perm_ok, "hk_inproj_order is not a permutation of the %d in_proj rows", L->E);
    CHECK_OK(hk_weights_permute(&s->win, L->in_proj, src));
    CHECK_OK(hk_weights_permute(&s->wout, L->out_proj, NULL));
    CHECK_OK(lm_int_state_init(&s->gst, L));
    CHECK_OK(lm_int_state_init(&s->kst, L));
    free(src); free(seen);
}

static void stack_layer_free(tb_stack_layer *s) {
    lm_int_state_free(&s->gst); lm_int_state_free(&s->kst);
    hk_weights_free(&s->win); hk_weights_free(&s->wout);
    free(s->K);
}

/* Tokens through a stack of layers (each token: its input row x [tokens, D] in Q10, then every
 * layer in turn), lm_int_block_forward against hk_layer_step, the residual and both states of
 * every layer compared after every layer step. out: NULL, or [tokens, D] the final residuals. */
static void run_stack(const char *what, const lm_int_layer *const *layers, int n_layers, const float *x, int tokens,
                      float *out) {
    const int D = layers[0]->D;
    tb_stack_layer *S = calloc((size_t)n_layers, sizeof *S);
    for (int l = 0; l < n_layers; l++) stack_layer_init(&S[l], layers[l]);
    lm_int_scratch *ws;
    CHECK_OK(lm_int_scratch_init(&ws, layers[0]));
    int32_t *ug = malloc(sizeof(int32_t) * D), *uk = malloc(sizeof(int32_t) * D);
    int bad_u = 0, bad_state = 0, moved = 0, rc_bad = 0;
    for (int t = 0; t < tokens; t++) {
        lm_int_residual_from_f32(ug, x + (size_t)t * D, D, TB_DP);
        memcpy(uk, ug, sizeof(int32_t) * D);
        for (int l = 0; l < n_layers; l++) {
            tb_stack_layer *s = &S[l];
            const lm_int_layer *L = s->L;
            const size_t hn = (size_t)L->H * L->P * L->N, cn = (size_t)(L->W - 1) * L->C;
            const int32_t before = ug[0];
            lm_int_block_forward(ug, &s->gst, L, ws);
            rc_bad += hk_layer_step(uk, s->kst.conv_q, s->kst.conv_s, s->kst.h_q, s->kst.h_s, s->K, s->win.q,
                                    s->win.scale, s->win.e0, s->wout.q, s->wout.scale, s->wout.e0) != HK_OK;
            bad_u += memcmp(ug, uk, sizeof(int32_t) * D) != 0;
            bad_state += memcmp(s->gst.h_q, s->kst.h_q, hn) != 0 || memcmp(s->gst.h_s, s->kst.h_s, hn / 8) != 0 ||
                         memcmp(s->gst.conv_q, s->kst.conv_q, cn) != 0 || memcmp(s->gst.conv_s, s->kst.conv_s, cn / 8) != 0;
            moved += ug[0] != before;
            memcpy(uk, ug, sizeof(int32_t) * D);        /* a mismatch is counted once, not carried on */
        }
        if (out) lm_int_residual_to_f32(out + (size_t)t * D, ug, D);
    }
    const int steps = tokens * n_layers;
    printf("%s, %d layer(s), %d tokens: %s (%d layer steps, residual moved on %d)\n", what, n_layers, tokens,
           bad_u || bad_state || rc_bad ? "MISMATCH" : "bit-exact", steps, moved);
    CHECK(rc_bad == 0, "%s: hk_layer_step failed on %d of %d layer steps", what, rc_bad, steps);
    CHECK(bad_u == 0, "%s: residual differs after %d of %d layer steps", what, bad_u, steps);
    CHECK(bad_state == 0, "%s: states differ after %d of %d layer steps", what, bad_state, steps);
    CHECK(moved > steps / 2, "%s: the blocks rarely changed the residual (%d of %d): degenerate test", what, moved, steps);
    free(ug); free(uk);
    lm_int_scratch_free(ws);
    for (int l = 0; l < n_layers; l++) stack_layer_free(&S[l]);
    free(S);
}

/* Random layers of one shape, random residual inputs. rotate: the online d_inner Hadamard before
 * out_proj (lm_int_layer_set_rotation, as the quantizer sets it for LightMamba models), so the
 * HTU runs inside hk_layer_step: d_inner = m 2^k exercises the +-1 m x m matrix unit. */
static void test_stack(int n_layers, int D, int H, int P, int N, int G, int wbits, int abits, int tokens, int rotate) {
    tb_layer *b = calloc((size_t)n_layers, sizeof *b);
    const lm_int_layer **layers = calloc((size_t)n_layers, sizeof *layers);
    lm_hadamard *rot = NULL;
    if (rotate) CHECK_OK(lm_hadamard_init(&rot, H * P));
    for (int l = 0; l < n_layers; l++) {
        tb_layer_build(&b[l], D, H, P, N, G, wbits, abits);
        if (rot) CHECK_OK(lm_int_layer_set_rotation(&b[l].L, b[l].gnorm, lm_hadamard_base_matrix(rot), lm_hadamard_base(rot)));
        layers[l] = &b[l].L;
    }
    float *x = malloc(sizeof(float) * D * tokens);
    fill(x, (size_t)D * tokens, -1.5, 1.5);
    char what[160];
    snprintf(what, sizeof what, "random D %d H %d P %d N %d G %d W%dA%d", D, H, P, N, G, wbits, abits);
    if (rot)
        snprintf(what + strlen(what), sizeof what - strlen(what), ", online Hadamard %d = %d x %d", H * P,
                 lm_hadamard_base(rot), H * P / lm_hadamard_base(rot));
    run_stack(what, layers, n_layers, x, tokens, NULL);
    free(x);
    for (int l = 0; l < n_layers; l++) tb_layer_free(&b[l]);
    free(b); free(layers);
    lm_hadamard_free(rot);
}

/* The full-model testbench without rotation: every layer of mamba2-tiny (its real weights, bundled
 * in models/mamba2-tiny) through the kernels with the HTU off. The integer layers are built here:
 * in_proj/out_proj round to nearest at 4 bits, sites calibrated by the float model
 * (lm_int_calib_mixer inside a float block) on the first 32 reference tokens, 4-bit activations.
 * The tokens then run from their embedding rows. The quantizer's own LightMamba* model (rotated,
 * HTU on) is test_model_tiny_lightmamba below. */
static void rms_groups(float *out, const float *x, const float *w, int n, int groups, float eps) {
    for (int g = 0; g < groups; g++) rms_f(out + g * (n / groups), x + g * (n / groups), w + g * (n / groups), n / groups, eps);
}

/* One token through the float model's blocks (the mixer is lm_int_calib_mixer, recording each
 * layer's ranges into cal[l] unless cal is NULL); u [D] the residual, updated; conv_state
 * [n_layer, W-1, C] and ssm_state [n_layer, H, P, N] advanced. */
static void float_model_token(float *u, const lm_model *m, lm_int_calib *cal, float *conv_state, float *ssm_state) {
    const lm_config *c = &m->cfg;
    const int D = c->d_model, di = c->d_inner, G = c->n_groups, C = di + 2 * G * c->d_state, E = di + C + c->n_heads;
    float *t = malloc(sizeof(float) * D), *zx = malloc(sizeof(float) * E), *v = malloc(sizeof(float) * di);
    float *g = malloc(sizeof(float) * di), *delta = malloc(sizeof(float) * D);
    for (int l = 0; l < c->n_layer; l++) {
        const lm_layer *Lf = &m->layers[l];
        if (cal) lm_int_calib_norm_input(&cal[l], u, D);
        rms_f(t, u, Lf->norm, D, c->eps);
        matvec_f(zx, Lf->in_proj.w, t, E, D);
        lm_int_calib_mixer(cal ? &cal[l] : NULL, v, conv_state + (size_t)l * (c->d_conv - 1) * C,
                           ssm_state + (size_t)l * c->n_heads * c->head_dim * c->d_state, zx, Lf->conv_w, Lf->conv_b,
                           Lf->dt_bias, Lf->A, Lf->D, c);
        rms_groups(g, v, Lf->gnorm, di, G, c->eps);
        matvec_f(delta, Lf->out_proj.w, g, D, di);
        for (int i = 0; i < D; i++) u[i] += delta[i];
    }
    free(t); free(zx); free(v); free(g); free(delta);
}

static void test_model_tiny(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/models/mamba2-tiny", test_root());
    lm_model *m = NULL;
    CHECK_OK(lm_model_init(&m, path));
    if (!m) return;
    const lm_config *c = &m->cfg;
    const int D = c->d_model, di = c->d_inner, H = c->n_heads, P = c->head_dim, N = c->d_state, G = c->n_groups;
    const int C = di + 2 * G * N, E = di + C + H, nl = c->n_layer, calib_tokens = 32, tokens = 24;
    char *raw = NULL;
    size_t raw_len = 0;
    snprintf(path, sizeof path, "%s/models/mamba2-tiny/reference/tokens.i32", test_root());
    CHECK_OK(lm_read_file(path, &raw, &raw_len));
    if (!raw || raw_len < sizeof(int32_t) * (calib_tokens + tokens)) { CHECK(0, "%s: too short", path); free(raw); lm_model_free(m); return; }
    const int32_t *ids = (const int32_t *)raw;
    for (int i = 0; i < calib_tokens + tokens; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size) { CHECK(0, "%s: token %d out of range", path, ids[i]); free(raw); lm_model_free(m); return; }

    /* float pass for calibration */
    lm_int_calib *cal = calloc((size_t)nl, sizeof *cal);
    float *conv_state = calloc((size_t)nl * (c->d_conv - 1) * C, sizeof(float));
    float *ssm_state = calloc((size_t)nl * H * P * N, sizeof(float));
    float *u = malloc(sizeof(float) * D);
    for (int l = 0; l < nl; l++) lm_int_calib_init(&cal[l]);
    for (int tok = 0; tok < calib_tokens; tok++) {
        memcpy(u, m->embedding + (size_t)ids[tok] * D, sizeof(float) * D);
        float_model_token(u, m, cal, conv_state, ssm_state);
    }
    /* the integer layers */
    lm_qweight_buf *qin = calloc((size_t)nl, sizeof *qin), *qout = calloc((size_t)nl, sizeof *qout);
    lm_int_layer *L = calloc((size_t)nl, sizeof *L);
    const lm_int_layer **layers = calloc((size_t)nl, sizeof *layers);
    for (int l = 0; l < nl; l++) {
        const lm_layer *Lf = &m->layers[l];
        CHECK_OK(lm_quantize_rtn(&qin[l], Lf->in_proj.w, E, D, 4, NULL));
        CHECK_OK(lm_quantize_rtn(&qout[l], Lf->out_proj.w, D, di, 4, NULL));
        CHECK_OK(lm_int_layer_build(&L[l], Lf->norm, Lf->conv_w, Lf->conv_b, Lf->dt_bias, Lf->A, Lf->D, Lf->gnorm,
                                    &qin[l].view, &qout[l].view, c, &cal[l], 4, TB_DP));
        layers[l] = &L[l];
    }
    float *x = malloc(sizeof(float) * D * tokens);
    for (int i = 0; i < tokens; i++) memcpy(x + (size_t)i * D, m->embedding + (size_t)ids[calib_tokens + i] * D, sizeof(float) * D);
    float *uint = malloc(sizeof(float) * D * tokens);
    run_stack("mamba2-tiny W4A4 (real weights, RTN, calibrated)", layers, nl, x, tokens, uint);
    /* the inputs are realistic, not saturated: the integer model's final residual stays near the
     * float model's (run from zero states over the same tokens) */
    memset(conv_state, 0, sizeof(float) * nl * (c->d_conv - 1) * C);
    memset(ssm_state, 0, sizeof(float) * nl * H * P * N);
    double err2 = 0.0, ref2 = 0.0;
    for (int tok = 0; tok < tokens; tok++) {
        memcpy(u, x + (size_t)tok * D, sizeof(float) * D);
        float_model_token(u, m, NULL, conv_state, ssm_state);
        for (int i = 0; i < D; i++) {
            double d = uint[(size_t)tok * D + i] - u[i];
            err2 += d * d;
            ref2 += (double)u[i] * u[i];
        }
    }
    printf("mamba2-tiny: integer W4A4 final residual vs float, relative RMS %.3f\n", sqrt(err2 / ref2));
    CHECK(sqrt(err2 / ref2) < 0.5, "the integer layers are far from the float model (%.3f): saturated inputs?", sqrt(err2 / ref2));
    free(uint);

    for (int l = 0; l < nl; l++) { lm_int_layer_free(&L[l]); lm_qweight_buf_free(&qin[l]); lm_qweight_buf_free(&qout[l]); }
    free(L); free(layers); free(qin); free(qout); free(cal); free(conv_state); free(ssm_state);
    free(u); free(x); free(raw);
    lm_model_free(m);
}

/* mamba2-tiny quantized by the quantizer as LightMamba* (lm_quantize: method lightmamba, W4A4, SSM
 * pot8): the residual rotation fused into the weights, the online d_inner Hadamard before out_proj
 * (d_inner 256 = 2^8 x 1: the HTU runs 8 radix-2 stages per block of 256 and a 1 x 1 +-1 matrix)
 * and the integer SSM, its lm_int_layers as the model file holds them. Calibration is small (4
 * samples of 64 tokens, as in tests/test_intmodel.c): the check is bit-exactness, whatever the
 * calibration. The inputs are reference tokens' embedding rows in the model's rotated basis (the
 * float rows times the d_model Hadamard, as lm_fuse_rotation fuses it). Then the engine's integer
 * forward (lm_int_session: batched SIMD in_proj/out_proj, heads over threads), one token a call,
 * must give the same final residual, closing the chain kernels == golden block == engine. */
static void test_model_tiny_lightmamba(void) {
    char dir[] = "/tmp/lm_test_hw_kernels_XXXXXX", path[4096], lmq[64];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp: %s", strerror(errno)); return; }
    snprintf(lmq, sizeof lmq, "%s/tiny.lmq", dir);
    snprintf(path, sizeof path, "%s/models/mamba2-tiny", test_root());
    lm_model *src = NULL, *m = NULL;
    CHECK_OK(lm_model_init(&src, path));
    if (src) {
        lm_quant_settings q = lm_quant_defaults();
        q.method = LM_QUANT_LIGHTMAMBA;
        q.wbits = q.abits = 4;
        q.ssm_mode = LM_SSM_POT8;
        q.datapath = TB_DP;
        q.calib_samples = 4;
        q.calib_len = 64;
        CHECK_OK(lm_quantize(src, &q, NULL, 1, lmq, NULL, NULL));
        CHECK_OK(lm_model_init(&m, lmq));
    }
    if (unlink(lmq) != 0 || rmdir(dir) != 0) fprintf(stderr, "could not remove %s\n", dir);
    if (!m || !m->int_layers) {
        CHECK(!m, "the quantized model has no integer layers");
        lm_model_free(m); lm_model_free(src);
        return;
    }
    const lm_config *c = &m->cfg;
    const int D = c->d_model, nl = c->n_layer, tokens = 12;
    const lm_int_layer **layers = calloc((size_t)nl, sizeof *layers);
    int rotated = 1;
    for (int l = 0; l < nl; l++) {
        layers[l] = &m->int_layers[l];
        rotated &= layers[l]->rot_m == 1 && layers[l]->d_inner == 256;
    }
    CHECK(rotated, "mamba2-tiny LightMamba*: expected the online Hadamard 256 = 1 x 2^8 on every layer (rot_m %d)",
          layers[0]->rot_m);

    char *raw = NULL;
    size_t raw_len = 0;
    snprintf(path, sizeof path, "%s/models/mamba2-tiny/reference/tokens.i32", test_root());
    CHECK_OK(lm_read_file(path, &raw, &raw_len));
    float *x = calloc((size_t)D * tokens, sizeof(float)), *xe = malloc(sizeof(float) * D * tokens);
    float *uk = malloc(sizeof(float) * D * tokens);   /* the golden model's final residual per token */
    lm_hadamard *R = NULL;
    CHECK_OK(lm_hadamard_init(&R, D));
    if (raw && raw_len >= sizeof(int32_t) * tokens && R) {
        const int32_t *ids = (const int32_t *)raw;
        for (int t = 0; t < tokens; t++)
            if (ids[t] >= 0 && ids[t] < c->vocab_size)
                memcpy(x + (size_t)t * D, src->embedding + (size_t)ids[t] * D, sizeof(float) * D);
        lm_hadamard_rotate(R, x, tokens);
        run_stack("mamba2-tiny LightMamba* W4A4 (quantized model, rotated, online Hadamard on the HTU)", layers, nl, x,
                  tokens, uk);

        lm_pool *pool = NULL;
        lm_int_session *is = NULL;
        CHECK_OK(lm_pool_init(&pool, 1));
        CHECK_OK(lm_int_session_init(&is, m, pool, 1));
        int bad = 0;
        memcpy(xe, x, sizeof(float) * D * tokens);
        for (int t = 0; is && t < tokens; t++) {
            lm_int_session_forward(is, xe + (size_t)t * D, 1);
            bad += memcmp(xe + (size_t)t * D, uk + (size_t)t * D, sizeof(float) * D) != 0;
        }
        /* uk holds the golden model's residuals, which run_stack checked the kernels against */
        CHECK(is && bad == 0, "mamba2-tiny LightMamba*: the engine's integer forward differs from the golden model on %d of %d tokens",
              bad, tokens);
        if (is && bad == 0) printf("mamba2-tiny LightMamba*: engine integer forward == golden model on %d decode steps\n", tokens);
        lm_int_session_free(is);
        lm_pool_free(pool);
    } else {
        CHECK(0, "%s: too short", path);
    }
    lm_hadamard_free(R);
    free(raw); free(x); free(xe); free(uk); free(layers);
    lm_model_free(m);
    lm_model_free(src);
}

/* ------------------------------------------------------------------ 4. refused shapes */
static void test_refused(void) {
    tb_layer b;
    tb_layer_build(&b, 64, 2, 64, 32, 1, 4, 4);
    hk_layer *K = layer_alloc();
    CHECK_OK(hk_layer_from_int(K, &b.L));
    CHECK(hk_layer_check(K) == HK_OK, "a valid layer is refused");
    int32_t u[64] = {0};
    u[3] = 1000;
    hk_layer bad = *K;
    bad.N = 36; bad.C = bad.di + 2 * 36; bad.E = bad.di + bad.C + bad.H;        /* not a multiple of n_p */
    CHECK(hk_layer_check(&bad) == HK_ERR_SHAPE, "d_state 36 accepted");
    CHECK(hk_layer_step(u, NULL, NULL, NULL, NULL, &bad, NULL, NULL, NULL, NULL, NULL, NULL) == HK_ERR_SHAPE && u[3] == 1000,
          "hk_layer_step ran a refused shape");
    bad = *K; bad.D = HK_MAX_D + 8; bad.norm.n = bad.norm.group = bad.D;
    CHECK(hk_layer_check(&bad) == HK_ERR_SHAPE, "d_model above HK_MAX_D accepted");
    bad = *K; bad.rot_m = 3;
    CHECK(hk_layer_check(&bad) == HK_ERR_SHAPE, "a Hadamard base of 3 accepted");
    bad = *K; bad.abits = 5;
    CHECK(hk_layer_check(&bad) == HK_ERR_SHAPE, "5-bit activations accepted");
    lm_int_layer big = b.L;
    big.d_inner = HK_MAX_DI * 2;
    CHECK(hk_layer_from_int(K, &big) == LM_ERR_UNSUPPORTED, "a layer past HK_MAX_DI accepted");
    CHECK(strstr(lm_last_error(), "exceeds the compiled bounds") != NULL, "unclear error: %s", lm_last_error());
    lm_qweight w8 = *b.L.out_proj;
    w8.wbits = 8;
    big = b.L;
    big.out_proj = &w8;
    CHECK(hk_layer_from_int(K, &big) == LM_ERR_UNSUPPORTED, "mixed 4/8-bit in_proj/out_proj accepted");
    static const int8_t h12[12 * 12] = {0};
    big = b.L;                                  /* d_inner 128: no 12 x 12 base */
    big.rot_m = 12;
    big.rot_Hm = h12;
    CHECK(hk_layer_from_int(K, &big) == LM_ERR_UNSUPPORTED && strstr(lm_last_error(), "HTU") != NULL,
          "a Hadamard base not dividing d_inner accepted (%s)", lm_last_error());
    hk_weights hw;
    CHECK(hk_weights_permute(&hw, &w8, NULL) == LM_ERR_ARG, "a row stride not matching the packing accepted");
    CHECK(strstr(lm_last_error(), "row stride") != NULL, "unclear error: %s", lm_last_error());
    free(K);
    tb_layer_free(&b);
}

static int tb_main(const char *variant) {
    printf("kernels %s: CIP %d, COP %d, SSMU lanes %d, tile n_p %d x p_p %d, HTU width %d\n", variant, HK_CIP, HK_COP,
           HK_SSMU_LANES, HK_NP, HK_PP, HK_HTU_WIDTH);
    test_primitives();
    test_mmu();
    test_rmsnorm();
    test_htu();
    test_ssm_units(64, 2, 64, 32, 1);
    test_ssm_units(64, 6, 32, 16, 2);
    test_stack(1, 64, 2, 64, 32, 1, 4, 4, 8, 0);      /* the golden block test's shape */
    test_stack(1, 64, 2, 64, 32, 1, 8, 8, 6, 0);
    test_stack(1, 64, 5, 32, 16, 1, 4, 8, 6, 0);      /* 5 heads: a partial group of 8 heads; d_inner 160 */
    test_stack(1, 64, 6, 32, 16, 2, 4, 4, 6, 0);      /* two groups */
    test_stack(4, 128, 4, 64, 128, 1, 4, 4, 4, 0);    /* mamba2-tiny's shape and depth, random weights */
    /* the online Hadamard on the HTU: d_inner 192 = 12 x 16 (two groups), 160 = 40 x 4,
     * 224 = 28 x 8, 320 = 40 x 8 (W8A8), 128 = 1 x 128 */
    test_stack(1, 64, 6, 32, 16, 2, 4, 4, 6, 1);
    test_stack(1, 64, 5, 32, 16, 1, 4, 4, 6, 1);
    test_stack(1, 64, 7, 32, 16, 1, 4, 4, 6, 1);
    test_stack(1, 64, 10, 32, 16, 1, 8, 8, 6, 1);
    test_stack(1, 64, 2, 64, 32, 1, 4, 4, 6, 1);
    test_model_tiny();
    test_model_tiny_lightmamba();
    test_refused();
    CHECK(hk_stream_faults == 0, "%d stream faults (push to full / pop from empty)", hk_stream_faults);
    return test_finish();
}
