/* Sampling the next token from logits: greedy, temperature, top-p (nucleus).
 * The PRNG is splitmix64, so a seed gives the same draws on every platform. */
#include "common/error.h"
#include "common/file.h"
#include "lightmamba.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    float p;
    int32_t id;
} lm_candidate;

struct lm_sampler {
    int n;               /* candidate ids [0, n) */
    float temperature;   /* 0: greedy */
    float top_p;         /* (0, 1] */
    uint64_t rng;
    float *probs;        /* [n] */
    lm_candidate *cand;  /* [n] nucleus candidates */
};

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 24 random bits (exact in a float). */
static float rng_float(uint64_t *s) { return (float)(rng_next(s) >> 40) * (1.0f / 16777216.0f); }

lm_status lm_sampler_init(lm_sampler **out, int n_candidates, float temperature, float top_p, uint64_t seed) {
    *out = NULL;
    if (n_candidates <= 0) return lm_fail(LM_ERR_ARG, "sampler: %d candidate tokens", n_candidates);
    if (!(temperature >= 0.0f) || isinf(temperature))
        return lm_fail(LM_ERR_ARG, "temperature must be a finite number >= 0 (got %g)", temperature);
    if (!(top_p > 0.0f && top_p <= 1.0f)) return lm_fail(LM_ERR_ARG, "top-p must be in (0, 1] (got %g)", top_p);
    lm_sampler *s;
    LM_TRY(lm_calloc(&s, 1, sizeof *s, "sampler"));
    s->n = n_candidates;
    s->temperature = temperature;
    s->top_p = top_p;
    s->rng = seed;
    lm_status st = lm_calloc(&s->probs, (size_t)n_candidates, sizeof(float), "sampler");
    if (st == LM_OK) st = lm_calloc(&s->cand, (size_t)n_candidates, sizeof(lm_candidate), "sampler");
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
    free(s->probs);
    free(s->cand);
    free(s);
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Sort order for the nucleus: higher probability first, lower id on ties (deterministic). */
static int by_prob_desc(const void *a, const void *b) {
    const lm_candidate *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int32_t lm_sampler_sample(lm_sampler *s, const float *logits) {
    const int n = s->n;
    const int32_t top = argmax(logits, n);
    if (s->temperature == 0.0f) return top;

    /* p = softmax(logits / temperature) */
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        s->probs[i] = expf((logits[i] - logits[top]) / s->temperature);
        sum += s->probs[i];
    }
    for (int i = 0; i < n; i++) s->probs[i] = (float)(s->probs[i] / sum);

    /* r in [0, 1): the first id whose cumulative probability exceeds r is drawn. */
    float r = rng_float(&s->rng);
    if (s->top_p >= 1.0f) {
        float cdf = 0.0f;
        for (int i = 0; i < n; i++) {
            cdf += s->probs[i];
            if (r < cdf) return i;
        }
        return top; /* r beyond the rounded total */
    }

    /* Nucleus: the smallest set of most probable ids whose mass reaches top_p. Below the
     * most probable id, one with p < (1 - top_p) / (n - 1) cannot be in it (all ids at or
     * below it hold less than 1 - top_p, so the ids above it already reach top_p): those
     * are dropped before sorting, as in llama2.c. */
    const float cutoff = n > 1 ? (1.0f - s->top_p) / (float)(n - 1) : 0.0f;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (s->probs[i] >= cutoff || i == top) s->cand[m++] = (lm_candidate){s->probs[i], i};
    qsort(s->cand, (size_t)m, sizeof *s->cand, by_prob_desc);
    float mass = 0.0f;
    int kept = m;
    for (int i = 0; i < m; i++) {
        mass += s->cand[i].p;
        if (mass >= s->top_p) {
            kept = i + 1;
            break;
        }
    }
    r *= mass;
    float cdf = 0.0f;
    for (int i = 0; i < kept; i++) {
        cdf += s->cand[i].p;
        if (r < cdf) return s->cand[i].id;
    }
    return s->cand[kept - 1].id;
}
