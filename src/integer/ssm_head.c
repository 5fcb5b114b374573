/* The state step of one SSM head (integer.h, lm_int_ssm_head): the scalar golden code and its
 * AVX2 and AVX-512 versions, chosen at run time by lm_simd_level_get() (the scalar level runs
 * the golden code alone). Every term is an exact integer rounded once by the same rule, so all
 * paths give the same bits (tests/test_integer_simd.c checks it at every level the CPU has).
 *
 * The step is two passes over independent slices of the head's state [P, N]:
 *   columns n  h = sat32(dAh + dBx) wide at F_h for all P rows, then the stored state, whose
 *              pot8 groups are the 8 rows of a row group in one column;
 *   rows p     h2 = the row's wide state pot8 per 8 states, and its C contraction.
 * A SIMD path takes the columns [0, nv), nv a multiple of its width, and the scalar code the
 * rest (N is a multiple of 8, the width of AVX2; AVX-512 leaves at most 8 columns). */
#include "integer/integer.h"

#include <assert.h>
#include <immintrin.h>

/* One call's operands; shift amounts folded: dAh by L_dA + h_s, dBx by s_dB + s_x + L_dBx. dp: the
 * datapath (LM_DP_TRUNC: the shifts floor; LM_DP_QRULE: the release's group quantizer). */
typedef struct {
    int dp;
    int P, N;
    int32_t *hw;                           /* [P, N] the wide state (scratch) */
    int8_t *h_q; uint8_t *h_s;             /* [P, N], [P/8, N] the stored state, updated */
    int8_t *h2_q; uint8_t *h2_s;           /* [P, N], [P, N/8] the state per 8 states */
    int q_dA, L_dA;
    const int8_t *q_dB; const uint8_t *s_dB;   /* s_dB [N]: one exponent per state */
    const int8_t *q_x; const uint8_t *s_x;
    int L_dBx;
    const int8_t *q_C; const uint8_t *s_C;
} head_step;

/* ---- the golden code ---- */

/* Columns [n0, n1): the wide state, then the stored state per 8 rows of each column. */
static void state_cols(const head_step *s, int n0, int n1) {
    const int P = s->P, N = s->N;
    for (int p = 0; p < P; p++) {
        const int pg = p / LM_POT_GROUP;
        for (int n = n0; n < n1; n++) {
            const size_t i = (size_t)p * N + n;
            int32_t dAh = lm_rescale((int32_t)s->q_dA * s->h_q[i], s->L_dA + s->h_s[(size_t)pg * N + n], s->dp);
            int32_t dBx = lm_rescale((int32_t)s->q_dB[n] * s->q_x[p], s->s_dB[n] + s->s_x[pg] + s->L_dBx, s->dp);
            s->hw[i] = lm_sat32((int64_t)dAh + dBx);
        }
    }
    for (int pg = 0; pg < P / LM_POT_GROUP; pg++)
        for (int n = n0; n < n1; n++) {
            int8_t col[LM_POT_GROUP];
            lm_pot_quantize_strided(col, s->h_s + (size_t)pg * N + n, s->hw + (size_t)pg * LM_POT_GROUP * N + n,
                                    LM_POT_GROUP, N, 8, s->dp);
            for (int i = 0; i < LM_POT_GROUP; i++) s->h_q[(size_t)(pg * LM_POT_GROUP + i) * N + n] = col[i];
        }
}

/* Row p over columns [n0, n1) (whole groups of 8): h2 = pot8 of the wide row per 8 states, and
 * sum over those groups of (sum_8 h2_q * q_C) << (h2_s + s_C), exact in int64. */
static int64_t contract_row(const head_step *s, int p, int n0, int n1) {
    const int N = s->N;
    int8_t *q = s->h2_q + (size_t)p * N;
    uint8_t *e = s->h2_s + (size_t)p * (N / LM_POT_GROUP);
    lm_pot_quantize_dp(q + n0, e + n0 / LM_POT_GROUP, s->hw + (size_t)p * N + n0, n1 - n0, 8, s->dp);
    int64_t acc = 0;
    for (int ng = n0 / LM_POT_GROUP; ng < n1 / LM_POT_GROUP; ng++) {
        int32_t dot = 0;                                  /* 8 products: 17 bits */
        for (int i = ng * LM_POT_GROUP; i < (ng + 1) * LM_POT_GROUP; i++) dot += q[i] * s->q_C[i];
        acc += (int64_t)dot * ((int64_t)1 << (e[ng] + s->s_C[ng]));
    }
    return acc;
}

/* ---- the SIMD versions: one body (ssm_head_simd.h) over VL int32 lanes, per instruction set ---- */

#define SIMD_CAT_(a, b) a##b
#define SIMD_CAT(a, b) SIMD_CAT_(a, b)
#define SIMD_FN(name) SIMD_CAT(name, SIMD_SUFFIX)

/* AVX-512 (F is enough): 16 lanes, two pot groups per vector. */
#define SIMD_SUFFIX _avx512
#define SIMD_TARGET __attribute__((target("avx512f")))
#define VL 16
#define vint __m512i
#define V_ZERO _mm512_setzero_si512()
#define V_SET1(x) _mm512_set1_epi32(x)
#define V_LOAD_I8(p) _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define V_LOAD_U8(p) _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define V_LOAD_I32(p) _mm512_loadu_si512(p)
#define V_STORE_I32(p, v) _mm512_storeu_si512(p, v)
#define V_STORE_8(p, v) _mm_storeu_si128((__m128i *)(p), _mm512_cvtepi32_epi8(v))   /* lanes in int8/uint8 range */
#define V_ADD _mm512_add_epi32
#define V_SUB _mm512_sub_epi32
#define V_AND _mm512_and_si512
#define V_MUL _mm512_mullo_epi32
#define V_MIN _mm512_min_epi32
#define V_MAX _mm512_max_epi32
#define V_ABS _mm512_abs_epi32
#define V_SRAV _mm512_srav_epi32
#define V_SLLV _mm512_sllv_epi32
#define V_SRLV _mm512_srlv_epi32
#define V_SRLI _mm512_srli_epi32
#define V_SLLI _mm512_slli_epi32
#define V_F32_BITS(v) _mm512_castps_si512(_mm512_cvtepi32_ps(v))
#define V_GT_SELECT(a, b, x, y) _mm512_mask_blend_epi32(_mm512_cmpgt_epi32_mask(a, b), y, x)   /* a > b ? x : y */
/* s[0] to lanes 0-7, s[1] to lanes 8-15 (one value per pot group) */
#define V_GROUP_LOAD_U8(s) _mm512_inserti64x4(_mm512_set1_epi32((s)[0]), _mm256_set1_epi32((s)[1]), 1)
#define V_GROUP_STORE_8(s, v) \
    ((s)[0] = (uint8_t)_mm_cvtsi128_si32(_mm512_castsi512_si128(v)), \
     (s)[1] = (uint8_t)_mm_cvtsi128_si32(_mm512_extracti32x4_epi32(v, 2)))
/* the max of each group of 8 lanes, in all 8 */
SIMD_TARGET static inline __m512i group_max_avx512(__m512i v) {
    v = _mm512_max_epi32(v, _mm512_shuffle_epi32(v, _MM_PERM_CDAB));
    v = _mm512_max_epi32(v, _mm512_shuffle_epi32(v, _MM_PERM_BADC));
    return _mm512_max_epi32(v, _mm512_shuffle_i32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
}
#define V_GROUP_MAX group_max_avx512
/* acc[0] += a * b of the even int32 lanes, acc[1] of the odd ones, as int64 (vpmuldq) */
#define V_MUL_ACC64(acc, a, b)                                                                      \
    ((acc)[0] = _mm512_add_epi64((acc)[0], _mm512_mul_epi32(a, b)),                                 \
     (acc)[1] = _mm512_add_epi64((acc)[1], _mm512_mul_epi32(_mm512_srli_epi64(a, 32), _mm512_srli_epi64(b, 32))))
#define V_HSUM64(acc) _mm512_reduce_add_epi64(_mm512_add_epi64((acc)[0], (acc)[1]))
#include "integer/ssm_head_simd.h"

/* AVX2: 8 lanes, one pot group per vector. */
#define SIMD_SUFFIX _avx2
#define SIMD_TARGET __attribute__((target("avx2")))
#define VL 8
#define vint __m256i
#define V_ZERO _mm256_setzero_si256()
#define V_SET1(x) _mm256_set1_epi32(x)
#define V_LOAD_I8(p) _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p)))
#define V_LOAD_U8(p) _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p)))
#define V_LOAD_I32(p) _mm256_loadu_si256((const __m256i *)(p))
#define V_STORE_I32(p, v) _mm256_storeu_si256((__m256i *)(p), v)
/* lanes in int8/uint8 range: the saturating packs keep them */
SIMD_TARGET static inline void store8_avx2(void *p, __m256i v) {
    __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storel_epi64((__m128i *)p, _mm_packs_epi16(w, w));
}
#define V_STORE_8(p, v) store8_avx2(p, v)
#define V_ADD _mm256_add_epi32
#define V_SUB _mm256_sub_epi32
#define V_AND _mm256_and_si256
#define V_MUL _mm256_mullo_epi32
#define V_MIN _mm256_min_epi32
#define V_MAX _mm256_max_epi32
#define V_ABS _mm256_abs_epi32
#define V_SRAV _mm256_srav_epi32
#define V_SLLV _mm256_sllv_epi32
#define V_SRLV _mm256_srlv_epi32
#define V_SRLI _mm256_srli_epi32
#define V_SLLI _mm256_slli_epi32
#define V_F32_BITS(v) _mm256_castps_si256(_mm256_cvtepi32_ps(v))
#define V_GT_SELECT(a, b, x, y) _mm256_blendv_epi8(y, x, _mm256_cmpgt_epi32(a, b))
#define V_GROUP_LOAD_U8(s) _mm256_set1_epi32((s)[0])
#define V_GROUP_STORE_8(s, v) ((s)[0] = (uint8_t)_mm256_cvtsi256_si32(v))
SIMD_TARGET static inline __m256i group_max_avx2(__m256i v) {
    v = _mm256_max_epi32(v, _mm256_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
    v = _mm256_max_epi32(v, _mm256_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm256_max_epi32(v, _mm256_permute2x128_si256(v, v, 1));
}
#define V_GROUP_MAX group_max_avx2
#define V_MUL_ACC64(acc, a, b)                                                                      \
    ((acc)[0] = _mm256_add_epi64((acc)[0], _mm256_mul_epi32(a, b)),                                 \
     (acc)[1] = _mm256_add_epi64((acc)[1], _mm256_mul_epi32(_mm256_srli_epi64(a, 32), _mm256_srli_epi64(b, 32))))
SIMD_TARGET static inline int64_t hsum64_avx2(const __m256i acc[2]) {
    __m256i s = _mm256_add_epi64(acc[0], acc[1]);
    __m128i t = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return _mm_cvtsi128_si64(t) + _mm_extract_epi64(t, 1);
}
#define V_HSUM64 hsum64_avx2
#include "integer/ssm_head_simd.h"

/* The SIMD path of the current level: its column width (0: none) and its two passes. */
typedef struct {
    int width;
    void (*state_cols)(const head_step *s, int nv);
    int64_t (*contract_row)(const head_step *s, int p, int nv);
} head_simd;

static head_simd head_simd_get(void) {
    switch (lm_simd_level_get()) {
    case LM_SIMD_AVX512: return (head_simd){16, state_cols_avx512, contract_row_avx512};
    case LM_SIMD_AVX2: return (head_simd){8, state_cols_avx2, contract_row_avx2};
    default: return (head_simd){0, NULL, NULL};
    }
}

void lm_int_ssm_head(int32_t *y, int8_t *h_q, uint8_t *h_s, int8_t *h2_q, uint8_t *h2_s, int32_t *hw,
                     int8_t q_dA, uint8_t s_dA, const int8_t *q_dB, const uint8_t *s_dB,
                     const int8_t *q_x, const uint8_t *s_x, const int8_t *q_C, const uint8_t *s_C,
                     int16_t qD, int eD, const lm_int_head_sites *f) {
    const int P = f->P, N = f->N;
    assert(P % LM_POT_GROUP == 0 && N % LM_POT_GROUP == 0);
    const head_step s = {.dp = f->dp, .P = P, .N = N, .hw = hw, .h_q = h_q, .h_s = h_s, .h2_q = h2_q, .h2_s = h2_s,
                         .q_dA = q_dA, .L_dA = s_dA - f->F_dA, .q_dB = q_dB, .s_dB = s_dB, .q_x = q_x, .s_x = s_x,
                         .L_dBx = -f->F_dB - f->F_x + f->F_h, .q_C = q_C, .s_C = s_C};
    const head_simd k = head_simd_get();
    const int nv = k.width ? N - N % k.width : 0;
    /* h = dA * h + dB * x, wide at F_h, and the stored state */
    if (nv) k.state_cols(&s, nv);
    state_cols(&s, nv, N);
    /* y = h . C + D x */
    for (int p = 0; p < P; p++) {
        int64_t acc = (nv ? k.contract_row(&s, p, nv) : 0) + contract_row(&s, p, nv, N);
        int32_t yC = lm_rescale(acc, f->F_y - f->F_h - f->F_C, f->dp);
        int32_t Dx = lm_rescale((int32_t)q_x[p] * qD, s_x[p / LM_POT_GROUP] + eD - f->F_x + f->F_y, f->dp);
        y[p] = lm_sat32((int64_t)yC + Dx);
    }
}
