/* Kernel micro-benchmark: decode GEMV (T = 1) at Mamba2-2.7B shapes, W4A4, W8A8 and
 * float32, in GB/s of weights read against this machine's read bandwidth measured in the
 * same run; prefill (T = 64) W4A4 and W8A8 in GMAC/s against the peak int8 MAC rate measured
 * in the same run (the compute roofline); activation quantization per token; the pool's
 * per-call overhead.
 *   in_proj  O = 2*5120 + 2*128 + 80 = 10576, K = 2560 (130m: 3352 x 768)
 *   out_proj O = 2560, K = 5120                       (130m:  768 x 1536)
 * Each layer's weights are separate copies, many more bytes than the last-level cache,
 * so every call streams from memory as in a real decode step.
 * Usage: bench_kernels [max_threads]   (default: all cores) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "kernels/kernels.h"

#define IN_O 10576
#define IN_K 2560
#define OUT_O 2560
#define OUT_K 5120

static void fill_random(void *p, size_t n, unsigned seed) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        b[i] = (uint8_t)(seed >> 24);
    }
}

/* A quantized matrix with its own storage; 8-bit weights kept in [-127, 127]. */
static lm_qweight qweight_random(int O, int K, int wbits, unsigned seed) {
    size_t stride = wbits == 4 ? (size_t)(K + 1) / 2 : (size_t)K, n_wg = (size_t)(K + 127) / 128;
    uint8_t *q = malloc(O * stride), *scale = malloc(O * n_wg);
    int8_t *e0 = malloc((size_t)O);
    if (!q || !scale || !e0) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    fill_random(q, O * stride, seed);
    if (wbits == 8)
        for (size_t i = 0; i < O * stride; i++)
            if (q[i] == 0x80) q[i] = 0x81;
    for (size_t i = 0; i < O * n_wg; i++) scale[i] = lm_wscale_byte((int)(i % 8), (int)(i * 3 % 8));
    memset(e0, -10, (size_t)O);
    return (lm_qweight){O, K, wbits, q, stride, scale, e0};
}

static size_t qweight_bytes(const lm_qweight *w) {
    return (size_t)w->rows * (w->row_stride + (size_t)(w->cols + 127) / 128 + 1);
}

static void qweight_free(lm_qweight *w) {
    free((void *)w->q), free((void *)w->scale), free((void *)w->e0);
}

/* Decode: x -> in_proj and a second x -> out_proj per layer, over all layer copies, at the
 * 2.7B shapes or (small) the 130m ones: in_proj 3352 x 768, out_proj 768 x 1536. */
static double bench_qdecode_shape(lm_pool *pool, int wbits, int abits, int layers, int small, double *seconds_per_layer) {
    int in_o = small ? 3352 : IN_O, in_k = small ? 768 : IN_K, out_o = small ? 768 : OUT_O, out_k = small ? 1536 : OUT_K;
    lm_qweight *in = malloc(sizeof *in * layers), *out = malloc(sizeof *out * layers);
    size_t bytes = 0;
    for (int l = 0; l < layers; l++) {
        in[l] = qweight_random(in_o, in_k, wbits, 1000 + l);
        out[l] = qweight_random(out_o, out_k, wbits, 2000 + l);
        bytes += qweight_bytes(&in[l]) + qweight_bytes(&out[l]);
    }
    lm_qact a_in, a_out;
    if (lm_qact_init(&a_in, 1, in_k, abits, wbits) || lm_qact_init(&a_out, 1, out_k, abits, wbits)) {
        fprintf(stderr, "bench_kernels: %s\n", lm_last_error());
        exit(1);
    }
    float *x = malloc(sizeof(float) * out_k), *y = malloc(sizeof(float) * in_o);
    for (int k = 0; k < out_k; k++) x[k] = (float)((k * 37) % 101 - 50) * 0.01f;
    lm_quantize_act(&a_in, x, 1);
    lm_quantize_act(&a_out, x, 1);
    double best = 1e30;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = lm_now_seconds();
        for (int l = 0; l < layers; l++) {
            lm_qlinear(y, &a_in, &in[l], pool);
            lm_qlinear(y, &a_out, &out[l], pool);
        }
        double dt = lm_now_seconds() - t0;
        if (dt < best) best = dt;
    }
    for (int l = 0; l < layers; l++) qweight_free(&in[l]), qweight_free(&out[l]);
    free(in), free(out), free(x), free(y);
    lm_qact_free(&a_in), lm_qact_free(&a_out);
    *seconds_per_layer = best / layers;
    return bytes / best / 1e9;
}

static double bench_qdecode(lm_pool *pool, int wbits, int abits, int layers, double *seconds_per_layer) {
    return bench_qdecode_shape(pool, wbits, abits, layers, 0, seconds_per_layer);
}

static double bench_f32_decode(lm_pool *pool, int layers, double *seconds_per_layer) {
    size_t n_in = (size_t)IN_O * IN_K, n_out = (size_t)OUT_O * OUT_K;
    float **w = malloc(sizeof *w * layers);
    for (int l = 0; l < layers; l++) {
        w[l] = malloc(sizeof(float) * (n_in + n_out));
        if (!w[l]) {
            fprintf(stderr, "bench_kernels: out of memory\n");
            exit(1);
        }
        for (size_t i = 0; i < n_in + n_out; i++) w[l][i] = (float)(i % 7) * 0.1f;
    }
    float *x = calloc(OUT_K, sizeof(float)), *y = malloc(sizeof(float) * IN_O);
    double best = 1e30;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = lm_now_seconds();
        for (int l = 0; l < layers; l++) {
            lm_matmul_f32(y, x, w[l], 1, IN_K, IN_O, pool);
            lm_matmul_f32(y, x, w[l] + n_in, 1, OUT_K, OUT_O, pool);
        }
        double dt = lm_now_seconds() - t0;
        if (dt < best) best = dt;
    }
    for (int l = 0; l < layers; l++) free(w[l]);
    free(w), free(x), free(y);
    *seconds_per_layer = best / layers;
    return (double)layers * (n_in + n_out) * sizeof(float) / best / 1e9;
}

/* Prefill: T tokens through one in_proj (cache-resident weights: compute bound). */
static double bench_qprefill(lm_pool *pool, int wbits, int abits, int T) {
    lm_qweight w = qweight_random(IN_O, IN_K, wbits, 7);
    lm_qact a;
    lm_qact_init(&a, T, IN_K, abits, wbits);
    float *x = malloc(sizeof(float) * T * IN_K), *y = malloc(sizeof(float) * T * IN_O);
    for (int i = 0; i < T * IN_K; i++) x[i] = (float)((i * 37) % 101 - 50) * 0.01f;
    lm_quantize_act(&a, x, T);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = lm_now_seconds();
        lm_qlinear(y, &a, &w, pool);
        double dt = lm_now_seconds() - t0;
        if (dt < best) best = dt;
    }
    qweight_free(&w), lm_qact_free(&a), free(x), free(y);
    return (double)T * IN_O * IN_K / best / 1e9;
}

/* lm_quantize_act of one token (single-threaded; it runs on the caller). */
static double bench_quantize(int K, int abits) {
    lm_qact a;
    lm_qact_init(&a, 1, K, abits, 4);
    float *x = malloc(sizeof(float) * K);
    for (int k = 0; k < K; k++) x[k] = (float)((k * 37) % 101 - 50) * 0.01f;
    double best = 1e30;
    for (int rep = 0; rep < 2000; rep++) {
        double t0 = lm_now_seconds();
        lm_quantize_act(&a, x, 1);
        double dt = lm_now_seconds() - t0;
        if (dt < best) best = dt;
    }
    lm_qact_free(&a), free(x);
    return best;
}

static void empty_task(void *ctx, int i, int n) { (void)ctx, (void)i, (void)n; }

int main(int argc, char **argv) {
    int max_threads = argc > 1 ? atoi(argv[1]) : 0;
    lm_pool *probe;
    if (lm_pool_init(&probe, max_threads) != LM_OK) {
        fprintf(stderr, "bench_kernels: %s\n", lm_last_error());
        return 1;
    }
    max_threads = lm_pool_size(probe);
    lm_pool_free(probe);
    printf("SIMD level: %s\n", lm_simd_level_name(lm_simd_level_get()));
    printf("%-8s %-34s %10s %12s %8s\n", "threads", "kernel (2.7B in_proj + out_proj)", "GB/s", "us/layer", "% of bw");
    for (int threads = 1; threads <= max_threads; threads++) {
        lm_pool *pool;
        if (lm_pool_init(&pool, threads) != LM_OK) return 1;
        double bw = lm_measure_read_bandwidth(pool, (size_t)512 << 20);
        printf("%-8d %-34s %10.2f\n", threads, "read bandwidth (512 MiB)", bw);
        double s;
        double gb = bench_qdecode(pool, 4, 4, 24, &s);
        printf("%-8d %-34s %10.2f %12.1f %7.1f%%\n", threads, "W4A4 decode GEMV", gb, s * 1e6, 100 * gb / bw);
        gb = bench_qdecode_shape(pool, 4, 4, 48, 1, &s);
        printf("%-8d %-34s %10.2f %12.1f %7.1f%%\n", threads, "W4A4 decode GEMV, 130m shapes", gb, s * 1e6, 100 * gb / bw);
        gb = bench_qdecode(pool, 8, 8, 12, &s);
        printf("%-8d %-34s %10.2f %12.1f %7.1f%%\n", threads, "W8A8 decode GEMV", gb, s * 1e6, 100 * gb / bw);
        gb = bench_f32_decode(pool, 3, &s);
        printf("%-8d %-34s %10.2f %12.1f %7.1f%%\n", threads, "f32 decode GEMV", gb, s * 1e6, 100 * gb / bw);
        double peak = lm_measure_int8_peak(pool);
        printf("%-8d %-34s %10.1f GMAC/s\n", threads, "peak int8 MACs (vpdpbusd/maddubs)", peak);
        double r = bench_qprefill(pool, 4, 4, 64);
        printf("%-8d %-34s %10.1f GMAC/s %6.1f%% of peak\n", threads, "W4A4 prefill T=64 (in_proj)", r, 100 * r / peak);
        r = bench_qprefill(pool, 8, 8, 64);
        printf("%-8d %-34s %10.1f GMAC/s %6.1f%% of peak\n", threads, "W8A8 prefill T=64 (in_proj)", r, 100 * r / peak);
        printf("%-8d %-34s %10.2f us/token\n", threads, "quantize activations K=5120 (A4)", bench_quantize(5120, 4) * 1e6);
        double t0 = lm_now_seconds();
        for (int i = 0; i < 100000; i++) lm_pool_run(pool, empty_task, NULL);
        printf("%-8d %-34s %10.2f us/call\n", threads, "pool round trip (empty task)", (lm_now_seconds() - t0) * 10);
        lm_pool_free(pool);
    }
    return 0;
}
