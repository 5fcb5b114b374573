/* Perplexity by the protocol of shared/models/README.md (lm_perplexity in lightmamba.h) and the
 * comparison of a model with its base on the same protocol (lm_kl_divergence). Logits are computed
 * LM_SESSION_CHUNK positions at a time, so memory does not depend on ctx; the statistics of those
 * rows (softmax over the vocabulary) are split across the model session's thread pool. */
#include "model/saved_base.h"
#include "model/session.h"
#include "model/ops.h"
#include "model/softmax.h"
#include "common/clock.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Who takes part: the model scored, and its base (none, run alongside, or saved); `save` receives
 * the base run alongside. */
typedef struct {
    lm_session *model, *base;
    const lm_saved_base *saved;
    lm_base_writer *save;
} scoring;

/* Rows [0, T) of one step: logits [T, V] of the model (and base [T, V] of the base) against
 * next[t] (a target < 0 is not scored). */
typedef struct {
    float *logits, *base;
    const int32_t *next;
    int T, V;
    double nll[LM_SESSION_CHUNK], nll_base[LM_SESSION_CHUNK], kl[LM_SESSION_CHUNK];
    int agree[LM_SESSION_CHUNK];
} row_task;

static void row_task_run(void *arg, int i, int n) {
    row_task *a = arg;
    const int V = a->V;
    for (int t = i; t < a->T; t += n) {
        const int32_t target = a->next[t];
        const float *q = a->logits + (size_t)t * V;
        if (target < 0) continue;
        if (!a->base) {
            a->nll[t] = lm_nll(q, V, target);
            continue;
        }
        const float *p = a->base + (size_t)t * V;
        double lse_p, lse_q;
        int32_t top_p, top_q;
        a->kl[t] = lm_kl_logits(p, q, V, &lse_p, &lse_q);
        a->nll[t] = lse_q - q[target];
        a->nll_base[t] = lse_p - p[target];
        lm_logsumexp(q, V, &top_q); /* for the argmax: the lse is known */
        lm_logsumexp(p, V, &top_p);
        a->agree[t] = top_q == top_p;
    }
}

/* Scored positions of n_ids tokens in chunks of ctx (each chunk of len tokens scores len - 1),
 * after checking the arguments. */
static lm_status count_scored(const lm_session *s, const int32_t *ids, size_t n_ids, int ctx, size_t *scored) {
    if (ctx < 2) return lm_fail(LM_ERR_ARG, "context length must be at least 2 tokens (got %d)", ctx);
    size_t n_chunks = (n_ids + (size_t)ctx - 1) / (size_t)ctx;
    *scored = n_ids - n_chunks;
    if (*scored == 0)
        return lm_fail(LM_ERR_ARG, "nothing to score: the text has %zu token(s); perplexity needs at least 2", n_ids);
    const int V = lm_session_vocab_size(s);
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return lm_fail(LM_ERR_ARG, "token id %d at position %zu is outside the vocabulary [0, %d)", (int)ids[i], i, V);
    return LM_OK;
}

/* The protocol over ids: the sum of the scored positions' nll in order into *nll_sum; with a base,
 * also every position's nll[pos], nll_base[pos] and kl[pos], and the count of agreeing argmax. */
static lm_status run_protocol(const scoring *sc, const int32_t *ids, size_t n_ids, int ctx, lm_progress_fn progress,
                              void *progress_ctx, double *nll_sum, double *nll, double *nll_base, double *kl,
                              size_t *agree) {
    const int V = lm_session_vocab_size(sc->model), D = lm_model_config(sc->model->m)->d_model;
    const int compare = sc->base || sc->saved;
    const size_t rows = (size_t)LM_SESSION_CHUNK * V;
    row_task *task;
    float *logits = NULL, *base = NULL;
    LM_TRY(lm_calloc(&task, 1, sizeof *task, "perplexity rows"));
    lm_status st = lm_calloc(&logits, rows, sizeof(float), "perplexity logits");
    if (st == LM_OK && compare) st = lm_calloc(&base, rows, sizeof(float), "perplexity base logits");
    int32_t next[LM_SESSION_CHUNK];
    size_t pos = 0;
    *nll_sum = 0.0, *agree = 0;
    for (size_t start = 0; start < n_ids && st == LM_OK; start += (size_t)ctx) {
        size_t len = n_ids - start < (size_t)ctx ? n_ids - start : (size_t)ctx;
        lm_session_reset(sc->model);
        if (sc->base) lm_session_reset(sc->base);
        for (size_t off = 0; off < len && st == LM_OK; off += LM_SESSION_CHUNK) {
            int T = (int)(len - off < LM_SESSION_CHUNK ? len - off : LM_SESSION_CHUNK);
            const size_t at = start + off;
            if ((st = lm_session_forward(sc->model, ids + at, (size_t)T, logits, NULL)) != LM_OK) break;
            if (sc->base && (st = lm_session_forward(sc->base, ids + at, (size_t)T, base, NULL)) != LM_OK) break;
            /* the saved session's xn holds the rows its lm_head just read */
            if (sc->save && (st = lm_base_writer_rows(sc->save, (sc->base ? sc->base : sc->model)->xn, T)) != LM_OK) break;
            if (sc->saved) {
                /* the same product on the same rows as when the base ran */
                linear_forward(base, sc->saved->hidden + at * (size_t)D, &sc->saved->head, T, sc->model->pool, NULL);
            }
            /* position p predicts p + 1, within the chunk only: the scored rows are a prefix */
            int scored = 0;
            for (int t = 0; t < T; t++) {
                next[t] = off + t + 1 < len ? ids[at + t + 1] : -1;
                scored += next[t] >= 0;
            }
            task->logits = logits, task->base = base, task->next = next, task->T = T, task->V = V;
            lm_pool_run(sc->model->pool, row_task_run, task);
            for (int t = 0; t < scored; t++, pos++) {
                *nll_sum += task->nll[t];
                if (compare) {
                    nll[pos] = task->nll[t], nll_base[pos] = task->nll_base[t], kl[pos] = task->kl[t];
                    *agree += (size_t)task->agree[t];
                }
            }
        }
        if (progress) progress(progress_ctx, start + len, n_ids);
    }
    free(base);
    free(logits);
    free(task);
    return st;
}

static void fill_ppl(lm_perplexity_result *r, double sum, size_t n, double seconds) {
    r->tokens = n;
    r->nll_mean = sum / (double)n;
    r->ppl = exp(r->nll_mean);
    r->seconds = seconds;
}

/* lm_perplexity, and with save_path lm_save_base. */
static lm_status perplexity(lm_session *s, const int32_t *ids, size_t n_ids, int ctx, const char *save_path,
                            lm_progress_fn progress, void *progress_ctx, lm_perplexity_result *result) {
    size_t scored, agree;
    LM_TRY(count_scored(s, ids, n_ids, ctx, &scored));
    lm_base_writer writer;
    if (save_path) LM_TRY(lm_base_writer_open(&writer, save_path, &s->m->lm_head, ctx, ids, n_ids));
    double nll_sum, t0 = lm_now_seconds();
    const scoring sc = {s, NULL, NULL, save_path ? &writer : NULL};
    lm_status st = run_protocol(&sc, ids, n_ids, ctx, progress, progress_ctx, &nll_sum, NULL, NULL, NULL, &agree);
    if (save_path) st = lm_base_writer_close(&writer, st);
    LM_TRY(st);
    fill_ppl(result, nll_sum, scored, lm_now_seconds() - t0);
    return LM_OK;
}

lm_status lm_perplexity(lm_session *s, const int32_t *ids, size_t n_ids, int ctx,
                        lm_progress_fn progress, void *progress_ctx, lm_perplexity_result *result) {
    return perplexity(s, ids, n_ids, ctx, NULL, progress, progress_ctx, result);
}

lm_status lm_save_base(lm_session *s, const int32_t *ids, size_t n_ids, int ctx, const char *path,
                       lm_progress_fn progress, void *progress_ctx, lm_perplexity_result *result) {
    return perplexity(s, ids, n_ids, ctx, path, progress, progress_ctx, result);
}

/* Checks that the saved base was made on this text, chunking and vocabulary. */
static lm_status check_saved(const lm_saved_base *b, int V, int D, int ctx, const int32_t *ids, size_t n_ids) {
    if (b->head.rows != V || b->head.cols != D)
        return lm_fail(LM_ERR_ARG, "the saved base has %d tokens of width %d, the model %d of width %d", b->head.rows,
                       b->head.cols, V, D);
    if (b->ctx != ctx) return lm_fail(LM_ERR_ARG, "the base was saved with --ctx %d, not %d", b->ctx, ctx);
    const uint32_t crc = lm_ids_crc(ids, n_ids);
    if (b->n_ids != n_ids || b->ids_crc != crc)
        return lm_fail(LM_ERR_ARG, "the base was saved on another text (%llu tokens, ids CRC-32C %08x; this one: %zu "
                       "tokens, %08x)", (unsigned long long)b->n_ids, b->ids_crc, n_ids, crc);
    return LM_OK;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The summary of the per-position arrays (kl is sorted in place). */
static void summarize(lm_kl_result *r, const double *nll, const double *nll_base, double *kl, size_t n, size_t agree) {
    double kl_sum = 0.0;
    for (size_t i = 0; i < n; i++) kl_sum += kl[i];
    r->tokens = n;
    r->kl_mean = kl_sum / (double)n;
    qsort(kl, n, sizeof *kl, by_value);
    r->kl_median = n % 2 ? kl[n / 2] : 0.5 * (kl[n / 2 - 1] + kl[n / 2]);
    size_t rank = (size_t)ceil(0.99 * (double)n); /* nearest rank */
    r->kl_p99 = kl[rank > 0 ? rank - 1 : 0];
    r->kl_max = kl[n - 1];
    r->top1_agreement = (double)agree / (double)n;
    /* ppl_delta = exp(mean nll) - exp(mean nll_base); its variance by the delta method, from the
     * variances and covariance of the two means (sample (co)variances / n) */
    const double mq = r->model.nll_mean, mp = r->base.nll_mean;
    double vq = 0.0, vp = 0.0, cov = 0.0;
    for (size_t i = 0; i < n; i++) {
        vq += (nll[i] - mq) * (nll[i] - mq);
        vp += (nll_base[i] - mp) * (nll_base[i] - mp);
        cov += (nll[i] - mq) * (nll_base[i] - mp);
    }
    const double dof = n > 1 ? (double)(n - 1) * (double)n : 1.0, pq = r->model.ppl, pp = r->base.ppl;
    double var = (pq * pq * vq + pp * pp * vp - 2.0 * pq * pp * cov) / dof;
    r->ppl_delta = pq - pp;
    r->ppl_delta_se = var > 0.0 ? sqrt(var) : 0.0;
}

lm_status lm_kl_divergence(lm_session *model, lm_session *base, const lm_saved_base *saved, const char *save_path,
                           const int32_t *ids, size_t n_ids, int ctx, lm_progress_fn progress, void *progress_ctx,
                           lm_kl_result *result) {
    if (!base == !saved) return lm_fail(LM_ERR_ARG, "compare: give exactly one base, a session or a saved base");
    if (save_path && !base) return lm_fail(LM_ERR_ARG, "compare: saving the base needs the base model itself");
    size_t scored, agree;
    LM_TRY(count_scored(model, ids, n_ids, ctx, &scored));
    const int V = lm_session_vocab_size(model), D = lm_model_config(model->m)->d_model;
    if (base && lm_session_vocab_size(base) != V)
        return lm_fail(LM_ERR_ARG, "the base model has a vocabulary of %d tokens, the model %d", lm_session_vocab_size(base), V);
    if (saved) LM_TRY(check_saved(saved, V, D, ctx, ids, n_ids));
    lm_base_writer writer;
    if (save_path) LM_TRY(lm_base_writer_open(&writer, save_path, &base->m->lm_head, ctx, ids, n_ids));

    double *nll = NULL, *nll_base = NULL, *kl = NULL, nll_sum, t0 = lm_now_seconds();
    lm_status st = lm_calloc(&nll, scored, sizeof(double), "comparison nll");
    if (st == LM_OK) st = lm_calloc(&nll_base, scored, sizeof(double), "comparison nll");
    if (st == LM_OK) st = lm_calloc(&kl, scored, sizeof(double), "comparison KL");
    const scoring sc = {model, base, saved, save_path ? &writer : NULL};
    if (st == LM_OK) st = run_protocol(&sc, ids, n_ids, ctx, progress, progress_ctx, &nll_sum, nll, nll_base, kl, &agree);
    if (save_path) st = lm_base_writer_close(&writer, st);
    if (st == LM_OK) {
        double seconds = lm_now_seconds() - t0, base_sum = 0.0;
        for (size_t i = 0; i < scored; i++) base_sum += nll_base[i];
        memset(result, 0, sizeof *result);
        fill_ppl(&result->model, nll_sum, scored, seconds);
        fill_ppl(&result->base, base_sum, scored, seconds);
        summarize(result, nll, nll_base, kl, scored, agree);
    }
    free(kl);
    free(nll_base);
    free(nll);
    return st;
}
