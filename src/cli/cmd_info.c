/* lightmamba info -m MODEL: the configuration, the parameter count and the tensor table. */
#include <math.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "lightmamba.h"

static const char *yes_no(int b) { return b ? "yes" : "no"; }

static void print_info(const char *path, const lm_model *m) {
    const lm_config *c = lm_model_config(m);
    printf("model: %s\n", path);
    printf("format: %s\n", lm_model_format(m));
    printf("config: d_model %d, n_layer %d, d_inner %d, n_heads %d, head_dim %d, d_state %d, n_groups %d, d_conv %d\n",
           c->d_model, c->n_layer, c->d_inner, c->n_heads, c->head_dim, c->d_state, c->n_groups, c->d_conv);
    printf("config: vocab_size %d, eps %g, time_step_limit [%g, %g], tied lm_head %s, conv bias %s, proj bias %s\n",
           c->vocab_size, c->eps, c->dt_limit_min, c->dt_limit_max, yes_no(c->tie_embeddings), yes_no(c->conv_bias),
           yes_no(c->proj_bias));
    printf("tokenizer: %s\n", lm_model_tokenizer_path(m));
    const lm_quant_settings *q = lm_model_quant(m);
    if (q->method != LM_QUANT_NONE) {
        char act[48];
        printf("quantization: %s W%dA%d, GPTQ %s, SSM %s, activations %s, embedding %s, lm_head %s\n",
               lm_quant_method_name(q->method), q->wbits, q->abits, yes_no(q->gptq), q->ssm_mode == LM_SSM_POT8 ? "pot8" : "float",
               cli_act_format_name(q, act, sizeof act), cli_bits_name(q->embedding_bits), cli_bits_name(q->head_bits));
    }
    uint64_t params = lm_model_n_params(m);
    printf("parameters: %llu (%.2f M)\n", (unsigned long long)params, params / 1e6);

    int n = lm_model_n_tensors(m);
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++) bytes += lm_model_tensor(m, i)->nbytes;
    printf("tensors: %d, %llu bytes as stored\n", n, (unsigned long long)bytes);
    printf("  %-46s %-5s %-18s %12s\n", "name", "dtype", "shape", "bytes");
    for (int i = 0; i < n; i++) {
        const lm_tensor_info *t = lm_model_tensor(m, i);
        char shape[96];
        int k = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->ndim && k < (int)sizeof shape; d++)
            k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        if (k < (int)sizeof shape) snprintf(shape + k, sizeof shape - (size_t)k, "]");
        printf("  %-46s %-5s %-18s %12llu%s\n", t->name, t->dtype, shape, (unsigned long long)t->nbytes,
               t->used ? "" : "  (unused, ignored)");
    }
}

static int run_info(int argc, char **argv) {
    const char *path = NULL;
    const cli_opt opts[] = {{"-m", "--model", CLI_STRING, &path, 0, 0}};
    if (cli_parse("info", argc, argv, opts, CLI_COUNT(opts))) return 1;
    if (!path) return cli_error("info: -m MODEL is required (see 'lightmamba help info')");
    lm_model *m;
    if (lm_model_init(&m, path) != LM_OK) return cli_error("%s", lm_last_error());
    print_info(path, m);
    lm_model_free(m);
    return 0;
}

const lm_command cmd_info = {
    "info", run_info, "show a model's configuration, parameter count and tensors",
    "usage: lightmamba info -m MODEL\n"
    "  -m, --model MODEL model directory (config.json + safetensors or pytorch_model.bin), PyTorch\n"
    "                    .bin/.pt file, GGUF file or quantized file (docs/checkpoint-formats.md)\n"
    "Prints the format read, the configuration, the parameter count (tensors the model uses; a tied\n"
    "lm_head counted once) and the checkpoint's tensor table (dtype, shape, bytes as stored; GGUF\n"
    "tensors under their Hugging Face names and PyTorch shapes).\n"};
