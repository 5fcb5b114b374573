/* lightmamba eval: zero-shot tasks from task files (lm_task_load / lm_task_eval in lightmamba.h).
 * Progress on stderr when it is a terminal. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "lightmamba.h"

static const char usage[] =
    "usage: lightmamba eval --task lambada|hellaswag|piqa|arc|winogrande -m MODEL -f FILE.jsonl\n"
    "                       [--limit N] [--threads K] [--json]\n"
    "  --task T            the task; FILE holds its items, one JSON object per line, in the dataset's\n"
    "                      public layout (docs/evaluation.md lists the fields read)\n"
    "  -m, --model MODEL   model directory or quantized model file\n"
    "  -f, --file PATH     the task file\n"
    "  --limit N           score only the first N items (default: all)\n"
    "  --threads K         worker threads (default: all cores)\n"
    "  --json              print one JSON object on stdout: task, items, acc, acc_stderr, and acc_norm,\n"
    "                      acc_norm_stderr (multiple choice but winogrande) or ppl (lambada)\n"
    "Every choice is scored by the log-likelihood of its continuation after the context (zero-shot,\n"
    "as lm-evaluation-harness): acc takes the most likely choice, acc_norm the most likely per\n"
    "character. lambada: acc counts targets whose every token is the model's argmax; ppl is\n"
    "exp(-mean log-likelihood of the targets).\n";

/* A JSON number, or null for NaN. */
static void json_value(const char *key, double v) {
    if (isnan(v))
        printf(", \"%s\": null", key);
    else
        printf(", \"%s\": %.8g", key, v);
}

static int run_eval(int argc, char **argv) {
    const char *task_name = NULL, *model_path = NULL, *file = NULL;
    int limit = 0, n_threads = 0, json = 0;
    const cli_opt opts[] = {
        {NULL, "--task", CLI_STRING, &task_name, 0, 0},
        {"-m", "--model", CLI_STRING, &model_path, 0, 0},
        {"-f", "--file", CLI_STRING, &file, 0, 0},
        {NULL, "--limit", CLI_INT, &limit, 1, 1 << 30},
        {NULL, "--threads", CLI_INT, &n_threads, 0, 4096},
        {NULL, "--json", CLI_FLAG, &json, 0, 0},
    };
    if (cli_parse("eval", argc, argv, opts, CLI_COUNT(opts))) return 1;
    if (!task_name) return cli_error("eval: --task is required (see 'lightmamba help eval')");
    if (!model_path) return cli_error("eval: -m MODEL is required (see 'lightmamba help eval')");
    if (!file) return cli_error("eval: -f FILE is required (see 'lightmamba help eval')");
    lm_task_kind kind = LM_TASK_COUNT;
    for (int k = 0; k < LM_TASK_COUNT; k++)
        if (!strcmp(task_name, lm_task_name((lm_task_kind)k))) kind = (lm_task_kind)k;
    if (kind == LM_TASK_COUNT)
        return cli_error("eval: unknown task '%s' (lambada, hellaswag, piqa, arc or winogrande)", task_name);

    int rc = 1;
    lm_model *model = NULL;
    lm_tokenizer *tok = NULL;
    lm_session *session = NULL;
    lm_task *task = NULL;
    lm_task_result r;
    if (cli_open_session(model_path, n_threads, &model, &tok, &session)) goto done;
    if (lm_task_load(&task, kind, file, tok) != LM_OK ||
        lm_task_eval(session, task, (size_t)limit, isatty(STDERR_FILENO) ? cli_progress_bar : NULL, "items", &r) != LM_OK) {
        cli_error("%s", lm_last_error());
        goto done;
    }
    if (json) {
        printf("{\"task\": \"%s\", \"items\": %zu", task_name, r.items);
        json_value("acc", r.acc);
        json_value("acc_stderr", r.acc_stderr);
        if (kind == LM_TASK_LAMBADA) {
            json_value("ppl", r.ppl);
        } else if (!isnan(r.acc_norm)) {
            json_value("acc_norm", r.acc_norm);
            json_value("acc_norm_stderr", r.acc_norm_stderr);
        }
        printf(", \"seconds\": %.3f}\n", r.seconds);
    } else {
        printf("%s: %zu items, acc %.4f +- %.4f", task_name, r.items, r.acc, r.acc_stderr);
        if (kind == LM_TASK_LAMBADA) printf(", target perplexity %.4f", r.ppl);
        if (!isnan(r.acc_norm)) printf(", acc_norm %.4f +- %.4f", r.acc_norm, r.acc_norm_stderr);
        printf(" (%.2f s)\n", r.seconds);
    }
    rc = 0;
done:
    lm_task_free(task);
    lm_session_free(session);
    lm_tokenizer_free(tok);
    lm_model_free(model);
    return rc;
}

const lm_command cmd_eval = {"eval", run_eval, "zero-shot task accuracy (LAMBADA, HellaSwag, PIQA, ARC, WinoGrande)", usage};
