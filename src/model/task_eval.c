/* Scoring zero-shot tasks (model/tasks.h) by the log-likelihood of each request's continuation,
 * and the task metrics as lm-evaluation-harness defines them: acc (the item's choice of highest
 * log-likelihood is the right one; LAMBADA: every target token is the argmax), acc_norm (highest
 * log-likelihood per character of the choice), their standard errors (sample standard deviation
 * over sqrt(items)), LAMBADA's perplexity exp(-mean total log-likelihood of the targets). */
#include "model/session.h"
#include "model/softmax.h"
#include "model/tasks.h"
#include "common/clock.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>

/* The log-likelihood of cont after context, with rows [LM_SESSION_CHUNK, V] of scratch logits. */
static lm_status loglikelihood(lm_session *s, float *logits, const int32_t *context, size_t n_context,
                               const int32_t *cont, size_t n_cont, double *loglik, int *greedy) {
    if (n_context < 1 || n_cont < 1)
        return lm_fail(LM_ERR_ARG, "log-likelihood: needs a context and a continuation (%zu and %zu tokens)", n_context, n_cont);
    const int V = lm_session_vocab_size(s);
    lm_session_reset(s);
    if (n_context > 1) LM_TRY(lm_session_forward(s, context, n_context - 1, NULL, NULL));
    /* the last context token and the continuation but its last: row j predicts cont[j] */
    double ll = 0.0;
    int all_greedy = 1;
    int32_t in[LM_SESSION_CHUNK];
    for (size_t off = 0; off < n_cont; off += LM_SESSION_CHUNK) {
        const int T = (int)(n_cont - off < LM_SESSION_CHUNK ? n_cont - off : LM_SESSION_CHUNK);
        for (int j = 0; j < T; j++) in[j] = off + j == 0 ? context[n_context - 1] : cont[off + j - 1];
        LM_TRY(lm_session_forward(s, in, (size_t)T, logits, NULL));
        for (int j = 0; j < T; j++) {
            const float *row = logits + (size_t)j * V;
            int32_t top;
            ll += row[cont[off + j]] - lm_logsumexp(row, V, &top);
            all_greedy &= top == cont[off + j];
        }
    }
    *loglik = ll;
    *greedy = all_greedy;
    return LM_OK;
}

lm_status lm_loglikelihood(lm_session *s, const int32_t *context, size_t n_context, const int32_t *cont, size_t n_cont,
                           double *loglik, int *greedy) {
    float *logits;
    LM_TRY(lm_calloc(&logits, (size_t)LM_SESSION_CHUNK * lm_session_vocab_size(s), sizeof(float), "log-likelihood logits"));
    lm_status st = loglikelihood(s, logits, context, n_context, cont, n_cont, loglik, greedy);
    free(logits);
    return st;
}

/* The standard error of the mean of n values that are 1 in a fraction p of them, 0 otherwise. */
static double stderr_of_fraction(double p, size_t n) { return n > 1 ? sqrt(p * (1.0 - p) / (double)(n - 1)) : NAN; }

lm_status lm_task_eval(lm_session *s, const lm_task *task, size_t limit, lm_progress_fn progress, void *progress_ctx,
                       lm_task_result *r) {
    const size_t n = limit && limit < task->n_items ? limit : task->n_items;
    const double t0 = lm_now_seconds();
    float *logits;
    LM_TRY(lm_calloc(&logits, (size_t)LM_SESSION_CHUNK * lm_session_vocab_size(s), sizeof(float), "task logits"));
    size_t correct = 0, correct_norm = 0;
    double ll_sum = 0.0;
    lm_status st = LM_OK;
    for (size_t i = 0; i < n && st == LM_OK; i++) {
        const lm_task_item *it = &task->items[i];
        int best = 0, best_norm = 0, greedy = 0;
        double best_ll = 0.0, best_ll_norm = 0.0;
        for (int c = 0; c < it->n && st == LM_OK; c++) {
            const lm_task_request *q = &task->req[it->first + (size_t)c];
            double ll;
            st = loglikelihood(s, logits, task->ids + q->ctx, q->n_ctx, task->ids + q->cont, q->n_cont, &ll, &greedy);
            if (st != LM_OK) break;
            if (c == 0 || ll > best_ll) best = c, best_ll = ll; /* the first of equal ones, as argmax */
            if (c == 0 || ll / q->chars > best_ll_norm) best_norm = c, best_ll_norm = ll / q->chars;
            ll_sum += ll;
        }
        if (task->kind == LM_TASK_LAMBADA) {
            correct += (size_t)greedy;
        } else {
            correct += best == it->gold;
            correct_norm += best_norm == it->gold;
        }
        if (progress) progress(progress_ctx, i + 1, n);
    }
    free(logits);
    LM_TRY(st);
    r->items = n;
    r->acc = (double)correct / (double)n;
    r->acc_stderr = stderr_of_fraction(r->acc, n);
    const int has_norm = task->kind != LM_TASK_LAMBADA && task->kind != LM_TASK_WINOGRANDE;
    r->acc_norm = has_norm ? (double)correct_norm / (double)n : NAN;
    r->acc_norm_stderr = has_norm ? stderr_of_fraction(r->acc_norm, n) : NAN;
    r->ppl = task->kind == LM_TASK_LAMBADA ? exp(-ll_sum / (double)n) : NAN;
    r->seconds = lm_now_seconds() - t0;
    return LM_OK;
}
