/* One Mamba2 block in the integer datapath (src/integer) against the same block in float32, on
 * random weights: the integer layer is built from the float weights and ranges calibrated by the
 * float block itself; in_proj/out_proj are quantized (round to nearest) and the float block uses
 * the same quantized weights dequantized, so the difference measured is the integer datapath's
 * own (activation, SSM, LUT, norm and residual quantization). Also: bit-identical reruns. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "integer/integer.h"
#include "quant/quantize.h"

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static double rng_uniform(double a, double b) {
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return a + (b - a) * (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) * 0x1p-53;
}
static void fill(float *x, size_t n, double a, double b) { for (size_t i = 0; i < n; i++) x[i] = (float)rng_uniform(a, b); }

typedef struct {
    lm_config cfg;
    float *norm, *gnorm, *conv_w, *conv_b, *dt_bias, *A, *D, *in_w, *out_w;   /* in_w/out_w dequantized */
    lm_qweight_buf in_q, out_q;
} block;

static void matvec(float *y, const float *W, const float *x, int O, int K) {
    for (int o = 0; o < O; o++) {
        double acc = 0.0;
        for (int k = 0; k < K; k++) acc += (double)W[(size_t)o * K + k] * x[k];
        y[o] = (float)acc;
    }
}

static void rms(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

/* The inputs of in_proj and out_proj as the linear kernels take them: PoT per 8 channels, abits
 * (the LightMamba setting: quantized linear layers, float SSM). */
static void fake_quant(float *x, int n, int abits) {
    int8_t q[512]; uint8_t s[64];
    lm_pot_quantize_f32(q, s, x, n, abits, 12);
    lm_pot_dequantize(x, q, s, n, 12);
}

/* The float block, one token: delta [D] from u [D]; states advanced; ranges recorded in cal.
 * abits 0: float linear inputs; 4 or 8: quantized as the kernels take them. */
static void float_block(float *delta, const float *u, float *conv_state, float *ssm_state, const block *b,
                        lm_int_calib *cal, int abits) {
    const lm_config *c = &b->cfg;
    const int D = c->d_model, di = c->d_inner, E = 2 * di + 2 * c->n_groups * c->d_state + c->n_heads;
    float t[256], zx[1024] = {0}, v[512], g[512];
    rms(t, u, b->norm, D, c->eps);
    if (abits) fake_quant(t, D, abits);
    matvec(zx, b->in_w, t, E, D);
    lm_int_calib_mixer(cal, v, conv_state, ssm_state, zx, b->conv_w, b->conv_b, b->dt_bias, b->A, b->D, c);
    rms(g, v, b->gnorm, di, c->eps);                     /* n_groups = 1: one group of d_inner */
    if (abits) fake_quant(g, di, abits);
    matvec(delta, b->out_w, g, D, di);
}

static double run(int wbits, int abits, int ref_abits, double bound) {
    block b = {.cfg = {.d_model = 64, .n_layer = 1, .d_inner = 128, .n_heads = 2, .head_dim = 64, .d_state = 32,
                       .n_groups = 1, .d_conv = 4, .vocab_size = 16, .eps = 1e-5f, .dt_limit_min = 0.0f,
                       .dt_limit_max = INFINITY, .conv_bias = 1}};
    const lm_config *c = &b.cfg;
    const int D = c->d_model, di = c->d_inner, H = c->n_heads, N = c->d_state, C = di + 2 * N, E = 2 * di + 2 * N + H;
    b.norm = malloc(sizeof(float) * D); b.gnorm = malloc(sizeof(float) * di);
    b.conv_w = malloc(sizeof(float) * C * 4); b.conv_b = malloc(sizeof(float) * C);
    b.dt_bias = malloc(sizeof(float) * H); b.A = malloc(sizeof(float) * H); b.D = malloc(sizeof(float) * H);
    b.in_w = malloc(sizeof(float) * E * D); b.out_w = malloc(sizeof(float) * D * di);
    float *w_in = malloc(sizeof(float) * E * D), *w_out = malloc(sizeof(float) * D * di);
    fill(b.norm, D, 0.5, 1.5); fill(b.gnorm, di, 0.5, 1.5);
    fill(b.conv_w, (size_t)C * 4, -0.5, 0.5); fill(b.conv_b, C, -0.2, 0.2);
    for (int h = 0; h < H; h++) {
        b.dt_bias[h] = (float)log(expm1(rng_uniform(0.001, 0.1)));
        b.A[h] = (float)-rng_uniform(1.0, 16.0);
        b.D[h] = (float)rng_uniform(0.5, 1.5);
    }
    fill(w_in, (size_t)E * D, -1.7 / sqrt(D), 1.7 / sqrt(D));
    fill(w_out, (size_t)D * di, -1.7 / sqrt(di), 1.7 / sqrt(di));
    CHECK_OK(lm_quantize_rtn(&b.in_q, w_in, E, D, wbits, NULL));
    CHECK_OK(lm_quantize_rtn(&b.out_q, w_out, D, di, wbits, NULL));
    lm_qweight_dequantize(&b.in_q.view, b.in_w);
    lm_qweight_dequantize(&b.out_q.view, b.out_w);

    /* calibration: 64 tokens of random residual input through the float block */
    float *conv_state = calloc((size_t)3 * C, sizeof(float)), *ssm_state = calloc((size_t)H * 64 * N, sizeof(float));
    float u[64], delta[64];
    lm_int_calib cal;
    lm_int_calib_init(&cal);
    for (int t = 0; t < 64; t++) {
        fill(u, D, -1.0, 1.0);
        float_block(delta, u, conv_state, ssm_state, &b, &cal, 0);
    }
    lm_int_layer L;
    CHECK_OK(lm_int_layer_build(&L, b.norm, b.conv_w, b.conv_b, b.dt_bias, b.A, b.D, b.gnorm, &b.in_q.view,
                                &b.out_q.view, c, &cal, abits, 0));
    lm_int_state st, st2;
    lm_int_scratch *ws;
    CHECK_OK(lm_int_state_init(&st, &L));
    CHECK_OK(lm_int_state_init(&st2, &L));
    CHECK_OK(lm_int_scratch_init(&ws, &L));

    /* a fresh sequence of 48 tokens through both, from zero states */
    memset(conv_state, 0, sizeof(float) * 3 * C);
    memset(ssm_state, 0, sizeof(float) * H * 64 * N);
    double err2 = 0.0, ref2 = 0.0;
    int identical = 1;
    for (int t = 0; t < 48; t++) {
        fill(u, D, -1.0, 1.0);
        int32_t ui[64], ui2[64], u0[64];
        lm_int_residual_from_f32(u0, u, D, 0);
        float uq[64];
        lm_int_residual_to_f32(uq, u0, D);                 /* both blocks see the same Q10 input */
        float_block(delta, uq, conv_state, ssm_state, &b, NULL, ref_abits);
        memcpy(ui, u0, sizeof ui); memcpy(ui2, u0, sizeof ui2);
        lm_int_block_forward(ui, &st, &L, ws);
        lm_int_block_forward(ui2, &st2, &L, ws);
        identical &= memcmp(ui, ui2, sizeof ui) == 0;
        for (int i = 0; i < D; i++) {
            double d = ldexp((double)(ui[i] - u0[i]), -LM_RES_F) - delta[i];
            err2 += d * d;
            ref2 += (double)delta[i] * delta[i];
        }
    }
    CHECK(identical, "two runs of the integer block differ");
    CHECK(memcmp(st.h_q, st2.h_q, (size_t)H * 64 * N) == 0 && memcmp(st.conv_q, st2.conv_q, (size_t)3 * C) == 0,
          "states differ between identical runs");
    double rel = sqrt(err2 / ref2);
    printf("W%dA%d integer block vs float block (linear inputs %s): relative RMS error of the block output %.4f (bound %.3f)\n",
           wbits, abits, ref_abits ? "quantized alike" : "float", rel, bound);
    CHECK(rel <= bound, "W%dA%d: relative error %.4f > %.3f", wbits, abits, rel, bound);

    lm_int_scratch_free(ws);
    lm_int_state_free(&st); lm_int_state_free(&st2);
    lm_int_layer_free(&L);
    lm_qweight_buf_free(&b.in_q); lm_qweight_buf_free(&b.out_q);
    free(b.norm); free(b.gnorm); free(b.conv_w); free(b.conv_b); free(b.dt_bias); free(b.A); free(b.D);
    free(b.in_w); free(b.out_w); free(w_in); free(w_out); free(conv_state); free(ssm_state);
    return rel;
}

int main(void) {
    /* The datapath's own error: the float block quantizes the linear layers' inputs as the
     * kernels do (LightMamba), so what remains is the integer SSM, conv, LUTs, norms and the
     * residual (LightMamba*). Budget (docs/integer-datapath.md section 6): about a dozen 8-bit
     * re-quantizations in series, each at most 2^-8 of its group's max (RMS about 2^-9.8 of it),
     * the dA rounding compounding through the recurrence, and the 4-bit activations amplifying
     * any difference in the norm outputs across a rounding boundary: 3 % at A8, 10 % at A4. */
    run(4, 8, 8, 0.03);
    run(8, 4, 4, 0.10);
    run(8, 8, 8, 0.03);
    run(4, 4, 4, 0.10);
    /* Against a float block with float linear inputs (the 4-bit inputs' own error dominates). */
    run(8, 8, 0, 0.05);
    run(4, 4, 0, 0.25);
    return test_finish();
}
