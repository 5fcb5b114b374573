/* Statistics of softmax distributions over rows of logits, for perplexity, the comparison with a
 * base model (KL divergence) and the zero-shot tasks. lm_nll (lightmamba.h) is lse - l[target]. */
#ifndef LM_MODEL_SOFTMAX_H
#define LM_MODEL_SOFTMAX_H
#include <stdint.h>

/* log sum_i exp(l_i) over n >= 1 logits, computed stably (the max subtracted, double sums);
 * *argmax (if not NULL): the first index of the largest logit. */
double lm_logsumexp(const float *l, int n, int32_t *argmax);

/* The first index of the largest of n >= 1 values (greedy sampling). */
int32_t lm_argmax(const float *x, int n);

/* KL(P || Q) = sum_i P_i log(P_i / Q_i) with P = softmax(p), Q = softmax(q), both over n logits;
 * also each row's log-sum-exp. Never negative (rounding below 0 gives 0); 0 when p == q. */
double lm_kl_logits(const float *p, const float *q, int n, double *lse_p, double *lse_q);

#endif
