/* lightmamba perplexity: the protocol of shared/models/README.md over a text file
 * (lm_perplexity in lightmamba.h), and with a base model the comparison with it (lm_kl_divergence:
 * KL divergence, top-1 agreement, the change in perplexity). Progress on stderr when it is a terminal. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "cli/cli_text.h"
#include "lightmamba.h"

static const char usage[] =
    "usage: lightmamba perplexity -m MODEL -f TEXT [--ctx N] [--threads K] [--json]\n"
    "       [--base FLOAT] [--save-base FILE] [--load-base FILE]\n"
    "  -m, --model MODEL   model directory (config.json + model.safetensors) or quantized model file\n"
    "  -f, --file PATH     UTF-8 text to score (at most 256 MiB)\n"
    "  --ctx N             tokens per chunk, >= 2 (default 1024)\n"
    "  --threads K         worker threads (default: all cores)\n"
    "  --json              print one JSON object on stdout: ppl, nll_mean, tokens, chunks, ctx, seconds\n"
    "                      (with a base also base_ppl, ppl_delta, ppl_delta_se, kl_mean, kl_median,\n"
    "                      kl_p99, kl_max, top1_agreement)\n"
    "  --base FLOAT        compare MODEL with its base model FLOAT run alongside: KL(FLOAT || MODEL)\n"
    "                      of the next-token distributions at every scored token (exact), the\n"
    "                      agreement of their most probable tokens, the change in perplexity\n"
    "  --save-base FILE    save the base (FLOAT with --base, else MODEL itself) on this text to FILE:\n"
    "                      its lm_head and the hidden state lm_head reads at every token (d_model\n"
    "                      floats per token)\n"
    "  --load-base FILE    compare with a base saved by --save-base on the same text and --ctx\n"
    "                      instead of running it (the same numbers, docs/evaluation.md)\n"
    "The text is tokenized without a BOS token and cut into consecutive chunks of N tokens (the\n"
    "last may be shorter); the state is reset at each chunk start and every token but each\n"
    "chunk's first is scored. ppl = exp(mean nll).\n";

static void print_perplexity(const lm_perplexity_result *r, size_t n_ids, size_t chunks, int ctx, int json) {
    if (json)
        printf("{\"ppl\": %.6f, \"nll_mean\": %.8f, \"tokens\": %zu, \"chunks\": %zu, \"ctx\": %d, \"seconds\": %.3f}\n",
               r->ppl, r->nll_mean, r->tokens, chunks, ctx, r->seconds);
    else
        printf("perplexity %.4f (mean nll %.6f) over %zu scored tokens, %zu chunk(s) of up to %d tokens, in %.2f s "
               "(%.0f tokens/s)\n",
               r->ppl, r->nll_mean, r->tokens, chunks, ctx, r->seconds, (double)n_ids / r->seconds);
}

static void print_comparison(const lm_kl_result *r, size_t n_ids, size_t chunks, int ctx, int json) {
    if (json) {
        printf("{\"ppl\": %.6f, \"nll_mean\": %.8f, \"tokens\": %zu, \"chunks\": %zu, \"ctx\": %d, \"seconds\": %.3f, "
               "\"base_ppl\": %.6f, \"ppl_delta\": %.6f, \"ppl_delta_se\": %.6f, \"kl_mean\": %.8g, \"kl_median\": %.8g, "
               "\"kl_p99\": %.8g, \"kl_max\": %.8g, \"top1_agreement\": %.8f}\n",
               r->model.ppl, r->model.nll_mean, r->tokens, chunks, ctx, r->model.seconds, r->base.ppl, r->ppl_delta,
               r->ppl_delta_se, r->kl_mean, r->kl_median, r->kl_p99, r->kl_max, r->top1_agreement);
        return;
    }
    print_perplexity(&r->model, n_ids, chunks, ctx, 0);
    printf("base perplexity %.4f: change %+.4f +- %.4f (%+.3f %%)\n", r->base.ppl, r->ppl_delta, r->ppl_delta_se,
           100.0 * r->ppl_delta / r->base.ppl);
    printf("KL(base || model) mean %.6g, median %.6g, p99 %.6g, max %.6g nats; top-1 agreement %.3f %%\n", r->kl_mean,
           r->kl_median, r->kl_p99, r->kl_max, 100.0 * r->top1_agreement);
}

static int run_perplexity(int argc, char **argv) {
    const char *model_dir = NULL, *text_file = NULL, *base_dir = NULL, *save_base = NULL, *load_base = NULL;
    int ctx = 1024, n_threads = 0, json = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STRING, &model_dir, 0, 0},
        {"-f", "--file", CLI_STRING, &text_file, 0, 0},
        {NULL, "--ctx", CLI_INT, &ctx, 2, 1 << 30},
        {NULL, "--threads", CLI_INT, &n_threads, 0, 4096},
        {NULL, "--json", CLI_FLAG, &json, 0, 0},
        {NULL, "--base", CLI_STRING, &base_dir, 0, 0},
        {NULL, "--save-base", CLI_STRING, &save_base, 0, 0},
        {NULL, "--load-base", CLI_STRING, &load_base, 0, 0},
    };
    if (cli_parse("perplexity", argc, argv, opts, CLI_COUNT(opts))) return 1;
    if (!model_dir) return cli_error("perplexity: -m MODEL is required (see 'lightmamba help perplexity')");
    if (!text_file) return cli_error("perplexity: -f TEXT is required (see 'lightmamba help perplexity')");
    if (base_dir && load_base) return cli_error("perplexity: --base and --load-base exclude each other");
    if (save_base && load_base) return cli_error("perplexity: --save-base and --load-base exclude each other");

    int rc = 1;
    char *text = NULL;
    size_t len = 0, n_ids = 0;
    int32_t *ids = NULL;
    lm_model *model = NULL, *base = NULL;
    lm_tokenizer *tok = NULL;
    lm_session *session = NULL, *base_session = NULL;
    lm_session_params sp = lm_session_default_params();
    sp.n_threads = n_threads;
    lm_saved_base *saved = NULL;
    lm_progress_fn progress = isatty(STDERR_FILENO) ? cli_progress_bar : NULL;

    if (cli_read_text(text_file, "text file", &text, &len)) goto done;
    if (len == 0) {
        cli_error("nothing to score: %s is empty", text_file);
        goto done;
    }
    if (cli_open_session(model_dir, n_threads, &model, &tok, &session)) goto done;
    if ((base_dir && (lm_model_init(&base, base_dir) != LM_OK || lm_session_init(&base_session, base, &sp) != LM_OK)) ||
        (load_base && lm_saved_base_load(&saved, load_base) != LM_OK)) {
        cli_error("%s", lm_last_error());
        goto done;
    }
    if (cli_tokenize(tok, text, len, text_file, &ids, &n_ids)) goto done;
    size_t chunks = (n_ids + (size_t)ctx - 1) / (size_t)ctx;
    if (base_session || saved) {
        lm_kl_result r;
        if (lm_kl_divergence(session, base_session, saved, save_base, ids, n_ids, ctx, progress, "tokens", &r) != LM_OK) {
            cli_error("%s: %s", text_file, lm_last_error());
            goto done;
        }
        print_comparison(&r, n_ids, chunks, ctx, json);
        rc = 0;
        goto done;
    }
    lm_perplexity_result r;
    if ((save_base ? lm_save_base(session, ids, n_ids, ctx, save_base, progress, "tokens", &r)
                   : lm_perplexity(session, ids, n_ids, ctx, progress, "tokens", &r)) != LM_OK) {
        cli_error("%s: %s", text_file, lm_last_error());
        goto done;
    }
    print_perplexity(&r, n_ids, chunks, ctx, json);
    rc = 0;
done:
    lm_saved_base_free(saved);
    lm_session_free(base_session);
    lm_session_free(session);
    lm_model_free(base);
    lm_tokenizer_free(tok);
    lm_model_free(model);
    free(ids);
    free(text);
    return rc;
}

const lm_command cmd_perplexity = {"perplexity", run_perplexity, "perplexity of a model on a text file", usage};
