/* lm_matmul_f16 (float16 weights, float32 activations) and the float16 embedding and lm_head of
 * quantized models:
 *  1. every finite half goes through each SIMD level's conversion (decode GEMV and prefill tiles)
 *     and comes out exactly as lm_f16_to_f32 gives it;
 *  2. every SIMD level, 1-3 threads, ragged shapes (K not a multiple of 8/16/32, O odd), T = 1 and
 *     T = 1..70, against the scalar level and a double-precision reference. Tolerance: the paths
 *     differ only in the order of the float32 sums, and any order of a K-term dot product is
 *     within gamma(K) * sum_k |x_k w_k| of the exact value, gamma(n) = n u / (1 - n u),
 *     u = 2^-24 (Higham, Accuracy and Stability, 3.1; it holds with or without FMA). We use
 *     gamma(K + 1) against the double reference (its own error is far below one more u) and twice
 *     that between two levels. A missed, doubled or wrong term breaks it by orders of magnitude;
 *  3. the quantized tiny model (lightmamba: untied lm_head; rtn: tied) uses both tensors in place
 *     from the file's map, counts 2 bytes a head weight, writes back to the same bytes, and its
 *     logits equal those of the same model with both tensors converted to float32: decode with
 *     identical hidden states and every logit within the bound above (K = d_model); prefill
 *     (chunked GEMM, tiles against one sgemm) within 1e-5 of the row's largest logit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/file.h"
#include "common/half.h"
#include "kernels/kernels.h"
#include "model/ops.h"
#include "model/session.h"
#include "model/traffic.h"
#include "model/qfile.h"

static double gamma_n(int n) {
    const double u = 0x1p-24;
    return n * u / (1.0 - n * u);
}

static float frand(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* ---- 1. the conversion of every finite half ---- */
static void test_every_half(void) {
    enum { K = 32, O = 2 * 31 * 1024 / K }; /* 63488 finite halves: 1984 rows of 32 */
    uint16_t *W = malloc(sizeof(uint16_t) * O * K);
    float *x = calloc((size_t)K * K, sizeof(float)), *y = malloc(sizeof(float) * K * O);
    int n = 0;
    for (uint32_t h = 0; h < 0x10000; h++)
        if (((h >> 10) & 0x1f) != 0x1f) W[n++] = (uint16_t)h;
    CHECK(n == O * K, "%d finite halves", n);
    for (int t = 0; t < K; t++) x[t * K + t] = 1.0f; /* token t picks column t: y[t][o] = W[o][t] */
    for (int threads = 1; threads <= 2; threads++) {
        lm_pool *pool = NULL;
        CHECK_OK(lm_pool_init(&pool, threads));
        for (int level = LM_SIMD_SCALAR; level <= (int)lm_simd_detect(); level++) {
            CHECK_OK(lm_simd_level_set((lm_simd_level)level));
            for (int batched = 0; batched <= 1; batched++) {
                for (int i = 0; i < K * O; i++) y[i] = NAN;
                if (batched)
                    lm_matmul_f16(y, x, W, K, K, O, pool);
                else
                    for (int t = 0; t < K; t++) lm_matmul_f16(y + (size_t)t * O, x + (size_t)t * K, W, 1, K, O, pool);
                int bad = 0;
                for (int t = 0; t < K; t++)
                    for (int o = 0; o < O; o++) bad += y[(size_t)t * O + o] != lm_f16_to_f32(W[(size_t)o * K + t]);
                CHECK(bad == 0, "%s threads=%d %s: %d halves converted wrongly", lm_simd_level_name(level), threads,
                      batched ? "T=32" : "T=1", bad);
            }
        }
        lm_pool_free(pool);
    }
    free(W), free(x), free(y);
    printf("every finite half converts exactly at every level (decode and prefill)\n");
}

/* ---- 2. products against the scalar level and a double reference ---- */
typedef struct {
    int T, K, O;
    uint16_t *W;
    float *x;
    double *ref, *mag; /* exact-ish y and sum_k |x_k w_k|, [T, O] */
} problem;

static problem problem_make(int T, int K, int O, unsigned *seed) {
    problem p = {T, K, O, malloc(sizeof(uint16_t) * O * K), malloc(sizeof(float) * T * K),
                 malloc(sizeof(double) * T * O), malloc(sizeof(double) * T * O)};
    for (int i = 0; i < O * K; i++) {
        float v = frand(seed);
        if (i % 97 == 5) v *= 0x1p-20f; /* some half subnormals */
        p.W[i] = lm_f32_to_f16(v);
    }
    for (int i = 0; i < T * K; i++) p.x[i] = frand(seed);
    for (int t = 0; t < T; t++)
        for (int o = 0; o < O; o++) {
            double r = 0, m = 0;
            for (int k = 0; k < K; k++) {
                double v = (double)p.x[t * K + k] * lm_f16_to_f32(p.W[(size_t)o * K + k]);
                r += v, m += fabs(v);
            }
            p.ref[t * O + o] = r, p.mag[t * O + o] = m;
        }
    return p;
}

static void problem_free(problem *p) { free(p->W), free(p->x), free(p->ref), free(p->mag); }

/* Every level and thread count; returns the number of bad outputs. */
static int problem_check(const problem *p, lm_pool *const pools[3]) {
    const size_t n = (size_t)p->T * p->O;
    float *scalar = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    const double g = gamma_n(p->K + 1);
    int bad = 0;
    for (int ti = 0; ti < 3; ti++) {
        CHECK_OK(lm_simd_level_set(LM_SIMD_SCALAR));
        for (size_t i = 0; i < n; i++) scalar[i] = NAN;
        lm_matmul_f16(scalar, p->x, p->W, p->T, p->K, p->O, pools[ti]);
        for (size_t i = 0; i < n; i++) bad += !(fabs(scalar[i] - p->ref[i]) <= g * p->mag[i]);
        for (int level = LM_SIMD_AVX2; level <= (int)lm_simd_detect(); level++) {
            CHECK_OK(lm_simd_level_set((lm_simd_level)level));
            for (size_t i = 0; i < n; i++) y[i] = NAN;
            lm_matmul_f16(y, p->x, p->W, p->T, p->K, p->O, pools[ti]);
            for (size_t i = 0; i < n; i++)
                bad += !(fabs(y[i] - p->ref[i]) <= g * p->mag[i]) || !(fabs(y[i] - scalar[i]) <= 2 * g * p->mag[i]);
        }
    }
    free(scalar), free(y);
    return bad;
}

static void test_products(void) {
    lm_pool *pools[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) CHECK_OK(lm_pool_init(&pools[i], i + 1));
    unsigned seed = 777;
    /* decode: every tail of the 32-, 16- and 8-column steps, O below and above the 4 streams x 16 rows */
    const int Ks[] = {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 100, 257, 768};
    const int Os[] = {1, 3, 5, 17, 63, 131};
    for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
        for (size_t oi = 0; oi < sizeof Os / sizeof *Os; oi++) {
            problem p = problem_make(1, Ks[ki], Os[oi], &seed);
            int bad = problem_check(&p, pools);
            CHECK(bad == 0, "T=1 K=%d O=%d: %d outputs off", p.K, p.O, bad);
            problem_free(&p);
        }
    /* T = 1..70 on ragged shapes; K = 2049 has 48-row tiles (several per thread), K = 4100 16-row ones */
    const struct { int K, O, T_step; } shapes[] = {{33, 131, 1}, {257, 67, 1}, {2049, 67, 3}, {4100, 131, 23}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int T = 1; T <= 70; T += T == 1 ? 1 : shapes[si].T_step) {
            problem p = problem_make(T, shapes[si].K, shapes[si].O, &seed);
            int bad = problem_check(&p, pools);
            CHECK(bad == 0, "T=%d K=%d O=%d: %d outputs off", T, p.K, p.O, bad);
            problem_free(&p);
        }
    for (int i = 0; i < 3; i++) lm_pool_free(pools[i]);
    CHECK_OK(lm_simd_level_set(lm_simd_detect()));
    printf("products: every level and 1-3 threads within gamma(K+1) of the reference, T = 1 and 1..70\n");
}

/* ---- 3. the quantized tiny model ---- */
static int in_map(const lm_model *m, const void *p) {
    const unsigned char *c = p;
    return c && c >= m->qfile.data && c < m->qfile.data + m->qfile.size;
}

static float *to_f32(const uint16_t *h, size_t n) {
    float *f = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) f[i] = lm_f16_to_f32(h[i]);
    return f;
}

/* Logits of qm (float16 head) against f32 (the same model, both tensors float32). */
static void compare_logits(const lm_model *qm, const lm_model *f32, const int32_t *ids, int n, const char *what) {
    const lm_config *c = &qm->cfg;
    const int V = c->vocab_size, D = c->d_model;
    float *a = malloc(sizeof(float) * n * V), *b = malloc(sizeof(float) * n * V), *xn = malloc(sizeof(float) * D);
    lm_session *sa = NULL, *sb = NULL;
    CHECK_OK(test_session(&sa, qm, 2));
    CHECK_OK(test_session(&sb, f32, 2));
    if (!sa || !sb) return;
    /* prefill: chunks of 64 through the tiled product and through sgemm */
    CHECK_OK(lm_session_forward(sa, ids, (size_t)n, a, NULL));
    CHECK_OK(lm_session_forward(sb, ids, (size_t)n, b, NULL));
    int bad = 0;
    double worst = 0;
    for (int t = 0; t < n; t++) {
        double big = 0, diff = 0;
        for (int v = 0; v < V; v++) {
            big = fmax(big, fabs(b[(size_t)t * V + v]));
            diff = fmax(diff, fabs(a[(size_t)t * V + v] - b[(size_t)t * V + v]));
        }
        bad += !(diff <= 1e-5 * big);
        worst = fmax(worst, diff / big);
    }
    CHECK(bad == 0, "%s: prefill logits of %d of %d tokens differ by more than 1e-5 relative", what, bad, n);
    /* decode: the same hidden state, then every logit within gamma(D + 1) sum_k |xn_k w_k| */
    lm_session_reset(sa);
    lm_session_reset(sb);
    const float *head = f32->lm_head.w;
    int bad_hidden = 0;
    bad = 0;
    for (int t = 0; t < 40; t++) {
        CHECK_OK(lm_session_forward(sa, ids + t, 1, NULL, a));
        CHECK_OK(lm_session_forward(sb, ids + t, 1, NULL, b));
        bad_hidden += memcmp(sa->last_hidden, sb->last_hidden, sizeof(float) * D) != 0;
        rmsnorm_forward(xn, sb->last_hidden, f32->norm_f, 1, D, c->eps);
        for (int v = 0; v < V; v++) {
            double mag = 0;
            for (int k = 0; k < D; k++) mag += fabs((double)xn[k] * head[(size_t)v * D + k]);
            bad += !(fabs(a[v] - b[v]) <= 2 * gamma_n(D + 1) * mag);
        }
    }
    CHECK(bad_hidden == 0, "%s: decode hidden states differ on %d of 40 tokens", what, bad_hidden);
    CHECK(bad == 0, "%s: %d decode logits beyond the summation-order bound", what, bad);
    printf("%s: logits with the float16 head == float32 head (prefill within %.1e of the row max; decode within "
           "the bound)\n", what, worst);
    lm_session_free(sa);
    lm_session_free(sb);
    free(a), free(b), free(xn);
}

static void test_model(const lm_model *fm, lm_quant_method method, const int32_t *ids, int n) {
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[256], again[256];
    snprintf(path, sizeof path, "%s/lm_test_f16_%d.lmq", tmp, (int)getpid());
    snprintf(again, sizeof again, "%s/lm_test_f16_again_%d.lmq", tmp, (int)getpid());
    const char *what = lm_quant_method_name(method);
    lm_quant_settings q = lm_quant_defaults();
    q.method = method;
    lm_model *qm = NULL;
    CHECK_OK(lm_quantize(fm, &q, NULL, 1, path, NULL, NULL));
    CHECK_OK(lm_model_init(&qm, path));
    if (!qm) return;
    const lm_config *c = &qm->cfg;
    const size_t V = (size_t)c->vocab_size, D = (size_t)c->d_model;
    const int tied = method != LM_QUANT_LIGHTMAMBA; /* lightmamba folds norm_f into lm_head */
    CHECK(c->tie_embeddings == tied, "%s: tie_embeddings %d", what, c->tie_embeddings);
    CHECK(!qm->embedding && in_map(qm, qm->embedding_f16) && qm->lm_head.kind == LM_LINEAR_F16 &&
              in_map(qm, qm->lm_head.w16) && !qm->lm_head.w && (qm->lm_head.w16 == qm->embedding_f16) == tied,
          "%s: the float16 embedding and lm_head are not used in place from the map", what);
    lm_decode_traffic tr;
    lm_decode_traffic_count(qm, &tr);
    CHECK(tr.lm_head == V * D * 2, "%s: lm_head counted as %llu bytes", what, (unsigned long long)tr.lm_head);
    /* written again: the same bytes (the float16 tensors pass through unchanged) */
    char *tok = NULL, *x = NULL, *y = NULL;
    size_t tok_len = 0, nx = 0, ny = 0;
    CHECK_OK(lm_model_tokenizer_json(qm, &tok, &tok_len));
    CHECK_OK(lm_qfile_write(again, qm, tok, tok_len));
    CHECK_OK(lm_read_file(path, &x, &nx));
    CHECK_OK(lm_read_file(again, &y, &ny));
    CHECK(x && y && nx == ny && memcmp(x, y, nx) == 0, "%s: the loaded model written again differs from its file", what);
    free(tok), free(x), free(y);
    /* the twin with both tensors float32 */
    lm_model twin = *qm;
    float *emb = to_f32(qm->embedding_f16, V * D), *head = tied ? emb : to_f32(qm->lm_head.w16, V * D);
    twin.embedding = emb;
    twin.embedding_f16 = NULL;
    twin.lm_head = (lm_linear){.kind = LM_LINEAR_F32, .rows = (int)V, .cols = (int)D, .w = head};
    compare_logits(qm, &twin, ids, n, what);
    if (!tied) free(head);
    free(emb);
    lm_model_free(qm);
    unlink(path);
    unlink(again);
}

int main(void) {
    test_every_half();
    test_products();

    char *dir = lm_path_join(test_root(), "models/mamba2-tiny");
    char *tok_file = lm_path_join(dir, "reference/tokens.i32"), *raw = NULL;
    size_t raw_len = 0;
    lm_model *fm = NULL;
    CHECK_OK(lm_model_init(&fm, dir));
    CHECK_OK(lm_read_file(tok_file, &raw, &raw_len));
    const int n = 150; /* two full chunks of 64 and a ragged one */
    CHECK(raw_len >= n * sizeof(int32_t), "%s: %zu bytes", tok_file, raw_len);
    if (fm && raw && raw_len >= n * sizeof(int32_t)) {
        test_model(fm, LM_QUANT_LIGHTMAMBA, (const int32_t *)raw, n);
        test_model(fm, LM_QUANT_RTN, (const int32_t *)raw, n);
    }
    lm_model_free(fm);
    free(raw), free(tok_file), free(dir);
    return test_finish();
}
