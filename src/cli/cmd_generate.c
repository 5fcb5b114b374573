/* lightmamba generate: prefill the prompt, then sample up to N tokens one at a time, streaming
 * each token's bytes to stdout as it is produced, until <|endoftext|>. Speeds go to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "cli/cli_text.h"
#include "common/clock.h"
#include "lightmamba.h"

static const char usage[] =
    "usage: lightmamba generate -m MODEL [-p PROMPT | -f PROMPT_FILE] [-n N] [--temp T] [--top-k K]\n"
    "                           [--top-p P] [--min-p P] [--repeat-penalty R] [--repeat-last-n N]\n"
    "                           [--ignore-eos] [--seed S] [--threads K] [--json]\n"
    "                           [--load-state FILE] [--save-state FILE] [--save-final-state FILE]\n"
    "  -m, --model MODEL    model directory (config.json + model.safetensors) or quantized model file\n"
    "  -p, --prompt TEXT    the prompt (default: empty, which starts from token 0, <|endoftext|>)\n"
    "  -f, --file PATH      read the prompt from a file instead (at most 256 MiB)\n"
    "  -n N                 tokens to generate at most (default 128; 0 runs the prompt only)\n"
    "  --temp T             temperature; 0 is greedy (default 0.8)\n"
    "  --top-k K            sample among the K most probable tokens (default 0: all)\n"
    "  --top-p P            nucleus sampling mass in (0, 1] (default 0.9; 1 disables it)\n"
    "  --min-p P            drop tokens less probable than P times the most probable (default 0: off)\n"
    "  --repeat-penalty R   penalise the tokens of the last --repeat-last-n (prompt included):\n"
    "                       logit / R when positive, * R when negative (default 1: off)\n"
    "  --repeat-last-n N    the penalty's window in tokens (default 64)\n"
    "  --ignore-eos         go on after <|endoftext|> (by default generation stops there, unprinted)\n"
    "  --seed S             random seed (default: from the clock; printed on stderr)\n"
    "  --threads K          worker threads (default: all cores)\n"
    "  --json               print the timings as one JSON object on stderr's last line\n"
    "  --load-state FILE    resume from a saved state: the prompt (which may then be empty) is\n"
    "                       appended after the context the state had consumed\n"
    "  --save-state FILE    save the state right after the prompt, before generating: resuming from\n"
    "                       it continues exactly as this run does (with --temp 0; sampler draws are\n"
    "                       not part of the state)\n"
    "  --save-final-state FILE  save the state after the generated text (its last token is fed first)\n"
    "The prompt is echoed, then the generated text is streamed to stdout. The prompt is\n"
    "processed in chunks of fixed size, so memory does not grow with its length.\n";

static void emit(const lm_tokenizer *tok, int32_t id) {
    size_t len;
    const char *bytes = lm_tokenizer_token(tok, id, &len);
    if (bytes) fwrite(bytes, 1, len, stdout);
    fflush(stdout);
}

static double per_second(size_t n, double seconds) { return seconds > 0 ? (double)n / seconds : 0.0; }

static int run_generate(int argc, char **argv) {
    const char *model_dir = NULL, *prompt = NULL, *prompt_file = NULL;
    const char *load_state = NULL, *save_state = NULL, *save_final_state = NULL;
    int n_generate = 128, n_threads = 0, json = 0, ignore_eos = 0;
    lm_sampler_params sp = lm_sampler_default_params();
    sp.seed = (uint64_t)time(NULL);
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STRING, &model_dir, 0, 0},
        {"-p", "--prompt", CLI_STRING, &prompt, 0, 0},
        {"-f", "--file", CLI_STRING, &prompt_file, 0, 0},
        {"-n", NULL, CLI_INT, &n_generate, 0, 1 << 30},
        {NULL, "--temp", CLI_FLOAT, &sp.temperature, 0, 1e6},
        {NULL, "--top-k", CLI_INT, &sp.top_k, 0, 1 << 30},
        {NULL, "--top-p", CLI_FLOAT, &sp.top_p, 0, 1},
        {NULL, "--min-p", CLI_FLOAT, &sp.min_p, 0, 1},
        {NULL, "--repeat-penalty", CLI_FLOAT, &sp.repeat_penalty, 0, 1e6},
        {NULL, "--repeat-last-n", CLI_INT, &sp.repeat_last_n, 0, 1 << 20},
        {NULL, "--ignore-eos", CLI_FLAG, &ignore_eos, 0, 0},
        {NULL, "--seed", CLI_U64, &sp.seed, 0, 0},
        {NULL, "--threads", CLI_INT, &n_threads, 0, 4096},
        {NULL, "--json", CLI_FLAG, &json, 0, 0},
        {NULL, "--load-state", CLI_STRING, &load_state, 0, 0},
        {NULL, "--save-state", CLI_STRING, &save_state, 0, 0},
        {NULL, "--save-final-state", CLI_STRING, &save_final_state, 0, 0},
    };
    if (cli_parse("generate", argc, argv, opts, CLI_COUNT(opts))) return 1;
    if (!model_dir) return cli_error("generate: -m MODEL is required (see 'lightmamba help generate')");
    if (prompt && prompt_file) return cli_error("generate: give -p PROMPT or -f PROMPT_FILE, not both");
    if (sp.top_p <= 0.0f) return cli_error("generate: --top-p must be in (0, 1] (got %g)", sp.top_p);
    if (sp.repeat_penalty <= 0.0f)
        return cli_error("generate: --repeat-penalty must be > 0 (got %g; 1 disables it)", sp.repeat_penalty);

    int rc = 1;
    char *file_text = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    lm_model *model = NULL;
    lm_tokenizer *tok = NULL;
    lm_session *session = NULL;
    lm_sampler *sampler = NULL;
    float *logits = NULL;

    size_t prompt_len = 0;
    if (prompt_file) {
        if (cli_read_text(prompt_file, "prompt file", &file_text, &prompt_len)) goto done;
        prompt = file_text;
    } else if (prompt) {
        prompt_len = strlen(prompt);
    }
    if (cli_open_session(model_dir, n_threads, &model, &tok, &session)) goto done;
    if (prompt_len > 0 && cli_tokenize(tok, prompt, prompt_len, "the prompt", &ids, &n_ids)) goto done;

    const int vocab = lm_model_config(model)->vocab_size;
    const int32_t eos = ignore_eos ? -1 : lm_tokenizer_eos(tok);
    if (lm_sampler_init(&sampler, lm_token_candidates(model, tok), &sp) != LM_OK ||
        (load_state && lm_state_load(session, load_state) != LM_OK)) {
        cli_error("%s", lm_last_error());
        goto done;
    }
    lm_sampler_accept(sampler, ids, n_ids); /* the prompt counts for the repetition penalty */
    if (n_ids == 0 && lm_session_n_tokens(session) == 0) { /* nothing to condition on: start from <|endoftext|> */
        free(ids);
        ids = malloc(sizeof *ids);
        if (!ids) {
            cli_error("out of memory");
            goto done;
        }
        ids[0] = 0;
        n_ids = 1;
    }
    if (!(logits = malloc((size_t)vocab * sizeof *logits))) {
        cli_error("out of memory for %d logits", vocab);
        goto done;
    }

    fwrite(prompt ? prompt : "", 1, prompt_len, stdout);
    fflush(stdout);
    double t0 = lm_now_seconds();
    /* with a resumed state and no new tokens, the logits come from the state */
    lm_status st = n_ids > 0 ? lm_session_forward(session, ids, n_ids, NULL, logits)
                             : lm_session_last_logits(session, logits);
    double t_prefill = lm_now_seconds() - t0;
    if (st == LM_OK && save_state) st = lm_state_save(session, save_state);
    if (st != LM_OK) {
        putchar('\n');
        cli_error("%s", lm_last_error());
        goto done;
    }

    /* sample, print, feed back; the last token sampled need not be fed (unless its state is saved) */
    size_t n_decoded = 0;
    int32_t id = -1;
    t0 = lm_now_seconds();
    for (int i = 0; i < n_generate; i++) {
        id = lm_sampler_sample(sampler, logits);
        if (id == eos) break;
        emit(tok, id);
        if (i + 1 == n_generate) break;
        if (lm_session_forward(session, &id, 1, NULL, logits) != LM_OK) {
            putchar('\n');
            cli_error("%s", lm_last_error());
            goto done;
        }
        n_decoded++;
    }
    double t_decode = lm_now_seconds() - t0;
    putchar('\n');
    fflush(stdout);
    if (save_final_state && ((id >= 0 && lm_session_forward(session, &id, 1, NULL, NULL) != LM_OK) ||
                             lm_state_save(session, save_final_state) != LM_OK)) {
        cli_error("%s", lm_last_error());
        goto done;
    }

    fprintf(stderr, "prefill: %zu tokens in %.3f s, %.1f tokens/s; decode: %zu tokens in %.3f s, %.1f tokens/s; seed %llu\n",
            n_ids, t_prefill, per_second(n_ids, t_prefill), n_decoded, t_decode, per_second(n_decoded, t_decode),
            (unsigned long long)sp.seed);
    if (json)
        fprintf(stderr,
                "{\"prefill_tokens\": %zu, \"prefill_seconds\": %.6f, \"prefill_tokens_per_second\": %.3f, "
                "\"decode_tokens\": %zu, \"decode_seconds\": %.6f, \"decode_tokens_per_second\": %.3f, \"seed\": %llu}\n",
                n_ids, t_prefill, per_second(n_ids, t_prefill), n_decoded, t_decode, per_second(n_decoded, t_decode),
                (unsigned long long)sp.seed);
    rc = 0;
done:
    free(logits);
    lm_sampler_free(sampler);
    lm_session_free(session);
    lm_tokenizer_free(tok);
    lm_model_free(model);
    free(ids);
    free(file_text);
    return rc;
}

const lm_command cmd_generate = {"generate", run_generate, "generate text from a prompt (streamed to stdout)", usage};
