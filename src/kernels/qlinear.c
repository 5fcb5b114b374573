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
 * at kcorr = -2^(wbits-1) * sum(q). AVX2 does the same for 4-bit weights (vpmaddubsw's
 * int16 pair sums stay below 2 * 15 * 127); for 8-bit weights (2 * 255 * 127 would saturate)
 * it uses |q| as the unsigned operand and the weight with q's sign (vpsignb) instead.
 *
 * Bounds (why int32 lanes suffice): before its shift a lane is at most 8 * 7 * 127 = 7112
 * (W4A8), 8 * 7 * 7 (W4A4) or 4 * 127 * 127 (W8A8), after it (sa <= 15 with 4-bit
 * activations, <= 7 with 8-bit) below 2^24 (W8A8 lanes are summed over 2 (AVX-512) or
 * 4 (AVX2) parts of the group: < 2^26), so adjacent lanes add in int32 (< 2^27) before
 * vpmuldq widens them times the
 * scale (<= 256) into int64. With the unsigned offset a lane is at most 8 * 15 * 127 or
 * 4 * 255 * 127 before kcorr cancels it. The test checks all of this at the extremes. */
#include "kernels/kernels.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"

/* ---- weights as floats (the reference path below, and the quantizer's error measurements) ---- */

float lm_qweight_scale(const lm_qweight *w, int o, int g) {
    const int n_wg = (w->cols + LM_WEIGHT_GROUP - 1) / LM_WEIGHT_GROUP;
    return ldexpf((float)lm_wscale_mult(w->scale[(size_t)o * n_wg + g]), w->e0[o]);
}

void lm_qweight_row(const lm_qweight *w, int o, int8_t *out) {
    const uint8_t *row = w->q + (size_t)o * w->row_stride;
    if (w->wbits == 4)
        lm_unpack_int4_row(out, row, w->cols);
    else
        memcpy(out, row, (size_t)w->cols);
}

void lm_qweight_dequantize_rows(const lm_qweight *w, int o0, int o1, float *out) {
    const int K = w->cols;
    int8_t q[LM_WEIGHT_GROUP];
    for (int o = o0; o < o1; o++) {
        const uint8_t *row = w->q + (size_t)o * w->row_stride;
        float *dst = out + (size_t)(o - o0) * K;
        for (int k0 = 0; k0 < K; k0 += LM_WEIGHT_GROUP) {
            const int n = K - k0 < LM_WEIGHT_GROUP ? K - k0 : LM_WEIGHT_GROUP;
            if (w->wbits == 4)
                lm_unpack_int4_row(q, row + k0 / 2, n);
            else
                memcpy(q, row + k0, (size_t)n);
            const float s = lm_qweight_scale(w, o, k0 / LM_WEIGHT_GROUP);
            for (int k = 0; k < n; k++) dst[k0 + k] = (float)q[k] * s;
        }
    }
}

void lm_qweight_dequantize(const lm_qweight *w, float *out) { lm_qweight_dequantize_rows(w, 0, w->rows, out); }

/* Tokens sharing one unpacked weight group in prefill. */
#define QL_TOKEN_BLOCK 4

typedef struct {
    float *y;               /* the float outputs, or NULL when ... */
    int64_t *acc;           /* ... the exact accumulators acc_o are wanted instead (lm_qlinear_acc) */
    const lm_qact *a;
    const lm_qweight *W;
    lm_simd_level level;
} qlinear_task;

/* ldexpf((float)acc, e): one rounding int64 -> float, then an exact power-of-two scale
 * (a multiply by 2^e, correctly rounded like ldexpf, when 2^e is a normal float). */
static inline float qlinear_output(int64_t acc, int eb, int e0) {
    int e = eb + e0;
    if (e < -126 || e > 127) return ldexpf((float)acc, e);
    union { uint32_t bits; float f; } scale = {(uint32_t)(e + 127) << 23};
    return (float)acc * scale.f;
}

/* Output (t, o) of the task: y = the contract's float, or the accumulator itself. */
static inline void qlinear_store(const qlinear_task *m, int t, int o, int64_t acc) {
    size_t i = (size_t)t * m->W->rows + o;
    if (m->acc)
        m->acc[i] = acc;
    else
        m->y[i] = qlinear_output(acc, m->a->eb[t], m->W->e0[o]);
}

/* ---- scalar: the contract, line by line ---- */
static void qlinear_rows_scalar(const qlinear_task *m, int o0, int o1) {
    const lm_qact *a = m->a;
    const lm_qweight *W = m->W;
    int K = a->K, n_wg = (K + LM_WEIGHT_GROUP - 1) / LM_WEIGHT_GROUP;
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
            qlinear_store(m, t, o, acc_o);
        }
    }
}

/* ---- AVX-512 VNNI ----
 * A block of NR rows x NT tokens (constants, so the loops unroll and the NR * NT int64
 * accumulators live in registers): each weight group is loaded and unpacked once per row and
 * each token's group data (kq, ksa, kcorr) loaded once per token, for the whole block. The
 * group's 16 int32 lanes are added in pairs (|lane| < 2^25, so the pair sum fits int32) and the
 * 8 pair sums multiplied by the weight scale into int64 (vpmuldq, the scale broadcast from a
 * small table unpacked QL_SCALE_CHUNK groups at a time). Decode (T = 1) takes QL_ROWS rows and
 * prefill QL_ROWS x QL_TOKEN_BLOCK, which reuses each unpacked weight group and each token's
 * data 4 times; single rows and single tokens finish ragged edges.
 * Memory: a block's rows are one contiguous range, read group by group (QL_ROWS streams). The
 * hardware prefetchers alone leave decode latency bound, so each group step also prefetches,
 * in address order, as many lines as it reads, QL_PREFETCH_BYTES (at least one block) ahead.
 * (Measured on Zen 4, 2.7B in_proj, one thread: about twice the bandwidth of prefetching the next
 * block's same columns; 8-row blocks stream worse than 4-row ones.) */
#define QL_AVX512 __attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline
#define QL_ROWS 4
#define QL_PREFETCH_BYTES 4096
#define QL_SCALE_CHUNK 32 /* weight groups whose multipliers are unpacked at once */

QL_AVX512 __m512i pairs_times_avx512(__m512i lanes, __m512i mult) {
    return _mm512_mul_epi32(_mm512_add_epi32(lanes, _mm512_srli_epi64(lanes, 32)), mult);
}

/* mult[G] = 2^s1 + 2^s2 of the n <= QL_SCALE_CHUNK scale bytes s[G], as int64. */
QL_AVX512 void scale_mults_avx512(int64_t *mult, const uint8_t *s, int n) {
    const __m512i one = _mm512_set1_epi64(1), seven = _mm512_set1_epi64(7);
    for (int i = 0; i < n; i += 8) {
        __mmask64 k = n - i >= 8 ? 0xFF : (1ull << (n - i)) - 1;
        __m512i b = _mm512_cvtepu8_epi64(_mm512_castsi512_si128(_mm512_maskz_loadu_epi8(k, s + i)));
        __m512i s1 = _mm512_and_si512(b, seven), s2 = _mm512_and_si512(_mm512_srli_epi64(b, 4), seven);
        _mm512_storeu_si512(mult + i, _mm512_add_epi64(_mm512_sllv_epi64(one, s1), _mm512_sllv_epi64(one, s2)));
    }
}

/* Rows o .. o+NR-1 against tokens t0 .. t0+NT-1. */
QL_AVX512 void qlinear_block_avx512(const qlinear_task *m, int o, const int NR, int t0, const int NT, const int wbits) {
    const lm_qact *a = m->a;
    const lm_qweight *W = m->W;
    int K = a->K, n_wg = (K + LM_WEIGHT_GROUP - 1) / LM_WEIGHT_GROUP;
    size_t row_bytes = wbits == 4 ? (size_t)(K + 1) / 2 : (size_t)K, group_bytes = wbits == 4 ? 64 : 128;
    int n_full = (int)(row_bytes / group_bytes);
    /* the prefetch distance (a prefetch never faults, even past the end of the matrix) */
    size_t block_bytes = (size_t)NR * W->row_stride;
    const char *ahead = (const char *)W->q + (size_t)o * W->row_stride +
                        (block_bytes > QL_PREFETCH_BYTES ? block_bytes : QL_PREFETCH_BYTES);
    const __m512i low4 = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8), sign8 = _mm512_set1_epi8((char)0x80);
    /* Array sizes are the constant maxima (a variable-length array would live in memory). */
    __m512i acc[QL_ROWS][QL_TOKEN_BLOCK];
    int64_t mult[QL_ROWS][QL_SCALE_CHUNK];
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++) {
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) acc[r][j] = _mm512_setzero_si512();
    }
    for (int G0 = 0; G0 < n_wg; G0 += QL_SCALE_CHUNK) {
        int n_chunk = n_wg - G0 < QL_SCALE_CHUNK ? n_wg - G0 : QL_SCALE_CHUNK;
#pragma GCC unroll 8
        for (int r = 0; r < NR; r++) scale_mults_avx512(mult[r], W->scale + (size_t)(o + r) * n_wg + G0, n_chunk);
        for (int G = G0; G < G0 + n_chunk; G++) {
            /* Weight group G of each row as unsigned bytes qw + 2^(wbits-1): w[r][0..1] (4-bit: even
             * then odd channels; 8-bit: channels 0-63, 64-127); a short last group by masked loads. */
            size_t left = G < n_full ? group_bytes : row_bytes - (size_t)G * group_bytes;
            __m512i w[QL_ROWS][2];
#pragma GCC unroll 8
            for (int i = 0; i < NR * wbits / 4; i++) /* the lines this step reads: one or two per row */
                _mm_prefetch(ahead + (size_t)G * NR * group_bytes + 64 * i, _MM_HINT_T0);
#pragma GCC unroll 8
            for (int r = 0; r < NR; r++) {
                const uint8_t *p = W->q + (size_t)(o + r) * W->row_stride + (size_t)G * group_bytes;
                if (wbits == 4) {
                    __m512i b = left >= 64 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8((1ull << left) - 1, p);
                    /* (nibble & 0xF) ^ 8 = qw + 8: ternary logic (A & B) ^ C */
                    w[r][0] = _mm512_ternarylogic_epi32(b, low4, eight, 0x6A);
                    w[r][1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(b, 4), low4, eight, 0x6A);
                } else {
                    __m512i b0, b1;
                    if (left >= 128) {
                        b0 = _mm512_loadu_si512(p), b1 = _mm512_loadu_si512(p + 64);
                    } else {
                        b0 = _mm512_maskz_loadu_epi8(left >= 64 ? ~0ull : (1ull << left) - 1, p);
                        b1 = left > 64 ? _mm512_maskz_loadu_epi8((1ull << (left - 64)) - 1, p + 64) : _mm512_setzero_si512();
                    }
                    w[r][0] = _mm512_xor_si512(b0, sign8);
                    w[r][1] = _mm512_xor_si512(b1, sign8);
                }
            }
#pragma GCC unroll 8
            for (int j = 0; j < NT; j++) {
                size_t t = (size_t)(t0 + j);
                const int8_t *x = a->kq + t * a->Kp + (size_t)G * 128;
                __m512i x0 = _mm512_load_si512(x), x1 = _mm512_load_si512(x + 64);
                if (wbits == 4) { /* 16 lanes: the 16 activation groups of this weight group */
                    const int32_t *corr = a->kcorr + t * a->lanes + (size_t)G * 16, *sa = a->ksa + t * a->lanes + (size_t)G * 16;
                    __m512i c = _mm512_load_si512(corr), s = _mm512_load_si512(sa);
#pragma GCC unroll 8
                    for (int r = 0; r < NR; r++) {
                        __m512i v = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c, w[r][0], x0), w[r][1], x1);
                        __m512i mr = _mm512_set1_epi64(mult[r][G - G0]);
                        acc[r][j] = _mm512_add_epi64(acc[r][j], pairs_times_avx512(_mm512_sllv_epi32(v, s), mr));
                    }
                } else { /* 2 x 16 lanes of 4 channels */
                    const int32_t *corr = a->kcorr + t * a->lanes + (size_t)G * 32, *sa = a->ksa + t * a->lanes + (size_t)G * 32;
                    __m512i c0 = _mm512_load_si512(corr), c1 = _mm512_load_si512(corr + 16);
                    __m512i s0 = _mm512_load_si512(sa), s1 = _mm512_load_si512(sa + 16);
#pragma GCC unroll 8
                    for (int r = 0; r < NR; r++) {
                        __m512i v0 = _mm512_sllv_epi32(_mm512_dpbusd_epi32(c0, w[r][0], x0), s0);
                        __m512i v1 = _mm512_sllv_epi32(_mm512_dpbusd_epi32(c1, w[r][1], x1), s1);
                        __m512i mr = _mm512_set1_epi64(mult[r][G - G0]);
                        acc[r][j] = _mm512_add_epi64(acc[r][j], pairs_times_avx512(_mm512_add_epi32(v0, v1), mr));
                    }
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) qlinear_store(m, t0 + j, o + r, _mm512_reduce_add_epi64(acc[r][j]));
}

/* One function per block shape (the loops above then fully unroll). */
#define QL_BLOCK_FN(name, NR, NT)                                                                    \
    __attribute__((target("avx512f,avx512bw,avx512vnni"))) static void name(const qlinear_task *m, int o, int t0) { \
        if (m->W->wbits == 4)                                                                        \
            qlinear_block_avx512(m, o, NR, t0, NT, 4);                                               \
        else                                                                                         \
            qlinear_block_avx512(m, o, NR, t0, NT, 8);                                               \
    }
QL_BLOCK_FN(qlinear_block_rows_tokens, QL_ROWS, QL_TOKEN_BLOCK)
QL_BLOCK_FN(qlinear_block_rows_1token, QL_ROWS, 1)
QL_BLOCK_FN(qlinear_block_row_tokens, 1, QL_TOKEN_BLOCK)
QL_BLOCK_FN(qlinear_block_row_1token, 1, 1)

static void qlinear_rows_avx512(const qlinear_task *m, int o0, int o1) {
    int T = m->a->T, t_full = T / QL_TOKEN_BLOCK * QL_TOKEN_BLOCK, o = o0;
    for (; o + QL_ROWS <= o1; o += QL_ROWS) {
        for (int t0 = 0; t0 < t_full; t0 += QL_TOKEN_BLOCK) qlinear_block_rows_tokens(m, o, t0);
        for (int t = t_full; t < T; t++) qlinear_block_rows_1token(m, o, t);
    }
    for (; o < o1; o++) {
        for (int t0 = 0; t0 < t_full; t0 += QL_TOKEN_BLOCK) qlinear_block_row_tokens(m, o, t0);
        for (int t = t_full; t < T; t++) qlinear_block_row_1token(m, o, t);
    }
}

/* ---- AVX2 ---- */
#define QL_AVX2 __attribute__((target("avx2,fma"), always_inline)) static inline

/* The 8 lanes added in pairs (|lane| < 2^25) and times the weight scale, as 4 int64. */
QL_AVX2 __m256i pairs_times_avx2(__m256i lanes, __m256i mult) {
    return _mm256_mul_epi32(_mm256_add_epi32(lanes, _mm256_srli_epi64(lanes, 32)), mult);
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
    __m256i acc[QL_TOKEN_BLOCK];
#pragma GCC unroll 4
    for (int j = 0; j < nt; j++) acc[j] = _mm256_setzero_si256();
    const __m256i low4 = _mm256_set1_epi8(0x0F), eights = _mm256_set1_epi8((char)0x88), ones16 = _mm256_set1_epi16(1);
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
            /* qw + 8 in [1, 15] as unsigned bytes (nibble ^ 8), the weight offset cancelled by
             * kcorr as in the AVX-512 path: even 0-62, even 64-126, odd 1-63, odd 65-127 */
            __m256i w[4];
            for (int h = 0; h < 2; h++) {
                __m256i b = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p + 32 * h)), eights);
                w[h] = _mm256_and_si256(b, low4);
                w[2 + h] = _mm256_and_si256(_mm256_srli_epi16(b, 4), low4);
            }
#pragma GCC unroll 4
            for (int j = 0; j < nt; j++) {
                size_t t = (size_t)(t0 + j);
                const int8_t *x = a->kq + t * a->Kp + (size_t)G * 128;
                const int32_t *sa = a->ksa + t * a->lanes + (size_t)G * 16, *corr = a->kcorr + t * a->lanes + (size_t)G * 16;
                __m256i lanes = _mm256_setzero_si256();
                for (int h = 0; h < 2; h++) {
                    /* even + odd channels of groups 8h .. 8h+7: int16 sums <= 2 * 2 * 15 * 127 */
                    __m256i pairs = _mm256_add_epi16(
                        _mm256_maddubs_epi16(w[h], _mm256_load_si256((const __m256i *)(x + 32 * h))),
                        _mm256_maddubs_epi16(w[2 + h], _mm256_load_si256((const __m256i *)(x + 64 + 32 * h))));
                    __m256i group = _mm256_add_epi32(_mm256_madd_epi16(pairs, ones16),
                                                     _mm256_load_si256((const __m256i *)(corr + 8 * h)));
                    group = _mm256_sllv_epi32(group, _mm256_load_si256((const __m256i *)(sa + 8 * h)));
                    lanes = _mm256_add_epi32(lanes, group);
                }
                acc[j] = _mm256_add_epi64(acc[j], pairs_times_avx2(lanes, mult));
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
                acc[j] = _mm256_add_epi64(acc[j], pairs_times_avx2(lanes, mult));
            }
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < nt; j++) {
        __m128i h = _mm_add_epi64(_mm256_castsi256_si128(acc[j]), _mm256_extracti128_si256(acc[j], 1));
        int64_t acc = _mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1);
        qlinear_store(m, t0 + j, o, acc);
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

static lm_status qlinear_run(float *y, int64_t *acc, const lm_qact *a, const lm_qweight *W, lm_pool *pool) {
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
    qlinear_task task = {y, acc, a, W, lm_simd_level_get()};
    lm_pool_run(pool, qlinear_part, &task);
    return LM_OK;
}

/* ---- real-valued activation scales: the float reference product ----
 * y = xhat W^T, W dequantized (exact in float) a tile of rows at a time into per-thread scratch and
 * multiplied by sgemm. Parts are whole tiles of one global grid, so every row goes through the same
 * sgemm shape whatever the thread count: the results do not depend on it. */
#define REF_TILE_BYTES (512 * 1024)

typedef struct {
    float *y;
    const lm_qact *a;
    const lm_qweight *W;
    int tile_rows;
    float *tiles; /* [pool size][tile_rows * K] */
} ref_task;

static void ref_part(void *p, int i, int n) {
    const ref_task *r = p;
    const int K = r->W->cols, O = r->W->rows;
    float *tile = r->tiles + (size_t)i * r->tile_rows * K;
    int o0, o1;
    lm_pool_split(O, i, n, r->tile_rows, &o0, &o1);
    for (int r0 = o0; r0 < o1; r0 += r->tile_rows) {
        const int nr = o1 - r0 < r->tile_rows ? o1 - r0 : r->tile_rows;
        lm_qweight_dequantize_rows(r->W, r0, r0 + nr, tile);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r->a->T, nr, K, 1.0f, r->a->xhat, K, tile, K, 0.0f,
                    r->y + r0, O);
    }
}

static lm_status qlinear_real(float *y, const lm_qact *a, const lm_qweight *W, lm_pool *pool) {
    if (W->cols != a->K) return lm_fail(LM_ERR_ARG, "linear: weights have %d columns, activations %d", W->cols, a->K);
    if (!lm_matmul_start(y, a->T, W->cols, W->rows)) return LM_OK;
    int tile_rows = REF_TILE_BYTES / (int)sizeof(float) / W->cols / 16 * 16;
    if (tile_rows < 16) tile_rows = 16;
    ref_task task = {y, a, W, tile_rows, NULL};
    const size_t parts = pool ? (size_t)lm_pool_size(pool) : 1;
    LM_TRY(lm_calloc(&task.tiles, parts * (size_t)tile_rows, (size_t)W->cols * sizeof(float), "reference linear tiles"));
    lm_pool_run(pool, ref_part, &task);
    free(task.tiles);
    return LM_OK;
}

lm_status lm_qlinear(float *y, const lm_qact *a, const lm_qweight *W, lm_pool *pool) {
    if (a->scale == LM_ACT_SCALE_REAL) return qlinear_real(y, a, W, pool);
    return qlinear_run(y, NULL, a, W, pool);
}

lm_status lm_qlinear_acc(int64_t *acc, const lm_qact *a, const lm_qweight *W, lm_pool *pool) {
    if (a->scale != LM_ACT_SCALE_POW2)
        return lm_fail(LM_ERR_UNSUPPORTED, "integer linear: real-valued activation scales have no integer accumulators");
    return qlinear_run(NULL, acc, a, W, pool);
}
