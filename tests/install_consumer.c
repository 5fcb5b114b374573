/* A program that uses lightmamba the way an embedder does, through <lightmamba.h> only: built
 * outside the checkout against an installed copy by tests/test_install.sh (pkg-config, static,
 * CMake find_package). Greedy continuation of a prompt; prints three lines: the library version,
 * the ids of the prompt and the generated tokens, and their text.
 *   usage: install_consumer MODEL PROMPT N [DATA_DIR]
 * DATA_DIR: the bundled data's folder, for a statically linked copy (a shared one finds it
 * beside the library). */
#include <lightmamba.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The id of the largest of logits[0, n), the lowest on ties. */
static int32_t argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: install_consumer MODEL PROMPT N [DATA_DIR]\n");
        return 2;
    }
    const char *prompt = argv[2];
    int n_gen = atoi(argv[3]);
    lm_model *model = NULL;
    lm_tokenizer *tok = NULL;
    lm_session *s = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    char *text = NULL;
    size_t n_ids = 0, text_len = 0;
    const char *what = "data dir";
    lm_status st = argc == 5 ? lm_set_data_dir(argv[4]) : LM_OK;
    if (!st) what = "model", st = lm_model_init(&model, argv[1]);
    if (!st) what = "tokenizer", st = lm_tokenizer_init_for_model(&tok, model);
    if (!st) what = "encode", st = lm_tokenizer_encode(tok, prompt, strlen(prompt), &ids, &n_ids);
    if (!st) what = "session", st = lm_session_init(&s, model, NULL /* the default settings */);
    if (!st && n_gen > 0) {
        int32_t *grown = realloc(ids, (n_ids + (size_t)n_gen) * sizeof *ids);
        logits = malloc((size_t)lm_session_vocab_size(s) * sizeof *logits);
        if (grown) ids = grown;
        if (!grown || !logits) what = "memory", st = LM_ERR_NOMEM;
    }
    int n_candidates = st ? 0 : lm_token_candidates(model, tok);
    /* the prompt in one call, then one token per call, each fed the argmax of the last logits */
    if (!st && n_gen > 0) what = "forward", st = lm_session_forward(s, ids, n_ids, NULL, logits);
    for (int i = 0; !st && i < n_gen; i++) {
        ids[n_ids] = argmax(logits, n_candidates);
        st = lm_session_forward(s, &ids[n_ids++], 1, NULL, logits);
    }
    if (!st) what = "decode", st = lm_tokenizer_decode(tok, ids, n_ids, &text, &text_len);
    if (!st) {
        printf("version %s\n", lm_version());
        for (size_t i = 0; i < n_ids; i++) printf("%s%d", i ? " " : "", (int)ids[i]);
        printf("\n%s\n", text);
    } else {
        fprintf(stderr, "install_consumer: %s: %s\n", what, lm_last_error());
    }
    free(text);
    free(logits);
    free(ids);
    lm_session_free(s);
    lm_tokenizer_free(tok);
    lm_model_free(model);
    return st ? 1 : 0;
}
