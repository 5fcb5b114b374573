/* The integer Mamba2 block: the layer builder (floats -> static integer parameters), the state,
 * the one-token forward, and the float step that calibrates it (integer.h). */
#include "integer/integer.h"

#include <math.h>
#include <stdio.h>
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

/* The sum of squares of x [n] into site's range. */
static void record_sumsq(lm_int_calib *cal, lm_int_site site, const float *x, int n) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float v = (float)ss;
    record(cal, site, &v, 1);
}

void lm_int_calib_norm_input(lm_int_calib *cal, const float *x, int n) { record_sumsq(cal, LM_SITE_SS_NORM, x, n); }

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
    for (int g = 0; g < G; g++) record_sumsq(cal, LM_SITE_SS_GNORM, v + (size_t)g * (di / G), di / G);
    free(u);
}

/* ---- builder ---- */

static double absmax(const lm_int_calib *cal, lm_int_site s) { return fmax(-cal->lo[s], cal->hi[s]); }

/* A LUT window from a calibrated range: 10 % of its width added on each side, then widened to
 * cover [lo_min, hi_min] where the function's tails are flat (or linear) to output precision,
 * and clipped to what 32-bit inputs at F_in can hold. */
static lm_status build_lut(lm_lut *lut, lm_lut_fn fn, const lm_int_calib *cal, lm_int_site site, double lo_min,
                           double hi_min, int F_in, int F_out, int dp) {
    double lo = cal->lo[site], hi = cal->hi[site], pad = 0.1 * (hi - lo);
    lo = fmin(lo - pad, lo_min);
    hi = fmax(hi + pad, hi_min);
    double lim = ldexp(1.0, 30 - F_in);
    lo = fmax(lo, -lim);
    hi = fmin(hi, lim);
    if (fn == LM_LUT_EXP) { lo = fmax(lo, -20.0); hi = 0.0; }   /* dt*A <= 0; exp(-20) ~ 0 */
    return lm_lut_build(lut, fn, lo, hi, F_in, F_out, dp);
}

/* The release's fixed points (LM_DP_SITES, docs/release-datapath.md section 2). */
enum {
    REL_F = 10,        /* residual, in_proj output, conv, SiLU in and out, dt, and the weights A, D, dt_bias, conv */
    REL_F_DA = 6,      /* exp output */
    REL_F_DB = 20,     /* dt B */
    REL_F_H = 19,      /* the state */
    REL_F_Y = 12,      /* y, the gate's output, the gated norm's input */
    REL_F_LNW = 8,     /* gamma (LNW) at most */
};

/* A static weight the release's way (LM_DP_SITES): X = round(w 2^F) at its fixed point, then the
 * group quantizer of dp at `bits` (exponents 0..15: Quant::forward); q int16, e = s - F (w ~ q 2^e). */
static void site_weight_quantize(int16_t *q, int8_t *e, const float *w, int n, int group, int bits, int F, int dp) {
    const int32_t qmax = (1 << (bits - 1)) - 1, qmin = dp & LM_DP_QRULE ? -qmax - 1 : -qmax;
    for (int g0 = 0; g0 < n; g0 += group) {
        const int g1 = g0 + group < n ? g0 + group : n;
        int32_t X[64];
        uint32_t m = 0;
        for (int i = g0; i < g1; i++) {
            double v = floor(ldexp((double)w[i], F) + 0.5);
            X[i - g0] = v != v ? 0 : v > 2147483647.0 ? INT32_MAX : v < -2147483647.0 ? -INT32_MAX : (int32_t)v;
            uint32_t a = X[i - g0] < 0 ? (uint32_t)0 - (uint32_t)X[i - g0] : (uint32_t)X[i - g0];
            if (a > m) m = a;
        }
        const int s = lm_pot_exponent_dp(m, bits, dp);
        e[g0 / group] = (int8_t)(s - F);
        for (int i = g0; i < g1; i++) {
            int32_t v = lm_shift_sat32(X[i - g0], -s);
            q[i] = (int16_t)(v > qmax ? qmax : v < qmin ? qmin : v);
        }
    }
}

/* A per-head or per-channel static weight of the datapath: ours (the pot weight rule) or the
 * release's at fixed point F. */
static void weight_quantize(int16_t *q, int8_t *e, const float *w, int n, int group, int bits, int F, int dp) {
    if (dp & LM_DP_SITES) site_weight_quantize(q, e, w, n, group, bits, F, dp);
    else lm_pot_weight_quantize(q, e, w, n, group, bits);
}

/* The release's norm tables cover raw sums of squares (input LSBs^2) from lo to hi = twice the
 * calibrated largest (reals: ss_max), lo = hi 2^-30 (the release's own ranges span 1e-4..2e7 and
 * 0.1..1.7e7; how it chose them is not public). */
static lm_status norm8_build(lm_int_norm *p, int16_t *gq, lm_rsqrt8 *tab, const float *gamma, int n, int group,
                             int F_in, double extra, int out_bits, int gamma_bits, double ss_max, int dp) {
    if (!(ss_max > 0.0) || !isfinite(ss_max))
        return lm_fail(LM_ERR_ARG, "integer block: the release's RMSNorm needs its input's calibrated sum of squares");
    const int e = lm_norm8_gamma_exponent(gamma, n, extra, gamma_bits, dp & LM_DP_SITES ? -REL_F_LNW : -64);
    int F_n = F_in;                               /* the release: normalised values at the input's site */
    if (!(dp & LM_DP_SITES)) {
        /* ours: the output at the site rule of section 3 (|out| <= max|gamma extra| sqrt(group), and
         * the 2-norm bound sqrt(n / group) times that), which fixes where the normalised values sit */
        float m = 0.0f;
        for (int i = 0; i < n; i++) m = fmaxf(m, fabsf((float)((gamma ? gamma[i] : 1.0f) * extra)));
        F_n = lm_site_F(sqrt((double)n) * m, out_bits) + e + LM_NORM8_TRUNC2;
    }
    const double hi = ldexp(2.0 * ss_max, 2 * F_in), lo = ldexp(hi, -30);
    return lm_int_norm8_build(p, gq, tab, gamma, n, group, F_in, F_n, extra, gamma_bits, e, lo, hi - lo);
}

/* The block norm (over d_model, input the Q10 residual) or the gated norm (groups of d_inner / G,
 * input at F_g) of the layer's datapath. */
static lm_status build_norm(lm_int_layer *L, int gated, const float *gamma, const lm_int_calib *cal, double extra,
                            int out_bits) {
    lm_int_norm *p = gated ? &L->gnorm : &L->norm;
    int16_t *gq = gated ? L->gnorm_gq : L->norm_gq;
    const int n = gated ? L->d_inner : L->D, group = gated ? L->d_inner / L->G : L->D, F_in = gated ? L->F_g : LM_RES_F;
    if (!(L->dp & LM_DP_NORM8)) return lm_int_norm_build(p, gq, gamma, n, group, L->eps, F_in, extra, out_bits);
    if (gated && cal) L->gnorm_ss_max = cal->hi[LM_SITE_SS_GNORM];
    return norm8_build(p, gq, gated ? L->gnorm_rsqrt8 : L->norm_rsqrt8, gamma, n, group, F_in, extra, out_bits,
                       gated ? 13 : 11, gated ? L->gnorm_ss_max : cal->hi[LM_SITE_SS_NORM], L->dp);
}

void lm_int_layer_free(lm_int_layer *L) {
    if (!L) return;
    free(L->dt_bq); free(L->dt_be); free(L->A_q); free(L->A_e); free(L->D_q); free(L->D_e);
    free(L->norm_gq); free(L->gnorm_gq); free(L->conv_w); free(L->conv_ew); free(L->conv_b); free(L->conv_eb);
    free(L->norm_rsqrt8); free(L->gnorm_rsqrt8);
    memset(L, 0, sizeof *L);
}

lm_status lm_int_layer_build(lm_int_layer *L, const float *norm, const float *conv_w, const float *conv_b,
                             const float *dt_bias, const float *A, const float *D, const float *gnorm,
                             const lm_qweight *in_proj, const lm_qweight *out_proj, const lm_config *cfg,
                             const lm_int_calib *cal, int abits, int dp) {
    memset(L, 0, sizeof *L);
    if (dp & ~LM_DP_RELEASE) return lm_fail(LM_ERR_ARG, "integer block: unknown datapath flags 0x%x", (unsigned)dp);
    const int di = cfg->d_inner, H = cfg->n_heads, P = cfg->head_dim, N = cfg->d_state, G = cfg->n_groups;
    const int W = cfg->d_conv, C = di + 2 * G * N, E = 2 * di + 2 * G * N + H, D_ = cfg->d_model;
    if (P % 8 || N % 8 || D_ % 8 || di % (8 * G) || H % G || W < 1 || (abits != 4 && abits != 8))
        return lm_fail(LM_ERR_UNSUPPORTED, "integer block: needs head_dim, d_state, d_model, d_inner/groups in "
                       "multiples of 8 and 4- or 8-bit activations (got P %d, N %d, D %d, abits %d)", P, N, D_, abits);
    if (in_proj->rows != E || in_proj->cols != D_ || out_proj->rows != D_ || out_proj->cols != di)
        return lm_fail(LM_ERR_ARG, "integer block: in_proj/out_proj shapes do not match the config");
    *L = (lm_int_layer){.D = D_, .d_inner = di, .H = H, .P = P, .N = N, .G = G, .W = W, .C = C, .E = E,
                        .abits = abits, .dp = dp, .eps = cfg->eps, .in_proj = in_proj, .out_proj = out_proj};
    const int Cg = C / 8, Hg = lm_pot_groups(H);
    lm_status st = LM_OK;
#define ALLOC(ptr, n) if (st == LM_OK) st = lm_calloc(&(ptr), (size_t)(n), sizeof *(ptr), "integer layer")
    ALLOC(L->norm_gq, D_); ALLOC(L->gnorm_gq, di); ALLOC(L->conv_w, (size_t)C * W); ALLOC(L->conv_ew, (size_t)Cg * W);
    ALLOC(L->conv_b, C); ALLOC(L->conv_eb, Cg); ALLOC(L->dt_bq, H); ALLOC(L->dt_be, Hg);
    ALLOC(L->A_q, H); ALLOC(L->A_e, Hg); ALLOC(L->D_q, H); ALLOC(L->D_e, Hg);
    if (dp & LM_DP_NORM8) { ALLOC(L->norm_rsqrt8, 1); ALLOC(L->gnorm_rsqrt8, 1); }
#undef ALLOC
    if (st != LM_OK) { lm_int_layer_free(L); return st; }

    /* fixed points of the sites: calibrated (ours) or the release's constants */
    const int sites = dp & LM_DP_SITES;
    L->F_ip = sites ? REL_F : lm_site_F(absmax(cal, LM_SITE_IP), 8);
    const int F_conv = sites ? REL_F : lm_site_F(absmax(cal, LM_SITE_CONV), 8);
    L->F_u = sites ? REL_F : lm_site_F(absmax(cal, LM_SITE_U), 8);
    L->F_zs = sites ? REL_F : lm_site_F(absmax(cal, LM_SITE_ZS), 8);
    L->F_dt = sites ? REL_F : lm_site_F(absmax(cal, LM_SITE_DT), 8);
    const int F_dtA = sites ? REL_F : lm_site_F(fmax(absmax(cal, LM_SITE_DTA), 20.0), 8);  /* exp's window reaches -20 */
    L->F_dA = sites ? REL_F_DA : lm_site_F(1.0, 8);                                       /* 0 < dA <= 1 */
    L->F_dB = sites ? REL_F_DB : lm_site_F(absmax(cal, LM_SITE_DB), 8);
    L->F_h = sites ? REL_F_H : lm_site_F(absmax(cal, LM_SITE_H), 8);
    L->F_y = sites ? REL_F_Y : lm_site_F(absmax(cal, LM_SITE_Y), 8);
    L->F_g = sites ? REL_F_Y : lm_site_F(absmax(cal, LM_SITE_G), 8);

    /* norms: the block norm reads the Q10 residual, the gated norm the gate's product */
    if ((st = build_norm(L, 0, norm, cal, 1.0, abits)) || (st = build_norm(L, 1, gnorm, cal, 1.0, abits))) {
        lm_int_layer_free(L);
        return st;
    }

    /* conv: 8-bit weights, PoT per (8-channel tile, tap); 8-bit bias, PoT per tile (the release:
     * weights at Q10, the bias at the products' Q20) */
    for (int g = 0; g < Cg; g++)
        for (int k = 0; k < W; k++) {
            float w8[8]; int16_t q8[8];
            for (int i = 0; i < 8; i++) w8[i] = conv_w[(size_t)(g * 8 + i) * W + k];
            weight_quantize(q8, &L->conv_ew[(size_t)g * W + k], w8, 8, 8, 8, REL_F, dp);
            for (int i = 0; i < 8; i++) L->conv_w[(size_t)(g * 8 + i) * W + k] = (int8_t)q8[i];
        }
    if (conv_b) {
        int16_t *bq = malloc(sizeof(int16_t) * C);
        if (!bq) { lm_int_layer_free(L); return lm_fail(LM_ERR_NOMEM, "integer layer: out of memory"); }
        weight_quantize(bq, L->conv_eb, conv_b, C, 8, 8, 2 * REL_F, dp);
        for (int c = 0; c < C; c++) L->conv_b[c] = (int8_t)bq[c];
        free(bq);
    }
    L->conv = (lm_int_conv){.C = C, .W = W, .F_in = L->F_ip, .F_out = F_conv, .dp = dp, .w = L->conv_w,
                            .ew = L->conv_ew, .b = conv_b ? L->conv_b : NULL, .eb = L->conv_eb};

    /* per 8 heads: dt_bias 16-bit (the release's 8-bit), A 16-bit, D 8-bit */
    weight_quantize(L->dt_bq, L->dt_be, dt_bias, H, LM_POT_GROUP, sites ? 8 : 16, REL_F, dp);
    weight_quantize(L->A_q, L->A_e, A, H, LM_POT_GROUP, 16, REL_F, dp);
    weight_quantize(L->D_q, L->D_e, D, H, LM_POT_GROUP, 8, REL_F, dp);
    double lo = ceil(ldexp(cfg->dt_limit_min, L->F_dt)), hi = floor(ldexp(cfg->dt_limit_max, L->F_dt));
    L->dt_lo = lo < 0 ? 0 : lo > 2147483647.0 ? INT32_MAX : (int32_t)lo;
    L->dt_hi = !(hi < 2147483647.0) ? INT32_MAX : (int32_t)hi;

    if (sites) {
        /* the release's windows (Silu, DtAdapt, Exp in layers.h): [-25, 103), [-25, 39), [-20, 12) at Q10 */
        st = lm_lut_build_window(&L->silu_xbc, LM_LUT_SILU, -25 * (1 << REL_F), 5, REL_F, REL_F, dp);
        if (!st) st = lm_lut_build_window(&L->silu_z, LM_LUT_SILU, -25 * (1 << REL_F), 5, REL_F, REL_F, dp);
        if (!st) st = lm_lut_build_window(&L->softplus, LM_LUT_SOFTPLUS, -25 * (1 << REL_F), 4, REL_F, REL_F, dp);
        if (!st) st = lm_lut_build_window(&L->exp, LM_LUT_EXP, -20 * (1 << REL_F), 3, REL_F, REL_F_DA, dp);
    } else {
        st = build_lut(&L->silu_xbc, LM_LUT_SILU, cal, LM_SITE_CONV, -8.0, 8.0, F_conv, L->F_u, dp);
        if (!st) st = build_lut(&L->silu_z, LM_LUT_SILU, cal, LM_SITE_Z, -8.0, 8.0, L->F_ip, L->F_zs, dp);
        if (!st) st = build_lut(&L->softplus, LM_LUT_SOFTPLUS, cal, LM_SITE_DT_IN, -12.0, 8.0, L->F_ip, L->F_dt, dp);
        if (!st) st = build_lut(&L->exp, LM_LUT_EXP, cal, LM_SITE_DTA, -20.0, 0.0, F_dtA, L->F_dA, dp);
    }
    if (st) lm_int_layer_free(L);
    return st;
}

lm_status lm_int_layer_set_rotation(lm_int_layer *L, const float *gnorm, const int8_t *Hm, int m) {
    if (m < 1 || m > LM_INT_HADAMARD_MAX_BASE || L->d_inner % m || (L->d_inner / m & (L->d_inner / m - 1)))
        return lm_fail(LM_ERR_ARG, "integer block: no %d x %d Hadamard base for d_inner %d", m, m, L->d_inner);
    const int di = L->d_inner, group = di / L->G;
    /* gamma / sqrt(n): the norm's output is wide (the rotation comes before any pot), so it gets
     * the 8-bit site rule's headroom whatever abits is */
    LM_TRY(build_norm(L, 1, gnorm, NULL, 1.0 / sqrt((double)di), 8));
    /* rotated entries: |(H/sqrt(n)) v|_inf <= |v|_2 <= max|gamma sqrt(group)| sqrt(n / group) */
    float gmax = 0.0f;
    for (int i = 0; i < di; i++) gmax = fmaxf(gmax, fabsf(gnorm ? gnorm[i] : 1.0f));
    L->F_rot = lm_site_F((double)gmax * sqrt((double)group) * sqrt((double)di / group), L->abits);
    L->rot_m = m;
    L->rot_Hm = Hm;
    return LM_OK;
}

void lm_int_layer_scalars(const lm_int_layer *L, int32_t out[LM_INT_SCALARS]) {
    const int32_t v[LM_INT_SCALARS] = {
        [LM_SC_F_IP] = L->F_ip, [LM_SC_F_CONV] = L->conv.F_out, [LM_SC_F_U] = L->F_u, [LM_SC_F_ZS] = L->F_zs,
        [LM_SC_F_DT] = L->F_dt, [LM_SC_F_DTA] = L->exp.F_in, [LM_SC_F_DA] = L->F_dA, [LM_SC_F_DB] = L->F_dB,
        [LM_SC_F_H] = L->F_h, [LM_SC_F_Y] = L->F_y, [LM_SC_F_G] = L->F_g, [LM_SC_DT_LO] = L->dt_lo,
        [LM_SC_DT_HI] = L->dt_hi, [LM_SC_NORM_F_OUT] = L->norm.F_out, [LM_SC_NORM_E_GAMMA] = L->norm.e_gamma,
        [LM_SC_NORM_EPS_LO] = (int32_t)(uint32_t)L->norm.eps_term,
        [LM_SC_NORM_EPS_HI] = (int32_t)(uint32_t)(L->norm.eps_term >> 32), [LM_SC_GNORM_F_OUT] = L->gnorm.F_out,
        [LM_SC_GNORM_E_GAMMA] = L->gnorm.e_gamma, [LM_SC_GNORM_EPS_LO] = (int32_t)(uint32_t)L->gnorm.eps_term,
        [LM_SC_GNORM_EPS_HI] = (int32_t)(uint32_t)(L->gnorm.eps_term >> 32), [LM_SC_ABITS] = L->abits,
        [LM_SC_ROT_M] = L->rot_m, [LM_SC_F_ROT] = L->F_rot};
    memcpy(out, v, sizeof v);
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

/* The per-token operands: one block, sliced. */
lm_status lm_int_tokens_init(lm_int_token **out, int n, const lm_int_layer *L) {
    *out = NULL;
    const size_t C = (size_t)L->C, di = (size_t)L->d_inner, H = (size_t)L->H, Hg = (size_t)lm_pot_groups(L->H),
                 HN = H * L->N, dBe = (size_t)lm_int_dB_exp_count(L->H, L->N, L->dp);
    const size_t per = C + C / 8 + di + di / 8 + H + Hg + HN + dBe;
    lm_int_token *t = NULL;
    uint8_t *b = NULL;
    if (lm_calloc(&t, (size_t)n, sizeof *t, "integer tokens") || lm_calloc(&b, (size_t)n, per, "integer tokens")) {
        free(t);
        return LM_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        uint8_t *p = b + (size_t)i * per;
#define SLICE(field, count) (t[i].field = (void *)p, p += (count))
        SLICE(u_q, C); SLICE(u_s, C / 8); SLICE(z_q, di); SLICE(z_s, di / 8); SLICE(dA_q, H); SLICE(dA_s, Hg);
        SLICE(dB_q, HN); SLICE(dB_s, dBe);
#undef SLICE
    }
    *out = t;
    return LM_OK;
}

void lm_int_tokens_free(lm_int_token *toks) {
    if (!toks) return;
    free(toks[0].u_q);   /* the block's start */
    free(toks);
}

struct lm_int_scratch {
    int32_t *wide;        /* [max(E, D)]: in_proj output, out_proj output */
    int32_t *conv_out;    /* [C] */
    int32_t *norm;        /* [max(D, d_inner)]: a norm's output, the rotated values */
    int32_t *y, *g;       /* [d_inner]: SSM output, gate output */
    int64_t *rot;         /* [d_inner] Hadamard scratch */
    int8_t *q;  uint8_t *s;        /* [max(D, d_inner, C)] pot scratch */
    int8_t *qa; uint8_t *sa;       /* packed linear input */
    int8_t *dt_q; uint8_t *dt_s;   /* [H], [ceil(H/8)] */
    int8_t *y_q; uint8_t *y_s;     /* [d_inner] */
    int8_t *h2_q; uint8_t *h2_s;   /* [P, N]: one head's state per 8 states */
    int32_t *hw;                   /* [P, N]: one head's wide state */
    uint8_t *dB_e;                 /* [N]: one head's dB exponent per state */
    lm_int_token *tok;             /* one token's operands (lm_int_block_forward) */
};

void lm_int_scratch_free(lm_int_scratch *ws) {
    if (!ws) return;
    free(ws->wide); free(ws->conv_out); free(ws->norm); free(ws->y); free(ws->g); free(ws->rot);
    free(ws->q); free(ws->s); free(ws->qa); free(ws->sa); free(ws->dt_q); free(ws->dt_s);
    free(ws->y_q); free(ws->y_s); free(ws->h2_q); free(ws->h2_s); free(ws->hw); free(ws->dB_e);
    lm_int_tokens_free(ws->tok);
    free(ws);
}

lm_status lm_int_scratch_init(lm_int_scratch **out, const lm_int_layer *L) {
    lm_int_scratch *ws = NULL;
    LM_TRY(lm_calloc(&ws, 1, sizeof *ws, "integer scratch"));
    const size_t PN = (size_t)L->P * L->N, di = (size_t)L->d_inner, D = (size_t)L->D;
    const size_t wide = (size_t)L->E > D ? (size_t)L->E : D, nd = D > di ? D : di;
    const size_t big = (size_t)L->C > nd ? (size_t)L->C : nd, Hg = (size_t)lm_pot_groups(L->H);
    lm_status st = LM_OK;
#define ALLOC(ptr, n) if (st == LM_OK) st = lm_calloc(&(ws->ptr), (size_t)(n) + 8, sizeof *(ws->ptr), "integer scratch")
    ALLOC(wide, wide); ALLOC(conv_out, L->C); ALLOC(norm, nd); ALLOC(y, di); ALLOC(g, di); ALLOC(rot, di);
    ALLOC(q, big); ALLOC(s, big / 8); ALLOC(qa, big); ALLOC(sa, big / 8); ALLOC(dt_q, L->H); ALLOC(dt_s, Hg);
    ALLOC(y_q, di); ALLOC(y_s, di / 8); ALLOC(h2_q, PN); ALLOC(h2_s, PN / 8); ALLOC(hw, PN); ALLOC(dB_e, L->N);
#undef ALLOC
    if (st == LM_OK) st = lm_int_tokens_init(&ws->tok, 1, L);
    if (st != LM_OK) { lm_int_scratch_free(ws); return st; }
    *out = ws;
    return LM_OK;
}

/* ---- forward ---- */

static void trace(const lm_int_tracer *tr, const char *name, lm_int_dtype dt, const void *data, int n0, int n1, int F) {
    if (tr) tr->array(tr->ctx, name, dt, data, n0, n1, F);
}

/* A pot pair: name.q (int8) and name.s (its exponents, one per 8 along the last axis). */
static void trace_pot(const lm_int_tracer *tr, const char *name, const int8_t *q, const uint8_t *s, int n0, int n1, int F) {
    if (!tr) return;
    char b[64];
    snprintf(b, sizeof b, "%s.q", name);
    trace(tr, b, LM_INT_I8, q, n0, n1, F);
    snprintf(b, sizeof b, "%s.s", name);
    if (n1) trace(tr, b, LM_INT_U8, s, n0, lm_pot_groups(n1), F);
    else trace(tr, b, LM_INT_U8, s, lm_pot_groups(n0), 0, F);
}

/* A linear layer's packed input: qa, sa, eb. */
static void trace_act(const lm_int_tracer *tr, const char *unit, const int8_t *qa, const uint8_t *sa, const int *eb, int n) {
    if (!tr) return;
    char b[64];
    const int32_t eb32 = *eb;
    snprintf(b, sizeof b, "%s.qa", unit); trace(tr, b, LM_INT_I8, qa, n, 0, LM_INT_NO_SITE);
    snprintf(b, sizeof b, "%s.sa", unit); trace(tr, b, LM_INT_U8, sa, n / 8, 0, LM_INT_NO_SITE);
    snprintf(b, sizeof b, "%s.eb", unit); trace(tr, b, LM_INT_I32, &eb32, 1, 0, LM_INT_NO_SITE);
}

void lm_int_block_in(int8_t *qa, uint8_t *sa, int *eb, const int32_t *u, const lm_int_layer *L, lm_int_scratch *ws,
                     const lm_int_tracer *tr) {
    const lm_int_norm *n = &L->norm;
    lm_int_rmsnorm(ws->norm, u, n);
    trace(tr, "norm.out", LM_INT_I32, ws->norm, n->n, 0, n->F_out);
    lm_pot_quantize_dp(ws->q, ws->s, ws->norm, n->n, L->abits, L->dp);
    trace_pot(tr, "in_quant.out", ws->q, ws->s, n->n, 0, n->F_out);
    lm_int_act_pack(qa, sa, eb, ws->q, ws->s, n->F_out, n->n, L->abits);
    trace_act(tr, "in_pack.out", qa, sa, eb, n->n);
}

void lm_int_mixer_in(lm_int_token *tok, const int32_t *zxbcdt, lm_int_state *st, const lm_int_layer *L,
                     lm_int_scratch *ws, const lm_int_tracer *tr) {
    const int C = L->C, W = L->W;
    const int32_t *xbc = zxbcdt + L->d_inner;
    /* conv on pot8 xBC, then SiLU, pot8 x | B | C and the rest */
    lm_pot_quantize_dp(ws->q, ws->s, xbc, C, 8, L->dp);
    trace_pot(tr, "xbc_quant.out", ws->q, ws->s, C, 0, L->F_ip);
    trace_pot(tr, "conv.state_in", st->conv_q, st->conv_s, W - 1, C, L->F_ip);
    lm_int_conv_forward(ws->conv_out, st->conv_q, st->conv_s, ws->q, ws->s, &L->conv);
    trace(tr, "conv.out", LM_INT_I32, ws->conv_out, C, 0, L->conv.F_out);
    trace_pot(tr, "conv.state_out", st->conv_q, st->conv_s, W - 1, C, L->F_ip);
    lm_int_mixer_act(tok, zxbcdt, ws->conv_out, L, ws, tr);
}

void lm_int_mixer_act(lm_int_token *tok, const int32_t *zxbcdt, const int32_t *conv_out, const lm_int_layer *L,
                      lm_int_scratch *ws, const lm_int_tracer *tr) {
    const int di = L->d_inner, H = L->H, N = L->N, G = L->G, C = L->C;
    const int32_t *z = zxbcdt, *dt_raw = zxbcdt + di + C;
    lm_int_lut_quantize(tok->u_q, tok->u_s, conv_out, C, &L->silu_xbc, 8, L->dp);
    trace_pot(tr, "silu_xbc.out", tok->u_q, tok->u_s, C, 0, L->F_u);
    lm_int_lut_quantize(tok->z_q, tok->z_s, z, di, &L->silu_z, 8, L->dp);
    trace_pot(tr, "silu_z.out", tok->z_q, tok->z_s, di, 0, L->F_zs);
    /* dt, dA, dB */
    lm_int_dt(ws->dt_q, ws->dt_s, dt_raw, L->dt_bq, L->dt_be, L->dt_lo, L->dt_hi, &L->softplus, H, L->dp);
    trace_pot(tr, "dt.out", ws->dt_q, ws->dt_s, H, 0, L->F_dt);
    lm_int_dA(tok->dA_q, tok->dA_s, ws->dt_q, ws->dt_s, L->F_dt, L->A_q, L->A_e, &L->exp, H, L->dp);
    trace_pot(tr, "dA.out", tok->dA_q, tok->dA_s, H, 0, L->F_dA);
    const int8_t *Bq = tok->u_q + di;
    const uint8_t *Bs = tok->u_s + di / 8;
    lm_int_dB(tok->dB_q, tok->dB_s, ws->dt_q, ws->dt_s, L->F_dt, Bq, Bs, L->F_u, L->F_dB, H, G, N, L->dp);
    if (L->dp & LM_DP_DB_HEADS) {   /* q [H, N]; s [N, ceil(H/8)], one per 8 heads of each state */
        trace(tr, "dB.out.q", LM_INT_I8, tok->dB_q, H, N, L->F_dB);
        trace(tr, "dB.out.s", LM_INT_U8, tok->dB_s, N, lm_pot_groups(H), L->F_dB);
    } else {
        trace_pot(tr, "dB.out", tok->dB_q, tok->dB_s, H, N, L->F_dB);
    }
}

void lm_int_heads(int32_t *y, const lm_int_token *tok, lm_int_state *st, const lm_int_layer *L, int h0, int h1,
                  lm_int_scratch *ws) {
    const int di = L->d_inner, H = L->H, P = L->P, N = L->N, G = L->G;
    const int8_t *Cq = tok->u_q + di + (size_t)G * N;
    const uint8_t *Cs = tok->u_s + di / 8 + (size_t)G * N / 8;
    const lm_int_head_sites f = {.P = P, .N = N, .F_x = L->F_u, .F_dA = L->F_dA, .F_dB = L->F_dB, .F_h = L->F_h,
                                 .F_C = L->F_u, .F_y = L->F_y, .dp = L->dp};
    for (int h = h0; h < h1; h++) {
        const int g = h / (H / G), hg = h / 8;
        lm_int_dB_exps(ws->dB_e, tok->dB_s, h, H, N, L->dp);
        lm_int_ssm_head(y + (size_t)h * P, st->h_q + (size_t)h * P * N, st->h_s + (size_t)h * (P / 8) * N,
                        ws->h2_q, ws->h2_s, ws->hw, tok->dA_q[h], tok->dA_s[hg], tok->dB_q + (size_t)h * N,
                        ws->dB_e, tok->u_q + (size_t)h * P, tok->u_s + (size_t)h * P / 8,
                        Cq + (size_t)g * N, Cs + (size_t)g * N / 8, L->D_q[h], L->D_e[hg], &f);
    }
}

void lm_int_mixer_out(int8_t *qa, uint8_t *sa, int *eb, const int32_t *y, const lm_int_token *tok,
                      const lm_int_layer *L, lm_int_scratch *ws, const lm_int_tracer *tr) {
    const int di = L->d_inner;
    lm_pot_quantize_dp(ws->y_q, ws->y_s, y, di, 8, L->dp);
    trace_pot(tr, "y_quant.out", ws->y_q, ws->y_s, di, 0, L->F_y);
    lm_int_gate(ws->g, ws->y_q, ws->y_s, L->F_y, tok->z_q, tok->z_s, L->F_zs, L->F_g, di, L->dp);
    trace(tr, "gate.out", LM_INT_I32, ws->g, di, 0, L->F_g);
    lm_int_rmsnorm(ws->norm, ws->g, &L->gnorm);
    trace(tr, "gnorm.out", LM_INT_I32, ws->norm, di, 0, L->gnorm.F_out);
    const int32_t *x = ws->norm;
    int F = L->gnorm.F_out;
    if (L->rot_m) {
        /* y (wide at gnorm.F_out) -> (H_m (x) H_p) y at F_rot; out_proj holds the transpose */
        lm_int_hadamard(ws->y, ws->norm, L->rot_Hm, L->rot_m, di, L->F_rot - L->gnorm.F_out, ws->rot);
        trace(tr, "hadamard.out", LM_INT_I32, ws->y, di, 0, L->F_rot);
        x = ws->y;
        F = L->F_rot;
    }
    lm_pot_quantize_dp(ws->q, ws->s, x, di, L->abits, L->dp);
    trace_pot(tr, "out_quant.out", ws->q, ws->s, di, 0, F);
    lm_int_act_pack(qa, sa, eb, ws->q, ws->s, F, di, L->abits);
    trace_act(tr, "out_pack.out", qa, sa, eb, di);
}

static void trace_lut(const lm_int_tracer *tr, const char *name, const lm_lut *t) {
    char b[64];
    const int32_t params[5] = {t->alpha, t->k, t->F_in, t->F_out, t->tail_identity};
    snprintf(b, sizeof b, "param.%s.params", name); trace(tr, b, LM_INT_I32, params, 5, 0, LM_INT_NO_SITE);
    snprintf(b, sizeof b, "param.%s.value", name); trace(tr, b, LM_INT_I16, t->value, LM_LUT_ENTRIES, 0, LM_INT_NO_SITE);
    snprintf(b, sizeof b, "param.%s.shift", name); trace(tr, b, LM_INT_U8, t->shift, LM_LUT_SEGMENTS, 0, LM_INT_NO_SITE);
}

/* A norm's release tables (LM_DP_NORM8): thresholds, bin widths, output shifts, entries. */
static void trace_rsqrt8(const lm_int_tracer *tr, const char *norm, const lm_rsqrt8 *t) {
    char b[64];
    snprintf(b, sizeof b, "param.%s.rsqrt8.alpha", norm); trace(tr, b, LM_INT_I64, t->alpha, LM_RSQRT_TABLES, 0, LM_INT_NO_SITE);
    snprintf(b, sizeof b, "param.%s.rsqrt8.ld", norm); trace(tr, b, LM_INT_U8, t->ld, LM_RSQRT_TABLES, 0, LM_INT_NO_SITE);
    snprintf(b, sizeof b, "param.%s.rsqrt8.off", norm); trace(tr, b, LM_INT_U8, t->off, LM_RSQRT_TABLES, 0, LM_INT_NO_SITE);
    snprintf(b, sizeof b, "param.%s.rsqrt8.value", norm);
    trace(tr, b, LM_INT_U8, t->value, LM_RSQRT_TABLES, LM_RSQRT_ENTRIES, LM_INT_NO_SITE);
}

/* The layer's static parameters (the model file's tensors, docs/quantized-format.md). */
static void trace_params(const lm_int_tracer *tr, const lm_int_layer *L) {
    const int H = L->H, Hg = lm_pot_groups(H), C = L->C, W = L->W, NS = LM_INT_NO_SITE;
    int32_t sc[LM_INT_SCALARS];
    lm_int_layer_scalars(L, sc);
    trace(tr, "param.scalars", LM_INT_I32, sc, LM_INT_SCALARS, 0, NS);
    trace(tr, "param.norm.gamma", LM_INT_I16, L->norm_gq, L->D, 0, NS);
    trace(tr, "param.gnorm.gamma", LM_INT_I16, L->gnorm_gq, L->d_inner, 0, NS);
    if (L->norm_rsqrt8) {
        trace_rsqrt8(tr, "norm", L->norm_rsqrt8);
        trace_rsqrt8(tr, "gnorm", L->gnorm_rsqrt8);
    }
    trace(tr, "param.conv.weight", LM_INT_I8, L->conv_w, C, W, NS);
    trace(tr, "param.conv.weight_exp", LM_INT_I8, L->conv_ew, C / 8, W, NS);
    trace(tr, "param.conv.bias", LM_INT_I8, L->conv_b, C, 0, NS);
    trace(tr, "param.conv.bias_exp", LM_INT_I8, L->conv_eb, C / 8, 0, NS);
    trace(tr, "param.dt_bias", LM_INT_I16, L->dt_bq, H, 0, NS);
    trace(tr, "param.dt_bias_exp", LM_INT_I8, L->dt_be, Hg, 0, NS);
    trace(tr, "param.A", LM_INT_I16, L->A_q, H, 0, NS);
    trace(tr, "param.A_exp", LM_INT_I8, L->A_e, Hg, 0, NS);
    trace(tr, "param.D", LM_INT_I16, L->D_q, H, 0, NS);
    trace(tr, "param.D_exp", LM_INT_I8, L->D_e, Hg, 0, NS);
    trace_lut(tr, "lut_silu_xbc", &L->silu_xbc);
    trace_lut(tr, "lut_silu_z", &L->silu_z);
    trace_lut(tr, "lut_softplus", &L->softplus);
    trace_lut(tr, "lut_exp", &L->exp);
    if (L->rot_m) trace(tr, "param.hadamard_base", LM_INT_I8, L->rot_Hm, L->rot_m, L->rot_m, NS);
}

/* The stored state: q [H * P, N], its exponents per 8 head_dim rows [H * P/8, N]. */
static void trace_state(const lm_int_tracer *tr, const char *name, const lm_int_state *st, const lm_int_layer *L) {
    if (!tr) return;
    char b[64];
    snprintf(b, sizeof b, "%s.q", name); trace(tr, b, LM_INT_I8, st->h_q, L->H * L->P, L->N, L->F_h);
    snprintf(b, sizeof b, "%s.s", name); trace(tr, b, LM_INT_U8, st->h_s, L->H * L->P / 8, L->N, L->F_h);
}

void lm_int_block_trace(int32_t *u, lm_int_state *st, const lm_int_layer *L, lm_int_scratch *ws,
                        const lm_int_tracer *tr) {
    int eb;
    if (tr) trace_params(tr, L);
    trace(tr, "norm.in", LM_INT_I32, u, L->D, 0, LM_RES_F);
    /* RMSNorm -> in_proj, output wide at F_ip */
    lm_int_block_in(ws->qa, ws->sa, &eb, u, L, ws, tr);
    lm_int_linear_fixed(ws->wide, ws->qa, ws->sa, eb, L->in_proj, L->F_ip, L->dp);
    trace(tr, "in_proj.out", LM_INT_I32, ws->wide, L->E, 0, L->F_ip);
    lm_int_mixer_in(ws->tok, ws->wide, st, L, ws, tr);
    /* the state, head by head */
    trace_state(tr, "ssm.state_in", st, L);
    lm_int_heads(ws->y, ws->tok, st, L, 0, L->H, ws);
    trace(tr, "ssm.out", LM_INT_I32, ws->y, L->d_inner, 0, L->F_y);
    trace_state(tr, "ssm.state_out", st, L);
    lm_int_mixer_out(ws->qa, ws->sa, &eb, ws->y, ws->tok, L, ws, tr);
    lm_int_linear_fixed(ws->wide, ws->qa, ws->sa, eb, L->out_proj, LM_RES_F, L->dp);
    trace(tr, "out_proj.out", LM_INT_I32, ws->wide, L->D, 0, LM_RES_F);
    lm_int_residual_add(u, ws->wide, L->D);
    trace(tr, "residual.out", LM_INT_I32, u, L->D, 0, LM_RES_F);
}

void lm_int_block_forward(int32_t *u, lm_int_state *st, const lm_int_layer *L, lm_int_scratch *ws) {
    lm_int_block_trace(u, st, L, ws, NULL);
}
