/* Matrix product with float16 weights: y[t][o] = sum_k x[t][k] * W[o][k].
 *   x [T, K] float32, W [O, K] IEEE half, y [T, O] float32
 * Every half converts exactly to a float, so this is the float32 product of the converted
 * matrix; only the order of the float sums differs between the paths below.
 * Output rows are split over the pool (chunks of 16).
 * T == 1 (decode) is bound by reading W once (2 bytes a weight, half of float32): each
 * thread reads its rows as four far-apart sequential streams in lockstep (see
 * GEMV_F16_STREAMS), converting 16 (AVX-512) or 8 (F16C) halves per instruction, two
 * accumulators per row.
 * T > 1 (prefill, perplexity) is compute bound: each thread converts a tile of its rows into
 * a float32 scratch once and multiplies all T tokens by it with OpenBLAS sgemm, so each
 * conversion is reused T times and the GEMM runs at the float32 sgemm's speed. */
#include "kernels/kernels.h"

#include <cblas.h>
#include <cpuid.h>
#include <immintrin.h>
#include <stdlib.h>

#include "common/half.h"

/* Weight streams per thread in decode, and float32 bytes of one prefill tile (per thread; a
 * tile is at least 16 rows). */
#define F16_STREAMS 4
#define F16_TILE_BYTES (512 * 1024)

/* ---- scalar: the reference ---- */
static void gemv_f16_scalar(float *y, const float *x, const uint16_t *W, int K, int o0, int o1) {
    for (int o = o0; o < o1; o++) {
        const uint16_t *w = W + (size_t)o * K;
        float sum = 0.0f;
        for (int k = 0; k < K; k++) sum += lm_f16_to_f32(w[k]) * x[k];
        y[o] = sum;
    }
}

static void convert_f16_scalar(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = lm_f16_to_f32(src[i]);
}

/* ---- SIMD: y[r][0] = w[r] . x for nr rows at any addresses, in lockstep ----
 * One body for both instruction sets: V halves per vector (16 on AVX-512, 8 on AVX2), two
 * accumulators per row over a step of 2V columns, then one vector of V, then a scalar tail.
 * Called with constant nr so the loops unroll and the accumulators stay in registers. */
#define F16_ROWS(name, attr, vec, V, zero, loadx, loadw, fmadd, add, hsum)                       \
    attr void name(float *const *y, const float *x, const uint16_t *const *w, int K, int nr) {    \
        vec acc[F16_STREAMS][2];                                                                  \
        _Pragma("GCC unroll 4") for (int r = 0; r < nr; r++) acc[r][0] = acc[r][1] = zero();      \
        int k = 0;                                                                                \
        for (; k + 2 * (V) <= K; k += 2 * (V)) {                                                  \
            vec x0 = loadx(x + k), x1 = loadx(x + k + (V));                                       \
            _Pragma("GCC unroll 4") for (int r = 0; r < nr; r++) {                                \
                acc[r][0] = fmadd(loadw(w[r] + k), x0, acc[r][0]);                                \
                acc[r][1] = fmadd(loadw(w[r] + k + (V)), x1, acc[r][1]);                          \
            }                                                                                     \
        }                                                                                         \
        if (k + (V) <= K) {                                                                       \
            vec x0 = loadx(x + k);                                                                \
            _Pragma("GCC unroll 4") for (int r = 0; r < nr; r++) acc[r][0] =                      \
                fmadd(loadw(w[r] + k), x0, acc[r][0]);                                            \
            k += (V);                                                                             \
        }                                                                                         \
        _Pragma("GCC unroll 4") for (int r = 0; r < nr; r++) {                                    \
            float s = hsum(add(acc[r][0], acc[r][1]));                                            \
            for (int j = k; j < K; j++) s += lm_f16_to_f32(w[r][j]) * x[j];                       \
            *y[r] = s;                                                                            \
        }                                                                                         \
    }

/* AVX-512: vcvtph2ps zmm, 16 halves */
#define F16_AVX512 __attribute__((target("avx512f"), always_inline)) static inline

F16_AVX512 __m512 load16_avx512(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }

F16_ROWS(rows_f16_avx512, F16_AVX512, __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, load16_avx512, _mm512_fmadd_ps,
         _mm512_add_ps, _mm512_reduce_add_ps)

/* AVX2 + F16C + FMA: vcvtph2ps ymm, 8 halves */
#define F16_AVX2 __attribute__((target("avx2,fma,f16c"), always_inline)) static inline

F16_AVX2 __m256 load8_avx2(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

F16_AVX2 float hsum8_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

F16_ROWS(rows_f16_avx2, F16_AVX2, __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, load8_avx2, _mm256_fmadd_ps,
         _mm256_add_ps, hsum8_avx2)

/* Rows [o0, o1) as F16_STREAMS streams: the range cut into that many equal parts, one row of
 * each part at a time (four far-apart sequential streams per core keep enough misses in flight,
 * as the bandwidth probe reads; adjacent rows in lockstep measured 2-3x slower on Zen 4), then
 * the few rows left over one by one. */
#define GEMV_F16_STREAMS(rows_fn, y, x, W, K, o0, o1)                                 \
    do {                                                                              \
        const int len = ((o1) - (o0)) / F16_STREAMS;                                  \
        float *ys[F16_STREAMS];                                                       \
        const uint16_t *ws[F16_STREAMS];                                              \
        for (int i = 0; i < len; i++) {                                               \
            for (int s = 0; s < F16_STREAMS; s++) {                                   \
                int o = (o0) + s * len + i;                                           \
                ys[s] = (y) + o, ws[s] = (W) + (size_t)o * (K);                       \
            }                                                                         \
            rows_fn(ys, x, ws, K, F16_STREAMS);                                       \
        }                                                                             \
        for (int o = (o0) + F16_STREAMS * len; o < (o1); o++) {                       \
            ys[0] = (y) + o, ws[0] = (W) + (size_t)o * (K);                           \
            rows_fn(ys, x, ws, K, 1);                                                 \
        }                                                                             \
    } while (0)

__attribute__((target("avx512f")))
static void gemv_f16_avx512(float *y, const float *x, const uint16_t *W, int K, int o0, int o1) {
    GEMV_F16_STREAMS(rows_f16_avx512, y, x, W, K, o0, o1);
}

__attribute__((target("avx2,fma,f16c")))
static void gemv_f16_avx2(float *y, const float *x, const uint16_t *W, int K, int o0, int o1) {
    GEMV_F16_STREAMS(rows_f16_avx2, y, x, W, K, o0, o1);
}

__attribute__((target("avx512f")))
static void convert_f16_avx512(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, load16_avx512(src + i));
    for (; i < n; i++) dst[i] = lm_f16_to_f32(src[i]);
}

__attribute__((target("avx2,fma,f16c")))
static void convert_f16_avx2(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8_avx2(src + i));
    for (; i < n; i++) dst[i] = lm_f16_to_f32(src[i]);
}

/* ---- dispatch ---- */
typedef struct {
    float *y;
    const float *x;
    const uint16_t *W;
    int T, K, O;
    lm_simd_level level;
} matmul_f16_task;

static void gemv_f16(const matmul_f16_task *m, float *y, const float *x, int o0, int o1) {
    switch (m->level) {
    case LM_SIMD_AVX512: gemv_f16_avx512(y, x, m->W, m->K, o0, o1); break;
    case LM_SIMD_AVX2: gemv_f16_avx2(y, x, m->W, m->K, o0, o1); break;
    default: gemv_f16_scalar(y, x, m->W, m->K, o0, o1); break;
    }
}

static void convert_f16(const matmul_f16_task *m, float *dst, const uint16_t *src, size_t n) {
    switch (m->level) {
    case LM_SIMD_AVX512: convert_f16_avx512(dst, src, n); break;
    case LM_SIMD_AVX2: convert_f16_avx2(dst, src, n); break;
    default: convert_f16_scalar(dst, src, n); break;
    }
}

static void matmul_f16_part(void *p, int i, int n) {
    const matmul_f16_task *m = p;
    int o0, o1;
    if (m->T == 1) {
        lm_pool_split(m->O, i, n, 16, &o0, &o1);
        if (o0 < o1) gemv_f16(m, m->y, m->x, o0, o1);
        return;
    }
    /* Parts are whole tiles of one global grid, so every row is computed by the same sgemm call
     * shape whatever the thread count (sgemm's sums depend on the tile it sees): prefill logits
     * are then bit-identical across thread counts. */
    int tile_rows = F16_TILE_BYTES / (int)sizeof(float) / m->K / 16 * 16;
    if (tile_rows < 16) tile_rows = 16;
    lm_pool_split(m->O, i, n, tile_rows, &o0, &o1);
    if (o0 >= o1) return;
    float *tile = aligned_alloc(64, ((size_t)tile_rows * m->K * sizeof(float) + 63) / 64 * 64);
    if (!tile) { /* no scratch memory: one token at a time through the GEMV (slower, as exact) */
        for (int t = 0; t < m->T; t++) gemv_f16(m, m->y + (size_t)t * m->O, m->x + (size_t)t * m->K, o0, o1);
        return;
    }
    for (int r0 = o0; r0 < o1; r0 += tile_rows) {
        int nr = o1 - r0 < tile_rows ? o1 - r0 : tile_rows;
        convert_f16(m, tile, m->W + (size_t)r0 * m->K, (size_t)nr * m->K);
        /* y[:, r0:r0+nr] = x @ tile^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m->T, nr, m->K, 1.0f, m->x, m->K, tile, m->K, 0.0f,
                    m->y + r0, m->O);
    }
    free(tile);
}

/* CPUID.1:ECX.F16C, asked directly: clang's __builtin_cpu_supports does not know "f16c". */
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

void lm_matmul_f16(float *y, const float *x, const uint16_t *W, int T, int K, int O, lm_pool *pool) {
    if (!lm_matmul_start(y, T, K, O)) return;
    lm_simd_level level = lm_simd_level_get();
    /* every AVX2 CPU has F16C (Intel since Ivy Bridge, AMD since Piledriver), but check */
    if (level == LM_SIMD_AVX2 && !cpu_has_f16c()) level = LM_SIMD_SCALAR;
    matmul_f16_task task = {y, x, W, T, K, O, level};
    lm_pool_run(pool, matmul_f16_part, &task);
}
