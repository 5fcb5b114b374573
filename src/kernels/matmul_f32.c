/* Float32 matrix product y[t][o] = sum_k x[t][k] * W[o][k].
 *   x [T, K], W [O, K], y [T, O]
 * T == 1 (decode) is a matrix-vector product bound by reading W once: the output rows
 * are split over the pool and each thread streams its rows with AVX-512 or AVX2+FMA
 * (run-time choice), four rows at a time so each x load is reused four times.
 * T > 1 (prefill) is compute bound: OpenBLAS sgemm on tiles of rows of a fixed grid, whole
 * tiles per thread, with OpenBLAS's own threading switched off so only our pool runs threads. */
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

__attribute__((target("avx2,fma"))) static inline float hsum256_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma")))
static void gemv_f32_avx2(float *y, const float *x, const float *W, int K, int o0, int o1) {
    int K8 = K & ~7;
    int o = o0;
    for (; o + 4 <= o1; o += 4) {
        const float *w0 = W + (size_t)o * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < K8; k += 8) {
            __m256 xv = _mm256_loadu_ps(x + k);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k), xv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + k), xv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + k), xv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + k), xv, a3);
        }
        float s0 = hsum256_ps(a0), s1 = hsum256_ps(a1), s2 = hsum256_ps(a2), s3 = hsum256_ps(a3);
        for (int k = K8; k < K; k++) {
            s0 += w0[k] * x[k];
            s1 += w1[k] * x[k];
            s2 += w2[k] * x[k];
            s3 += w3[k] * x[k];
        }
        y[o] = s0, y[o + 1] = s1, y[o + 2] = s2, y[o + 3] = s3;
    }
    for (; o < o1; o++) {
        const float *w = W + (size_t)o * K;
        __m256 a = _mm256_setzero_ps();
        for (int k = 0; k < K8; k += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a);
        float s = hsum256_ps(a);
        for (int k = K8; k < K; k++) s += w[k] * x[k];
        y[o] = s;
    }
}

/* The K tail is a masked load (masked-off lanes read nothing and count as 0). */
__attribute__((target("avx512f")))
static void gemv_f32_avx512(float *y, const float *x, const float *W, int K, int o0, int o1) {
    int K16 = K & ~15;
    __mmask16 tail = (__mmask16)((1u << (K - K16)) - 1);
    int o = o0;
    for (; o + 4 <= o1; o += 4) {
        const float *w0 = W + (size_t)o * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < K16; k += 16) {
            __m512 xv = _mm512_loadu_ps(x + k);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + k), xv, a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + k), xv, a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + k), xv, a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + k), xv, a3);
        }
        if (tail) {
            __m512 xv = _mm512_maskz_loadu_ps(tail, x + K16);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w0 + K16), xv, a0);
            a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w1 + K16), xv, a1);
            a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w2 + K16), xv, a2);
            a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w3 + K16), xv, a3);
        }
        y[o] = _mm512_reduce_add_ps(a0);
        y[o + 1] = _mm512_reduce_add_ps(a1);
        y[o + 2] = _mm512_reduce_add_ps(a2);
        y[o + 3] = _mm512_reduce_add_ps(a3);
    }
    for (; o < o1; o++) {
        const float *w = W + (size_t)o * K;
        __m512 a = _mm512_setzero_ps();
        for (int k = 0; k < K16; k += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(w + k), _mm512_loadu_ps(x + k), a);
        if (tail) a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w + K16), _mm512_maskz_loadu_ps(tail, x + K16), a);
        y[o] = _mm512_reduce_add_ps(a);
    }
}

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

int lm_matmul_start(float *y, int T, int K, int O) {
    if (T <= 0 || O <= 0) return 0;
    if (K <= 0) {
        for (size_t i = 0; i < (size_t)T * O; i++) y[i] = 0.0f;
        return 0;
    }
    if (T > 1) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, openblas_single_thread);
    }
    return 1;
}

void lm_matmul_f32(float *y, const float *x, const float *W, int T, int K, int O, lm_pool *pool) {
    if (!lm_matmul_start(y, T, K, O)) return;
    matmul_f32_task task = {y, x, W, T, K, O, lm_simd_level_get()};
    lm_pool_run(pool, matmul_f32_part, &task);
}
