/* The integer Mamba2 block: the layer builder (floats -> static integer parameters), the state,
 * the one-token forward, and the float step that calibrates it (integer.h). */
#include "integer/integer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"

void lm_int_calib_init(lm_int_calib *cal) {
    for (int i = 0; i < LM_SITE_COUNT; i++) { cal->lo[i] = 0.0; cal->hi[i] = 0.0; }
}

static void record(lm_int_calib *cal, lm_int_site site, const float *x, int n) {
    if (!cal) return;
    for (int i = 0; i < n; i++) {
        if (x[i] < cal->lo[site]) cal->lo[site] = x[i];
        if (x[i] > cal->hi[site]) cal->hi[site] = x[i];
    }
}

static float silu(float x) { return x / (1.0f + expf(-x)); }
static float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

void lm_int_calib_mixer(lm_int_calib *cal, float *v, float *conv_state, float *ssm_state, const float *zxbcdt,
                        const float *conv_w, const float *conv_b, const float *dt_bias, const float *A,
                        const float *D, const lm_config *cfg) {
    const int di = cfg->d_inner, H = cfg->n_heads, P = cfg->head_dim, N = cfg->d_state, G = cfg->n_groups;
    const int W = cfg->d_conv, C = di + 2 * G * N;
    const float *z = zxbcdt, *xbc = zxbcdt + di, *dt_raw = zxbcdt + di + C;
    record(cal, LM_SITE_IP, zxbcdt, 2 * di + 2 * G * N + H);
    record(cal, LM_SITE_Z, z, di);
    float *u = malloc(sizeof(float) * ((size_t)C + 2 * (size_t)di + 3 * (size_t)H + (size_t)H * N));
    if (!u) abort();
    float *zs = u + C, *y = zs + di, *dt = y + di, *dtA = dt + H, *dA = dtA + H, *dB = dA + H;
    for (int c = 0; c < C; c++) {
        float acc = conv_b ? conv_b[c] : 0.0f;
        for (int k = 0; k < W; k++) acc += conv_w[(size_t)c * W + k] * (k < W - 1 ? conv_state[(size_t)k * C + c] : xbc[c]);
        u[c] = acc;
    }
    record(cal, LM_SITE_CONV, u, C);
    for (int c = 0; c < C; c++) u[c] = silu(u[c]);
    record(cal, LM_SITE_U, u, C);
    if (W > 1) {
        memmove(conv_state, conv_state + C, sizeof(float) * (size_t)(W - 2) * C);
        memcpy(conv_state + (size_t)(W - 2) * C, xbc, sizeof(float) * C);
    }
    for (int i = 0; i < di; i++) zs[i] = silu(z[i]);
    record(cal, LM_SITE_ZS, zs, di);
    for (int h = 0; h < H; h++) dt[h] = dt_raw[h] + dt_bias[h];
    record(cal, LM_SITE_DT_IN, dt, H);
    for (int h = 0; h < H; h++) {
        dt[h] = fminf(fmaxf(softplus(dt[h]), cfg->dt_limit_min), cfg->dt_limit_max);
        dtA[h] = dt[h] * A[h];
        dA[h] = expf(dtA[h]);
    }
    record(cal, LM_SITE_DT, dt, H);
    record(cal, LM_SITE_DTA, dtA, H);
    const float *x = u, *B = u + di, *Cm = B + (size_t)G * N;
    for (int h = 0; h < H; h++) {
        const int g = h / (H / G);
        for (int n = 0; n < N; n++) dB[(size_t)h * N + n] = dt[h] * B[(size_t)g * N + n];
    }
    record(cal, LM_SITE_DB, dB, H * N);
    for (int h = 0; h < H; h++) {
        const int g = h / (H / G);
        for (int p = 0; p < P; p++) {
            float *hs = ssm_state + ((size_t)h * P + p) * N, acc = 0.0f, xp = x[h * P + p];
            for (int n = 0; n < N; n++) {
                hs[n] = dA[h] * hs[n] + dB[(size_t)h * N + n] * xp;
                acc += hs[n] * Cm[(size_t)g * N + n];
            }
            record(cal, LM_SITE_H, hs, N);
            y[h * P + p] = acc + D[h] * xp;
        }
    }
    record(cal, LM_SITE_Y, y, di);
    for (int i = 0; i < di; i++) v[i] = y[i] * zs[i];
    record(cal, LM_SITE_G, v, di);
    free(u);
}

/* ---- builder ---- */

static double absmax(const lm_int_calib *cal, lm_int_site s) { return fmax(-cal->lo[s], cal->hi[s]); }

/* A LUT window from a calibrated range: 10 % of its width added on each side, then widened to
 * cover [lo_min, hi_min] where the function's tails are flat (or linear) to output precision,
 * and clipped to what 32-bit inputs at F_in can hold. */
static lm_status build_lut(lm_lut *lut, lm_lut_fn fn, const lm_int_calib *cal, lm_int_site site, double lo_min,
                           double hi_min, int F_in, int F_out) {
    double lo = cal->lo[site], hi = cal->hi[site], pad = 0.1 * (hi - lo);
    lo = fmin(lo - pad, lo_min);
    hi = fmax(hi + pad, hi_min);
    double lim = ldexp(1.0, 30 - F_in);
    lo = fmax(lo, -lim);
    hi = fmin(hi, lim);
    if (fn == LM_LUT_EXP) { lo = fmax(lo, -20.0); hi = 0.0; }   /* dt*A <= 0; exp(-20) ~ 0 */
    return lm_lut_build(lut, fn, lo, hi, F_in, F_out);
}

void lm_int_layer_free(lm_int_layer *L) {
    if (!L) return;
    free(L->dt_bq); free(L->dt_be); free(L->A_q); free(L->A_e); free(L->D_q); free(L->D_e);
    free(L->norm_gq); free(L->gnorm_gq); free(L->conv_w); free(L->conv_ew); free(L->conv_b); free(L->conv_eb);
    memset(L, 0, sizeof *L);
}

/* PoT per 8 heads of a per-head vector, `bits` wide. */
static void head_params(int16_t *q, int8_t *e, const float *v, int H, int bits) {
    lm_pot_weight_quantize(q, e, v, H, LM_POT_GROUP, bits);
}

lm_status lm_int_layer_build(lm_int_layer *L, const float *norm, const float *conv_w, const float *conv_b,
                             const float *dt_bias, const float *A, const float *D, const float *gnorm,
                             const lm_qweight *in_proj, const lm_qweight *out_proj, const lm_config *cfg,
                             const lm_int_calib *cal, int abits) {
    memset(L, 0, sizeof *L);
    const int di = cfg->d_inner, H = cfg->n_heads, P = cfg->head_dim, N = cfg->d_state, G = cfg->n_groups;
    const int W = cfg->d_conv, C = di + 2 * G * N, E = 2 * di + 2 * G * N + H, D_ = cfg->d_model;
    if (P % 8 || N % 8 || D_ % 8 || di % (8 * G) || H % G || W < 1 || (abits != 4 && abits != 8))
        return lm_fail(LM_ERR_UNSUPPORTED, "integer block: needs head_dim, d_state, d_model, d_inner/groups in "
                       "multiples of 8 and 4- or 8-bit activations (got P %d, N %d, D %d, abits %d)", P, N, D_, abits);
    if (in_proj->rows != E || in_proj->cols != D_ || out_proj->rows != D_ || out_proj->cols != di)
        return lm_fail(LM_ERR_ARG, "integer block: in_proj/out_proj shapes do not match the config");
    *L = (lm_int_layer){.D = D_, .d_inner = di, .H = H, .P = P, .N = N, .G = G, .W = W, .C = C, .E = E,
                        .abits = abits, .eps = cfg->eps, .in_proj = in_proj, .out_proj = out_proj};
    const int Cg = C / 8, Hg = lm_pot_groups(H);
    lm_status st = LM_OK;
#define ALLOC(ptr, n) if (st == LM_OK) st = lm_calloc(&(ptr), (size_t)(n), sizeof *(ptr), "integer layer")
    ALLOC(L->norm_gq, D_); ALLOC(L->gnorm_gq, di); ALLOC(L->conv_w, (size_t)C * W); ALLOC(L->conv_ew, (size_t)Cg * W);
    ALLOC(L->conv_b, C); ALLOC(L->conv_eb, Cg); ALLOC(L->dt_bq, H); ALLOC(L->dt_be, Hg);
    ALLOC(L->A_q, H); ALLOC(L->A_e, Hg); ALLOC(L->D_q, H); ALLOC(L->D_e, Hg);
#undef ALLOC
    if (st != LM_OK) { lm_int_layer_free(L); return st; }

    /* fixed points of the sites */
    L->F_ip = lm_site_F(absmax(cal, LM_SITE_IP), 8);
    const int F_conv = lm_site_F(absmax(cal, LM_SITE_CONV), 8);
    L->F_u = lm_site_F(absmax(cal, LM_SITE_U), 8);
    L->F_zs = lm_site_F(absmax(cal, LM_SITE_ZS), 8);
    L->F_dt = lm_site_F(absmax(cal, LM_SITE_DT), 8);
    const int F_dtA = lm_site_F(fmax(absmax(cal, LM_SITE_DTA), 20.0), 8);  /* the exp window reaches -20 */
    L->F_dA = lm_site_F(1.0, 8);                                           /* 0 < dA <= 1 */
    L->F_dB = lm_site_F(absmax(cal, LM_SITE_DB), 8);
    L->F_h = lm_site_F(absmax(cal, LM_SITE_H), 8);
    L->F_y = lm_site_F(absmax(cal, LM_SITE_Y), 8);
    L->F_g = lm_site_F(absmax(cal, LM_SITE_G), 8);

    /* norms: the block norm reads the Q10 residual, the gated norm the gate's product */
    if ((st = lm_int_norm_build(&L->norm, L->norm_gq, norm, D_, D_, cfg->eps, LM_RES_F, 1.0, abits)) ||
        (st = lm_int_norm_build(&L->gnorm, L->gnorm_gq, gnorm, di, di / G, cfg->eps, L->F_g, 1.0, abits))) {
        lm_int_layer_free(L);
        return st;
    }

    /* conv: 8-bit weights, PoT per (8-channel tile, tap); 8-bit bias, PoT per tile */
    for (int g = 0; g < Cg; g++)
        for (int k = 0; k < W; k++) {
            float w8[8]; int16_t q8[8];
            for (int i = 0; i < 8; i++) w8[i] = conv_w[(size_t)(g * 8 + i) * W + k];
            lm_pot_weight_quantize(q8, &L->conv_ew[(size_t)g * W + k], w8, 8, 8, 8);
            for (int i = 0; i < 8; i++) L->conv_w[(size_t)(g * 8 + i) * W + k] = (int8_t)q8[i];
        }
    if (conv_b) {
        int16_t *bq = malloc(sizeof(int16_t) * C);
        if (!bq) { lm_int_layer_free(L); return lm_fail(LM_ERR_NOMEM, "integer layer: out of memory"); }
        lm_pot_weight_quantize(bq, L->conv_eb, conv_b, C, 8, 8);
        for (int c = 0; c < C; c++) L->conv_b[c] = (int8_t)bq[c];
        free(bq);
    }
    L->conv = (lm_int_conv){.C = C, .W = W, .F_in = L->F_ip, .F_out = F_conv, .w = L->conv_w, .ew = L->conv_ew,
                            .b = conv_b ? L->conv_b : NULL, .eb = L->conv_eb};

    head_params(L->dt_bq, L->dt_be, dt_bias, H, 16);
    head_params(L->A_q, L->A_e, A, H, 16);
    head_params(L->D_q, L->D_e, D, H, 8);
    double lo = ceil(ldexp(cfg->dt_limit_min, L->F_dt)), hi = floor(ldexp(cfg->dt_limit_max, L->F_dt));
    L->dt_lo = lo < 0 ? 0 : lo > 2147483647.0 ? INT32_MAX : (int32_t)lo;
    L->dt_hi = !(hi < 2147483647.0) ? INT32_MAX : (int32_t)hi;

    if ((st = build_lut(&L->silu_xbc, LM_LUT_SILU, cal, LM_SITE_CONV, -8.0, 8.0, F_conv, L->F_u)) ||
        (st = build_lut(&L->silu_z, LM_LUT_SILU, cal, LM_SITE_Z, -8.0, 8.0, L->F_ip, L->F_zs)) ||
        (st = build_lut(&L->softplus, LM_LUT_SOFTPLUS, cal, LM_SITE_DT_IN, -12.0, 8.0, L->F_ip, L->F_dt)) ||
        (st = build_lut(&L->exp, LM_LUT_EXP, cal, LM_SITE_DTA, -20.0, 0.0, F_dtA, L->F_dA))) {
        lm_int_layer_free(L);
        return st;
    }
    return LM_OK;
}

/* ---- state and scratch ---- */

lm_status lm_int_state_init(lm_int_state *st, const lm_int_layer *L) {
    memset(st, 0, sizeof *st);
    size_t rows = (size_t)(L->W > 1 ? L->W - 1 : 1), hn = (size_t)L->H * L->P * L->N;
    if (lm_calloc(&st->conv_q, rows, (size_t)L->C, "conv state") || lm_calloc(&st->conv_s, rows, (size_t)L->C / 8, "conv state") ||
        lm_calloc(&st->h_q, hn, 1, "ssm state") || lm_calloc(&st->h_s, hn / 8, 1, "ssm state")) {
        lm_int_state_free(st);
        return LM_ERR_NOMEM;
    }
    return LM_OK;
}

void lm_int_state_free(lm_int_state *st) {
    if (!st) return;
    free(st->conv_q); free(st->conv_s); free(st->h_q); free(st->h_s);
    memset(st, 0, sizeof *st);
}

struct lm_int_scratch {
    int32_t *wide;        /* [max(E, P*N, D)] */
    int32_t *conv_out;    /* [C] */
    int32_t *y;           /* [max(d_inner, D)] */
    int8_t *q;  uint8_t *s;        /* [max(D, d_inner, C)] pot scratch for the linear inputs, xBC */
    int8_t *qa; uint8_t *sa;       /* packed linear input */
    int8_t *u_q; uint8_t *u_s;     /* [C] x | B | C */
    int8_t *z_q; uint8_t *z_s;     /* [d_inner] */
    int8_t *y_q; uint8_t *y_s;     /* [d_inner] */
    int8_t *dt_q, *dA_q; uint8_t *dt_s, *dA_s;   /* [H] */
    int8_t *dB_q; uint8_t *dB_s;   /* [H, N] */
    int8_t *h2_q; uint8_t *h2_s;   /* [P, N] */
};

void lm_int_scratch_free(lm_int_scratch *ws) {
    if (!ws) return;
    free(ws->wide); free(ws->conv_out); free(ws->y); free(ws->q); free(ws->s); free(ws->qa); free(ws->sa);
    free(ws->u_q); free(ws->u_s); free(ws->z_q); free(ws->z_s); free(ws->y_q); free(ws->y_s);
    free(ws->dt_q); free(ws->dA_q); free(ws->dt_s); free(ws->dA_s); free(ws->dB_q); free(ws->dB_s);
    free(ws->h2_q); free(ws->h2_s);
    free(ws);
}

lm_status lm_int_scratch_init(lm_int_scratch **out, const lm_int_layer *L) {
    lm_int_scratch *ws = NULL;
    LM_TRY(lm_calloc(&ws, 1, sizeof *ws, "integer scratch"));
    size_t wide = (size_t)L->E, PN = (size_t)L->P * L->N, HN = (size_t)L->H * L->N;
    if (PN > wide) wide = PN;
    size_t big = (size_t)(L->C > L->D ? L->C : L->D);
    lm_status st = LM_OK;
#define ALLOC(ptr, n) if (st == LM_OK) st = lm_calloc(&(ws->ptr), (size_t)(n) + 8, sizeof *(ws->ptr), "integer scratch")
    ALLOC(wide, wide); ALLOC(conv_out, L->C); ALLOC(y, L->d_inner > L->D ? L->d_inner : L->D); ALLOC(q, big); ALLOC(s, big / 8);
    ALLOC(qa, big); ALLOC(sa, big / 8); ALLOC(u_q, L->C); ALLOC(u_s, L->C / 8); ALLOC(z_q, L->d_inner);
    ALLOC(z_s, L->d_inner / 8); ALLOC(y_q, L->d_inner); ALLOC(y_s, L->d_inner / 8); ALLOC(dt_q, L->H);
    ALLOC(dA_q, L->H); ALLOC(dt_s, L->H); ALLOC(dA_s, L->H); ALLOC(dB_q, HN); ALLOC(dB_s, HN / 8);
    ALLOC(h2_q, PN); ALLOC(h2_s, PN / 8);
#undef ALLOC
    if (st != LM_OK) { lm_int_scratch_free(ws); return st; }
    *out = ws;
    return LM_OK;
}

/* ---- forward ---- */

/* Norm output (wide) -> pot(abits) -> the kernels.h activation format -> the linear layer. */
static void norm_linear(int32_t *y, const int32_t *x, const lm_int_norm *norm, const lm_qweight *W, int F_y,
                        int abits, lm_int_scratch *ws, int32_t *tmp) {
    int eb;
    lm_int_rmsnorm(tmp, x, norm);
    lm_pot_quantize(ws->q, ws->s, tmp, norm->n, abits);
    lm_int_act_pack(ws->qa, ws->sa, &eb, ws->q, ws->s, norm->F_out, norm->n, abits);
    lm_int_linear_fixed(y, ws->qa, ws->sa, eb, W, F_y);
}

void lm_int_block_forward(int32_t *u, lm_int_state *st, const lm_int_layer *L, lm_int_scratch *ws) {
    const int di = L->d_inner, H = L->H, P = L->P, N = L->N, G = L->G, C = L->C;
    int32_t *zxbcdt = ws->wide;
    /* RMSNorm -> in_proj, output wide at F_ip */
    norm_linear(zxbcdt, u, &L->norm, L->in_proj, L->F_ip, L->abits, ws, ws->y);
    const int32_t *z = zxbcdt, *xbc = zxbcdt + di, *dt_raw = zxbcdt + di + C;
    /* conv on pot8 xBC, SiLU, pot8 x | B | C */
    lm_pot_quantize(ws->q, ws->s, xbc, C, 8);
    lm_int_conv_forward(ws->conv_out, st->conv_q, st->conv_s, ws->q, ws->s, &L->conv);
    lm_int_lut_quantize(ws->u_q, ws->u_s, ws->conv_out, C, &L->silu_xbc, 8);
    lm_int_lut_quantize(ws->z_q, ws->z_s, z, di, &L->silu_z, 8);
    /* dt, dA, dB */
    lm_int_dt(ws->dt_q, ws->dt_s, dt_raw, L->dt_bq, L->dt_be, L->dt_lo, L->dt_hi, &L->softplus, H);
    lm_int_dA(ws->dA_q, ws->dA_s, ws->dt_q, ws->dt_s, L->F_dt, L->A_q, L->A_e, &L->exp, H);
    const int8_t *Bq = ws->u_q + di, *Cq = Bq + (size_t)G * N;
    const uint8_t *Bs = ws->u_s + di / 8, *Cs = Bs + (size_t)G * N / 8;
    lm_int_dB(ws->dB_q, ws->dB_s, ws->dt_q, ws->dt_s, L->F_dt, Bq, Bs, L->F_u, L->F_dB, H, G, N);
    /* the state, head by head (ws->wide, free now that z, xBC and dt_raw are consumed, is the
     * head's wide h) */
    const lm_int_head_sites f = {.P = P, .N = N, .F_x = L->F_u, .F_dA = L->F_dA, .F_dB = L->F_dB, .F_h = L->F_h,
                                 .F_C = L->F_u, .F_y = L->F_y};
    for (int h = 0; h < H; h++) {
        const int g = h / (H / G), hg = h / 8;
        lm_int_ssm_head(ws->y + (size_t)h * P, st->h_q + (size_t)h * P * N, st->h_s + (size_t)h * (P / 8) * N,
                        ws->h2_q, ws->h2_s, ws->wide, ws->dA_q[h], ws->dA_s[hg], ws->dB_q + (size_t)h * N,
                        ws->dB_s + (size_t)h * (N / 8), ws->u_q + (size_t)h * P, ws->u_s + (size_t)h * P / 8,
                        Cq + (size_t)g * N, Cs + (size_t)g * N / 8, L->D_q[h], L->D_e[hg], &f);
    }
    /* y -> pot8, gate with SiLU(z), gated norm -> out_proj -> residual */
    lm_pot_quantize(ws->y_q, ws->y_s, ws->y, di, 8);
    lm_int_gate(ws->y, ws->y_q, ws->y_s, L->F_y, ws->z_q, ws->z_s, L->F_zs, L->F_g, di);
    norm_linear(ws->wide, ws->y, &L->gnorm, L->out_proj, LM_RES_F, L->abits, ws, ws->conv_out);
    lm_int_residual_add(u, ws->wide, L->D);
}
