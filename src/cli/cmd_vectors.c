/* lightmamba vectors: one layer's decode step of an integer (--ssm pot8) model, every unit's
 * inputs and outputs as raw integer arrays with a manifest (model/vectors.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "lightmamba.h"
#include "model/vectors.h"

static const char usage[] =
    "usage: lightmamba vectors -m QMODEL -p PROMPT -o DIR [--layer L] [--threads K]\n"
    "  -m, --model QMODEL    a model quantized with --ssm pot8 (LightMamba*)\n"
    "  -p, --prompt TEXT     the prompt: prefilled, then its greedy next token (one the tokenizer has)\n"
    "                        is the decode step\n"
    "  -o, --output DIR      the directory to create (must not exist; written as DIR.tmp.XXXXXX, then renamed)\n"
    "  --layer L             the layer whose decode step is dumped (default 0)\n"
    "  --threads K           worker threads for the prefill (default: all cores)\n"
    "DIR/manifest.json lists every array (name, dtype, shape, F: the fixed point of a wide array or\n"
    "of the pot values an exponent array belongs to, file); the arrays are raw little-endian\n"
    "integers, named unit.role (norm.out, in_proj.out, conv.state_in.q, dA.out.s, ssm.out, ...), and\n"
    "param.* the layer's parameters. The contract: docs/integer-datapath.md.\n";

static int run_vectors(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *out = NULL;
    int layer = 0, n_threads = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STRING, &model_path, 0, 0},
        {"-p", "--prompt", CLI_STRING, &prompt, 0, 0},
        {"-o", "--output", CLI_STRING, &out, 0, 0},
        {NULL, "--layer", CLI_INT, &layer, 0, 1 << 20},
        {NULL, "--threads", CLI_INT, &n_threads, 0, 4096},
    };
    if (cli_parse("vectors", argc, argv, opts, CLI_COUNT(opts))) return 1;
    if (!model_path) return cli_error("vectors: -m QMODEL is required (see 'lightmamba help vectors')");
    if (!prompt) return cli_error("vectors: -p PROMPT is required (see 'lightmamba help vectors')");
    if (!out || !*out) return cli_error("vectors: -o DIR is required (see 'lightmamba help vectors')");
    lm_model *m = NULL;
    lm_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    lm_vectors_result r;
    lm_status s = lm_model_init(&m, model_path);
    if (!s) s = lm_tokenizer_init_for_model(&tok, m);
    if (!s) s = lm_tokenizer_encode(tok, prompt, strlen(prompt), &ids, &n_ids);
    if (!s && n_ids == 0) {
        lm_tokenizer_free(tok); lm_model_free(m); free(ids);
        return cli_error("vectors: the prompt is empty");
    }
    if (!s) s = lm_vectors_dump(m, ids, n_ids, lm_token_candidates(m, tok), layer, out, n_threads, &r);
    lm_tokenizer_free(tok);
    lm_model_free(m);
    free(ids);
    if (s) return cli_error("%s", lm_last_error());
    printf("wrote %s: layer %d, decode step of token %d after %zu prompt tokens, %d arrays\n", out, layer, (int)r.token,
           n_ids, r.n_arrays);
    return 0;
}

const lm_command cmd_vectors = {"vectors", run_vectors, "dump an integer model's unit test vectors for the accelerator", usage};
