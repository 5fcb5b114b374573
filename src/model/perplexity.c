/* Perplexity by the protocol of shared/models/README.md (see lm_perplexity in lightmamba.h).
 * Logits are computed LM_SESSION_CHUNK positions at a time, so memory does not depend on
 * ctx; the log-softmax of those rows is split across the session's thread pool. */
#include "model/session.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

/* nll of rows [0, T) of logits [T, V] against next[t] (a target < 0 is not scored). */
typedef struct {
    const float *logits;
    const int32_t *next;
    int T, V;
    double nll[LM_SESSION_CHUNK];
} nll_task;

static void nll_task_run(void *arg, int i, int n) {
    nll_task *a = arg;
    for (int t = i; t < a->T; t += n)
        a->nll[t] = a->next[t] < 0 ? 0.0 : lm_nll(a->logits + (size_t)t * a->V, a->V, a->next[t]);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lm_status lm_perplexity(lm_session *s, const int32_t *ids, size_t n_ids, int ctx,
                        lm_progress_fn progress, void *progress_ctx, lm_perplexity_result *result) {
    if (ctx < 2) return lm_fail(LM_ERR_ARG, "context length must be at least 2 tokens (got %d)", ctx);
    /* every chunk of len tokens scores len - 1 of them */
    size_t n_chunks = (n_ids + (size_t)ctx - 1) / (size_t)ctx, scored = n_ids - n_chunks;
    if (scored == 0)
        return lm_fail(LM_ERR_ARG, "nothing to score: the text has %zu token(s); perplexity needs at least 2", n_ids);
    const int V = lm_session_vocab_size(s);
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return lm_fail(LM_ERR_ARG, "token id %d at position %zu is outside the vocabulary [0, %d)", (int)ids[i], i, V);

    nll_task task;
    float *logits;
    LM_TRY(lm_calloc(&logits, (size_t)LM_SESSION_CHUNK * V, sizeof(float), "perplexity logits"));
    int32_t next[LM_SESSION_CHUNK];
    double t0 = now_seconds(), nll_sum = 0.0;
    lm_status st = LM_OK;
    for (size_t start = 0; start < n_ids && st == LM_OK; start += (size_t)ctx) {
        size_t len = n_ids - start < (size_t)ctx ? n_ids - start : (size_t)ctx;
        lm_session_reset(s);
        for (size_t off = 0; off < len && st == LM_OK; off += LM_SESSION_CHUNK) {
            int T = (int)(len - off < LM_SESSION_CHUNK ? len - off : LM_SESSION_CHUNK);
            if ((st = lm_session_forward(s, ids + start + off, (size_t)T, logits, NULL)) != LM_OK) break;
            /* position p predicts p + 1, within the chunk only */
            for (int t = 0; t < T; t++) next[t] = off + t + 1 < len ? ids[start + off + t + 1] : -1;
            task = (nll_task){logits, next, T, V, {0}};
            lm_pool_run(s->pool, nll_task_run, &task);
            for (int t = 0; t < T; t++) nll_sum += task.nll[t];
        }
        if (progress) progress(progress_ctx, start + len, n_ids);
    }
    free(logits);
    LM_TRY(st);
    result->tokens = scored;
    result->nll_mean = nll_sum / (double)scored;
    result->ppl = exp(result->nll_mean);
    result->seconds = now_seconds() - t0;
    return LM_OK;
}
