/* Weight quantizers: hand-checked exponent choices and 4-bit packing, exact round trips of
 * representable matrices, the scale search against an exhaustive one, and GPTQ beating round to
 * nearest on a layer with correlated inputs. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "quant/quantize.h"

static uint64_t rng = 88172645463325252ull;
static double uniform(void) { /* xorshift64, [0, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static double gaussian(void) { return sqrt(-2.0 * log(1.0 - uniform())) * cos(6.283185307179586 * uniform()); }

/* Hand-checked: at e0 = 0 the only error-free scale for multiples of 3 up to 21 (4-bit, qmax 7) is
 * 3 = 2^0 + 2^1; for multiples of 5 up to 35 it is 5 = 2^0 + 2^2; 8-bit, multiples of 9 up to 1143:
 * 9 = 2^0 + 2^3. With one outlier a clipped scale wins: see the comment below. */
static void test_best_pair(void) {
    float w[128];
    uint8_t pair;
    for (int i = 0; i < 128; i++) w[i] = (float)(3 * (i % 15 - 7));
    CHECK(lm_wgroup_best_pair(w, 128, 0, 7, &pair) == 0.0 && pair == (0 | 1 << 4), "multiples of 3: pair %#x", pair);
    for (int i = 0; i < 128; i++) w[i] = (float)(5 * (i % 15 - 7));
    CHECK(lm_wgroup_best_pair(w, 128, 0, 7, &pair) == 0.0 && pair == (0 | 2 << 4), "multiples of 5: pair %#x", pair);
    for (int i = 0; i < 128; i++) w[i] = (float)(9 * (i % 255 - 127));
    CHECK(lm_wgroup_best_pair(w, 128, 0, 127, &pair) == 0.0 && pair == (0 | 3 << 4), "8-bit multiples of 9: pair %#x", pair);
    /* 127 values of +-1 and one 10, 4-bit, e0 = -1 (scales 1, 1.5, 2, 2.5, 3, 4, 4.5, ...):
     * scale 1 clips 10 to 7: error 9; scale 1.5: +-1 -> +-1.5 (127 * 0.25) and 10 -> 10.5: 32;
     * scale 2 or more: 127 * 1 or more. So the clipping scale 1 = 2^-1 (2^0 + 2^0) wins, error 9. */
    for (int i = 0; i < 128; i++) w[i] = (i & 1) ? 1.0f : -1.0f;
    w[5] = 10.0f;
    double e = lm_wgroup_best_pair(w, 128, -1, 7, &pair);
    CHECK(e == 9.0 && pair == 0, "outlier: pair %#x error %g", pair, e);
}

/* 4-bit packing, hand-checked: q = {1, -1, 7, -7, 3} at scale 1 -> bytes 0xF1, 0x97, 0x03
 * (column k in the low nibble when k is even, two's complement nibbles, odd tail in a low nibble). */
static void test_packing(void) {
    const float w[5] = {1, -1, 7, -7, 3};
    lm_qweight_buf b;
    CHECK_OK(lm_quantize_rtn(&b, w, 1, 5, 4, NULL));
    CHECK(b.view.row_stride == 3, "row stride %zu", b.view.row_stride);
    CHECK(b.q[0] == 0xF1 && b.q[1] == 0x97 && b.q[2] == 0x03, "bytes %02x %02x %02x", b.q[0], b.q[1], b.q[2]);
    CHECK(lm_qweight_scale(&b.view, 0, 0) == 1.0f, "scale %g", lm_qweight_scale(&b.view, 0, 0));
    int8_t q[5];
    lm_qweight_row(&b.view, 0, q);
    for (int k = 0; k < 5; k++) CHECK(q[k] == (int)w[k], "q[%d] = %d", k, q[k]);
    lm_qweight_buf_free(&b);

    const float w8[3] = {-127, 5, 127};
    CHECK_OK(lm_quantize_rtn(&b, w8, 1, 3, 8, NULL));
    CHECK(b.view.row_stride == 3 && b.q[0] == 0x81 && b.q[1] == 0x05 && b.q[2] == 0x7F, "8-bit bytes %02x %02x %02x",
          b.q[0], b.q[1], b.q[2]);
    lm_qweight_buf_free(&b);
}

/* Hand-checked e0: group 0 = multiples of 1 up to 7 (scale 1), group 1 = multiples of 96 up to 672
 * (scale 96). Scale 1 = 2^e0 (2^s + 2^s) needs e0 <= -1; 96 = 2^e0 * m with m <= 256 needs e0 >= -1.
 * So e0 = -1 with pairs (0, 0) and (6, 7) (192 / 2) is the one error-free choice. */
static void test_row_exponent(void) {
    float w[256];
    for (int i = 0; i < 128; i++) w[i] = (float)(i % 15 - 7);
    for (int i = 0; i < 128; i++) w[128 + i] = (float)(96 * (i % 15 - 7));
    lm_qweight_buf b;
    CHECK_OK(lm_quantize_rtn(&b, w, 1, 256, 4, NULL));
    CHECK(b.e0[0] == -1 && b.scale[0] == 0x00 && b.scale[1] == (6 | 7 << 4), "e0 %d pairs %#x %#x", b.e0[0], b.scale[0],
          b.scale[1]);
    float back[256];
    lm_qweight_dequantize(&b.view, back);
    CHECK(memcmp(back, w, sizeof w) == 0, "round trip not exact");
    lm_qweight_buf_free(&b);
}

/* A matrix built from the format (random q, e0, pairs; each row's largest group holds a +-qmax)
 * is reproduced exactly, for 4 and 8 bits and a short last group (K = 300 = 128 + 128 + 44). */
static void test_round_trip(int wbits) {
    const int O = 16, K = 300, G = lm_wgroups(K), qmax = lm_qmax(wbits);
    float *W = malloc(sizeof(float) * O * K), *back = malloc(sizeof(float) * O * K);
    for (int o = 0; o < O; o++) {
        int e0 = (int)(uniform() * 20) - 14, gmax = (int)(uniform() * G);
        double smax = 0;
        float s[8];
        for (int g = 0; g < G; g++) {
            int s1 = (int)(uniform() * 8), s2 = (int)(uniform() * 8);
            s[g] = ldexpf((float)((1 << s1) + (1 << s2)), e0);
            if (s[g] > smax) {
                smax = s[g];
                gmax = g;
            }
        }
        for (int k = 0; k < K; k++) W[o * K + k] = (float)((int)(uniform() * (2 * qmax + 1)) - qmax) * s[k / 128];
        W[o * K + gmax * 128] = (float)qmax * s[gmax];
    }
    lm_qweight_buf b;
    CHECK_OK(lm_quantize_rtn(&b, W, O, K, wbits, NULL));
    lm_qweight_dequantize(&b.view, back);
    int exact = memcmp(W, back, sizeof(float) * O * K) == 0;
    CHECK(exact, "%d-bit round trip of a representable matrix is not exact", wbits);
    lm_qweight_buf_free(&b);
    free(W);
    free(back);
}

/* The searched scales give the least squared error of all (e0, s1, s2) choices: compared with an
 * exhaustive search over e0 in [-40, 10] and all 36 pairs, on Gaussian rows with outliers. */
static void test_search_is_optimal(int wbits) {
    const int O = 6, K = 256, qmax = lm_qmax(wbits);
    float *W = malloc(sizeof(float) * O * K), *back = malloc(sizeof(float) * O * K);
    for (int i = 0; i < O * K; i++) W[i] = (float)(0.02 * gaussian() * (uniform() < 0.01 ? 20 : 1));
    lm_qweight_buf b;
    CHECK_OK(lm_quantize_rtn(&b, W, O, K, wbits, NULL));
    lm_qweight_dequantize(&b.view, back);
    for (int o = 0; o < O; o++) {
        double got = 0, best = INFINITY;
        for (int k = 0; k < K; k++) got += pow((double)W[o * K + k] - back[o * K + k], 2);
        for (int e0 = -40; e0 <= 10; e0++) {
            double total = 0;
            for (int g = 0; g < 2; g++) {
                double gbest = INFINITY;
                for (int s1 = 0; s1 < 8; s1++)
                    for (int s2 = s1; s2 < 8; s2++) {
                        float s = ldexpf((float)((1 << s1) + (1 << s2)), e0);
                        double e = 0;
                        for (int k = g * 128; k < g * 128 + 128; k++) {
                            float q = roundf(W[o * K + k] / s);
                            q = q > qmax ? qmax : q < -qmax ? -qmax : q;
                            e += pow((double)W[o * K + k] - (double)q * s, 2);
                        }
                        if (e < gbest) gbest = e;
                    }
                total += gbest;
            }
            if (total < best) best = total;
        }
        CHECK(got <= best * (1 + 1e-9), "%d-bit row %d: error %g, exhaustive search %g", wbits, o, got, best);
    }
    lm_qweight_buf_free(&b);
    free(W);
    free(back);
}

/* GPTQ vs round to nearest on a layer whose inputs are correlated (x = A z, a few loud channels,
 * one channel never active): the layer output error ||X W^T - X Wq^T||^2 must drop. */
static void test_gptq(int wbits) {
    const int N = 2048, K = 256, O = 48;
    float *X = malloc(sizeof(float) * N * K), *W = malloc(sizeof(float) * O * K), *A = malloc(sizeof(float) * K * K);
    double *H = calloc((size_t)K * K, sizeof *H);
    float *z = malloc(sizeof(float) * K);
    for (int i = 0; i < K * K; i++) A[i] = (float)gaussian() * (i % (K + 1) == 0 ? 3.0f : 0.3f);
    for (int n = 0; n < N; n++) {
        for (int k = 0; k < K; k++) z[k] = (float)gaussian();
        for (int i = 0; i < K; i++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += A[i * K + k] * z[k];
            X[n * K + i] = (float)s * (i % 37 == 0 ? 8.0f : 1.0f);
        }
        X[n * K + 5] = 0.0f; /* a dead input */
    }
    for (int n = 0; n < N; n++)
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) H[i * K + j] += (double)X[n * K + i] * X[n * K + j];
    for (int i = 0; i < O * K; i++) W[i] = (float)(0.05 * gaussian());

    lm_qweight_buf rtn, gptq;
    CHECK_OK(lm_quantize_rtn(&rtn, W, O, K, wbits, NULL));
    CHECK_OK(lm_quantize_gptq(&gptq, W, O, K, wbits, H, 0.01, NULL));
    float *Wr = malloc(sizeof(float) * O * K), *Wg = malloc(sizeof(float) * O * K);
    lm_qweight_dequantize(&rtn.view, Wr);
    lm_qweight_dequantize(&gptq.view, Wg);
    double er = 0, eg = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double yr = 0, yg = 0;
            for (int k = 0; k < K; k++) {
                yr += (double)X[n * K + k] * (W[o * K + k] - Wr[o * K + k]);
                yg += (double)X[n * K + k] * (W[o * K + k] - Wg[o * K + k]);
            }
            er += yr * yr;
            eg += yg * yg;
        }
    printf("%d-bit layer output error: RTN %.4g, GPTQ %.4g (%.1f%%)\n", wbits, er, eg, 100.0 * eg / er);
    CHECK(eg < 0.8 * er, "%d-bit: GPTQ error %g not below 0.8 x RTN %g", wbits, eg, er);
    int8_t row[256];
    for (int o = 0; o < O; o++) {
        lm_qweight_row(&gptq.view, o, row);
        CHECK(row[5] == 0, "dead column quantized to non-zero");
    }
    /* Threads split rows: same result. */
    lm_pool *pool;
    CHECK_OK(lm_pool_init(&pool, 2));
    lm_qweight_buf g2;
    CHECK_OK(lm_quantize_gptq(&g2, W, O, K, wbits, H, 0.01, pool));
    CHECK(memcmp(g2.q, gptq.q, (size_t)O * gptq.view.row_stride) == 0 && memcmp(g2.scale, gptq.scale, (size_t)O * 2) == 0,
          "GPTQ differs across thread counts");
    lm_qweight_buf_free(&g2);
    lm_pool_free(pool);

    /* A Hessian that is not symmetric positive semi-definite is refused clearly. */
    for (int i = 0; i < K; i++) H[i * K + i] = 1.0;
    H[1] = H[K] = 10.0;
    lm_status s = lm_quantize_gptq(&g2, W, O, K, wbits, H, 0.0, NULL);
    CHECK(s != LM_OK, "indefinite Hessian accepted");
    lm_qweight_buf_free(&rtn);
    lm_qweight_buf_free(&gptq);
    free(X), free(W), free(A), free(H), free(z), free(Wr), free(Wg);
}

int main(void) {
    test_best_pair();
    test_packing();
    test_row_exponent();
    test_round_trip(4);
    test_round_trip(8);
    test_search_is_optimal(4);
    test_search_is_optimal(8);
    test_gptq(4);
    test_gptq(8);
    return test_finish();
}
