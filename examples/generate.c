/* Embedding lightmamba: one prompt, three continuations.
 *
 *   example_generate MODEL [PROMPT] [N_TOKENS]
 *
 * Loads a model (a Hugging Face Mamba2 directory or a quantized file), runs the prompt once, then
 * forks its state into three sessions (lm_session_copy) and samples up to N_TOKENS tokens in each
 * with its own seed, stopping at <|endoftext|>. Uses only the public header. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lightmamba.h"

#define N_FORKS 3

static int fail(const char *what) {
    fprintf(stderr, "example_generate: %s: %s\n", what, lm_last_error());
    return 1;
}

/* Samples up to n tokens after the state in s, printing each token's bytes. */
static lm_status continue_text(lm_session *s, const lm_tokenizer *tok, lm_sampler *sampler, float *logits, int n) {
    const int32_t eos = lm_tokenizer_eos(tok);
    lm_status st = lm_session_last_logits(s, logits);
    for (int i = 0; i < n && st == LM_OK; i++) {
        int32_t id = lm_sampler_sample(sampler, logits);
        if (id == eos) break;
        size_t len;
        const char *bytes = lm_tokenizer_token(tok, id, &len);
        if (bytes) fwrite(bytes, 1, len, stdout);
        st = lm_session_forward(s, &id, 1, NULL, logits);
    }
    return st;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: example_generate MODEL [PROMPT] [N_TOKENS]\n");
        return 2;
    }
    const char *prompt = argc > 2 ? argv[2] : "The history of the city";
    const int n_tokens = argc > 3 ? atoi(argv[3]) : 32;

    lm_model *model = NULL;
    lm_tokenizer *tok = NULL;
    lm_session *prompt_session = NULL, *fork[N_FORKS] = {NULL};
    lm_sampler *sampler[N_FORKS] = {NULL};
    int32_t *ids = NULL;
    size_t n_ids = 0;
    float *logits = NULL;
    int rc = 1;

    if (lm_model_init(&model, argv[1]) != LM_OK) { rc = fail("loading the model"); goto done; }
    if (lm_tokenizer_init_for_model(&tok, model) != LM_OK) { rc = fail("loading the tokenizer"); goto done; }
    if (lm_tokenizer_encode(tok, prompt, strlen(prompt), &ids, &n_ids) != LM_OK) { rc = fail("the prompt"); goto done; }
    if (n_ids == 0) {
        fprintf(stderr, "example_generate: the prompt is empty\n");
        goto done;
    }
    if (!(logits = malloc(sizeof *logits * (size_t)lm_model_config(model)->vocab_size))) {
        fprintf(stderr, "example_generate: out of memory\n");
        goto done;
    }

    /* the prompt, once (all cores, no abort callback) */
    lm_session_params sp = lm_session_default_params();
    if (lm_session_init(&prompt_session, model, &sp) != LM_OK) { rc = fail("creating a session"); goto done; }
    if (lm_session_forward(prompt_session, ids, n_ids, NULL, NULL) != LM_OK) { rc = fail("the prompt's prefill"); goto done; }

    /* three forks of its state; each samples with its own seed (one thread each: they are short) */
    sp.n_threads = 1;
    for (int i = 0; i < N_FORKS; i++) {
        lm_sampler_params p = lm_sampler_default_params();
        p.seed = (uint64_t)i + 1;
        p.top_k = 40;
        p.repeat_penalty = 1.1f;
        if (lm_session_init(&fork[i], model, &sp) != LM_OK || lm_session_copy(fork[i], prompt_session) != LM_OK ||
            lm_sampler_init(&sampler[i], lm_token_candidates(model, tok), &p) != LM_OK) {
            rc = fail("forking the prompt");
            goto done;
        }
        lm_sampler_accept(sampler[i], ids, n_ids); /* the prompt counts for the repetition penalty */
    }
    for (int i = 0; i < N_FORKS; i++) {
        printf("[%d] %s", i + 1, prompt);
        if (continue_text(fork[i], tok, sampler[i], logits, n_tokens) != LM_OK) { rc = fail("generating"); goto done; }
        printf("\n");
    }
    rc = 0;
done:
    for (int i = 0; i < N_FORKS; i++) {
        lm_sampler_free(sampler[i]);
        lm_session_free(fork[i]);
    }
    lm_session_free(prompt_session);
    free(logits);
    free(ids);
    lm_tokenizer_free(tok);
    lm_model_free(model);
    return rc;
}
