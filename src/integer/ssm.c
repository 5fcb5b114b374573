/* The SSM units of the integer block: conv, nonlinearities, dt/dA/dB, the gate, the residual
 * (integer.h has the arithmetic of each; the state step of a head is in ssm_head.c). */
#include "integer/integer.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* sat32(floor(sum_j t_j 2^L_j)): the terms summed exactly at the finest of their scales, one floor
 * (the release's conv: Conv::forward). Terms of at most 16 bits, scales within 100 of each other. */
static int32_t sum_floor(const int32_t *t, const int *L, int n) {
    int Lm = L[0];
    for (int j = 1; j < n; j++) Lm = L[j] < Lm ? L[j] : Lm;
    __int128 acc = 0;
    for (int j = 0; j < n; j++) {
        assert(L[j] - Lm <= 100);
        acc += (__int128)t[j] * ((__int128)1 << (L[j] - Lm));
    }
    if (Lm < 0) acc = -Lm > 126 ? (acc < 0 ? -1 : 0) : acc >> -Lm;
    else if (acc > (__int128)INT32_MAX >> (Lm > 31 ? 31 : Lm) || acc < -((__int128)INT32_MAX >> (Lm > 31 ? 31 : Lm)))
        return acc < 0 ? -INT32_MAX : INT32_MAX;   /* a left shift past 32 bits saturates */
    else acc *= (__int128)1 << Lm;
    return acc > INT32_MAX ? INT32_MAX : acc < -INT32_MAX ? -INT32_MAX : (int32_t)acc;
}

void lm_int_conv_channels(int32_t *out, int8_t *state_q, uint8_t *state_s, const int8_t *q, const uint8_t *s,
                          const lm_int_conv *p, int c0, int c1) {
    const int C = p->C, W = p->W, Cg = lm_pot_groups(C);
    assert(W >= 1 && W <= 16 && C % LM_POT_GROUP == 0 && c0 % LM_POT_GROUP == 0 && c1 % LM_POT_GROUP == 0 &&
           0 <= c0 && c1 <= C);
    for (int c = c0; c < c1; c++) {
        const int g = c / LM_POT_GROUP;
        int32_t t[17];   /* the terms w q (taps) and b, each with its scale in output LSBs */
        int L[17], n = 0;
        if (p->b) { t[n] = p->b[c]; L[n++] = p->eb[g] + p->F_out; }
        for (int k = 0; k < W; k++) {
            /* tap k reads row k of [state ; input]: the state's W-1 rows, oldest first, then x */
            int8_t xq = k < W - 1 ? state_q[(size_t)k * C + c] : q[c];
            int xs = k < W - 1 ? state_s[(size_t)k * Cg + g] : s[g];
            t[n] = xq * p->w[(size_t)c * W + k];
            L[n++] = xs + p->ew[(size_t)g * W + k] - p->F_in + p->F_out;
        }
        if (p->dp & LM_DP_TRUNC) {
            out[c] = sum_floor(t, L, n);
        } else {
            int64_t acc = 0;                       /* ours: each term rounded on its own */
            for (int j = 0; j < n; j++) acc += lm_shift_sat32(t[j], L[j]);
            out[c] = lm_sat32(acc);
        }
    }
    /* the state advances: row k takes row k + 1, the last row this input (these channels only) */
    const int g0 = c0 / LM_POT_GROUP, g1 = c1 / LM_POT_GROUP;
    for (int k = 0; k + 1 < W; k++) {
        const int8_t *src_q = k + 2 < W ? state_q + (size_t)(k + 1) * C : q;
        const uint8_t *src_s = k + 2 < W ? state_s + (size_t)(k + 1) * Cg : s;
        memcpy(state_q + (size_t)k * C + c0, src_q + c0, (size_t)(c1 - c0));
        memcpy(state_s + (size_t)k * Cg + g0, src_s + g0, (size_t)(g1 - g0));
    }
}

void lm_int_conv_forward(int32_t *out, int8_t *state_q, uint8_t *state_s, const int8_t *q,
                         const uint8_t *s, const lm_int_conv *p) {
    lm_int_conv_channels(out, state_q, state_s, q, s, p, 0, p->C);
}

void lm_int_lut_quantize(int8_t *q, uint8_t *s, const int32_t *X, int n, const lm_lut *lut, int bits, int dp) {
    int32_t v[LM_POT_GROUP];
    for (int g0 = 0; g0 < n; g0 += LM_POT_GROUP) {
        int len = g0 + LM_POT_GROUP < n ? LM_POT_GROUP : n - g0;
        for (int i = 0; i < len; i++) v[i] = lm_lut_apply(lut, X[g0 + i]);
        lm_pot_quantize_dp(q + g0, s + g0 / LM_POT_GROUP, v, len, bits, dp);
    }
}

void lm_int_dt(int8_t *q, uint8_t *s, const int32_t *dt_raw, const int16_t *bq, const int8_t *be,
               int32_t dt_lo, int32_t dt_hi, const lm_lut *softplus, int H, int dp) {
    int32_t v[LM_POT_GROUP];
    for (int g0 = 0; g0 < H; g0 += LM_POT_GROUP) {
        int len = g0 + LM_POT_GROUP < H ? LM_POT_GROUP : H - g0;
        for (int i = 0; i < len; i++) {
            int h = g0 + i;
            int32_t x = lm_sat32((int64_t)dt_raw[h] + lm_rescale(bq[h], be[h / LM_POT_GROUP] + softplus->F_in, dp));
            int32_t d = lm_lut_apply(softplus, x);
            v[i] = d < dt_lo ? dt_lo : d > dt_hi ? dt_hi : d;
        }
        lm_pot_quantize_dp(q + g0, s + g0 / LM_POT_GROUP, v, len, 8, dp);
    }
}

void lm_int_dA(int8_t *q, uint8_t *s, const int8_t *q_dt, const uint8_t *s_dt, int F_dt,
               const int16_t *qA, const int8_t *eA, const lm_lut *exp_lut, int H, int dp) {
    int32_t v[LM_POT_GROUP];
    for (int g0 = 0; g0 < H; g0 += LM_POT_GROUP) {
        int len = g0 + LM_POT_GROUP < H ? LM_POT_GROUP : H - g0, g = g0 / LM_POT_GROUP;
        for (int i = 0; i < len; i++) {
            int32_t x = lm_rescale((int32_t)q_dt[g0 + i] * qA[g0 + i], s_dt[g] - F_dt + eA[g] + exp_lut->F_in, dp);
            v[i] = lm_lut_apply(exp_lut, x);
        }
        lm_pot_quantize_dp(q + g0, s + g, v, len, 8, dp);
    }
}

void lm_int_dB(int8_t *q, uint8_t *s, const int8_t *q_dt, const uint8_t *s_dt, int F_dt,
               const int8_t *q_B, const uint8_t *s_B, int F_B, int F_dB, int H, int G, int N, int dp) {
    assert(N % LM_POT_GROUP == 0 && H % G == 0);
    const int Ng = N / LM_POT_GROUP, Hg = lm_pot_groups(H), heads = dp & LM_DP_DB_HEADS;
    /* dB wide at F_dB, one group of 8 at a time: 8 states of head h (ours) or 8 heads of state n */
    int32_t v[LM_POT_GROUP];
    int8_t vq[LM_POT_GROUP];
    for (int a = 0; a < (heads ? N : H); a++)
        for (int b0 = 0; b0 < (heads ? H : N); b0 += LM_POT_GROUP) {
            const int len = b0 + LM_POT_GROUP < (heads ? H : N) ? LM_POT_GROUP : (heads ? H : N) - b0;
            for (int i = 0; i < len; i++) {
                const int h = heads ? b0 + i : a, n = heads ? a : b0 + i, g = h / (H / G);
                v[i] = lm_rescale((int32_t)q_dt[h] * q_B[(size_t)g * N + n],
                                  s_dt[h / LM_POT_GROUP] + s_B[g * Ng + n / LM_POT_GROUP] - F_dt - F_B + F_dB, dp);
            }
            uint8_t *e = heads ? s + (size_t)a * Hg + b0 / LM_POT_GROUP : s + (size_t)a * Ng + b0 / LM_POT_GROUP;
            lm_pot_quantize_dp(vq, e, v, len, 8, dp);
            for (int i = 0; i < len; i++) q[heads ? (size_t)(b0 + i) * N + a : (size_t)a * N + b0 + i] = vq[i];
        }
}

void lm_int_dB_exps(uint8_t *e, const uint8_t *s, int h, int H, int N, int dp) {
    for (int n = 0; n < N; n++)
        e[n] = dp & LM_DP_DB_HEADS ? s[(size_t)n * lm_pot_groups(H) + h / LM_POT_GROUP]
                                   : s[(size_t)h * (N / LM_POT_GROUP) + n / LM_POT_GROUP];
}

void lm_int_gate(int32_t *out, const int8_t *q_y, const uint8_t *s_y, int F_y, const int8_t *q_z,
                 const uint8_t *s_z, int F_z, int F_out, int n, int dp) {
    for (int i = 0; i < n; i++)
        out[i] = lm_rescale((int32_t)q_y[i] * q_z[i], s_y[i / LM_POT_GROUP] + s_z[i / LM_POT_GROUP] - F_y - F_z + F_out,
                            dp);
}

void lm_int_residual_add(int32_t *u, const int32_t *delta, int n) {
    for (int i = 0; i < n; i++) u[i] = lm_sat32((int64_t)u[i] + delta[i]);
}

void lm_int_residual_from_f32(int32_t *u, const float *x, int n, int dp) {
    for (int i = 0; i < n; i++) {
        const double r = ldexp((double)x[i], LM_RES_F);
        double v = dp & LM_DP_TRUNC ? trunc(r) : floor(r + 0.5);
        u[i] = v != v ? 0 : v > 2147483647.0 ? INT32_MAX : v < -2147483647.0 ? -INT32_MAX : (int32_t)v;
    }
}

void lm_int_residual_to_f32(float *x, const int32_t *u, int n) {
    for (int i = 0; i < n; i++) x[i] = ldexpf((float)u[i], -LM_RES_F);
}
