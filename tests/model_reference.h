/* Checks a model against its reference/ outputs (computed by transformers, see
 * shared/models/README.md): logits at the listed positions within 1e-3 absolute, every
 * nll within 1e-4, and the greedy continuation token for token; each as one prefill and
 * as token-by-token decode, with 1 and 2 threads. Shared by test_model_reference*.c. */
#ifndef LM_TEST_MODEL_REFERENCE_H
#define LM_TEST_MODEL_REFERENCE_H
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "common/file.h"

#define LOGITS_TOL 1e-3
#define NLL_TOL 1e-4

typedef struct {
    int32_t *tokens;         /* [n_tokens] */
    size_t n_tokens;
    float *logits;           /* [n_pos, vocab] */
    int *positions;          /* [n_pos] */
    int n_pos, vocab;
    float *nll;              /* [n_tokens - 1] */
    int32_t *prompt, *greedy; /* greedy_prompt_ids, then the ids that follow them */
    int n_prompt, n_greedy;
} reference;

/* Reads DIR/reference/NAME whole, checking its size is a multiple of elem. */
static void *ref_read(const char *dir, const char *name, size_t elem, size_t *count) {
    char *ref = lm_path_join(dir, "reference"), *path = lm_path_join(ref, name);
    char *data;
    size_t len;
    if (lm_read_file(path, &data, &len) != LM_OK || len % elem != 0) {
        fprintf(stderr, "cannot read %s: %s\n", path, lm_last_error());
        exit(1);
    }
    *count = len / elem;
    free(ref);
    free(path);
    return data;
}

static int32_t *json_ids(json_object *root, const char *key, int *n) {
    json_object *arr;
    if (!json_object_object_get_ex(root, key, &arr) || !json_object_is_type(arr, json_type_array)) {
        fprintf(stderr, "reference.json: no array %s\n", key);
        exit(1);
    }
    *n = (int)json_object_array_length(arr);
    int32_t *ids = calloc((size_t)*n + 1, sizeof *ids);
    for (int i = 0; i < *n; i++) ids[i] = json_object_get_int(json_object_array_get_idx(arr, i));
    return ids;
}

static void reference_load(reference *r, const char *dir) {
    size_t n;
    char *json = ref_read(dir, "reference.json", 1, &n);
    json_object *root = json_tokener_parse(json), *v;
    free(json);
    if (!root) {
        fprintf(stderr, "cannot parse %s/reference/reference.json\n", dir);
        exit(1);
    }
    r->positions = json_ids(root, "logits_positions", &r->n_pos);
    json_object_object_get_ex(root, "vocab", &v);
    r->vocab = json_object_get_int(v);
    r->prompt = json_ids(root, "greedy_prompt_ids", &r->n_prompt);
    int n_all;
    int32_t *all = json_ids(root, "greedy_ids", &n_all); /* the prompt, then the continuation */
    r->n_greedy = n_all - r->n_prompt;
    r->greedy = calloc((size_t)r->n_greedy + 1, sizeof *r->greedy);
    memcpy(r->greedy, all + r->n_prompt, (size_t)r->n_greedy * sizeof *all);
    free(all);
    json_object_put(root);

    r->tokens = ref_read(dir, "tokens.i32", 4, &r->n_tokens);
    r->logits = ref_read(dir, "logits.f32", 4, &n);
    if (n != (size_t)r->n_pos * r->vocab) {
        fprintf(stderr, "logits.f32 holds %zu floats, expected %d x %d\n", n, r->n_pos, r->vocab);
        exit(1);
    }
    r->nll = ref_read(dir, "nll.f32", 4, &n);
    if (n + 1 != r->n_tokens) {
        fprintf(stderr, "nll.f32 holds %zu values for %zu tokens\n", n, r->n_tokens);
        exit(1);
    }
}

static void reference_free(reference *r) {
    free(r->tokens);
    free(r->logits);
    free(r->positions);
    free(r->nll);
    free(r->prompt);
    free(r->greedy);
}

/* Runs tokens [0, n) through a fresh state: as one call (prefill) or one call per token (decode). */
static void run_tokens(lm_session *s, const int32_t *ids, size_t n, int decode, float *logits, float *last) {
    lm_session_reset(s);
    if (!decode) {
        CHECK_OK(lm_session_forward(s, ids, n, logits, last));
        return;
    }
    size_t V = (size_t)lm_session_vocab_size(s);
    for (size_t i = 0; i < n; i++)
        CHECK_OK(lm_session_forward(s, ids + i, 1, logits ? logits + i * V : NULL, i + 1 == n ? last : NULL));
}

static void check_against_reference(const char *name, const lm_model *m, const reference *r, int n_threads, int decode) {
    const char *mode = decode ? "decode" : "prefill";
    const size_t V = (size_t)r->vocab;
    lm_session *s;
    CHECK_OK(test_session(&s, m, n_threads));
    CHECK(lm_session_vocab_size(s) == r->vocab, "%s: vocab %d, reference %d", name, lm_session_vocab_size(s), r->vocab);
    float *logits = malloc(r->n_tokens * V * sizeof(float)), *last = malloc(V * sizeof(float));

    run_tokens(s, r->tokens, r->n_tokens, decode, logits, last);
    double max_logit_err = 0.0, max_nll_err = 0.0;
    for (int i = 0; i < r->n_pos; i++)
        for (size_t v = 0; v < V; v++)
            max_logit_err = fmax(max_logit_err, fabs(logits[r->positions[i] * V + v] - r->logits[i * V + v]));
    for (size_t i = 0; i + 1 < r->n_tokens; i++)
        max_nll_err = fmax(max_nll_err, fabs(lm_nll(logits + i * V, (int)V, r->tokens[i + 1]) - r->nll[i]));
    CHECK(max_logit_err <= LOGITS_TOL, "%s %s %d thread(s): logits differ by %g", name, mode, n_threads, max_logit_err);
    CHECK(max_nll_err <= NLL_TOL, "%s %s %d thread(s): nll differs by %g", name, mode, n_threads, max_nll_err);
    CHECK(memcmp(last, logits + (r->n_tokens - 1) * V, V * sizeof(float)) == 0, "%s %s: last_logits != logits[n-1]", name, mode);

    /* greedy continuation: prompt, then feed back the argmax token by token */
    lm_sampler *greedy;
    CHECK_OK(test_greedy(&greedy, r->vocab));
    run_tokens(s, r->prompt, (size_t)r->n_prompt, decode, NULL, last);
    int same = 0;
    for (int i = 0; i < r->n_greedy; i++) {
        int32_t id = lm_sampler_sample(greedy, last);
        if (id != r->greedy[i]) break;
        same++;
        CHECK_OK(lm_session_forward(s, &id, 1, NULL, last));
    }
    CHECK(same == r->n_greedy, "%s %s %d thread(s): greedy continuation differs at token %d", name, mode, n_threads, same);
    fprintf(stderr, "%s %-7s %d thread(s): max |logit err| %.2e, max |nll err| %.2e, greedy %d/%d tokens equal\n",
            name, mode, n_threads, max_logit_err, max_nll_err, same, r->n_greedy);

    lm_sampler_free(greedy);
    free(logits);
    free(last);
    lm_session_free(s);
}

/* All checks for the model in dir. */
static void check_model_reference(const char *dir) {
    reference r;
    reference_load(&r, dir);
    lm_model *m = NULL;
    CHECK_OK(lm_model_init(&m, dir));
    if (m)
        for (int threads = 1; threads <= 2; threads++)
            for (int decode = 0; decode <= 1; decode++) check_against_reference(dir, m, &r, threads, decode);
    lm_model_free(m);
    reference_free(&r);
}
#endif
