/* The abort callback (lm_session_params.abort) on the tiny model:
 *   - lm_session_forward polls it before each chunk; stopped at the k-th poll it returns
 *     LM_ERR_ABORTED having consumed (k - 1) chunks: the token count, the logits rows written and,
 *     after the rest of the tokens is fed, every logit and the final state are those of the
 *     uninterrupted call, bit for bit; lm_session_last_logits those of a call that fed only the
 *     chunks done; last_logits is not written;
 *   - stopped at the first poll nothing changes;
 *   - lm_perplexity stops with LM_ERR_ABORTED, leaves its result untouched, and runs to the same
 *     result as an uninterrupted one once the callback lets it;
 *   - lm_quantize stops with LM_ERR_ABORTED when its progress callback returns non-zero, in
 *     calibration and in the per-layer quantization, and leaves no file. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "common/file.h"
#include "synth_checkpoint.h"

#define N_TOKENS 200 /* 3 full chunks and a part */
#define N_THREADS 2

/* Says stop at poll number stop_at (1-based; 0: never), counting polls. */
typedef struct {
    int polls, stop_at;
} stopper;

static int stop_at_poll(void *ctx) {
    stopper *s = ctx;
    s->polls++;
    return s->stop_at > 0 && s->polls >= s->stop_at;
}

static lm_session *session_with_stopper(const lm_model *m, stopper *st) {
    lm_session_params p = lm_session_default_params();
    p.n_threads = N_THREADS;
    p.abort = stop_at_poll;
    p.abort_ctx = st;
    lm_session *s = NULL;
    CHECK_OK(lm_session_init(&s, m, &p));
    return s;
}

/* The state bytes of s (malloc'd), *n their count. */
static unsigned char *state_of(const lm_session *s, size_t *n) {
    *n = lm_state_size(s);
    unsigned char *b = malloc(*n ? *n : 1);
    CHECK(*n > 0 && b, "no state size: %s", lm_last_error());
    if (b && *n) CHECK_OK(lm_state_get(s, b, *n));
    return b;
}

static void check_forward(const lm_model *m, const int32_t *ids) {
    const size_t V = (size_t)lm_model_config(m)->vocab_size;
    float *want = malloc(N_TOKENS * V * sizeof(float)), *got = malloc(N_TOKENS * V * sizeof(float));
    float *last = malloc(V * sizeof(float)), *again = malloc(V * sizeof(float));
    stopper never = {0, 0}, third = {0, 3}, next = {0, 0};
    lm_session *ref = session_with_stopper(m, &never), *s = session_with_stopper(m, &third);
    if (!want || !got || !last || !again || !ref || !s) goto out;

    CHECK_OK(lm_session_forward(ref, ids, N_TOKENS, want, NULL));
    CHECK(never.polls == (N_TOKENS + LM_SESSION_CHUNK - 1) / LM_SESSION_CHUNK, "%d polls for %d tokens", never.polls,
          N_TOKENS);

    /* stopped before the third chunk: two chunks done */
    const size_t k = 2 * LM_SESSION_CHUNK;
    for (size_t i = 0; i < N_TOKENS * V; i++) got[i] = NAN;
    for (size_t i = 0; i < V; i++) last[i] = NAN;
    lm_status st = lm_session_forward(s, ids, N_TOKENS, got, last);
    CHECK(st == LM_ERR_ABORTED && strstr(lm_last_error(), "aborted"), "status %s: %s", lm_status_name(st), lm_last_error());
    CHECK(lm_session_n_tokens(s) == k, "%llu tokens consumed, expected %zu", (unsigned long long)lm_session_n_tokens(s), k);
    CHECK(memcmp(got, want, k * V * sizeof(float)) == 0, "the rows of the chunks done differ from the uninterrupted call");
    int untouched = 1;
    for (size_t i = k * V; i < N_TOKENS * V; i++) untouched = untouched && isnan(got[i]);
    for (size_t i = 0; i < V; i++) untouched = untouched && isnan(last[i]);
    CHECK(untouched, "rows past the chunks done, or last_logits, were written");
    CHECK_OK(lm_session_last_logits(s, again));
    lm_session *part = session_with_stopper(m, &never);
    if (part) CHECK_OK(lm_session_forward(part, ids, k, NULL, last));
    CHECK(memcmp(again, last, V * sizeof(float)) == 0, "last logits after the abort are not those after token %zu", k - 1);
    lm_session_free(part);

    /* the rest of the tokens: the uninterrupted call's logits and final state */
    third.stop_at = 0;
    CHECK_OK(lm_session_forward(s, ids + k, N_TOKENS - k, got + k * V, NULL));
    CHECK(memcmp(got, want, N_TOKENS * V * sizeof(float)) == 0, "resumed after the abort: logits differ");
    size_t na, nb;
    unsigned char *a = state_of(ref, &na), *b = state_of(s, &nb);
    CHECK(a && b && na == nb && memcmp(a, b, na) == 0, "resumed after the abort: the state differs");
    free(a);
    free(b);

    /* stopped at the first poll: nothing consumed, nothing changed */
    lm_session_free(s);
    s = session_with_stopper(m, &next);
    if (!s) goto out;
    CHECK_OK(lm_session_forward(s, ids, 5, NULL, NULL));
    next.stop_at = next.polls + 1;
    a = state_of(s, &na);
    CHECK(lm_session_forward(s, ids, N_TOKENS, got, NULL) == LM_ERR_ABORTED, "not stopped at the first poll");
    b = state_of(s, &nb);
    CHECK(a && b && na == nb && memcmp(a, b, na) == 0 && lm_session_n_tokens(s) == 5,
          "stopped at the first poll, the session changed");
    free(a);
    free(b);
out:
    lm_session_free(ref);
    lm_session_free(s);
    free(want);
    free(got);
    free(last);
    free(again);
}

static void check_perplexity(const lm_model *m, const int32_t *ids) {
    stopper never = {0, 0}, later = {0, 3}; /* ctx 100: chunks of 64 + 36 tokens, so poll 3 is in the second text chunk */
    lm_session *ref = session_with_stopper(m, &never), *s = session_with_stopper(m, &later);
    if (!ref || !s) goto out;
    lm_perplexity_result want, got = {-1.0, -1.0, 7, -1.0};
    CHECK_OK(lm_perplexity(ref, ids, N_TOKENS, 100, NULL, NULL, &want));
    lm_status st = lm_perplexity(s, ids, N_TOKENS, 100, NULL, NULL, &got);
    CHECK(st == LM_ERR_ABORTED, "perplexity: status %s", lm_status_name(st));
    CHECK(got.ppl == -1.0 && got.nll_mean == -1.0 && got.tokens == 7 && got.seconds == -1.0,
          "perplexity wrote its result when aborted");
    CHECK(later.polls == 3, "perplexity polled %d times before stopping at the third", later.polls);
    later.stop_at = 0;
    CHECK_OK(lm_perplexity(s, ids, N_TOKENS, 100, NULL, NULL, &got));
    CHECK(got.ppl == want.ppl && got.tokens == want.tokens, "perplexity after an aborted one: %.9g, expected %.9g", got.ppl,
          want.ppl);
out:
    lm_session_free(ref);
    lm_session_free(s);
}

/* A quantize progress callback that stops at call stop_at (0: never), counting calls and noting the stage. */
typedef struct {
    int calls, stop_at;
    char stage[64];
} quant_stopper;

static int quant_progress(void *ctx, const char *stage, size_t done, size_t total) {
    quant_stopper *q = ctx;
    q->calls++;
    snprintf(q->stage, sizeof q->stage, "%s", stage);
    return q->stop_at > 0 && q->calls >= q->stop_at;
}

static void check_quantize(const lm_model *m) {
    char dir[64], path[128];
    if (synth_tempdir(dir)) return;
    snprintf(path, sizeof path, "%s/q.lmq", dir);
    lm_quant_settings qs = lm_quant_defaults();
    qs.method = LM_QUANT_SMOOTHQUANT, qs.calib_samples = 4, qs.calib_len = 64; /* calibration, then layers */
    const struct {
        int stop_at;
        const char *stage;
    } cases[] = {{2, "calibration"}, {4 + 2, "quantize"}};
    for (int i = 0; i < 2; i++) {
        quant_stopper q = {0, cases[i].stop_at, ""};
        lm_status st = lm_quantize(m, &qs, NULL, N_THREADS, path, quant_progress, &q);
        CHECK(st == LM_ERR_ABORTED && q.calls == cases[i].stop_at && strcmp(q.stage, cases[i].stage) == 0 &&
                  strstr(lm_last_error(), cases[i].stage),
              "quantize stopped in %s: status %s after %d calls in %s (%s)", cases[i].stage, lm_status_name(st), q.calls,
              q.stage, lm_last_error());
        CHECK(!lm_file_exists(path), "an aborted quantize left %s", path);
    }
    quant_stopper never = {0, 0, ""};
    CHECK_OK(lm_quantize(m, &qs, NULL, N_THREADS, path, quant_progress, &never));
    CHECK(lm_file_exists(path) && never.calls == 4 + lm_model_config(m)->n_layer, "quantize ran with %d progress calls",
          never.calls);
    synth_remove_dir(dir);
}

int main(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/mamba2-tiny", test_root());
    lm_model *m = NULL;
    CHECK_OK(lm_model_init(&m, dir));
    if (!m) return test_finish();
    int32_t ids[N_TOKENS];
    uint64_t r = 17;
    for (int i = 0; i < N_TOKENS; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((r >> 33) % 50000);
    }
    check_forward(m, ids);
    check_perplexity(m, ids);
    check_quantize(m);
    lm_model_free(m);
    return test_finish();
}
