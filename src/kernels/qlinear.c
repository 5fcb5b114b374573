/* The integer linear layer (the contract in kernels.h):
 *   acc_G   = sum_{g in G} (sum_{k in g} q[k] * qw[o][k]) << sa_g       int32, exact
 *   acc_o   = sum_G acc_G * (2^s1 + 2^s2)                               int64, exact
 *   y[t][o] = ldexpf((float)acc_o, eb[t] + e0[o])
 *   q [T, K] int8 per token, qw [O, K] (4-bit packed or int8), y [T, O]
 * Every path computes the same integers and rounds once at the end, so all give the
 * same bits. The SIMD paths keep one int32 lane per activation group (AVX-512 VNNI:
 * the lane's 8 (4-bit) or 4 (8-bit) products in one vpdpbusd lane; AVX2:
 * vpmaddubsw + vpmaddwd), shift each lane by its sa, then multiply by the group's
 * weight scale into int64 lanes (vpmuldq) that are summed once per row.
 *
 * The unsigned operand of vpdpbusd is the weight plus 2^(wbits-1) (in [1, 15] or
 * [1, 255]); the extra 2^(wbits-1) * sum(q) per lane is cancelled by starting the lane
 * at kcorr = -2^(wbits-1) * sum(q). AVX2 uses |q| as the unsigned operand and the
 * weight with q's sign (vpsignb) instead.
 *
 * Bounds (why int32 lanes suffice): a lane is at most 8 * 7 * 127 = 7112 (W4A8) or
 * 4 * 127 * 127 = 64516 (W8A8) before its shift, < 2^24 after it (sa <= 15 with 4-bit
 * activations, <= 7 with 8-bit); with the +2^(wbits-1) offset before the shift it is
 * at most 8 * 15 * 127 or 4 * 255 * 127, and lane * scale (<= 256) is formed in int64. */
#include "kernels/kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "common/error.h"

/* Tokens sharing one unpacked weight group in prefill. */
#define QL_TOKEN_BLOCK 4

typedef struct {
    float *y;
    const lm_qact *a;
    const lm_qweight *W;
    lm_simd_level level;
} qlinear_task;

static inline float qlinear_output(int64_t acc, int eb, int e0) { return ldexpf((float)acc, eb + e0); }

/* ---- scalar: the contract, line by line ---- */
static void qlinear_rows_scalar(const qlinear_task *m, int o0, int o1) {
    const lm_qact *a = m->a;
    const lm_qweight *W = m->W;
    int K = a->K, O = W->rows, n_wg = (K + LM_WEIGHT_GROUP - 1) / LM_WEIGHT_GROUP;
    int n_ag = (K + LM_ACT_GROUP - 1) / LM_ACT_GROUP;
    int8_t qw[LM_WEIGHT_GROUP];
    for (int o = o0; o < o1; o++) {
        const uint8_t *wrow = W->q + (size_t)o * W->row_stride, *srow = W->scale + (size_t)o * n_wg;
        for (int t = 0; t < a->T; t++) {
            const int8_t *q = a->q + (size_t)t * K;
            const uint8_t *sa = a->sa + (size_t)t * n_ag;
            int64_t acc_o = 0;
            for (int G = 0; G < n_wg; G++) {
                int k0 = G * LM_WEIGHT_GROUP, k1 = k0 + LM_WEIGHT_GROUP < K ? k0 + LM_WEIGHT_GROUP : K;
                if (W->wbits == 4)
                    lm_unpack_int4_row(qw, wrow + k0 / 2, k1 - k0);
                else
                    memcpy(qw, wrow + k0, (size_t)(k1 - k0));
                int32_t acc_G = 0;
                for (int g0 = k0; g0 < k1; g0 += LM_ACT_GROUP) {
                    int32_t sum = 0;
                    for (int k = g0; k < g0 + LM_ACT_GROUP && k < k1; k++) sum += q[k] * qw[k - k0];
                    acc_G += sum * (1 << sa[g0 / LM_ACT_GROUP]); /* << sa, without UB for sum < 0 */
                }
                acc_o += (int64_t)acc_G * lm_wscale_mult(srow[G]);
            }
            m->y[(size_t)t * O + o] = qlinear_output(acc_o, a->eb[t], W->e0[o]);
        }
    }
}

/* ---- AVX-512 VNNI ---- */
#define QL_AVX512 __attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline

/* acc64 += lanes * mult, the 16 int32 lanes widened into two int64 accumulators. */
QL_AVX512 void mul_acc_avx512(__m512i *acc_even, __m512i *acc_odd, __m512i lanes, __m512i mult) {
    *acc_even = _mm512_add_epi64(*acc_even, _mm512_mul_epi32(lanes, mult));
    *acc_odd = _mm512_add_epi64(*acc_odd, _mm512_mul_epi32(_mm512_srli_epi64(lanes, 32), mult));
}

/* Row o against nt tokens from t0. */
QL_AVX512 void qlinear_row_avx512(const qlinear_task *m, int o, int t0, int nt) {
    const lm_qact *a = m->a;
    const lm_qweight *W = m->W;
    int K = a->K, n_wg = (K + LM_WEIGHT_GROUP - 1) / LM_WEIGHT_GROUP;
    const uint8_t *wrow = W->q + (size_t)o * W->row_stride, *srow = W->scale + (size_t)o * n_wg;
    size_t row_bytes = W->wbits == 4 ? (size_t)(K + 1) / 2 : (size_t)K;
    __m512i acc_even[QL_TOKEN_BLOCK], acc_odd[QL_TOKEN_BLOCK];
#pragma GCC unroll 4
    for (int j = 0; j < nt; j++) acc_even[j] = acc_odd[j] = _mm512_setzero_si512();
    const __m512i low4 = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8), sign8 = _mm512_set1_epi8((char)0x80);
    for (int G = 0; G < n_wg; G++) {
        __m512i mult = _mm512_set1_epi64(lm_wscale_mult(srow[G]));
        size_t left = row_bytes - (size_t)G * (W->wbits == 4 ? 64 : 128); /* bytes of this row from group G on */
        if (W->wbits == 4) {
            const uint8_t *p = wrow + (size_t)G * 64;
            __m512i b = left >= 64 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8((1ull << left) - 1, p);
            /* (nibble & 0xF) ^ 8 = qw + 8 in [0, 15]: ternary logic (A & B) ^ C */
            __m512i even = _mm512_ternarylogic_epi32(b, low4, eight, 0x6A);
            __m512i odd = _mm512_ternarylogic_epi32(_mm512_srli_epi16(b, 4), low4, eight, 0x6A);
#pragma GCC unroll 4
            for (int j = 0; j < nt; j++) {
                size_t t = (size_t)(t0 + j);
                const int8_t *x = a->kq + t * a->Kp + (size_t)G * 128;
                size_t lane = t * a->lanes + (size_t)G * 16;
                __m512i acc = _mm512_load_si512(a->kcorr + lane);
                acc = _mm512_dpbusd_epi32(acc, even, _mm512_load_si512(x));
                acc = _mm512_dpbusd_epi32(acc, odd, _mm512_load_si512(x + 64));
                acc = _mm512_sllv_epi32(acc, _mm512_load_si512(a->ksa + lane));
                mul_acc_avx512(&acc_even[j], &acc_odd[j], acc, mult);
            }
        } else {
            const uint8_t *p = wrow + (size_t)G * 128;
            __m512i b0, b1;
            if (left >= 128) {
                b0 = _mm512_loadu_si512(p), b1 = _mm512_loadu_si512(p + 64);
            } else {
                b0 = _mm512_maskz_loadu_epi8(left >= 64 ? ~0ull : (1ull << left) - 1, p);
                b1 = left > 64 ? _mm512_maskz_loadu_epi8((1ull << (left - 64)) - 1, p + 64) : _mm512_setzero_si512();
            }
            b0 = _mm512_xor_si512(b0, sign8); /* qw + 128 in [0, 255] */
            b1 = _mm512_xor_si512(b1, sign8);
#pragma GCC unroll 4
            for (int j = 0; j < nt; j++) {
                size_t t = (size_t)(t0 + j);
                const int8_t *x = a->kq + t * a->Kp + (size_t)G * 128;
                size_t lane = t * a->lanes + (size_t)G * 32;
                __m512i acc0 = _mm512_dpbusd_epi32(_mm512_load_si512(a->kcorr + lane), b0, _mm512_load_si512(x));
                __m512i acc1 = _mm512_dpbusd_epi32(_mm512_load_si512(a->kcorr + lane + 16), b1, _mm512_load_si512(x + 64));
                acc0 = _mm512_sllv_epi32(acc0, _mm512_load_si512(a->ksa + lane));
                acc1 = _mm512_sllv_epi32(acc1, _mm512_load_si512(a->ksa + lane + 16));
                mul_acc_avx512(&acc_even[j], &acc_odd[j], _mm512_add_epi32(acc0, acc1), mult);
            }
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < nt; j++) {
        int64_t acc = _mm512_reduce_add_epi64(_mm512_add_epi64(acc_even[j], acc_odd[j]));
        m->y[(size_t)(t0 + j) * W->rows + o] = qlinear_output(acc, a->eb[t0 + j], W->e0[o]);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void qlinear_rows_avx512(const qlinear_task *m, int o0, int o1) {
    for (int o = o0; o < o1; o++)
        for (int t0 = 0; t0 < m->a->T; t0 += QL_TOKEN_BLOCK) {
            int nt = m->a->T - t0;
            switch (nt >= QL_TOKEN_BLOCK ? QL_TOKEN_BLOCK : nt) { /* constant trip counts unroll */
            case 1: qlinear_row_avx512(m, o, t0, 1); break;
            case 2: qlinear_row_avx512(m, o, t0, 2); break;
            case 3: qlinear_row_avx512(m, o, t0, 3); break;
            default: qlinear_row_avx512(m, o, t0, QL_TOKEN_BLOCK); break;
            }
        }
}

/* ---- AVX2 ---- */
#define QL_AVX2 __attribute__((target("avx2,fma"), always_inline)) static inline

QL_AVX2 void mul_acc_avx2(__m256i *acc_even, __m256i *acc_odd, __m256i lanes, __m256i mult) {
    *acc_even = _mm256_add_epi64(*acc_even, _mm256_mul_epi32(lanes, mult));
    *acc_odd = _mm256_add_epi64(*acc_odd, _mm256_mul_epi32(_mm256_srli_epi64(lanes, 32), mult));
}

/* int16 pairs of |x| * (w with x's sign) = x * w, exact while |pair| <= 32767. */
QL_AVX2 __m256i dot_pairs_avx2(__m256i w, __m256i x) {
    return _mm256_maddubs_epi16(_mm256_abs_epi8(x), _mm256_sign_epi8(w, x));
}

QL_AVX2 void qlinear_row_avx2(const qlinear_task *m, int o, int t0, int nt) {
    const lm_qact *a = m->a;
    const lm_qweight *W = m->W;
    int K = a->K, n_wg = (K + LM_WEIGHT_GROUP - 1) / LM_WEIGHT_GROUP;
    const uint8_t *wrow = W->q + (size_t)o * W->row_stride, *srow = W->scale + (size_t)o * n_wg;
    size_t row_bytes = W->wbits == 4 ? (size_t)(K + 1) / 2 : (size_t)K, group_bytes = W->wbits == 4 ? 64 : 128;
    __m256i acc_even[QL_TOKEN_BLOCK], acc_odd[QL_TOKEN_BLOCK];
#pragma GCC unroll 4
    for (int j = 0; j < nt; j++) acc_even[j] = acc_odd[j] = _mm256_setzero_si256();
    const __m256i low4 = _mm256_set1_epi8(0x0F), ones16 = _mm256_set1_epi16(1);
    const __m256i nibble_to_int8 = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1,
                                                    0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1);
    _Alignas(32) uint8_t tail[128];
    for (int G = 0; G < n_wg; G++) {
        __m256i mult = _mm256_set1_epi64x(lm_wscale_mult(srow[G]));
        const uint8_t *p = wrow + (size_t)G * group_bytes;
        size_t left = row_bytes - (size_t)G * group_bytes;
        if (left < group_bytes) { /* the row's last, short group: zero-padded copy */
            memset(tail, 0, sizeof tail);
            memcpy(tail, p, left);
            p = tail;
        }
        if (W->wbits == 4) {
            __m256i w[4]; /* even 0-62, even 64-126, odd 1-63, odd 65-127 (channels of the group) */
            for (int h = 0; h < 2; h++) {
                __m256i b = _mm256_loadu_si256((const __m256i *)(p + 32 * h));
                w[h] = _mm256_shuffle_epi8(nibble_to_int8, _mm256_and_si256(b, low4));
                w[2 + h] = _mm256_shuffle_epi8(nibble_to_int8, _mm256_and_si256(_mm256_srli_epi16(b, 4), low4));
            }
#pragma GCC unroll 4
            for (int j = 0; j < nt; j++) {
                size_t t = (size_t)(t0 + j);
                const int8_t *x = a->kq + t * a->Kp + (size_t)G * 128;
                const int32_t *sa = a->ksa + t * a->lanes + (size_t)G * 16;
                __m256i lanes = _mm256_setzero_si256();
                for (int h = 0; h < 2; h++) {
                    /* even + odd channels of groups 8h .. 8h+7: int16 sums <= 2 * 2 * 8 * 127 */
                    __m256i pairs = _mm256_add_epi16(
                        dot_pairs_avx2(w[h], _mm256_load_si256((const __m256i *)(x + 32 * h))),
                        dot_pairs_avx2(w[2 + h], _mm256_load_si256((const __m256i *)(x + 64 + 32 * h))));
                    __m256i group = _mm256_madd_epi16(pairs, ones16);
                    group = _mm256_sllv_epi32(group, _mm256_load_si256((const __m256i *)(sa + 8 * h)));
                    lanes = _mm256_add_epi32(lanes, group);
                }
                mul_acc_avx2(&acc_even[j], &acc_odd[j], lanes, mult);
            }
        } else {
            __m256i w[4];
            for (int h = 0; h < 4; h++) w[h] = _mm256_loadu_si256((const __m256i *)(p + 32 * h));
#pragma GCC unroll 4
            for (int j = 0; j < nt; j++) {
                size_t t = (size_t)(t0 + j);
                const int8_t *x = a->kq + t * a->Kp + (size_t)G * 128;
                const int32_t *sa = a->ksa + t * a->lanes + (size_t)G * 32;
                __m256i lanes = _mm256_setzero_si256();
                for (int h = 0; h < 4; h++) {
                    __m256i quad = _mm256_madd_epi16(dot_pairs_avx2(w[h], _mm256_load_si256((const __m256i *)(x + 32 * h))), ones16);
                    quad = _mm256_sllv_epi32(quad, _mm256_load_si256((const __m256i *)(sa + 8 * h)));
                    lanes = _mm256_add_epi32(lanes, quad);
                }
                mul_acc_avx2(&acc_even[j], &acc_odd[j], lanes, mult);
            }
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < nt; j++) {
        __m256i s = _mm256_add_epi64(acc_even[j], acc_odd[j]);
        __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        int64_t acc = _mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1);
        m->y[(size_t)(t0 + j) * W->rows + o] = qlinear_output(acc, a->eb[t0 + j], W->e0[o]);
    }
}

__attribute__((target("avx2,fma")))
static void qlinear_rows_avx2(const qlinear_task *m, int o0, int o1) {
    for (int o = o0; o < o1; o++)
        for (int t0 = 0; t0 < m->a->T; t0 += QL_TOKEN_BLOCK) {
            int nt = m->a->T - t0;
            switch (nt >= QL_TOKEN_BLOCK ? QL_TOKEN_BLOCK : nt) {
            case 1: qlinear_row_avx2(m, o, t0, 1); break;
            case 2: qlinear_row_avx2(m, o, t0, 2); break;
            case 3: qlinear_row_avx2(m, o, t0, 3); break;
            default: qlinear_row_avx2(m, o, t0, QL_TOKEN_BLOCK); break;
            }
        }
}

static void qlinear_part(void *p, int i, int n) {
    const qlinear_task *m = p;
    int o0, o1;
    lm_pool_split(m->W->rows, i, n, 16, &o0, &o1);
    if (o0 >= o1) return;
    switch (m->level) {
    case LM_SIMD_AVX512: qlinear_rows_avx512(m, o0, o1); break;
    case LM_SIMD_AVX2: qlinear_rows_avx2(m, o0, o1); break;
    default: qlinear_rows_scalar(m, o0, o1); break;
    }
}

lm_status lm_qlinear(float *y, const lm_qact *a, const lm_qweight *W, lm_pool *pool) {
    if (W->wbits != 4 && W->wbits != 8) return lm_fail(LM_ERR_ARG, "integer linear: wbits = %d (4 or 8)", W->wbits);
    if (W->wbits != a->wbits)
        return lm_fail(LM_ERR_ARG, "integer linear: activations packed for %d-bit weights, weights have %d bits",
                       a->wbits, W->wbits);
    if (W->cols != a->K) return lm_fail(LM_ERR_ARG, "integer linear: weights have %d columns, activations %d", W->cols, a->K);
    size_t min_stride = W->wbits == 4 ? (size_t)(W->cols + 1) / 2 : (size_t)W->cols;
    if (W->rows < 0 || W->row_stride < min_stride)
        return lm_fail(LM_ERR_ARG, "integer linear: %d rows, row stride %zu (at least %zu)", W->rows, W->row_stride,
                       min_stride);
    if (W->rows == 0 || a->T == 0) return LM_OK;
    qlinear_task task = {y, a, W, lm_simd_level_get()};
    lm_pool_run(pool, qlinear_part, &task);
    return LM_OK;
}
