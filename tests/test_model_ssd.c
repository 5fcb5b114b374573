/* The chunked (SSD) selective scan against the token-by-token one (src/model/ops.h), and the
 * small products it is made of:
 *  - lm_gemm_small (both layouts of a, lower triangular, beta 0, 1, other) against a double
 *    product on ragged shapes, within its rounding bound; lm_transpose_f32 exactly; at every
 *    SIMD level of the CPU;
 *  - ssm_chunked_forward vs ssm_forward on random inputs, lengths 1, 7, 63, 64, 65, 200 (one call:
 *    the scan's own chunks of 64, a ragged last one), n_groups 1, 2 and 4, head_dim and d_state
 *    that are and are not multiples of 16, a clamped dt, from a random entering state: every
 *    output and the final state within the bound derived below; a head's result does not depend
 *    on how the heads are split over parts (bit for bit);
 *  - the bundled mamba2-tiny: logits of a 150-token prefill (chunks of 64, 64, 22) at 1, 2 and
 *    3 threads vs token-by-token decode within 1e-4, and the state after it within 1e-4 (and the
 *    same bits at every thread count).
 *
 * The bound. Take dA (the same floats in both forms: ssm_head_dt) and the entering state as exact
 * and let u = 2^-24. By the standard forward analysis each result differs from the exact one by
 * at most k u times its magnitude m (the same computation on absolute values, in double):
 *   m_h(t) = dA_t m_h(t-1) + |dt_t x_t| |B_t|, m_h(-1) = |h_in|;  m_y(t) = sum_n |C_t| m_h(t) + |D x_t|
 * where k counts the roundings a term meets on its way (first order, k u << 1):
 *   token by token, token t of the call: 1 (dt x) + 2 per step (dA h, the FMA) up to t, then the
 *     dot product over N (lane sums, at most N roundings) and the D x skip (2):
 *     k_seq(t) = 2 (t + 1) + 1 + N + 2
 *   chunked, token t = j Q + r in chunk j (Q = 64): per state passing at most 2Q + 2 (a decay
 *     product of up to Q - 1 factors, dt x, times the decay, a sum of Q terms, beta h); then the
 *     state's share (N, the decay product r, the scale 1) or the chunk's own (C . B over N, the
 *     decay r, their product 1, dt x 1, a sum over at most Q terms and the add 2), and the skip (3):
 *     k_chunk(t) = j (2Q + 2) + N + r + Q + 6
 * so |y_chunk - y_seq| <= (k_seq + k_chunk) u m_y, and for the state after T tokens
 * (k_seq = 2T + 1, k_chunk = ceil(T / Q) (2Q + 2)) the same with m_h. At T = 200, N = 128 that is
 * about 7e-5 m_y; the largest ratio seen is printed (typically 1e-7 to 1e-6). */
#include <math.h>
#include <string.h>

#include "check.h"
#include "model/model.h"
#include "model/ops.h"
#include "model/session.h"

#define U_F32 (1.0 / 16777216.0)

static float uniform(unsigned *seed) {
    *seed = *seed * 1664525u + 1013904223u;
    return (float)(*seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}

/* ---- the small products ---- */
static void check_gemm_small(void) {
    const int sizes[] = {1, 3, 4, 5, 16, 17, 64, 65, 130};
    const int n_sizes = sizeof sizes / sizeof *sizes;
    const float betas[] = {0.0f, 1.0f, 0.37f};
    unsigned seed = 3;
    double worst = 0.0;
    for (int mi = 0; mi < n_sizes; mi++)
        for (int ni = 0; ni < n_sizes; ni += 2)
            for (int ki = 0; ki < n_sizes; ki += 3)
                for (int trans = 0; trans < 2; trans++)
                    for (int lower = 0; lower < 2; lower++)
                        for (int bi = 0; bi < 3; bi++) {
                            const int M = sizes[mi], N = sizes[ni], K = sizes[ki];
                            if (lower && K != M) continue;
                            const int lda = (trans ? M : K) + 3, ldb = N + 5, ldc = N + 1;
                            float *a = malloc(sizeof(float) * (trans ? K : M) * lda), *b = malloc(sizeof(float) * K * ldb);
                            float *c = malloc(sizeof(float) * M * ldc), *c0 = malloc(sizeof(float) * M * ldc);
                            for (int i = 0; i < (trans ? K : M) * lda; i++) a[i] = uniform(&seed);
                            for (int i = 0; i < K * ldb; i++) b[i] = uniform(&seed);
                            for (int i = 0; i < M * ldc; i++) c0[i] = c[i] = uniform(&seed);
                            if (lower) /* op(a)[i][k] = 0 for k > i */
                                for (int i = 0; i < M; i++)
                                    for (int k = i + 1; k < K; k++) a[trans ? k * lda + i : i * lda + k] = 0.0f;
                            lm_gemm_small(c, ldc, betas[bi], a, lda, trans, b, ldb, M, N, K, lower);
                            for (int i = 0; i < M; i++)
                                for (int j = 0; j < N; j++) {
                                    double exact = betas[bi] * (double)c0[i * ldc + j], mag = fabs(exact);
                                    for (int k = 0; k < K; k++) {
                                        double p = (double)a[trans ? k * lda + i : i * lda + k] * b[k * ldb + j];
                                        exact += p, mag += fabs(p);
                                    }
                                    /* K products summed with FMAs, then beta c: K + 2 roundings */
                                    double err = fabs(c[i * ldc + j] - exact), bound = (K + 2) * U_F32 * mag;
                                    if (mag > 0 && err / mag > worst) worst = err / mag;
                                    if (!(err <= bound)) {
                                        CHECK(0, "gemm_small M %d N %d K %d trans %d lower %d beta %g: [%d][%d] off by %g > %g",
                                              M, N, K, trans, lower, betas[bi], i, j, err, bound);
                                        i = M, j = N;
                                    }
                                }
                            /* columns past N untouched */
                            for (int i = 0; i < M; i++)
                                CHECK(c[i * ldc + N] == c0[i * ldc + N], "gemm_small wrote past column N");
                            free(a), free(b), free(c), free(c0);
                        }
    fprintf(stderr, "lm_gemm_small at %s: largest error %.2e of the magnitude\n", lm_simd_level_name(lm_simd_level_get()),
            worst);

    const int shapes[][2] = {{16, 16}, {17, 33}, {64, 128}, {5, 40}, {48, 3}, {1, 1}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const int R = shapes[k][0], Cn = shapes[k][1], ldi = Cn + 2, ldo = R + 1;
        float *in = malloc(sizeof(float) * R * ldi), *out = malloc(sizeof(float) * Cn * ldo);
        for (int i = 0; i < R * ldi; i++) in[i] = (float)i;
        for (int i = 0; i < Cn * ldo; i++) out[i] = -1.0f;
        lm_transpose_f32(out, ldo, in, ldi, R, Cn);
        int ok = 1;
        for (int i = 0; i < R; i++)
            for (int j = 0; j < Cn; j++) ok &= out[j * ldo + i] == in[i * ldi + j];
        for (int j = 0; j < Cn; j++) ok &= out[j * ldo + R] == -1.0f;
        CHECK(ok, "lm_transpose_f32 %d x %d", R, Cn);
        free(in), free(out);
    }
}

/* ---- the scan ---- */
typedef struct {
    int H, P, N, G;
    float dt_max; /* INFINITY: no clamp */
} scan_shape;

/* Token-by-token and chunked scans of T random tokens from a random state; returns the largest
 * error seen as a fraction of the bound's k u m (outputs and state alike); *rel: the largest error
 * as a fraction of the magnitude m itself. */
static double check_scan(const scan_shape *sh, int T, unsigned seed, double *rel) {
    const int H = sh->H, P = sh->P, N = sh->N, G = sh->G, di = H * P, C = di + 2 * G * N, Q = LM_SSD_CHUNK;
    lm_config cfg = {.d_inner = di, .n_heads = H, .head_dim = P, .d_state = N, .n_groups = G, .dt_limit_min = 0.0f,
                     .dt_limit_max = sh->dt_max};
    float *xbc = malloc(sizeof(float) * T * C), *dt_raw = malloc(sizeof(float) * T * (H + 1));
    float *A = malloc(sizeof(float) * H), *D = malloc(sizeof(float) * H), *dt_bias = malloc(sizeof(float) * H);
    const size_t n_state = (size_t)H * P * N;
    float *h_seq = malloc(sizeof(float) * n_state), *h_chk = malloc(sizeof(float) * n_state),
          *h_split = malloc(sizeof(float) * n_state);
    float *y_seq = malloc(sizeof(float) * T * di), *y_chk = malloc(sizeof(float) * T * di),
          *y_split = malloc(sizeof(float) * T * di);
    float *scratch = malloc(sizeof(float) * ssm_chunked_scratch_floats(&cfg));
    for (int i = 0; i < T * C; i++) xbc[i] = uniform(&seed);
    for (int i = 0; i < T * (H + 1); i++) dt_raw[i] = 2.0f * uniform(&seed); /* row stride H + 1 */
    for (int h = 0; h < H; h++) {
        A[h] = -1.0f - 7.5f * (uniform(&seed) + 1.0f); /* Mamba2's A in [-16, -1] */
        D[h] = 1.0f + 0.5f * uniform(&seed);
        dt_bias[h] = -2.5f + uniform(&seed);           /* dt = softplus(raw + bias) from about 0.01 to 1.2 */
    }
    for (size_t i = 0; i < n_state; i++) h_seq[i] = h_chk[i] = h_split[i] = uniform(&seed);
    lm_layer L = {.A = A, .D = D, .dt_bias = dt_bias};
    const float *h_in = h_split; /* the entering state, kept until the split run */

    /* the magnitudes, and the largest head dt, in double, token by token */
    double *mh = malloc(sizeof(double) * n_state), *my = malloc(sizeof(double) * T * di);
    for (size_t i = 0; i < n_state; i++) mh[i] = fabs(h_in[i]);
    float dt[1], dA[1];
    for (int t = 0; t < T; t++) {
        const float *xt = xbc + (size_t)t * C;
        for (int hd = 0; hd < H; hd++) {
            const int g = hd / (H / G);
            const float raw = dt_raw[(size_t)t * (H + 1) + hd];
            float d = raw + dt_bias[hd];
            d = d > 20.0f ? d : log1pf(expf(d));
            dt[0] = fminf(fmaxf(d, 0.0f), sh->dt_max);
            dA[0] = expf(dt[0] * A[hd]);
            for (int p = 0; p < P; p++) {
                double *m = mh + ((size_t)hd * P + p) * N, s = 0.0;
                const double xdt = fabs((double)dt[0] * xt[hd * P + p]);
                for (int n = 0; n < N; n++) {
                    m[n] = dA[0] * m[n] + xdt * fabs(xt[di + g * N + n]);
                    s += m[n] * fabs(xt[di + (G + g) * N + n]);
                }
                my[(size_t)t * di + hd * P + p] = s + fabs((double)D[hd] * xt[hd * P + p]);
            }
        }
    }
    (void)dt, (void)dA;

    ssm_forward(y_seq, h_seq, xbc, dt_raw, H + 1, &L, &cfg, T, 0, H);
    ssm_chunked_forward(y_chk, h_chk, xbc, dt_raw, H + 1, &L, &cfg, T, 0, H, scratch);
    /* the heads in two parts, the second starting inside a group */
    const int cut = H / G > 1 ? 1 : H / 2;
    ssm_chunked_forward(y_split, h_split, xbc, dt_raw, H + 1, &L, &cfg, T, 0, cut, scratch);
    ssm_chunked_forward(y_split, h_split, xbc, dt_raw, H + 1, &L, &cfg, T, cut, H, scratch);
    CHECK(memcmp(y_split, y_chk, sizeof(float) * T * di) == 0 && memcmp(h_split, h_chk, sizeof(float) * n_state) == 0,
          "H %d P %d N %d G %d T %d: the chunked scan depends on the split of the heads", H, P, N, G, T);

    double worst = 0.0;
    int bad = 0;
    for (int t = 0; t < T; t++) {
        const int j = t / Q, r = t % Q;
        const double k = (2.0 * (t + 1) + 1 + N + 2) + ((double)j * (2 * Q + 2) + N + r + Q + 6);
        for (int i = 0; i < di; i++) {
            const double err = fabs((double)y_chk[(size_t)t * di + i] - y_seq[(size_t)t * di + i]);
            const double bound = k * U_F32 * my[(size_t)t * di + i];
            if (bound > 0 && err / bound > worst) worst = err / bound;
            if (bound > 0) *rel = fmax(*rel, err / my[(size_t)t * di + i]);
            if (!(err <= bound) && bad++ < 3)
                CHECK(0, "H %d P %d N %d G %d T %d: y[%d][%d] chunked %.9g, token by token %.9g (bound %.3g)", H, P, N, G, T,
                      t, i, y_chk[(size_t)t * di + i], y_seq[(size_t)t * di + i], bound);
        }
    }
    const double k_state = (2.0 * T + 1) + (double)((T + Q - 1) / Q) * (2 * Q + 2);
    for (size_t i = 0; i < n_state; i++) {
        const double err = fabs((double)h_chk[i] - h_seq[i]), bound = k_state * U_F32 * mh[i];
        if (bound > 0 && err / bound > worst) worst = err / bound;
        if (bound > 0) *rel = fmax(*rel, err / mh[i]);
        if (!(err <= bound) && bad++ < 6)
            CHECK(0, "H %d P %d N %d G %d T %d: state %zu chunked %.9g, token by token %.9g (bound %.3g)", H, P, N, G, T, i,
                  h_chk[i], h_seq[i], bound);
    }
    free(xbc), free(dt_raw), free(A), free(D), free(dt_bias), free(h_seq), free(h_chk), free(h_split);
    free(y_seq), free(y_chk), free(y_split), free(scratch), free(mh), free(my);
    return worst;
}

/* ---- the whole model ---- */
static void check_tiny(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/mamba2-tiny", test_root());
    lm_model *m = NULL;
    CHECK_OK(lm_model_init(&m, dir));
    if (!m) return;
    const lm_config *c = &m->cfg;
    const size_t V = (size_t)c->vocab_size, n_state = (size_t)c->n_layer * c->n_heads * c->head_dim * c->d_state;
    enum { N_TOK = 150 };
    int32_t ids[N_TOK];
    unsigned seed = 9;
    for (int i = 0; i < N_TOK; i++) ids[i] = (int32_t)((uniform(&seed) + 1.0f) / 2.0f * (float)(c->vocab_size - 1));
    float *decode = malloc(sizeof(float) * N_TOK * V), *prefill = malloc(sizeof(float) * N_TOK * V);
    float *state = malloc(sizeof(float) * n_state), *state1 = malloc(sizeof(float) * n_state);
    lm_session *s = NULL;
    CHECK_OK(test_session(&s, m, 1));
    for (int i = 0; s && i < N_TOK; i++) CHECK_OK(lm_session_forward(s, &ids[i], 1, decode + i * V, NULL));
    if (s) memcpy(state, s->ssm_state, sizeof(float) * n_state);
    lm_session_free(s);
    fprintf(stderr, "mamba2-tiny prefill runs the %s scan\n", ssm_chunked_pays(c, LM_SESSION_CHUNK) ? "chunked" : "token-by-token");
    for (int threads = 1; threads <= 3; threads++) {
        CHECK_OK(test_session(&s, m, threads));
        if (!s) continue;
        CHECK_OK(lm_session_forward(s, ids, N_TOK, prefill, NULL));
        double d = 0.0, ds = 0.0;
        for (size_t i = 0; i < N_TOK * V; i++) d = fmax(d, fabs((double)prefill[i] - decode[i]));
        for (size_t i = 0; i < n_state; i++)
            ds = fmax(ds, fabs((double)s->ssm_state[i] - state[i]) / (1.0 + fabs((double)state[i])));
        CHECK(d <= 1e-4, "mamba2-tiny, %d thread(s): prefill and token-by-token logits differ by %g", threads, d);
        CHECK(ds <= 1e-4, "mamba2-tiny, %d thread(s): the state after prefill differs by %g", threads, ds);
        /* each head's scan is the same whichever part runs it */
        if (threads == 1) memcpy(state1, s->ssm_state, sizeof(float) * n_state);
        CHECK(memcmp(state1, s->ssm_state, sizeof(float) * n_state) == 0,
              "mamba2-tiny: the state after prefill at %d threads differs from 1 thread", threads);
        fprintf(stderr, "mamba2-tiny %d thread(s): |prefill - decode| logits %.1e, state %.1e\n", threads, d, ds);
        lm_session_free(s);
    }
    free(decode), free(prefill), free(state), free(state1);
    lm_model_free(m);
}

int main(void) {
    /* every SIMD level this CPU has: AVX-512 runs the own kernels, the others OpenBLAS and plain loops */
    const lm_simd_level best = lm_simd_level_get();
    for (int level = best; level >= LM_SIMD_SCALAR; level--) {
        CHECK_OK(lm_simd_level_set((lm_simd_level)level));
        check_gemm_small();
    }
    CHECK_OK(lm_simd_level_set(best));
    const scan_shape shapes[] = {
        {4, 16, 32, 1, INFINITY},
        {6, 6, 20, 2, INFINITY},  /* rows and state not whole vectors, two groups */
        {8, 64, 128, 4, INFINITY}, /* Mamba2's head shape, four groups */
        {3, 17, 16, 1, 0.1f},      /* dt clamped */
    };
    const int lengths[] = {1, 7, 63, 64, 65, 200};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        double worst = 0.0, rel = 0.0;
        for (size_t j = 0; j < sizeof lengths / sizeof *lengths; j++)
            worst = fmax(worst, check_scan(&shapes[k], lengths[j], 17u + (unsigned)(k * 7 + j), &rel));
        fprintf(stderr, "scan H %d P %d N %d G %d: largest error %.3f of the bound, %.1e of the magnitude\n",
                shapes[k].H, shapes[k].P, shapes[k].N, shapes[k].G, worst, rel);
    }
    check_tiny();
    return test_finish();
}
