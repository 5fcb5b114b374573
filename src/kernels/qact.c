/* Power-of-two quantization of activations (per token, one exponent per 8 channels),
 * the 4-bit weight packing, and the activation layout the integer kernels read. */
#include "kernels/kernels.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void lm_pack_int4_row(uint8_t *dst, const int8_t *src, int K) {
    for (int k = 0; k + 1 < K; k += 2) dst[k / 2] = (uint8_t)((src[k] & 0x0F) | (src[k + 1] & 0x0F) << 4);
    if (K & 1) dst[K / 2] = (uint8_t)(src[K - 1] & 0x0F);
}

void lm_unpack_int4_row(int8_t *dst, const uint8_t *src, int K) {
    for (int k = 0; k < K; k++) {
        int nibble = (src[k / 2] >> (4 * (k & 1))) & 0x0F;
        dst[k] = (int8_t)((nibble ^ 8) - 8); /* sign-extend 4 bits */
    }
}

int lm_act_exponent(float absmax, int bits) {
    if (!(absmax > 0.0f)) return LM_ACT_EXP_ZERO; /* 0 or NaN */
    if (isinf(absmax)) absmax = FLT_MAX;
    int E;
    frexpf(absmax, &E); /* absmax = f * 2^E, f in [0.5, 1): floor(log2 absmax) = E - 1 */
    return E - 1 - (bits - 2);
}

int lm_act_quantize(float x, int e, int bits) {
    int qmax = (1 << (bits - 1)) - 1;
    if (isnan(x)) return 0;
    /* x * 2^-e is exact in double for every float x and every exponent used here, and so is
     * + 0.5 up to the precision that can still change the floor. */
    double v = floor(ldexp((double)x, -e) + 0.5);
    return v > qmax ? qmax : v < -qmax ? -qmax : (int)v;
}

static int sa_max(int abits) { return abits == 4 ? 15 : 7; }

lm_status lm_qact_init(lm_qact *a, int max_T, int K, int abits, int wbits) {
    memset(a, 0, sizeof *a);
    if (max_T <= 0 || K <= 0 || K > (1 << 24))
        return lm_fail(LM_ERR_ARG, "quantized activations: bad shape T=%d K=%d", max_T, K);
    if ((abits != 4 && abits != 8) || (wbits != 4 && wbits != 8))
        return lm_fail(LM_ERR_ARG, "quantized activations: abits=%d wbits=%d (each must be 4 or 8)", abits, wbits);
    if (wbits == 8 && abits == 4)
        return lm_fail(LM_ERR_UNSUPPORTED, "W8A4 is not supported: its int32 group accumulator could overflow");
    a->max_T = max_T, a->K = K, a->abits = abits, a->wbits = wbits;
    a->Kp = (K + LM_WEIGHT_GROUP - 1) / LM_WEIGHT_GROUP * LM_WEIGHT_GROUP;
    a->lanes = wbits == 4 ? a->Kp / 8 : a->Kp / 4;
    size_t n_groups = (size_t)(K + LM_ACT_GROUP - 1) / LM_ACT_GROUP;
    a->q = malloc((size_t)max_T * K);
    a->sa = malloc((size_t)max_T * n_groups);
    a->eb = malloc(sizeof(int32_t) * (size_t)max_T);
    a->kq = aligned_alloc(64, (size_t)max_T * a->Kp);
    a->ksa = aligned_alloc(64, sizeof(int32_t) * (size_t)max_T * a->lanes);
    a->kcorr = aligned_alloc(64, sizeof(int32_t) * (size_t)max_T * a->lanes);
    if (!a->q || !a->sa || !a->eb || !a->kq || !a->ksa || !a->kcorr) {
        lm_qact_free(a);
        return lm_fail(LM_ERR_NOMEM, "quantized activations: out of memory (T=%d K=%d)", max_T, K);
    }
    return LM_OK;
}

void lm_qact_free(lm_qact *a) {
    free(a->q), free(a->sa), free(a->eb), free(a->kq), free(a->ksa), free(a->kcorr);
    memset(a, 0, sizeof *a);
}

lm_status lm_quantize_act(lm_qact *a, const float *x, int T) {
    if (T < 0 || T > a->max_T) return lm_fail(LM_ERR_ARG, "quantize activations: %d tokens, room for %d", T, a->max_T);
    int K = a->K, n_groups = (K + LM_ACT_GROUP - 1) / LM_ACT_GROUP, bits = a->abits;
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * K;
        int8_t *qt = a->q + (size_t)t * K;
        uint8_t *sat = a->sa + (size_t)t * n_groups;
        /* Pass 1: the largest group exponent of the token. */
        int e_max = LM_ACT_EXP_ZERO;
        for (int g = 0; g < n_groups; g++) {
            float m = 0.0f;
            for (int k = g * LM_ACT_GROUP; k < K && k < (g + 1) * LM_ACT_GROUP; k++)
                if (fabsf(xt[k]) > m) m = fabsf(xt[k]); /* skips NaN */
            int e = lm_act_exponent(m, bits);
            if (e > e_max) e_max = e;
        }
        int eb = e_max == LM_ACT_EXP_ZERO ? 0 : e_max - sa_max(bits);
        a->eb[t] = eb;
        /* Pass 2: quantize each group with max(own exponent, eb); sa = that - eb. */
        for (int g = 0; g < n_groups; g++) {
            int k0 = g * LM_ACT_GROUP, k1 = k0 + LM_ACT_GROUP < K ? k0 + LM_ACT_GROUP : K;
            float m = 0.0f;
            for (int k = k0; k < k1; k++)
                if (fabsf(xt[k]) > m) m = fabsf(xt[k]);
            int e = lm_act_exponent(m, bits);
            if (e < eb) e = eb;
            sat[g] = (uint8_t)(e - eb);
            for (int k = k0; k < k1; k++) qt[k] = (int8_t)lm_act_quantize(xt[k], e, bits);
        }
    }
    return lm_qact_pack(a, T);
}

lm_status lm_qact_pack(lm_qact *a, int T) {
    if (T < 0 || T > a->max_T) return lm_fail(LM_ERR_ARG, "pack activations: %d tokens, room for %d", T, a->max_T);
    int K = a->K, Kp = a->Kp, n_groups = (K + LM_ACT_GROUP - 1) / LM_ACT_GROUP;
    int qmax = (1 << (a->abits - 1)) - 1, samax = sa_max(a->abits);
    int lane_width = a->wbits == 4 ? 8 : 4, offset = 1 << (a->wbits - 1);
    for (int t = 0; t < T; t++) {
        const int8_t *q = a->q + (size_t)t * K;
        const uint8_t *sa = a->sa + (size_t)t * n_groups;
        int8_t *kq = a->kq + (size_t)t * Kp;
        int32_t *ksa = a->ksa + (size_t)t * a->lanes, *kcorr = a->kcorr + (size_t)t * a->lanes;
        for (int k = 0; k < K; k++)
            if (q[k] < -qmax || q[k] > qmax)
                return lm_fail(LM_ERR_ARG, "pack activations: token %d channel %d: q = %d outside [-%d, %d]", t, k,
                               q[k], qmax, qmax);
        for (int g = 0; g < n_groups; g++)
            if (sa[g] > samax)
                return lm_fail(LM_ERR_ARG, "pack activations: token %d group %d: sa = %d outside [0, %d]", t, g, sa[g],
                               samax);
        memset(kq, 0, (size_t)Kp);
        for (int k = 0; k < K; k++) {
            /* 4-bit weights: in each 128-block the even channels first, then the odd ones */
            int at = a->wbits == 4 ? (k & ~127) + (k & 1) * 64 + (k & 127) / 2 : k;
            kq[at] = q[k];
        }
        for (int l = 0; l < a->lanes; l++) {
            int k0 = l * lane_width, sum = 0;
            for (int k = k0; k < k0 + lane_width && k < K; k++) sum += q[k];
            ksa[l] = k0 < K ? sa[k0 / LM_ACT_GROUP] : 0;
            kcorr[l] = -offset * sum;
        }
    }
    a->T = T;
    return LM_OK;
}
