/* The selective scan of one Mamba2 layer in its two forms (src/model/ops.h): token by token
 * (ssm_forward) and chunked (ssm_chunked_forward), one thread (the engine splits the heads over
 * its threads, so per-thread speed is what counts), over chunks of T tokens, per shape.
 * Prints us per token for each form, the arithmetic each does per token (flops, an FMA counted
 * as two) and the rate that makes, and which one ssm_chunked_pays picks.
 *   sequential per token and head: 5 P N flops (h = dA h: P N multiplies; h += xdt B and y += h C:
 *     2 P N FMAs), on a state row kept in L1 across the chunk;
 *   chunked per chunk of Q tokens and head: C B^T 2 Q^2 N / (H/G) (once per group), the state's
 *     share 2 Q N P, the masked product (lower triangular: blocks of 4 rows stop at their
 *     diagonal) Q (Q + 4) P, the state update 2 Q P N: per token
 *     4 P N + (Q + 4) P + 2 Q N / (H/G) flops, in lm_gemm_small.
 * Times are the thread's CPU time, the best of `rounds` passes over 24 layers.
 * Usage: bench_scan [rounds]   (default 5) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/ops.h"

/* The calling thread's CPU time: on a shared machine the time it waits for a core does not count
 * (the bench runs on one thread). */
static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float uniform(unsigned *seed) {
    *seed = *seed * 1664525u + 1013904223u;
    return (float)(*seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

typedef struct {
    const char *name;
    int H, P, N, G;
} shape;

/* Seconds per pass over `layers` layers' scans of T tokens; chunked or not. */
static double time_scan(const shape *sh, int T, int chunked, int rounds) {
    enum { LAYERS = 24 };
    lm_config cfg = {.d_inner = sh->H * sh->P, .n_heads = sh->H, .head_dim = sh->P, .d_state = sh->N,
                     .n_groups = sh->G, .dt_limit_min = 0.0f, .dt_limit_max = INFINITY};
    const size_t C = (size_t)cfg.d_inner + 2 * (size_t)sh->G * sh->N, n_state = (size_t)sh->H * sh->P * sh->N;
    float *xbc = malloc(sizeof(float) * T * C), *dt_raw = malloc(sizeof(float) * T * sh->H);
    float *y = malloc(sizeof(float) * T * cfg.d_inner), *state = calloc((size_t)LAYERS * n_state, sizeof(float));
    float *scratch = malloc(sizeof(float) * ssm_chunked_scratch_floats(&cfg));
    float *A = malloc(sizeof(float) * sh->H), *D = malloc(sizeof(float) * sh->H), *dt_bias = malloc(sizeof(float) * sh->H);
    unsigned seed = 5;
    for (size_t i = 0; i < T * C; i++) xbc[i] = uniform(&seed);
    for (int i = 0; i < T * sh->H; i++) dt_raw[i] = uniform(&seed);
    for (int h = 0; h < sh->H; h++) A[h] = -1.0f - 15.0f * (uniform(&seed) + 1) / 2, D[h] = 1.0f, dt_bias[h] = -3.0f;
    lm_layer L = {.A = A, .D = D, .dt_bias = dt_bias};
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_seconds();
        for (int l = 0; l < LAYERS; l++) { /* each layer's own state, as in a model: it is not in cache */
            float *st = state + (size_t)l * n_state;
            if (chunked)
                ssm_chunked_forward(y, st, xbc, dt_raw, sh->H, &L, &cfg, T, 0, sh->H, scratch);
            else
                ssm_forward(y, st, xbc, dt_raw, sh->H, &L, &cfg, T, 0, sh->H);
        }
        double dt = (now_seconds() - t0) / LAYERS;
        if (dt < best) best = dt;
    }
    free(xbc), free(dt_raw), free(y), free(state), free(scratch), free(A), free(D), free(dt_bias);
    return best;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1) rounds = 1;
    const shape shapes[] = {
        {"mamba2 (130m..2.7b) head", 24, 64, 128, 1},
        {"G = 8 (Codestral-like)", 24, 64, 128, 8},
        {"N = 64", 24, 64, 64, 1},
        {"N = 32, P = 32", 24, 32, 32, 1},
        {"N = 16, P = 16", 24, 16, 16, 1},
    };
    const int Ts[] = {1, 4, 8, 16, 32, 64};
    printf("one thread (its CPU time), per layer of 24 heads; us per token (flops per token, GFLOP/s)\n");
    printf("%-26s %4s %22s %22s %7s %6s\n", "shape (H, P, N, G)", "T", "token by token", "chunked", "speedup", "picks");
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const shape *sh = &shapes[k];
        lm_config cfg = {.n_heads = sh->H, .head_dim = sh->P, .d_state = sh->N, .n_groups = sh->G};
        for (size_t j = 0; j < sizeof Ts / sizeof *Ts; j++) {
            const int T = Ts[j];
            const double hpg = (double)sh->H / sh->G;
            const double f_seq = 5.0 * sh->P * sh->N * sh->H;
            const double f_chk = (4.0 * sh->P * sh->N + (T + 4.0) * sh->P + 2.0 * T * sh->N / hpg) * sh->H;
            const double s_seq = time_scan(sh, T, 0, rounds) / T, s_chk = time_scan(sh, T, 1, rounds) / T;
            char a[64], b[64];
            snprintf(a, sizeof a, "%.2f (%.0fk, %.1f)", s_seq * 1e6, f_seq / 1e3, f_seq / s_seq / 1e9);
            snprintf(b, sizeof b, "%.2f (%.0fk, %.1f)", s_chk * 1e6, f_chk / 1e3, f_chk / s_chk / 1e9);
            printf("%-26s %4d %22s %22s %6.2fx %6s\n", sh->name, T, a, b, s_seq / s_chk,
                   ssm_chunked_pays(&cfg, T) ? "chunk" : "token");
        }
    }
    return 0;
}
