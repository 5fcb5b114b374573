/* Host side of the kernels (hk_host.h). */
#include "hk_host.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"

void hk_inproj_order(int *src, int di, int H, int P, int G, int N) {
    const int x0 = di, b0 = 2 * di, c0 = 2 * di + G * N, dt0 = 2 * di + 2 * G * N;
    int i = 0;
    for (int h = 0; h < H; h++) src[i++] = dt0 + h;
    for (int j = 0; j < G * N; j++) src[i++] = b0 + j;
    for (int j = 0; j < G * N; j++) src[i++] = c0 + j;
    for (int h = 0; h < H; h++) {
        for (int p = 0; p < P; p++) src[i++] = x0 + h * P + p;
        for (int p = 0; p < P; p++) src[i++] = h * P + p;
    }
}

void hk_weights_free(hk_weights *w) {
    if (!w) return;
    free(w->q); free(w->scale); free(w->e0);
    memset(w, 0, sizeof *w);
}

lm_status hk_weights_permute(hk_weights *out, const lm_qweight *W, const int *src) {
    memset(out, 0, sizeof *out);
    const size_t stride = W->wbits == 4 ? ((size_t)W->cols + 1) / 2 : (size_t)W->cols;
    const size_t groups = ((size_t)W->cols + 127) / 128, rows = (size_t)W->rows;
    if (W->row_stride != stride)
        return lm_fail(LM_ERR_ARG, "kernel weights: row stride %zu, expected %zu", W->row_stride, stride);
    *out = (hk_weights){.rows = W->rows, .cols = W->cols, .wbits = W->wbits};
    if (lm_calloc(&out->q, rows, stride, "kernel weights") || lm_calloc(&out->scale, rows, groups, "kernel weights") ||
        lm_calloc(&out->e0, rows, 1, "kernel weights")) {
        hk_weights_free(out);
        return LM_ERR_NOMEM;
    }
    for (size_t i = 0; i < rows; i++) {
        const size_t o = src ? (size_t)src[i] : i;
        memcpy(out->q + i * stride, W->q + o * stride, stride);
        memcpy(out->scale + i * groups, W->scale + o * groups, groups);
        out->e0[i] = W->e0[o];
    }
    return LM_OK;
}

static void norm_from_int(hk_norm *k, const lm_int_norm *n) {
    *k = (hk_norm){.n = n->n, .group = n->group, .F_in = n->F_in, .F_out = n->F_out, .e_gamma = n->e_gamma,
                   .eps_term = n->eps_term};
    memcpy(k->gq, n->gq, sizeof(int16_t) * (size_t)n->n);
#if HK_DATAPATH & HK_DP_NORM8
    memcpy(k->alpha, n->rsqrt8->alpha, sizeof k->alpha);
    memcpy(k->ld, n->rsqrt8->ld, sizeof k->ld);
    memcpy(k->off, n->rsqrt8->off, sizeof k->off);
    memcpy(k->r8, n->rsqrt8->value, sizeof k->r8);
#endif
}

/* The largest spread between the conv's term scales (hk_conv under HK_DP_TRUNC sums them in int64):
 * the input exponent 0..15 plus each tap's weight exponent, and the bias's. */
static int conv_scale_spread(const lm_int_layer *L) {
    int worst = 0;
    for (int g = 0; g < L->C / 8; g++) {
        int lo = 1 << 20, hi = -(1 << 20);
        for (int k = 0; k < L->W; k++) {
            const int e = L->conv.ew[(size_t)g * L->W + k];
            lo = e < lo ? e : lo;
            hi = e + 15 > hi ? e + 15 : hi;
        }
        if (L->conv.b) {
            const int e = L->conv.eb[g] + L->F_ip;
            lo = e < lo ? e : lo;
            hi = e > hi ? e : hi;
        }
        worst = hi - lo > worst ? hi - lo : worst;
    }
    return worst;
}

static void lut_from_int(hk_lut *k, const lm_lut *l) {
    k->alpha = l->alpha; k->k = l->k; k->F_in = l->F_in; k->F_out = l->F_out; k->tail_identity = l->tail_identity;
    memcpy(k->value, l->value, sizeof k->value);
    memcpy(k->shift, l->shift, sizeof k->shift);
}

lm_status hk_layer_from_int(hk_layer *K, const lm_int_layer *L) {
    if (L->D > HK_MAX_D || L->d_inner > HK_MAX_DI || L->H > HK_MAX_H || L->P > HK_MAX_P || L->N > HK_MAX_N ||
        L->G > HK_MAX_G || L->W > HK_MAX_W)
        return lm_fail(LM_ERR_UNSUPPORTED, "kernels: layer (d_model %d, d_inner %d, heads %d, head_dim %d, d_state %d, "
                       "groups %d, conv %d) exceeds the compiled bounds (%d, %d, %d, %d, %d, %d, %d; -DHK_MAX_*)",
                       L->D, L->d_inner, L->H, L->P, L->N, L->G, L->W, HK_MAX_D, HK_MAX_DI, HK_MAX_H, HK_MAX_P,
                       HK_MAX_N, HK_MAX_G, HK_MAX_W);
    if (L->P % HK_PP || L->N % HK_NP)
        return lm_fail(LM_ERR_UNSUPPORTED, "kernels: head_dim %d / d_state %d not divisible by the tile p_p %d / n_p %d",
                       L->P, L->N, HK_PP, HK_NP);
    if (L->in_proj->wbits != L->out_proj->wbits)
        return lm_fail(LM_ERR_UNSUPPORTED, "kernels: in_proj and out_proj must have the same weight bits (%d, %d)",
                       L->in_proj->wbits, L->out_proj->wbits);
    if (L->dp != HK_DATAPATH)
        return lm_fail(LM_ERR_UNSUPPORTED, "kernels: compiled for datapath %d (HK_DATAPATH), the layer has %d", HK_DATAPATH,
                       L->dp);
    if (HK_DATAPATH & HK_DP_TRUNC && conv_scale_spread(L) > 40)
        return lm_fail(LM_ERR_UNSUPPORTED, "kernels: the conv's term scales spread over %d bits (40 at most)",
                       conv_scale_spread(L));
    if (L->rot_m && (L->rot_m > HK_HTU_MAX_BASE || L->d_inner % L->rot_m || !L->rot_Hm))
        return lm_fail(LM_ERR_UNSUPPORTED, "kernels: the HTU has no %d x %d +-1 matrix for d_inner %d (bases 1..%d)",
                       L->rot_m, L->rot_m, L->d_inner, HK_HTU_MAX_BASE);
    memset(K, 0, sizeof *K);
    K->D = L->D; K->di = L->d_inner; K->H = L->H; K->P = L->P; K->N = L->N; K->G = L->G; K->W = L->W;
    K->C = L->C; K->E = L->E; K->abits = L->abits; K->wbits = L->in_proj->wbits;
    K->F_ip = L->F_ip; K->F_conv = L->conv.F_out; K->F_u = L->F_u; K->F_zs = L->F_zs; K->F_dt = L->F_dt;
    K->F_dA = L->F_dA; K->F_dB = L->F_dB; K->F_h = L->F_h; K->F_y = L->F_y; K->F_g = L->F_g;
    norm_from_int(&K->norm, &L->norm);
    norm_from_int(&K->gnorm, &L->gnorm);
    memcpy(K->rsqrt, lm_rsqrt_table(), sizeof K->rsqrt);
    memcpy(K->rsqrt_shift, lm_rsqrt_shift(), sizeof K->rsqrt_shift);
    K->conv_bias = L->conv.b != NULL;
    for (int c = 0; c < L->C; c++) {
        for (int k = 0; k < L->W; k++) K->conv_w[c][k] = L->conv.w[(size_t)c * L->W + k];
        K->conv_b[c] = L->conv.b ? L->conv.b[c] : 0;
    }
    for (int g = 0; g < L->C / 8; g++) {
        for (int k = 0; k < L->W; k++) K->conv_ew[g][k] = L->conv.ew[(size_t)g * L->W + k];
        K->conv_eb[g] = L->conv.eb[g];
    }
    lut_from_int(&K->silu_xbc, &L->silu_xbc);
    lut_from_int(&K->silu_z, &L->silu_z);
    lut_from_int(&K->softplus, &L->softplus);
    lut_from_int(&K->exp, &L->exp);
    for (int h = 0; h < L->H; h++) { K->dt_bq[h] = L->dt_bq[h]; K->A_q[h] = L->A_q[h]; K->D_q[h] = L->D_q[h]; }
    for (int g = 0; g < lm_pot_groups(L->H); g++) { K->dt_be[g] = L->dt_be[g]; K->A_e[g] = L->A_e[g]; K->D_e[g] = L->D_e[g]; }
    K->dt_lo = L->dt_lo; K->dt_hi = L->dt_hi;
    if (L->rot_m) {
        /* the golden block's lm_int_hadamard(rot_Hm, rot_m, F_rot - gnorm.F_out): out_proj's input at F_rot */
        const int m = L->rot_m;
        K->rot_m = m; K->rot_L = L->F_rot - L->gnorm.F_out; K->F_rot = L->F_rot;
        for (int b = 0; b < m; b++)
            for (int bb = 0; bb < m; bb++) K->rot_base[b][bb] = L->rot_Hm[b * m + bb];
    }
    return hk_layer_check(K) == HK_OK ? LM_OK : lm_fail(LM_ERR_UNSUPPORTED, "kernels: layer shape refused by hk_layer_check");
}
