/* The integer linear layer of kernels.h fed by pot activations, output as wide integers. */
#include "integer/integer.h"

#include <assert.h>

void lm_int_act_pack(int8_t *qa, uint8_t *sa, int *eb, const int8_t *q, const uint8_t *s, int F, int n, int abits) {
    assert(n % LM_POT_GROUP == 0 && (abits == 4 || abits == 8));
    const int sa_max = abits == 4 ? 15 : 7, groups = n / LM_POT_GROUP;
    int emax = -(1 << 20);
    for (int g = 0; g < groups; g++)
        if (s[g] - F > emax) emax = s[g] - F;
    const int base = emax - sa_max;
    for (int g = 0; g < groups; g++) {
        int e = s[g] - F, rel = e - base;
        for (int i = g * LM_POT_GROUP; i < (g + 1) * LM_POT_GROUP; i++)
            qa[i] = rel >= 0 ? q[i] : (int8_t)lm_shift_sat32(q[i], rel);   /* |q| shrinks: stays in range */
        sa[g] = (uint8_t)(rel >= 0 ? rel : 0);
    }
    *eb = base;
}

/* Weight qw[o][k] per the kernels.h packing (two's complement nibbles, low nibble first). */
static int qweight_at(const lm_qweight *W, int o, int k) {
    const uint8_t *row = W->q + (size_t)o * W->row_stride;
    if (W->wbits == 8) return (int8_t)row[k];
    int nib = (row[k >> 1] >> ((k & 1) * 4)) & 15;
    return nib >= 8 ? nib - 16 : nib;
}

/* The one rounding of row o's exact accumulator to the output site F. */
static inline int32_t linear_round(int64_t acc, int eb, const lm_qweight *W, int o, int F, int dp) {
    return lm_rescale(acc, eb + W->e0[o] + F, dp);
}

void lm_int_linear_round(int32_t *y, const int64_t *acc, int eb, const lm_qweight *W, int F, int dp) {
    for (int o = 0; o < W->rows; o++) y[o] = linear_round(acc[o], eb, W, o, F, dp);
}

void lm_int_linear_fixed(int32_t *y, const int8_t *qa, const uint8_t *sa, int eb, const lm_qweight *W, int F, int dp) {
    const int K = W->cols, wgroups = (K + 127) / 128;
    assert(K % LM_POT_GROUP == 0);
    for (int o = 0; o < W->rows; o++) {
        int64_t acc = 0;
        for (int G = 0; G < wgroups; G++) {
            int64_t accG = 0;                                   /* int32 by the contract */
            for (int g = G * 16; g < (G + 1) * 16 && g * LM_POT_GROUP < K; g++) {
                int32_t dot = 0;
                for (int k = g * LM_POT_GROUP; k < (g + 1) * LM_POT_GROUP; k++) dot += qa[k] * qweight_at(W, o, k);
                accG += (int64_t)dot * ((int64_t)1 << sa[g]);
            }
            uint8_t pair = W->scale[(size_t)o * wgroups + G];
            acc += accG * (((int64_t)1 << (pair & 15)) + ((int64_t)1 << (pair >> 4)));   /* two shifts, one add */
        }
        y[o] = linear_round(acc, eb, W, o, F, dp);
    }
}
