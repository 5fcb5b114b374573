/* lm_matmul_f32 against a plain double-precision product, at every SIMD level this CPU
 * has, thread counts 1-3, ragged shapes (K, O not multiples of 16), T = 1, 2, 7, 64. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "kernels/kernels.h"

static float frand(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

typedef struct {
    lm_pool *pool;
    int runs[3], nested[3];
} count_ctx;

static void nested_task(void *p, int i, int n) {
    int *counter = p;
    (*counter)++; /* runs on the caller, one task after another: no race */
}

static void count_task(void *p, int i, int n) {
    count_ctx *c = p;
    c->runs[i]++;
    lm_pool_run(c->pool, nested_task, &c->nested[i]);
}

int main(void) {
    const int Ts[] = {1, 2, 7, 64};
    const int Ks[] = {1, 5, 16, 33, 100, 257};
    const int Os[] = {1, 3, 17, 64, 131};
    unsigned seed = 12345;
    for (int threads = 1; threads <= 3; threads++) {
        lm_pool *pool = NULL;
        CHECK_OK(lm_pool_init(&pool, threads));
        CHECK(lm_pool_size(pool) == threads, "pool size %d", lm_pool_size(pool));
        for (int level = LM_SIMD_SCALAR; level <= (int)lm_simd_detect(); level++) {
            CHECK_OK(lm_simd_level_set((lm_simd_level)level));
            for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++)
                for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
                    for (size_t oi = 0; oi < sizeof Os / sizeof *Os; oi++) {
                        int T = Ts[ti], K = Ks[ki], O = Os[oi];
                        float *x = malloc(sizeof(float) * T * K), *W = malloc(sizeof(float) * O * K);
                        float *y = malloc(sizeof(float) * T * O);
                        for (int i = 0; i < T * K; i++) x[i] = frand(&seed);
                        for (int i = 0; i < O * K; i++) W[i] = frand(&seed);
                        for (int i = 0; i < T * O; i++) y[i] = NAN;
                        lm_matmul_f32(y, x, W, T, K, O, pool);
                        int bad = 0;
                        for (int t = 0; t < T; t++)
                            for (int o = 0; o < O; o++) {
                                double ref = 0, mag = 0;
                                for (int k = 0; k < K; k++) {
                                    ref += (double)x[t * K + k] * W[o * K + k];
                                    mag += fabs((double)x[t * K + k] * W[o * K + k]);
                                }
                                /* float32 summation error bound, with slack: K * eps * sum|terms| */
                                double tol = 2.0 * K * 1.2e-7 * mag + 1e-30;
                                if (!(fabs(y[t * O + o] - ref) <= tol)) bad++;
                            }
                        CHECK(bad == 0, "%s threads=%d T=%d K=%d O=%d: %d outputs off", lm_simd_level_name(level),
                              threads, T, K, O, bad);
                        free(x), free(W), free(y);
                    }
        }
        lm_pool_free(pool);
    }
    /* The pool itself: every task index runs exactly once per call, over many calls in a
     * row (the spin and the futex sleep paths), and a nested call runs inline. */
    lm_pool *pool = NULL;
    CHECK_OK(lm_pool_init(&pool, 3));
    count_ctx c = {pool, {0}, {0}};
    for (int call = 0; call < 4000; call++) {
        lm_pool_run(pool, count_task, &c);
        if (call % 1000 == 0) usleep(2000); /* let the workers fall asleep */
    }
    for (int i = 0; i < 3; i++) {
        CHECK(c.runs[i] == 4000, "task %d ran %d times", i, c.runs[i]);
        CHECK(c.nested[i] == 4000 * 3, "task %d: nested tasks ran %d times", i, c.nested[i]);
    }
    lm_pool_free(pool);
    return test_finish();
}
