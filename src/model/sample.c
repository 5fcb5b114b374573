/* Sampling the next token from logits (lm_sampler_params in lightmamba.h), in this order:
 *   repetition penalty over the last repeat_last_n accepted tokens (llama.cpp's rule: a positive
 *   logit divided by the penalty, a negative one multiplied, once per distinct id);
 *   temperature 0: argmax; else p = softmax(logits / temperature), then
 *   top-k (the k most probable ids), top-p (the most probable ids whose mass reaches top_p of what
 *   top-k kept), min-p (ids with p >= min_p * the most probable p), and one draw from what is left.
 * The PRNG is splitmix64, so a seed gives the same draws on every platform. With only temperature
 * and top-p set the draws are those of the earlier two-knob sampler for the same seed. */
#include "common/error.h"
#include "common/file.h"
#include "lightmamba.h"
#include "model/softmax.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A bound that keeps a mistyped window from allocating gigabytes. */
#define REPEAT_LAST_N_MAX (1 << 20)

typedef struct {
    float p;
    int32_t id;
} lm_candidate;

struct lm_sampler {
    int n;                 /* candidate ids [0, n) */
    lm_sampler_params p;
    uint64_t rng;
    float *penalized;      /* [n] the logits after the repetition penalty (allocated only when it is on) */
    float *probs;          /* [n] */
    lm_candidate *cand;    /* [n] candidates of the filters */
    int32_t *recent;       /* [repeat_last_n] ring of the last accepted tokens (penalty on only) */
    int n_recent, recent_at;
};

lm_sampler_params lm_sampler_default_params(void) {
    return (lm_sampler_params){.temperature = 0.8f, .top_k = 0, .top_p = 0.9f, .min_p = 0.0f,
                               .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0};
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 24 random bits (exact in a float). */
static float rng_float(uint64_t *s) { return (float)(rng_next(s) >> 40) * (1.0f / 16777216.0f); }

static int penalty_on(const lm_sampler_params *p) { return p->repeat_penalty != 1.0f && p->repeat_last_n > 0; }

static lm_status check_params(int n_candidates, const lm_sampler_params *p) {
    if (n_candidates <= 0) return lm_fail(LM_ERR_ARG, "sampler: %d candidate tokens", n_candidates);
    if (!(p->temperature >= 0.0f) || isinf(p->temperature))
        return lm_fail(LM_ERR_ARG, "temperature must be a finite number >= 0 (got %g)", p->temperature);
    if (p->top_k < 0) return lm_fail(LM_ERR_ARG, "top-k must be >= 0 (got %d; 0 disables it)", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) return lm_fail(LM_ERR_ARG, "top-p must be in (0, 1] (got %g)", p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f)) return lm_fail(LM_ERR_ARG, "min-p must be in [0, 1] (got %g)", p->min_p);
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return lm_fail(LM_ERR_ARG, "repeat penalty must be a finite number > 0 (got %g; 1 disables it)", p->repeat_penalty);
    if (p->repeat_last_n < 0 || p->repeat_last_n > REPEAT_LAST_N_MAX)
        return lm_fail(LM_ERR_ARG, "repeat-last-n must be in [0, %d] (got %d)", REPEAT_LAST_N_MAX, p->repeat_last_n);
    return LM_OK;
}

lm_status lm_sampler_init(lm_sampler **out, int n_candidates, const lm_sampler_params *params) {
    *out = NULL;
    const lm_sampler_params p = params ? *params : lm_sampler_default_params();
    LM_TRY(check_params(n_candidates, &p));
    lm_sampler *s;
    LM_TRY(lm_calloc(&s, 1, sizeof *s, "sampler"));
    s->n = n_candidates;
    s->p = p;
    s->rng = p.seed;
    lm_status st = lm_calloc(&s->probs, (size_t)n_candidates, sizeof(float), "sampler");
    if (st == LM_OK) st = lm_calloc(&s->cand, (size_t)n_candidates, sizeof(lm_candidate), "sampler");
    if (st == LM_OK && penalty_on(&p)) st = lm_calloc(&s->penalized, (size_t)n_candidates, sizeof(float), "sampler");
    if (st == LM_OK && penalty_on(&p)) st = lm_calloc(&s->recent, (size_t)p.repeat_last_n, sizeof(int32_t), "sampler");
    if (st != LM_OK) {
        lm_sampler_free(s);
        return st;
    }
    *out = s;
    return LM_OK;
}

int lm_token_candidates(const lm_model *model, const lm_tokenizer *tok) {
    const int rows = lm_model_config(model)->vocab_size, ids = lm_tokenizer_vocab_size(tok);
    return ids < rows ? ids : rows;
}

void lm_sampler_free(lm_sampler *s) {
    if (!s) return;
    free(s->penalized);
    free(s->probs);
    free(s->cand);
    free(s->recent);
    free(s);
}

void lm_sampler_accept(lm_sampler *s, const int32_t *ids, size_t n) {
    if (!s->recent) return;
    const int N = s->p.repeat_last_n;
    for (size_t i = 0; i < n; i++) {
        s->recent[s->recent_at] = ids[i];
        s->recent_at = (s->recent_at + 1) % N;
        if (s->n_recent < N) s->n_recent++;
    }
}

/* logits with the repetition penalty applied once to each distinct recent id: s->penalized,
 * or logits itself when there is nothing to penalize. */
static const float *penalize(lm_sampler *s, const float *logits) {
    if (!s->recent || s->n_recent == 0) return logits;
    memcpy(s->penalized, logits, (size_t)s->n * sizeof(float));
    for (int i = 0; i < s->n_recent; i++) {
        const int32_t id = s->recent[i];
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = s->recent[j] == id;
        if (seen || id < 0 || id >= s->n) continue;
        float *l = &s->penalized[id];
        *l = *l > 0.0f ? *l / s->p.repeat_penalty : *l * s->p.repeat_penalty;
    }
    return s->penalized;
}

/* Candidate order: higher probability first, lower id on ties (deterministic). */
static int before(lm_candidate x, lm_candidate y) { return x.p != y.p ? x.p > y.p : x.id < y.id; }
static int by_prob_desc(const void *a, const void *b) {
    const lm_candidate *x = a, *y = b;
    return before(*x, *y) ? -1 : before(*y, *x);
}

/* The k first of probs [n] in candidate order into cand [k], through a heap whose root is the
 * last of those kept so far (O(n log k)). */
static void select_top_k(lm_candidate *cand, const float *probs, int n, int k) {
    for (int i = 0; i < n; i++) {
        lm_candidate c = {probs[i], i};
        int at;
        if (i < k) { /* sift up */
            for (at = i; at > 0 && before(cand[(at - 1) / 2], c); at = (at - 1) / 2) cand[at] = cand[(at - 1) / 2];
        } else if (before(c, cand[0])) { /* replace the root, sift down */
            for (at = 0;;) {
                int child = 2 * at + 1;
                if (child >= k) break;
                if (child + 1 < k && before(cand[child], cand[child + 1])) child++;
                if (!before(c, cand[child])) break;
                cand[at] = cand[child];
                at = child;
            }
        } else {
            continue;
        }
        cand[at] = c;
    }
    qsort(cand, (size_t)k, sizeof *cand, by_prob_desc);
}

/* One draw r in [0, 1) from s->probs [n] (which sum to 1) after top-k, top-p and min-p. */
static int32_t draw_filtered(lm_sampler *s, int32_t top, float r) {
    const int n = s->n;
    const float *probs = s->probs;
    int m = 0;
    float total = 1.0f; /* the mass top-p measures against: what top-k kept */
    if (s->p.top_k > 0 && s->p.top_k < n) {
        select_top_k(s->cand, probs, n, s->p.top_k);
        m = s->p.top_k;
        total = 0.0f;
        for (int i = 0; i < m; i++) total += s->cand[i].p;
    } else {
        /* Below the most probable id, one with p < (1 - top_p) / (n - 1) cannot be in the nucleus
         * (all ids at or below it hold less than 1 - top_p, so the ids above it already reach
         * top_p), nor one with p < min_p * p[top]: those are dropped before sorting, as in llama2.c. */
        float cutoff = s->p.top_p < 1.0f && n > 1 ? (1.0f - s->p.top_p) / (float)(n - 1) : 0.0f;
        if (s->p.min_p * probs[top] > cutoff) cutoff = s->p.min_p * probs[top];
        for (int i = 0; i < n; i++)
            if (probs[i] >= cutoff || i == top) s->cand[m++] = (lm_candidate){probs[i], i};
        qsort(s->cand, (size_t)m, sizeof *s->cand, by_prob_desc);
    }
    int kept = m;
    if (s->p.top_p < 1.0f) {
        float mass = 0.0f;
        for (int i = 0; i < m; i++) {
            mass += s->cand[i].p;
            if (mass >= s->p.top_p * total) {
                kept = i + 1;
                break;
            }
        }
    }
    while (kept > 1 && s->cand[kept - 1].p < s->p.min_p * s->cand[0].p) kept--;
    float mass = 0.0f;
    for (int i = 0; i < kept; i++) mass += s->cand[i].p;
    r *= mass;
    float cdf = 0.0f;
    for (int i = 0; i < kept; i++) {
        cdf += s->cand[i].p;
        if (r < cdf) return s->cand[i].id;
    }
    return s->cand[kept - 1].id;
}

static int32_t draw(lm_sampler *s, const float *logits) {
    const int n = s->n;
    const int32_t top = lm_argmax(logits, n);
    if (s->p.temperature == 0.0f) return top;

    /* p = softmax(logits / temperature) */
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        s->probs[i] = expf((logits[i] - logits[top]) / s->p.temperature);
        sum += s->probs[i];
    }
    for (int i = 0; i < n; i++) s->probs[i] = (float)(s->probs[i] / sum);

    /* r in [0, 1): the first id whose cumulative probability exceeds r is drawn. */
    float r = rng_float(&s->rng);
    if ((s->p.top_k > 0 && s->p.top_k < n) || s->p.top_p < 1.0f || s->p.min_p > 0.0f) return draw_filtered(s, top, r);
    float cdf = 0.0f;
    for (int i = 0; i < n; i++) {
        cdf += s->probs[i];
        if (r < cdf) return i;
    }
    return top; /* r beyond the rounded total */
}

int32_t lm_sampler_sample(lm_sampler *s, const float *logits) {
    const int32_t id = draw(s, penalize(s, logits));
    lm_sampler_accept(s, &id, 1);
    return id;
}
