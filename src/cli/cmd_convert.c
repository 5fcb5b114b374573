/* lightmamba convert: a float model -> a GGUF file for llama.cpp (lm_model_write_gguf). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "lightmamba.h"

static const char usage[] =
    "usage: lightmamba convert -m MODEL -o OUT.gguf [--type f32|f16|q8_0]\n"
    "  -m, --model MODEL  float model: directory (safetensors or pytorch_model.bin), .bin/.pt file or .gguf\n"
    "  -o, --output FILE  the GGUF file to write (atomically)\n"
    "  --type T           the matrices' type: f32, f16 (default) or q8_0 (ggml's 8-bit blocks of 32;\n"
    "                     a matrix whose rows are not a multiple of 32 is written f16); norms,\n"
    "                     conv, biases, A and D are always f32, as llama.cpp's converter writes them\n"
    "Writes llama.cpp's Mamba2 layout (general.architecture mamba2, docs/checkpoint-formats.md) with\n"
    "the model's tokenizer (tokenizer.ggml.*), so llama-cli and llama-perplexity load it.\n";

static int run_convert(int argc, char **argv) {
    const char *model_path = NULL, *out = NULL, *type = "f16";
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STRING, &model_path, 0, 0},
        {"-o", "--output", CLI_STRING, &out, 0, 0},
        {NULL, "--type", CLI_STRING, &type, 0, 0},
    };
    if (cli_parse("convert", argc, argv, opts, CLI_COUNT(opts))) return 1;
    if (!model_path || !out) return cli_error("convert: -m MODEL and -o OUT.gguf are required (see 'lightmamba help convert')");
    lm_gguf_weights w;
    if (!strcmp(type, "f32")) w = LM_GGUF_WEIGHTS_F32;
    else if (!strcmp(type, "f16")) w = LM_GGUF_WEIGHTS_F16;
    else if (!strcmp(type, "q8_0")) w = LM_GGUF_WEIGHTS_Q8_0;
    else return cli_error("convert: --type must be f32, f16 or q8_0, not '%s'", type);
    lm_model *m;
    if (lm_model_init(&m, model_path) != LM_OK) return cli_error("%s", lm_last_error());
    lm_status s = lm_model_write_gguf(m, w, out);
    lm_model_free(m);
    if (s != LM_OK) return cli_error("%s", lm_last_error());
    fprintf(stderr, "wrote %s\n", out);
    return 0;
}

const lm_command cmd_convert = {"convert", run_convert, "write a float model as a GGUF file for llama.cpp", usage};
