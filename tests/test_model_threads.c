/* The session's parallel steps (conv channels, scan + gate per head, the linear layers' rows)
 * give the same results at 1, 2 and 3 threads, and the pool stays correct and quick to hand
 * back when called many times:
 *  - W4A4 (integer linear layers): the recurrent state after a 150-token prefill (chunks of
 *    64, 64, 22) and 5 decode steps is bit-identical at every thread count (each part's share is
 *    fixed by its index, the integer products are exact); the logits too;
 *  - float32: the state and logits agree within 1e-5 (relative to 1 + |value|); only the float
 *    GEMMs' partition of rows changes with the thread count;
 *  - prefill (chunks) and token-by-token decode leave the same state: bit for bit for W4A4 where
 *    prefill runs the token-by-token scan, within 1e-4 where it runs the chunked scan
 *    (ssm_chunked_pays: it rounds differently) and for float32 (its GEMMs and GEMVs round
 *    differently);
 *  - shapes: head_dim 16 (the scan's four-row groups) and head_dim 6, d_state 20 (a ragged
 *    group of two rows, a state row that is not a whole number of vectors), 2 groups. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model/model.h"
#include "model/ops.h"
#include "model/session.h"
#include "quant/synth.h"

#define N_PROMPT 150
#define N_DECODE 5

typedef struct {
    float *ssm, *conv, *logits;
    size_t n_ssm, n_conv;
} run_result;

static void run_result_free(run_result *r) { free(r->ssm), free(r->conv), free(r->logits); }

/* N_PROMPT tokens in one call (or, stepwise, one at a time), then N_DECODE single steps; keeps
 * the state and the last logits */
static int run(lm_model *m, int threads, int stepwise, run_result *r) {
    const lm_config *c = &m->cfg;
    const int V = c->vocab_size;
    memset(r, 0, sizeof *r);
    r->n_ssm = (size_t)c->n_layer * c->n_heads * c->head_dim * c->d_state;
    r->n_conv = (size_t)c->n_layer * (c->d_conv - 1) * (c->d_inner + 2 * c->n_groups * c->d_state);
    r->ssm = malloc(sizeof(float) * r->n_ssm), r->conv = malloc(sizeof(float) * r->n_conv);
    r->logits = malloc(sizeof(float) * V);
    int32_t tokens[N_PROMPT + N_DECODE];
    for (int i = 0; i < N_PROMPT + N_DECODE; i++) tokens[i] = (int32_t)((i * 7919 + 13) % V);
    lm_session *s = NULL;
    CHECK_OK(test_session(&s, m, threads));
    if (!s || !r->ssm || !r->conv || !r->logits) {
        lm_session_free(s);
        return -1;
    }
    if (stepwise)
        for (int i = 0; i < N_PROMPT; i++) CHECK_OK(lm_session_forward(s, &tokens[i], 1, NULL, r->logits));
    else
        CHECK_OK(lm_session_forward(s, tokens, N_PROMPT, NULL, r->logits));
    for (int i = 0; i < N_DECODE; i++) CHECK_OK(lm_session_forward(s, &tokens[N_PROMPT + i], 1, NULL, r->logits));
    memcpy(r->ssm, s->ssm_state, sizeof(float) * r->n_ssm);
    memcpy(r->conv, s->conv_state, sizeof(float) * r->n_conv);
    lm_session_free(s);
    return 0;
}

static double worst_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (1.0 + fabs((double)b[i]));
        if (!(d <= worst)) worst = d; /* NaN counts as worst */
    }
    return worst;
}

static void check_threads(const char *path, const char *name, int exact) {
    lm_model *m = NULL;
    CHECK_OK(lm_model_init(&m, path));
    if (!m) return;
    run_result one = {0}, steps = {0};
    if (run(m, 1, 0, &one) == 0 && run(m, 1, 1, &steps) == 0) {
        /* prefill's token-by-token scan (four state rows at a time) equals decode's (one row at a
         * time) bit for bit; the chunked scan within float rounding */
        if (exact && !ssm_chunked_pays(&m->cfg, LM_SESSION_CHUNK))
            CHECK(memcmp(one.ssm, steps.ssm, sizeof(float) * one.n_ssm) == 0 &&
                      memcmp(one.conv, steps.conv, sizeof(float) * one.n_conv) == 0,
                  "%s: the state after a prefill differs from token by token", name);
        else
            CHECK(worst_diff(one.ssm, steps.ssm, one.n_ssm) < 1e-4 && worst_diff(one.conv, steps.conv, one.n_conv) < 1e-4,
                  "%s: the state after a prefill differs from token by token", name);
        for (size_t i = 0; i < one.n_ssm; i++) CHECK(isfinite(one.ssm[i]), "%s: state %zu not finite", name, i);
        for (int threads = 2; threads <= 3; threads++) {
            run_result r;
            if (run(m, threads, 0, &r) != 0) {
                run_result_free(&r);
                continue;
            }
            if (exact) {
                CHECK(memcmp(one.ssm, r.ssm, sizeof(float) * r.n_ssm) == 0, "%s: SSM state differs at %d threads", name, threads);
                CHECK(memcmp(one.conv, r.conv, sizeof(float) * r.n_conv) == 0, "%s: conv state differs at %d threads", name, threads);
                CHECK(memcmp(one.logits, r.logits, sizeof(float) * m->cfg.vocab_size) == 0, "%s: logits differ at %d threads",
                      name, threads);
            } else {
                double ds = worst_diff(r.ssm, one.ssm, r.n_ssm), dc = worst_diff(r.conv, one.conv, r.n_conv),
                       dl = worst_diff(r.logits, one.logits, (size_t)m->cfg.vocab_size);
                CHECK(ds < 1e-5 && dc < 1e-5 && dl < 1e-5, "%s, %d threads: state %g, conv %g, logits %g from 1 thread", name,
                      threads, ds, dc, dl);
            }
            run_result_free(&r);
        }
    }
    run_result_free(&one);
    run_result_free(&steps);
    lm_model_free(m);
}

/* The pool: many short calls, every part exactly once per call, whichever thread claims it. */
typedef struct {
    _Atomic int runs[3];
    int calls;
} count_ctx;

static void count_part(void *arg, int i, int n) {
    count_ctx *c = arg;
    if (n == 3 && i >= 0 && i < 3) c->runs[i]++;
}

int main(void) {
    const lm_config shapes[] = {
        {.d_model = 64, .n_layer = 2, .d_inner = 128, .n_heads = 8, .head_dim = 16, .d_state = 16, .n_groups = 2,
         .d_conv = 4, .vocab_size = 500, .eps = 1e-5f, .dt_limit_min = 0.0f, .dt_limit_max = INFINITY,
         .tie_embeddings = 0, .conv_bias = 1, .proj_bias = 0},
        {.d_model = 48, .n_layer = 2, .d_inner = 48, .n_heads = 8, .head_dim = 6, .d_state = 20, .n_groups = 2,
         .d_conv = 4, .vocab_size = 500, .eps = 1e-5f, .dt_limit_min = 0.0f, .dt_limit_max = INFINITY,
         .tie_embeddings = 0, .conv_bias = 1, .proj_bias = 0},
    };
    char path[] = "/tmp/lm_test_threads_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return test_finish();
    close(fd);
    char dir[] = "/tmp/lm_test_threads_f32_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    for (int k = 0; k < 2; k++) {
        char name[64];
        lm_quant_settings q = lm_quant_defaults();
        q.wbits = 4, q.abits = 4, q.method = LM_QUANT_LIGHTMAMBA;
        CHECK_OK(lm_synth_quantized(path, &shapes[k], &q, 11, 2));
        snprintf(name, sizeof name, "W4A4 head_dim %d", shapes[k].head_dim);
        check_threads(path, name, 1);
        CHECK_OK(lm_synth_float(dir, &shapes[k], 11, 2));
        snprintf(name, sizeof name, "float32 head_dim %d", shapes[k].head_dim);
        check_threads(dir, name, 0);
    }
    unlink(path);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "removing %s", dir);

    lm_pool *pool = NULL;
    CHECK_OK(lm_pool_init(&pool, 3));
    count_ctx c = {{0}, 0};
    for (int i = 0; i < 20000; i++) lm_pool_run(pool, count_part, &c);
    for (int i = 0; i < 3; i++) CHECK(c.runs[i] == 20000, "part %d ran %d times in 20000 calls", i, c.runs[i]);
    lm_pool_free(pool);
    return test_finish();
}
