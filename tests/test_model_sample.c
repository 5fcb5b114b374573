/* Sampling (greedy, temperature, top-p, top-k, min-p, repetition penalty, seeds) and lm_nll at
 * every SIMD level against a plain double-precision log-softmax. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "kernels/kernels.h"
#include "model/softmax.h"

#define N_DRAWS 40000

/* A sampler with the given temperature, top-p and seed, the other knobs at their defaults (off). */
static lm_status sampler(lm_sampler **s, int n, float temperature, float top_p, uint64_t seed) {
    lm_sampler_params p = lm_sampler_default_params();
    p.temperature = temperature;
    p.top_p = top_p;
    p.seed = seed;
    return lm_sampler_init(s, n, &p);
}

/* Frequencies of N_DRAWS samples over n ids. */
static void histogram(lm_sampler *s, const float *logits, int n, double *freq) {
    memset(freq, 0, (size_t)n * sizeof *freq);
    for (int i = 0; i < N_DRAWS; i++) {
        int32_t id = lm_sampler_sample(s, logits);
        if (id >= 0 && id < n) freq[id] += 1.0 / N_DRAWS;
        else freq[0] = NAN;
    }
}

static void check_sampling(void) {
    /* probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1 */
    const float logits[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    double f[4];
    lm_sampler *s;

    CHECK_OK(sampler(&s, 4, 0.0f, 1.0f, 1));
    CHECK(lm_sampler_sample(s, logits) == 0, "greedy is not the argmax");
    const float tie[4] = {1, 3, 3, 2};
    CHECK(lm_sampler_sample(s, tie) == 1, "greedy tie does not take the lowest id");
    lm_sampler_free(s);

    CHECK_OK(sampler(&s, 4, 1.0f, 1.0f, 42));
    histogram(s, logits, 4, f);
    const double want[4] = {0.5, 0.3, 0.15, 0.05};
    for (int i = 0; i < 4; i++) CHECK(fabs(f[i] - want[i]) < 0.01, "temperature 1: id %d drawn %.4f, want %.2f", i, f[i], want[i]);
    lm_sampler_free(s);

    /* temperature 0.5 squares the probabilities (renormalised) */
    CHECK_OK(sampler(&s, 4, 0.5f, 1.0f, 43));
    histogram(s, logits, 4, f);
    double z = 0.25 + 0.09 + 0.0225 + 0.0025;
    CHECK(fabs(f[0] - 0.25 / z) < 0.01 && fabs(f[3] - 0.0025 / z) < 0.005, "temperature 0.5: %.4f %.4f", f[0], f[3]);
    lm_sampler_free(s);

    /* top-p 0.7: the nucleus is {0, 1} (0.5 + 0.3 >= 0.7), renormalised to 5/8, 3/8 */
    CHECK_OK(sampler(&s, 4, 1.0f, 0.7f, 44));
    histogram(s, logits, 4, f);
    CHECK(fabs(f[0] - 0.625) < 0.01 && fabs(f[1] - 0.375) < 0.01 && f[2] == 0 && f[3] == 0,
          "top-p 0.7: %.4f %.4f %.4f %.4f", f[0], f[1], f[2], f[3]);
    lm_sampler_free(s);

    /* a tiny top-p keeps only the most probable id, even where it is below the pre-filter cutoff */
    const float flat[2] = {0.0f, 0.0f};
    CHECK_OK(sampler(&s, 2, 1.0f, 0.001f, 45));
    histogram(s, flat, 2, f);
    CHECK(f[1] == 0.0 && f[0] > 0.999, "top-p 0.001 on a flat distribution: %.4f %.4f", f[0], f[1]);
    lm_sampler_free(s);

    /* only [0, n_candidates) is considered */
    const float padded[5] = {0, 0, 0, 9, 9};
    CHECK_OK(sampler(&s, 3, 1.0f, 1.0f, 46));
    histogram(s, padded, 3, f);
    CHECK(!isnan(f[0]), "drew an id beyond n_candidates");
    lm_sampler_free(s);

    /* seeds: the same seed, the same draws; another seed, others */
    int32_t a[64], b[64], c[64];
    lm_sampler *s1, *s2, *s3;
    CHECK_OK(sampler(&s1, 4, 1.0f, 0.9f, 123));
    CHECK_OK(sampler(&s2, 4, 1.0f, 0.9f, 123));
    CHECK_OK(sampler(&s3, 4, 1.0f, 0.9f, 124));
    for (int i = 0; i < 64; i++) a[i] = lm_sampler_sample(s1, logits), b[i] = lm_sampler_sample(s2, logits), c[i] = lm_sampler_sample(s3, logits);
    CHECK(memcmp(a, b, sizeof a) == 0, "the same seed gave different draws");
    CHECK(memcmp(a, c, sizeof a) != 0, "different seeds gave the same 64 draws");
    lm_sampler_free(s1), lm_sampler_free(s2), lm_sampler_free(s3);

    /* bad arguments */
    CHECK(sampler(&s, 4, -1.0f, 1.0f, 0) == LM_ERR_ARG && !s, "negative temperature accepted");
    CHECK(sampler(&s, 4, INFINITY, 1.0f, 0) == LM_ERR_ARG, "infinite temperature accepted");
    CHECK(sampler(&s, 4, NAN, 1.0f, 0) == LM_ERR_ARG, "NaN temperature accepted");
    CHECK(sampler(&s, 4, 1.0f, 0.0f, 0) == LM_ERR_ARG, "top-p 0 accepted");
    CHECK(sampler(&s, 4, 1.0f, 1.5f, 0) == LM_ERR_ARG, "top-p 1.5 accepted");
    CHECK(sampler(&s, 0, 1.0f, 1.0f, 0) == LM_ERR_ARG, "0 candidates accepted");
    lm_sampler_free(NULL);
}

/* top-k, min-p, the repetition penalty, their bad values, and the draws of the two-knob settings. */
static void check_filters(void) {
    const float logits[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    lm_sampler *s, *s2;
    lm_sampler_params p;

    /* the distributions the filters leave, from 0.5, 0.3, 0.15, 0.05 (exactly zero where an id is cut) */
    const struct {
        const char *what;
        float temperature, top_p, min_p;
        int top_k;
        double want[4];
    } cases[] = {
        {"top-k 2", 1.0f, 1.0f, 0.0f, 2, {0.625, 0.375, 0, 0}},
        /* top-p measures against what top-k kept: 0.6 alone keeps {0, 1}; after top-k 2 (mass 0.8) it
         * needs 0.48, which id 0 alone has */
        {"top-k 2 then top-p 0.6", 1.0f, 0.6f, 0.0f, 2, {1, 0, 0, 0}},
        {"top-k 1", 1.0f, 1.0f, 0.0f, 1, {1, 0, 0, 0}},
        {"min-p 0.35 (p >= 0.175)", 1.0f, 1.0f, 0.35f, 0, {0.625, 0.375, 0, 0}},
        {"min-p 0.25 (p >= 0.125)", 1.0f, 1.0f, 0.25f, 0, {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}},
        /* min-p after temperature: at 0.5 the probabilities are .25 .09 .0225 .0025 (/ 0.365) */
        {"min-p 0.35 at temperature 0.5", 0.5f, 1.0f, 0.35f, 0, {0.25 / 0.34, 0.09 / 0.34, 0, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        p = lm_sampler_default_params();
        p.temperature = cases[c].temperature, p.top_p = cases[c].top_p, p.min_p = cases[c].min_p;
        p.top_k = cases[c].top_k, p.seed = 50 + c;
        double f[4];
        CHECK_OK(lm_sampler_init(&s, 4, &p));
        if (!s) continue;
        histogram(s, logits, 4, f);
        int ok = 1;
        for (int i = 0; i < 4; i++) ok = ok && (cases[c].want[i] == 0 ? f[i] == 0 : fabs(f[i] - cases[c].want[i]) < 0.01);
        CHECK(ok, "%s: %.4f %.4f %.4f %.4f", cases[c].what, f[0], f[1], f[2], f[3]);
        lm_sampler_free(s);
    }

    /* top-k >= n is off: the same draws as without it */
    int32_t a[64], b[64];
    p = lm_sampler_default_params();
    p.temperature = 1.0f, p.top_p = 1.0f, p.top_k = 4;
    CHECK_OK(lm_sampler_init(&s, 4, &p));
    p.top_k = 0;
    CHECK_OK(lm_sampler_init(&s2, 4, &p));
    for (int i = 0; i < 64; i++) a[i] = lm_sampler_sample(s, logits), b[i] = lm_sampler_sample(s2, logits);
    CHECK(memcmp(a, b, sizeof a) == 0, "top-k = n changed the draws");
    lm_sampler_free(s), lm_sampler_free(s2);

    /* repetition penalty, greedy: 2 / 1.5 = 1.33 falls below 1.9; -1 * 1.5 = -1.5 below -1.2 */
    p = lm_sampler_default_params();
    p.temperature = 0.0f, p.repeat_penalty = 1.5f, p.repeat_last_n = 2;
    CHECK_OK(lm_sampler_init(&s, 4, &p));
    const float near[4] = {2.0f, 1.9f, -5.0f, -5.0f}, neg[4] = {-1.0f, -1.2f, -5.0f, -5.0f};
    CHECK(lm_sampler_sample(s, near) == 0, "penalty with an empty window");
    CHECK(lm_sampler_sample(s, near) == 1, "the drawn id 0 was not penalised");
    /* the window {0, 1}: 1.33 > 1.27 */
    CHECK(lm_sampler_sample(s, near) == 0, "the window of 2 does not hold the last two draws");
    const int32_t zero[2] = {0, 0};
    lm_sampler_accept(s, zero, 2);
    CHECK(lm_sampler_sample(s, neg) == 1, "a negative logit was not multiplied by the penalty");
    /* an id twice in the window is penalised once: 2 / 1.5 = 1.33 > 1.2 (twice would be 0.89) */
    const float once[4] = {2.0f, 1.2f, -5.0f, -5.0f};
    lm_sampler_accept(s, zero, 2);
    CHECK(lm_sampler_sample(s, once) == 0, "an id repeated in the window was penalised more than once");
    const int32_t outside[3] = {-1, 4, 1 << 30};
    lm_sampler_accept(s, outside, 3); /* ids outside the candidates are never penalised, nor a fault */
    CHECK(lm_sampler_sample(s, near) == 0, "ids outside the candidates changed the draw");
    lm_sampler_free(s);
    /* penalty 1 or window 0: off */
    p.repeat_penalty = 1.0f;
    CHECK_OK(lm_sampler_init(&s, 4, &p));
    lm_sampler_accept(s, zero, 2);
    CHECK(lm_sampler_sample(s, near) == 0, "penalty 1 changed the draw");
    lm_sampler_free(s);

    /* the draws of temperature and top-p alone, recorded from the sampler before top-k, min-p and
     * the penalty existed (commit c3343d2): a seed keeps its draws across the change */
    const int32_t full[24] = {1, 3, 2, 1, 1, 1, 3, 0, 1, 0, 1, 2, 0, 0, 2, 0, 0, 0, 0, 1, 2, 2, 0, 0};
    const int32_t nucleus[24] = {1, 2, 1, 1, 1, 1, 2, 0, 1, 0, 1, 2, 0, 0, 2, 0, 0, 0, 0, 0, 2, 1, 0, 0};
    CHECK_OK(sampler(&s, 4, 1.0f, 1.0f, 123));
    CHECK_OK(sampler(&s2, 4, 0.7f, 0.9f, 123));
    for (int i = 0; i < 24; i++) a[i] = lm_sampler_sample(s, logits), b[i] = lm_sampler_sample(s2, logits);
    CHECK(memcmp(a, full, sizeof full) == 0, "temperature 1, seed 123: other draws than before");
    CHECK(memcmp(b, nucleus, sizeof nucleus) == 0, "temperature 0.7, top-p 0.9, seed 123: other draws than before");
    lm_sampler_free(s), lm_sampler_free(s2);

    /* defaults, and bad values named */
    CHECK_OK(lm_sampler_init(&s, 4, NULL));
    lm_sampler_free(s);
    const struct {
        lm_sampler_params p;
        const char *what;
    } bad[] = {
        {{.temperature = 1, .top_k = -1, .top_p = 1, .repeat_penalty = 1}, "top-k"},
        {{.temperature = 1, .top_p = 1, .min_p = 1.5f, .repeat_penalty = 1}, "min-p"},
        {{.temperature = 1, .top_p = 1, .min_p = NAN, .repeat_penalty = 1}, "min-p"},
        {{.temperature = 1, .top_p = 1, .repeat_penalty = 0}, "repeat penalty"},
        {{.temperature = 1, .top_p = 1, .repeat_penalty = INFINITY}, "repeat penalty"},
        {{.temperature = 1, .top_p = 1, .repeat_penalty = NAN}, "repeat penalty"},
        {{.temperature = 1, .top_p = 1, .repeat_penalty = 1.1f, .repeat_last_n = -1}, "repeat-last-n"},
        {{.temperature = 1, .top_p = 1, .repeat_penalty = 1.1f, .repeat_last_n = 1 << 30}, "repeat-last-n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s = (lm_sampler *)&s; /* must be reset to NULL */
        CHECK(lm_sampler_init(&s, 4, &bad[i].p) == LM_ERR_ARG && !s && strstr(lm_last_error(), bad[i].what),
              "bad %s %zu accepted or not named: %s", bad[i].what, i, lm_last_error());
    }
}

static double nll_double(const float *l, int n, int target) {
    double mx = l[0], sum = 0.0;
    for (int i = 1; i < n; i++) mx = fmax(mx, l[i]);
    for (int i = 0; i < n; i++) sum += exp((double)l[i] - mx);
    return log(sum) + mx - l[target];
}

static void check_nll(void) {
    /* sizes with and without SIMD tails, logits spread over +-30 (exp underflow included) */
    const int sizes[] = {1, 7, 16, 33, 1000, 50288};
    float *l = malloc(50288 * sizeof(float));
    uint64_t r = 99;
    for (int i = 0; i < 50288; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 60.0 - 30.0);
    }
    l[123] = 80.0f; /* one dominant logit: the others' exp go below the clamp */
    for (int level = LM_SIMD_SCALAR; level <= (int)lm_simd_detect(); level++) {
        CHECK_OK(lm_simd_level_set((lm_simd_level)level));
        double worst = 0.0;
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            int n = sizes[k];
            for (int target = 0; target < n; target += n / 3 + 1) {
                double got = lm_nll(l, n, target), want = nll_double(l, n, target);
                worst = fmax(worst, fabs(got - want));
            }
        }
        CHECK(worst < 1e-5, "lm_nll at level %s: |error| %g", lm_simd_level_name((lm_simd_level)level), worst);
        fprintf(stderr, "lm_nll %-6s max |error| vs double %.1e\n", lm_simd_level_name((lm_simd_level)level), worst);
    }
    free(l);
}

/* KL(softmax(p) || softmax(q)) in double, as the definition reads */
static double kl_double(const float *p, const float *q, int n) {
    double lse_p = nll_double(p, n, 0) + p[0], lse_q = nll_double(q, n, 0) + q[0], kl = 0.0;
    for (int i = 0; i < n; i++) kl += exp(p[i] - lse_p) * ((p[i] - lse_p) - (q[i] - lse_q));
    return kl;
}

static void check_kl(void) {
    /* q = p plus noise of three sizes (KL from ~1e-6 to ~1), sizes with and without SIMD tails */
    const int sizes[] = {1, 7, 16, 33, 1000, 50288};
    const float noise[] = {0.003f, 0.1f, 2.0f};
    float *p = malloc(50288 * sizeof(float)), *q = malloc(50288 * sizeof(float));
    uint64_t r = 7;
    for (int i = 0; i < 50288; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 20.0 - 10.0);
    }
    p[4000] = 25.0f; /* a peak, and the argmax: the first of two equal maxima */
    p[9000] = 25.0f;
    for (int level = LM_SIMD_SCALAR; level <= (int)lm_simd_detect(); level++) {
        CHECK_OK(lm_simd_level_set((lm_simd_level)level));
        double worst = 0.0, lse_p, lse_q;
        int32_t top;
        lm_logsumexp(p, 50288, &top);
        CHECK(top == 4000, "argmax %d, want 4000 (the first of the maxima)", (int)top);
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            int n = sizes[k];
            CHECK(lm_kl_logits(p, p, n, &lse_p, &lse_q) == 0.0 && lse_p == lse_q, "KL(p || p) != 0 at n = %d", n);
            for (size_t j = 0; j < sizeof noise / sizeof *noise; j++) {
                for (int i = 0; i < n; i++) {
                    r = r * 6364136223846793005ull + 1442695040888963407ull;
                    q[i] = p[i] + noise[j] * (float)((double)(r >> 11) / 9007199254740992.0 - 0.5);
                }
                double got = lm_kl_logits(p, q, n, &lse_p, &lse_q), want = kl_double(p, q, n);
                worst = fmax(worst, fabs(got - want) / fmax(want, 1e-9));
                CHECK(fabs(lse_p - (lm_nll(p, n, 0) + p[0])) < 1e-9, "lse_p at n = %d", n);
            }
        }
        CHECK(worst < 1e-4, "lm_kl_logits at level %s: relative error %g", lm_simd_level_name((lm_simd_level)level), worst);
        fprintf(stderr, "lm_kl_logits %-6s max relative error vs double %.1e\n", lm_simd_level_name((lm_simd_level)level), worst);
    }
    free(p);
    free(q);
}

int main(void) {
    check_sampling();
    check_filters();
    check_nll();
    check_kl();
    return test_finish();
}
