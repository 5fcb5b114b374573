/* lightmamba perplexity: the protocol of shared/models/README.md over a text file
 * (lm_perplexity in lightmamba.h). Progress on stderr when it is a terminal. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "cli/cli_text.h"
#include "lightmamba.h"

static const char usage[] =
    "usage: lightmamba perplexity -m MODEL -f TEXT [--ctx N] [--threads K] [--json]\n"
    "  -m, --model MODEL model directory (config.json + model.safetensors) or quantized model file\n"
    "  -f, --file PATH   UTF-8 text to score (at most 256 MiB)\n"
    "  --ctx N           tokens per chunk, >= 2 (default 1024)\n"
    "  --threads K       worker threads (default: all cores)\n"
    "  --json            print one JSON object on stdout: ppl, nll_mean, tokens, chunks, ctx, seconds\n"
    "The text is tokenized without a BOS token and cut into consecutive chunks of N tokens (the\n"
    "last may be shorter); the state is reset at each chunk start and every token but each\n"
    "chunk's first is scored. ppl = exp(mean nll).\n";

static void progress_bar(void *ctx, size_t done, size_t total) {
    const int width = 40;
    int filled = (int)((double)width * (double)done / (double)total);
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu tokens", filled, "========================================", width - filled, "",
            done, total);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

static int run_perplexity(int argc, char **argv) {
    const char *model_dir = NULL, *text_file = NULL;
    int ctx = 1024, n_threads = 0, json = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STRING, &model_dir, 0, 0},
        {"-f", "--file", CLI_STRING, &text_file, 0, 0},
        {NULL, "--ctx", CLI_INT, &ctx, 2, 1 << 30},
        {NULL, "--threads", CLI_INT, &n_threads, 0, 4096},
        {NULL, "--json", CLI_FLAG, &json, 0, 0},
    };
    if (cli_parse("perplexity", argc, argv, opts, CLI_COUNT(opts))) return 1;
    if (!model_dir) return cli_error("perplexity: -m MODEL is required (see 'lightmamba help perplexity')");
    if (!text_file) return cli_error("perplexity: -f TEXT is required (see 'lightmamba help perplexity')");

    int rc = 1;
    char *text = NULL;
    size_t len = 0, n_ids = 0;
    int32_t *ids = NULL;
    lm_model *model = NULL;
    lm_tokenizer *tok = NULL;
    lm_session *session = NULL;
    lm_session_params sp = lm_session_default_params();
    sp.n_threads = n_threads;
    lm_perplexity_result r;

    if (cli_read_text(text_file, "text file", &text, &len)) goto done;
    if (len == 0) {
        cli_error("nothing to score: %s is empty", text_file);
        goto done;
    }
    if (lm_model_init(&model, model_dir) != LM_OK || lm_tokenizer_init_for_model(&tok, model) != LM_OK ||
        lm_session_init(&session, model, &sp) != LM_OK) {
        cli_error("%s", lm_last_error());
        goto done;
    }
    if (cli_tokenize(tok, text, len, text_file, &ids, &n_ids)) goto done;
    if (lm_perplexity(session, ids, n_ids, ctx, isatty(STDERR_FILENO) ? progress_bar : NULL, NULL, &r) != LM_OK) {
        cli_error("%s: %s", text_file, lm_last_error());
        goto done;
    }
    size_t chunks = (n_ids + (size_t)ctx - 1) / (size_t)ctx;
    if (json)
        printf("{\"ppl\": %.6f, \"nll_mean\": %.8f, \"tokens\": %zu, \"chunks\": %zu, \"ctx\": %d, \"seconds\": %.3f}\n",
               r.ppl, r.nll_mean, r.tokens, chunks, ctx, r.seconds);
    else
        printf("perplexity %.4f (mean nll %.6f) over %zu scored tokens, %zu chunk(s) of up to %d tokens, in %.2f s "
               "(%.0f tokens/s)\n",
               r.ppl, r.nll_mean, r.tokens, chunks, ctx, r.seconds, (double)n_ids / r.seconds);
    rc = 0;
done:
    lm_session_free(session);
    lm_tokenizer_free(tok);
    lm_model_free(model);
    free(ids);
    free(text);
    return rc;
}

const lm_command cmd_perplexity = {"perplexity", run_perplexity, "perplexity of a model on a text file", usage};
