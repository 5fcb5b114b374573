/* lightmamba synth: a model of a real Mamba2 shape with random weights (src/quant/synth.h),
 * quantized straight into a model file, or a float32 model directory, for speed measurements. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "common/clock.h"
#include "format/config.h"
#include "quant/synth.h"

static const char usage[] =
    "usage: lightmamba synth --config NAME|FILE -o OUT [--wbits 4|8|32] [--abits 4|8] [--method lightmamba|rtn]\n"
    "                        [--ssm fp|pot8] [--head f16|8|4] [--seed S] [--threads K]\n"
    "  --config C        mamba2-130m, mamba2-370m, mamba2-780m, mamba2-1.3b, mamba2-2.7b, or a config.json\n"
    "                    (or a model directory holding one)\n"
    "  -o, --output OUT  the quantized model file to write (atomically); with --wbits 32, a model directory\n"
    "  --wbits B         in_proj/out_proj weight bits: 4 (default) or 8; 32 writes a float32 model directory\n"
    "                    (config.json + model.safetensors + tokenizer.json) instead\n"
    "  --abits B         activation bits, 4 (default) or 8 (W8A4 is not supported)\n"
    "  --method M        lightmamba (default: the online Hadamard before out_proj, as a real LightMamba\n"
    "                    model computes) or rtn (no rotation)\n"
    "  --ssm MODE        fp (default: conv, SSM and norms in float32) or pot8 (LightMamba*: every block in\n"
    "                    integers, as quantize --ssm pot8; its sites calibrated on 128 tokens drawn from the seed)\n"
    "  --head H          the embedding and lm_head: f16 (default), 8 or 4 bits (as quantize --head)\n"
    "  --seed S          random seed (default 1); the same seed gives the same weights at any thread count\n"
    "  --threads K       worker threads (default: all cores)\n"
    "Weights are drawn like Mamba2's initialisation (linear layers N(0, 1/fan_in), norms near 1, A_log, dt_bias,\n"
    "D and the conv as Mamba2 sets them) and quantized one layer at a time by the real quantizer (round to\n"
    "nearest, a scale per 128 inputs): memory stays near the size of the quantized model.\n";

static int run_synth(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *method = "lightmamba", *ssm = "fp", *head = "f16";
    lm_quant_settings q = lm_quant_defaults();
    uint64_t seed = 1;
    int n_threads = 0;
    const cli_opt opts[] = {
        {NULL, "--config", CLI_STRING, &config, 0, 0},
        {"-o", "--output", CLI_STRING, &out, 0, 0},
        {NULL, "--wbits", CLI_INT, &q.wbits, 4, 32},
        {NULL, "--abits", CLI_INT, &q.abits, 4, 8},
        {NULL, "--method", CLI_STRING, &method, 0, 0},
        {NULL, "--ssm", CLI_STRING, &ssm, 0, 0},
        {NULL, "--head", CLI_STRING, &head, 0, 0},
        {NULL, "--seed", CLI_U64, &seed, 0, 0},
        {NULL, "--threads", CLI_INT, &n_threads, 0, 4096},
    };
    if (cli_parse("synth", argc, argv, opts, CLI_COUNT(opts))) return 1;
    if (!config) return cli_error("synth: --config NAME|FILE is required (see 'lightmamba help synth')");
    if (!out) return cli_error("synth: -o OUT is required (see 'lightmamba help synth')");
    if (q.wbits != 4 && q.wbits != 8 && q.wbits != 32) return cli_error("synth: --wbits must be 4, 8 or 32");
    if (q.abits != 4 && q.abits != 8) return cli_error("synth: --abits must be 4 or 8");
    if (q.wbits == 8 && q.abits == 4) return cli_error("synth: W8A4 is not supported by the integer kernels (W4A4, W4A8 or W8A8)");
    if (cli_parse_bits("synth", "--head", head, &q.head_bits)) return 1;
    q.embedding_bits = q.head_bits;
    if (q.head_bits && q.wbits == 32) return cli_error("synth: --head applies to quantized models, not --wbits 32");
    if (!strcmp(ssm, "pot8"))
        q.ssm_mode = LM_SSM_POT8;
    else if (strcmp(ssm, "fp"))
        return cli_error("synth: --ssm '%s': fp or pot8", ssm);
    if (q.ssm_mode == LM_SSM_POT8 && q.wbits == 32) return cli_error("synth: --ssm pot8 needs a quantized model, not --wbits 32");
    if (!strcmp(method, "lightmamba"))
        q.method = LM_QUANT_LIGHTMAMBA;
    else if (!strcmp(method, "rtn"))
        q.method = LM_QUANT_RTN;
    else
        return cli_error("synth: unknown --method '%s' (lightmamba or rtn)", method);

    lm_config c;
    if (lm_config_named(&c, config) != LM_OK) return cli_error("synth: %s", lm_last_error());
    double t0 = lm_now_seconds();
    lm_status s = q.wbits == 32 ? lm_synth_float(out, &c, seed, n_threads) : lm_synth_quantized(out, &c, &q, seed, n_threads);
    if (s != LM_OK) return cli_error("synth: %s", lm_last_error());
    if (q.wbits == 32)
        printf("wrote %s: float32 model directory, d_model %d, %d layers, in %.1f s\n", out, c.d_model, c.n_layer,
               lm_now_seconds() - t0);
    else {
        struct stat st;
        long long bytes = stat(out, &st) == 0 ? (long long)st.st_size : -1;
        printf("wrote %s: %s W%dA%d%s, embedding and lm_head %s, d_model %d, %d layers, %lld bytes, in %.1f s\n", out,
               method, q.wbits, q.abits, q.ssm_mode == LM_SSM_POT8 ? " ssm pot8" : "", cli_bits_name(q.head_bits), c.d_model,
               c.n_layer, bytes, lm_now_seconds() - t0);
    }
    return 0;
}

const lm_command cmd_synth = {"synth", run_synth, "write a random-weight model of a real Mamba2 shape (for benchmarks)", usage};
