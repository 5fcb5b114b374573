/* Zero-shot task internals: HellaSwag's text preprocessing and Python's str.capitalize, the
 * (context, continuation) token split of lm-evaluation-harness (trailing context whitespace moved
 * to the continuation), and lm_loglikelihood against the same sums taken from one forward pass of
 * the whole sequence with lm_nll, including the greedy flag, on the tiny model. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model/softmax.h"
#include "model/tasks.h"

static void check_text(void) {
    const struct { const char *in, *want; } pre[] = {
        {"  How to open a jar [title] Use a towel. ", "How to open a jar. Use a towel."},
        {"[header] Step one [substeps] go", " Step one go"},   /* stripped before the markers go */
        {"a [unclosed\n] b", "a [unclosed\n] b"},             /* "." does not cross a line */
        {"x   y", "x  y"},                                     /* "  " -> " " once, left to right */
        {"[a][b]", ""},
    };
    for (size_t i = 0; i < sizeof pre / sizeof *pre; i++) {
        char *got = lm_hellaswag_preprocess(pre[i].in);
        CHECK(got && !strcmp(got, pre[i].want), "preprocess(\"%s\") = \"%s\", want \"%s\"", pre[i].in, got, pre[i].want);
        free(got);
    }
    const struct { const char *in, *want; } cap[] = {
        {"you CAN grip", "You can grip"}, {"élan VITAL", "Élan vital"}, {"", ""}, {"1st Place", "1st place"},
    };
    for (size_t i = 0; i < sizeof cap / sizeof *cap; i++) {
        char *got = lm_capitalize(cap[i].in);
        CHECK(got && !strcmp(got, cap[i].want), "capitalize(\"%s\") = \"%s\", want \"%s\"", cap[i].in, got, cap[i].want);
        free(got);
    }
}

/* ids equal to the encoding of text */
static int same_ids(const lm_tokenizer *tok, const char *text, const int32_t *ids, size_t n) {
    int32_t *want;
    size_t n_want;
    if (lm_tokenizer_encode(tok, text, strlen(text), &want, &n_want) != LM_OK) return 0;
    int same = n_want == n && !memcmp(want, ids, n * sizeof *ids);
    free(want);
    return same;
}

static void check_split(const lm_tokenizer *tok) {
    /* "The city  of": the context's trailing space moves to the continuation */
    char path[] = "/tmp/lm_test_tasksXXXXXX";
    int fd = mkstemp(path);
    const char line[] = "{\"text\": \"The city  of\"}\n";
    CHECK(fd >= 0 && write(fd, line, sizeof line - 1) == (ssize_t)(sizeof line - 1), "temporary task file");
    close(fd);
    lm_task *t;
    CHECK_OK(lm_task_load(&t, LM_TASK_LAMBADA, path, tok));
    unlink(path);
    if (!t) return;
    const lm_task_request *r = &t->req[0];
    int32_t *whole;
    size_t n_whole;
    CHECK_OK(lm_tokenizer_encode(tok, "The city  of", 12, &whole, &n_whole));
    CHECK(same_ids(tok, "The city", t->ids + r->ctx, r->n_ctx), "context ids are not encode(\"The city\")");
    CHECK(r->n_ctx + r->n_cont == n_whole && !memcmp(whole + r->n_ctx, t->ids + r->cont, r->n_cont * sizeof *whole),
          "continuation ids are not encode(\"The city  of\") after the context's");
    free(whole);
    lm_task_free(t);
}

/* lm_loglikelihood of every item's requests in a task file against one forward pass. */
static void check_loglikelihood(lm_session *s, const lm_tokenizer *tok, lm_task_kind kind, const char *file) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/%s", test_root(), file);
    lm_task *t;
    CHECK_OK(lm_task_load(&t, kind, path, tok));
    if (!t) return;
    const int V = lm_session_vocab_size(s);
    for (size_t i = 0; i < t->n_req; i++) {
        const lm_task_request *r = &t->req[i];
        const size_t n = r->n_ctx + r->n_cont;
        int32_t *seq = malloc(n * sizeof *seq);
        float *logits = malloc(n * (size_t)V * sizeof *logits);
        memcpy(seq, t->ids + r->ctx, r->n_ctx * sizeof *seq);
        memcpy(seq + r->n_ctx, t->ids + r->cont, r->n_cont * sizeof *seq);
        lm_session_reset(s);
        CHECK_OK(lm_session_forward(s, seq, n, logits, NULL));
        double want = 0.0;
        int want_greedy = 1;
        for (size_t j = r->n_ctx; j < n; j++) {
            const float *row = logits + (j - 1) * V;
            int32_t top;
            lm_logsumexp(row, V, &top);
            want -= lm_nll(row, V, seq[j]);
            want_greedy &= top == seq[j];
        }
        double got;
        int greedy;
        CHECK_OK(lm_loglikelihood(s, seq, r->n_ctx, seq + r->n_ctx, r->n_cont, &got, &greedy));
        /* the two prefill splits round the float GEMMs differently: ~1e-6 */
        CHECK(fabs(got - want) < 1e-4 * fmax(1.0, fabs(want)) && greedy == want_greedy,
              "%s request %zu: loglikelihood %.8f greedy %d, one pass %.8f greedy %d", file, i, got, greedy, want,
              want_greedy);
        free(seq);
        free(logits);
    }
    lm_task_free(t);
}

int main(void) {
    check_text();
    char model_dir[4096];
    snprintf(model_dir, sizeof model_dir, "%s/models/mamba2-tiny", test_root());
    lm_model *m = NULL;
    lm_tokenizer *tok = NULL;
    lm_session *s = NULL;
    CHECK_OK(lm_model_init(&m, model_dir));
    if (m) CHECK_OK(lm_tokenizer_init_for_model(&tok, m));
    const lm_session_params two_threads = {.n_threads = 2};
    if (tok) CHECK_OK(lm_session_init(&s, m, &two_threads));
    if (s) {
        check_split(tok);
        const struct { lm_task_kind kind; const char *file; } files[] = {
            {LM_TASK_LAMBADA, "lambada.jsonl"}, {LM_TASK_HELLASWAG, "hellaswag.jsonl"}, {LM_TASK_PIQA, "piqa.jsonl"},
            {LM_TASK_ARC, "arc.jsonl"}, {LM_TASK_WINOGRANDE, "winogrande.jsonl"},
        };
        for (size_t i = 0; i < sizeof files / sizeof *files; i++) check_loglikelihood(s, tok, files[i].kind, files[i].file);
        /* the greedy flag: a continuation of the argmax tokens is greedy, one more wrong token is not */
        int32_t ctx[2] = {510, 2892}, cont[3];
        float *logits = malloc((size_t)lm_session_vocab_size(s) * sizeof *logits);
        lm_session_reset(s);
        CHECK_OK(lm_session_forward(s, ctx, 2, NULL, logits));
        for (int j = 0; j < 2; j++) {
            lm_logsumexp(logits, lm_session_vocab_size(s), &cont[j]);
            CHECK_OK(lm_session_forward(s, &cont[j], 1, NULL, logits));
        }
        double ll;
        int greedy;
        CHECK_OK(lm_loglikelihood(s, ctx, 2, cont, 2, &ll, &greedy));
        CHECK(greedy == 1 && ll < 0, "the argmax continuation: greedy %d, loglikelihood %g", greedy, ll);
        lm_logsumexp(logits, lm_session_vocab_size(s), &cont[2]);
        cont[2] = cont[2] == 13 ? 14 : 13; /* not the argmax after cont[0..1] */
        CHECK_OK(lm_loglikelihood(s, ctx, 2, cont, 3, &ll, &greedy));
        CHECK(greedy == 0, "a continuation with a non-argmax token counted as greedy");
        CHECK(lm_loglikelihood(s, ctx, 0, cont, 1, &ll, &greedy) == LM_ERR_ARG, "empty context accepted");
        free(logits);
    }
    lm_session_free(s);
    lm_tokenizer_free(tok);
    lm_model_free(m);
    return test_finish();
}
