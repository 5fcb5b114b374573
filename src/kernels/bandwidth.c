/* What this machine can do, measured: the read bandwidth (every pool thread streams its own part
 * of one large buffer, as four interleaved streams, see read_avx2; the best of a few passes counts,
 * the first also pulls the pages in) and the peak int8 multiply-accumulate rate (the compute
 * roofline of the integer kernels). */
#include "kernels/kernels.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

typedef struct {
    const uint8_t *buf;
    size_t bytes;
    lm_simd_level level;
    uint64_t sink[64]; /* one result per thread, so no read is optimized away */
} read_task;

/* Four streams at once (the part's four quarters in lockstep), as a GEMV reads several weight
 * rows: one stream per core leaves too few misses in flight to fill the memory pipe (on a
 * two-core Zen 4 VM one stream per core reads ~26 GB/s, four per core ~40 GB/s). */
#define READ_STREAMS 4
__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t *p, size_t n) {
    size_t q = n / READ_STREAMS / 64 * 64;
    const uint8_t *s0 = p, *s1 = p + q, *s2 = p + 2 * q, *s3 = p + 3 * q;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < q; i += 64) {
        a0 = _mm256_xor_si256(a0, _mm256_xor_si256(_mm256_load_si256((const __m256i *)(s0 + i)),
                                                   _mm256_load_si256((const __m256i *)(s0 + i + 32))));
        a1 = _mm256_xor_si256(a1, _mm256_xor_si256(_mm256_load_si256((const __m256i *)(s1 + i)),
                                                   _mm256_load_si256((const __m256i *)(s1 + i + 32))));
        a2 = _mm256_xor_si256(a2, _mm256_xor_si256(_mm256_load_si256((const __m256i *)(s2 + i)),
                                                   _mm256_load_si256((const __m256i *)(s2 + i + 32))));
        a3 = _mm256_xor_si256(a3, _mm256_xor_si256(_mm256_load_si256((const __m256i *)(s3 + i)),
                                                   _mm256_load_si256((const __m256i *)(s3 + i + 32))));
    }
    __m256i s = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return (uint64_t)_mm256_extract_epi64(s, 0) ^ (uint64_t)_mm256_extract_epi64(s, 3);
}

static uint64_t read_scalar(const uint8_t *p, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        s ^= v;
    }
    return s;
}

static void read_part(void *p, int i, int n) {
    read_task *r = p;
    int c0, c1; /* in 4 KiB chunks */
    lm_pool_split((int)(r->bytes / 4096), i, n, 1, &c0, &c1);
    const uint8_t *part = r->buf + (size_t)c0 * 4096;
    size_t len = (size_t)(c1 - c0) * 4096;
    r->sink[i & 63] ^= r->level >= LM_SIMD_AVX2 ? read_avx2(part, len) : read_scalar(part, len);
}

double lm_measure_read_bandwidth(lm_pool *pool, size_t bytes) {
    bytes = bytes / 4096 * 4096;
    if (bytes == 0 || bytes / 4096 > (size_t)1 << 30) return -1.0;
    uint8_t *buf = aligned_alloc(4096, bytes);
    if (!buf) return -1.0;
    memset(buf, 1, bytes);
    read_task task = {buf, bytes, lm_simd_level_get(), {0}};
    double best = 0.0;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = lm_now_seconds();
        lm_pool_run(pool, read_part, &task);
        double dt = lm_now_seconds() - t0;
        if (dt > 0 && bytes / dt > best) best = bytes / dt;
    }
    /* Publish a dependence on the reads (a no-op the compiler cannot drop). */
    volatile uint64_t keep = 0;
    for (int i = 0; i < 64; i++) keep ^= task.sink[i];
    (void)keep;
    free(buf);
    return best / 1e9;
}

/* ---- peak int8 multiply-accumulates ----
 * Independent accumulators (more than latency x throughput of the instruction), so nothing but the
 * execution ports limits the rate: AVX-512 VNNI vpdpbusd (64 MACs), AVX2 vpmaddubsw (32 MACs, the
 * AVX2 kernels' product; its int16 sums are added in pairs by vpmaddwd, not counted). */
#define PEAK_CHAINS 16
#define PEAK_ITERS 200000

typedef struct {
    lm_simd_level level;
    int32_t sink[64];
} peak_task;

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static int32_t peak_avx512(void) {
    __m512i acc[PEAK_CHAINS], u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-5);
    for (int i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm512_set1_epi32(i);
    for (int n = 0; n < PEAK_ITERS; n++) {
#pragma GCC unroll 16
        for (int i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm512_dpbusd_epi32(acc[i], u, s);
        __asm__ volatile("" : "+v"(u), "+v"(s)); /* the operands are not loop invariants */
    }
    __m512i sum = acc[0];
    for (int i = 1; i < PEAK_CHAINS; i++) sum = _mm512_add_epi32(sum, acc[i]);
    return _mm512_reduce_add_epi32(sum);
}

__attribute__((target("avx2"))) static int32_t peak_avx2(void) {
    __m256i acc[PEAK_CHAINS], u = _mm256_set1_epi8(3), s = _mm256_set1_epi8(-5);
    for (int i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm256_set1_epi16((short)i);
    for (int n = 0; n < PEAK_ITERS; n++) {
#pragma GCC unroll 16
        for (int i = 0; i < PEAK_CHAINS; i++) acc[i] = _mm256_add_epi16(acc[i], _mm256_maddubs_epi16(u, s));
        __asm__ volatile("" : "+x"(u), "+x"(s));
    }
    __m256i sum = acc[0];
    for (int i = 1; i < PEAK_CHAINS; i++) sum = _mm256_add_epi16(sum, acc[i]);
    return _mm256_extract_epi32(sum, 0);
}

static void peak_part(void *p, int i, int n) {
    peak_task *r = p;
    r->sink[i & 63] = r->level == LM_SIMD_AVX512 ? peak_avx512() : peak_avx2();
}

double lm_measure_int8_peak(lm_pool *pool) {
    lm_simd_level level = lm_simd_level_get();
    if (level == LM_SIMD_SCALAR) return -1.0;
    peak_task task = {level, {0}};
    double macs_per_op = level == LM_SIMD_AVX512 ? 64 : 32, best = 0.0;
    for (int pass = 0; pass < 3; pass++) {
        double t0 = lm_now_seconds();
        lm_pool_run(pool, peak_part, &task);
        double dt = lm_now_seconds() - t0;
        double rate = (double)lm_pool_size(pool) * PEAK_ITERS * PEAK_CHAINS * macs_per_op / dt;
        if (dt > 0 && rate > best) best = rate;
    }
    volatile int32_t keep = 0;
    for (int i = 0; i < 64; i++) keep ^= task.sink[i];
    (void)keep;
    return best / 1e9;
}
