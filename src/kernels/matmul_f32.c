/* Float32 matrix product y[t][o] = sum_k x[t][k] * W[o][k].
 *   x [T, K], W [O, K], y [T, O]
 * T == 1 (decode) is a matrix-vector product bound by reading W once: the output rows
 * are split over the pool and each thread streams its rows with AVX-512 or AVX2+FMA
 * (run-time choice).
 * T > 1 (prefill) is compute bound: OpenBLAS sgemm on tiles of rows of a fixed grid, whole
 * tiles per thread, with OpenBLAS's own threading switched off so only our pool runs threads.
 * Also the small products of the chunked scan (lm_gemm_small, lm_transpose_f32), on the calling
 * thread: a register-blocked AVX-512 kernel, OpenBLAS below that level. */
#include "kernels/kernels.h"

#include <cblas.h>
#include <immintrin.h>
#include <pthread.h>

/* float32 bytes of W per prefill sgemm call (at least 16 rows) */
#define F32_TILE_BYTES (512 * 1024)

/* y[o] = W[o] . x for o in [o0, o1); the order of the sum is the loop's, rows independent. */
static void gemv_f32_scalar(float *y, const float *x, const float *W, int K, int o0, int o1) {
    for (int o = o0; o < o1; o++) {
        const float *w = W + (size_t)o * K;
        float sum = 0.0f;
        for (int k = 0; k < K; k++) sum += w[k] * x[k];
        y[o] = sum;
    }
}

/* ---- SIMD: one body for AVX-512 and AVX2 ----
 * V floats per vector, one accumulator per row, rows four at a time so each x load is reused four
 * times (rows_* is called with constant nr, 4 and then 1 for the rows left over, so its loops
 * unroll and the accumulators stay in registers). finish() adds the K tail and reduces: AVX-512
 * one masked vector (masked-off lanes read nothing and count as 0), AVX2 a scalar tail after the
 * horizontal sum. */
#define GEMV_F32(name, isa, vec, V, zero, load, fmadd, finish)                                        \
    __attribute__((target(isa), always_inline)) static inline void rows_##name(                       \
        float *y, const float *x, const float *w, int K, int nr) {                                    \
        vec acc[4];                                                                                   \
        _Pragma("GCC unroll 4") for (int r = 0; r < nr; r++) acc[r] = zero();                         \
        int k = 0;                                                                                    \
        for (; k + (V) <= K; k += (V)) {                                                              \
            vec xv = load(x + k);                                                                     \
            _Pragma("GCC unroll 4") for (int r = 0; r < nr; r++) acc[r] =                             \
                fmadd(load(w + (size_t)r * K + k), xv, acc[r]);                                       \
        }                                                                                             \
        _Pragma("GCC unroll 4") for (int r = 0; r < nr; r++) y[r] = finish(acc[r], w + (size_t)r * K, x, k, K); \
    }                                                                                                 \
    __attribute__((target(isa))) static void name(float *y, const float *x, const float *W, int K, int o0, int o1) { \
        int o = o0;                                                                                   \
        for (; o + 4 <= o1; o += 4) rows_##name(y + o, x, W + (size_t)o * K, K, 4);                   \
        for (; o < o1; o++) rows_##name(y + o, x, W + (size_t)o * K, K, 1);                           \
    }

#define F32_AVX512 __attribute__((target("avx512f"), always_inline)) static inline
#define F32_AVX2 __attribute__((target("avx2,fma"), always_inline)) static inline

F32_AVX512 float finish_avx512(__m512 a, const float *w, const float *x, int k, int K) {
    if (k < K) {
        __mmask16 tail = (__mmask16)((1u << (K - k)) - 1);
        a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w + k), _mm512_maskz_loadu_ps(tail, x + k), a);
    }
    return _mm512_reduce_add_ps(a);
}

F32_AVX2 float finish_avx2(__m256 a, const float *w, const float *x, int k, int K) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    float sum = _mm_cvtss_f32(s);
    for (; k < K; k++) sum += w[k] * x[k];
    return sum;
}

GEMV_F32(gemv_f32_avx512, "avx512f", __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_fmadd_ps, finish_avx512)
GEMV_F32(gemv_f32_avx2, "avx2,fma", __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_fmadd_ps, finish_avx2)

typedef struct {
    float *y;
    const float *x, *W;
    int T, K, O;
    lm_simd_level level;
} matmul_f32_task;

static void matmul_f32_part(void *p, int i, int n) {
    const matmul_f32_task *m = p;
    int o0, o1;
    if (m->T > 1) {
        /* Whole tiles of one global grid, one sgemm per tile: every row goes through the same sgemm
         * call shape whatever the thread count (sgemm's sums depend on the block it sees), so prefill
         * results, and what is calibrated on them, do not depend on the thread count. */
        int tile_rows = F32_TILE_BYTES / (int)sizeof(float) / m->K / 16 * 16;
        if (tile_rows < 16) tile_rows = 16;
        lm_pool_split(m->O, i, n, tile_rows, &o0, &o1);
        for (int r0 = o0; r0 < o1; r0 += tile_rows) {
            int nr = o1 - r0 < tile_rows ? o1 - r0 : tile_rows;
            /* y[:, r0:r0+nr] = x @ W[r0:r0+nr]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m->T, nr, m->K, 1.0f, m->x, m->K,
                        m->W + (size_t)r0 * m->K, m->K, 0.0f, m->y + r0, m->O);
        }
        return;
    }
    lm_pool_split(m->O, i, n, 16, &o0, &o1);
    if (o0 >= o1) return;
    switch (m->level) {
    case LM_SIMD_AVX512: gemv_f32_avx512(m->y, m->x, m->W, m->K, o0, o1); break;
    case LM_SIMD_AVX2: gemv_f32_avx2(m->y, m->x, m->W, m->K, o0, o1); break;
    default: gemv_f32_scalar(m->y, m->x, m->W, m->K, o0, o1); break;
    }
}

static void openblas_single_thread(void) { openblas_set_num_threads(1); }

/* Before the first sgemm: our pool already splits the work over the cores. */
static void openblas_once(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, openblas_single_thread);
}

int lm_matmul_start(float *y, int T, int K, int O) {
    if (T <= 0 || O <= 0) return 0;
    if (K <= 0) {
        for (size_t i = 0; i < (size_t)T * O; i++) y[i] = 0.0f;
        return 0;
    }
    if (T > 1) openblas_once();
    return 1;
}

/* c rows [i, i+4) (the rows past M recompute row M-1 and are not stored) x columns [j, j+64)
 * (mk[v]: the columns of vector v that exist). op(a)[i][k] is a[i*sa + k*sk]. */
__attribute__((target("avx512f")))
static inline void gemm_small_block_avx512(float *c, int ldc, float beta, const float *a, size_t sa, size_t sk,
                                           const float *b, int ldb, int M, int K, int lower, int i, int j,
                                           const __mmask16 mk[4]) {
    const float *ar[4];
    for (int r = 0; r < 4; r++) ar[r] = a + (i + r < M ? i + r : M - 1) * sa;
    const int kend = lower && i + 4 < K ? i + 4 : K;
    /* the loops over r and v unrolled, so the 16 accumulators stay in registers */
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_ps();
    for (int k = 0; k < kend; k++) {
        const float *bk = b + (size_t)k * ldb + j;
        __m512 bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) bv[v] = _mm512_maskz_loadu_ps(mk[v], bk + 16 * v);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const __m512 av = _mm512_set1_ps(ar[r][k * sk]);
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    const __m512 bb = _mm512_set1_ps(beta);
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) {
            if (i + r >= M) break;
            float *cv = c + (size_t)(i + r) * ldc + j + 16 * v;
            const __m512 out = beta != 0.0f ? _mm512_fmadd_ps(bb, _mm512_maskz_loadu_ps(mk[v], cv), acc[r][v]) : acc[r][v];
            _mm512_mask_storeu_ps(cv, mk[v], out);
        }
}

__attribute__((target("avx512f")))
static void gemm_small_avx512(float *c, int ldc, float beta, const float *a, int lda, int trans_a, const float *b,
                              int ldb, int M, int N, int K, int lower) {
    const size_t sa = trans_a ? 1 : (size_t)lda, sk = trans_a ? (size_t)lda : 1;
    for (int j = 0; j < N; j += 64) {
        __mmask16 mk[4];
        for (int v = 0; v < 4; v++) {
            const int cols = N - j - 16 * v;
            mk[v] = cols >= 16 ? 0xFFFF : cols <= 0 ? 0 : (__mmask16)((1u << cols) - 1);
        }
        for (int i = 0; i < M; i += 4) gemm_small_block_avx512(c, ldc, beta, a, sa, sk, b, ldb, M, K, lower, i, j, mk);
    }
}

void lm_gemm_small(float *c, int ldc, float beta, const float *a, int lda, int trans_a, const float *b, int ldb, int M,
                   int N, int K, int lower) {
    if (lm_simd_level_get() == LM_SIMD_AVX512) {
        gemm_small_avx512(c, ldc, beta, a, lda, trans_a, b, ldb, M, N, K, lower);
        return;
    }
    openblas_once();
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, lda, b, ldb, beta,
                c, ldc);
}

/* One 16 x 16 block: four rounds of interleaving (32-bit, 64-bit, 128-bit, 256-bit lanes). */
__attribute__((target("avx512f")))
static void transpose16_avx512(float *out, int ldo, const float *in, int ldi) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(in + (size_t)i * ldi);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4)
        for (int k = 0; k < 2; k++) {
            r[i + k] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + k]), _mm512_castps_pd(t[i + k + 2])));
            r[i + k + 2] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + k]), _mm512_castps_pd(t[i + k + 2])));
        }
    for (int i = 0; i < 16; i += 8)
        for (int k = 0; k < 4; k++) {
            t[i + k] = _mm512_shuffle_f32x4(r[i + k], r[i + k + 4], 0x88);
            t[i + k + 4] = _mm512_shuffle_f32x4(r[i + k], r[i + k + 4], 0xdd);
        }
    for (int k = 0; k < 8; k++) {
        r[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
        r[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xdd);
    }
    /* r[k] now holds column q(k) of the block, q = the bit order the rounds leave */
    static const int col[16] = {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15};
    for (int k = 0; k < 16; k++) _mm512_storeu_ps(out + (size_t)col[k] * ldo, r[k]);
}

void lm_transpose_f32(float *out, int ldo, const float *in, int ldi, int rows, int cols) {
    int r0 = 0, c0 = 0;
    if (lm_simd_level_get() == LM_SIMD_AVX512) {
        r0 = rows / 16 * 16, c0 = cols / 16 * 16;
        for (int i = 0; i < r0; i += 16)
            for (int j = 0; j < c0; j += 16) transpose16_avx512(out + (size_t)j * ldo + i, ldo, in + (size_t)i * ldi + j, ldi);
    }
    /* the rest: the columns past c0 of every row, and the rows past r0 */
    for (int i = 0; i < rows; i++)
        for (int j = i < r0 ? c0 : 0; j < cols; j++) out[(size_t)j * ldo + i] = in[(size_t)i * ldi + j];
}

void lm_matmul_f32(float *y, const float *x, const float *W, int T, int K, int O, lm_pool *pool) {
    if (!lm_matmul_start(y, T, K, O)) return;
    matmul_f32_task task = {y, x, W, T, K, O, lm_simd_level_get()};
    lm_pool_run(pool, matmul_f32_part, &task);
}
