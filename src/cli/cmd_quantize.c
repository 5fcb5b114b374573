/* lightmamba quantize: a float model -> one quantized model file (lm_quantize in lightmamba.h). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "common/clock.h"
#include "lightmamba.h"

static const char usage[] =
    "usage: lightmamba quantize -m MODEL -o OUT [--method rtn|smoothquant|lightmamba] [--wbits 4|8] [--abits 4|8]\n"
    "                           [--gptq] [--calib TEXT] [--calib-samples N] [--calib-len L] [--alpha A] [--threads K]\n"
    "                           [--ssm float|pot8 [--datapath ours|release|FLAGS]]\n"
    "                           [--act-group 8|16|32|64|128|token] [--act-scale pow2|real]\n"
    "                           [--head f16|8|4] [--embedding f16|8|4]\n"
    "  -m, --model DIR       float model directory (config.json + model.safetensors)\n"
    "  -o, --output FILE     the quantized model file to write (atomically)\n"
    "  --method M            lightmamba (default): Hadamard rotations, fused offline plus one online\n"
    "                        before out_proj; smoothquant: per-channel smoothing from calibration;\n"
    "                        rtn: round to nearest only\n"
    "  --wbits B, --abits B  weight and activation bits of in_proj and out_proj, 4 or 8 (default 4, 4)\n"
    "  --gptq                GPTQ weight rounding from calibration Hessians (default: round to nearest)\n"
    "  --calib TEXT          calibration text (default: the bundled WikiText-2 validation split)\n"
    "  --calib-samples N     calibration samples (default 128)\n"
    "  --calib-len L         consecutive tokens per sample (default 512)\n"
    "  --alpha A             SmoothQuant migration strength in [0, 1] (default 0.5)\n"
    "  --threads K           worker threads (default: all cores)\n"
    "  --ssm MODE            float (default): conv, SSM and norms stay float32; pot8 (LightMamba*):\n"
    "                        every block in integers (power-of-two INT8 SSM, lookup-table SiLU,\n"
    "                        softplus and exp, integer RMSNorm, 32-bit fixed-point residual), its\n"
    "                        sites calibrated on the calibration samples (docs/integer-datapath.md)\n"
    "  --datapath D          pot8 arithmetic: ours (default), release (the authors' released golden\n"
    "                        model, bit for bit: docs/release-datapath.md), or some of its choices\n"
    "                        joined by '+': trunc, qrule, lut8, norm8, dbheads, sites (recorded in the file)\n"
    "  --act-group G         channels per activation scale: 8 (default, the hardware's), 16, 32, 64,\n"
    "                        128, or token (one scale per token); recorded in the file (research)\n"
    "  --act-scale S         pow2 (default, the hardware's: the integer kernels) or real (absmax /\n"
    "                        qmax, run by a slower float reference path)\n"
    "  --head H              lm_head: f16 (default, float16), 8 or 4 bits in the weight format above\n"
    "                        (round to nearest), run on the integer kernels with 8-bit inputs per 8\n"
    "                        channels (recorded in the file)\n"
    "  --embedding E         the embedding: f16, 8 or 4 bits, the same format (default: as --head; 8 with\n"
    "                        --head 4 costs far less perplexity and reads one row per token either way)\n"
    "Weights: symmetric, a scale 2^e0 (2^s1 + 2^s2) per output row and 128 inputs. Activations:\n"
    "dynamic per token, a power-of-two exponent per 8 channels (unless --act-group/--act-scale say\n"
    "otherwise). Conv, SSM and norms stay float, embedding and lm_head float16 (unless --head, --embedding). The file embeds the tokenizer;\n"
    "info, generate and perplexity take it as -m.\n";

/* On a terminal one line redrawn in place; otherwise a line per tenth of each stage. */
static int progress(void *ctx, const char *stage, size_t done, size_t total) {
    const double *t0 = ctx;
    int tty = isatty(STDERR_FILENO);
    if (!tty && done != total && (done * 10 / total) == ((done - 1) * 10 / total)) return 0;
    fprintf(stderr, "%s%s: %zu/%zu (%.1f s)%s", tty ? "\r" : "", stage, done, total, lm_now_seconds() - *t0,
            tty && done != total ? "" : "\n");
    fflush(stderr);
    return 0;
}

static int parse_method(const char *name, lm_quant_method *m) {
    const lm_quant_method all[] = {LM_QUANT_RTN, LM_QUANT_SMOOTHQUANT, LM_QUANT_LIGHTMAMBA};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(name, lm_quant_method_name(all[i]))) {
            *m = all[i];
            return 0;
        }
    return 1;
}

static int run_quantize(int argc, char **argv) {
    const char *model_path = NULL, *out = NULL, *method = "lightmamba", *calib = NULL, *ssm = "float", *datapath = NULL;
    const char *act_group = "8", *act_scale = "pow2", *head = "f16", *embedding = NULL;
    lm_quant_settings q = lm_quant_defaults();
    int n_threads = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STRING, &model_path, 0, 0},
        {"-o", "--output", CLI_STRING, &out, 0, 0},
        {NULL, "--method", CLI_STRING, &method, 0, 0},
        {NULL, "--wbits", CLI_INT, &q.wbits, 4, 8},
        {NULL, "--abits", CLI_INT, &q.abits, 4, 8},
        {NULL, "--gptq", CLI_FLAG, &q.gptq, 0, 0},
        {NULL, "--calib", CLI_STRING, &calib, 0, 0},
        {NULL, "--calib-samples", CLI_INT, &q.calib_samples, 1, 1 << 20},
        {NULL, "--calib-len", CLI_INT, &q.calib_len, 1, 1 << 20},
        {NULL, "--alpha", CLI_FLOAT, &q.alpha, 0, 1},
        {NULL, "--threads", CLI_INT, &n_threads, 0, 4096},
        {NULL, "--ssm", CLI_STRING, &ssm, 0, 0},
        {NULL, "--datapath", CLI_STRING, &datapath, 0, 0},
        {NULL, "--act-group", CLI_STRING, &act_group, 0, 0},
        {NULL, "--act-scale", CLI_STRING, &act_scale, 0, 0},
        {NULL, "--head", CLI_STRING, &head, 0, 0},
        {NULL, "--embedding", CLI_STRING, &embedding, 0, 0},
    };
    if (cli_parse("quantize", argc, argv, opts, CLI_COUNT(opts))) return 1;
    if (!model_path) return cli_error("quantize: -m MODEL is required (see 'lightmamba help quantize')");
    if (!out) return cli_error("quantize: -o OUT is required (see 'lightmamba help quantize')");
    if (parse_method(method, &q.method)) return cli_error("quantize: unknown --method '%s' (rtn, smoothquant or lightmamba)", method);
    if (!strcmp(ssm, "float"))
        q.ssm_mode = LM_SSM_FLOAT;
    else if (!strcmp(ssm, "pot8"))
        q.ssm_mode = LM_SSM_POT8;
    else
        return cli_error("quantize: unknown --ssm '%s' (float or pot8)", ssm);
    if (datapath && q.ssm_mode != LM_SSM_POT8) return cli_error("quantize: --datapath needs --ssm pot8");
    if (datapath && lm_datapath_parse(datapath, &q.datapath) != LM_OK) return cli_error("quantize: %s", lm_last_error());
    if ((q.wbits != 4 && q.wbits != 8) || (q.abits != 4 && q.abits != 8))
        return cli_error("quantize: --wbits and --abits must be 4 or 8");
    if (cli_parse_act_format(act_group, act_scale, &q)) return 1;
    if (cli_parse_bits("quantize", "--head", head, &q.head_bits) ||
        cli_parse_bits("quantize", "--embedding", embedding ? embedding : head, &q.embedding_bits))
        return 1;

    double t0 = lm_now_seconds();
    lm_model *m;
    if (lm_model_init(&m, model_path) != LM_OK) return cli_error("%s", lm_last_error());
    lm_status s = lm_quantize(m, &q, calib, n_threads, out, progress, &t0);
    lm_model_free(m);
    if (s != LM_OK) return cli_error("%s", lm_last_error());
    struct stat st;
    long long bytes = stat(out, &st) == 0 ? (long long)st.st_size : -1;
    char dp[64], act[48];
    printf("wrote %s: %s W%dA%d%s%s%s%s, activations %s, embedding %s, lm_head %s, %lld bytes, in %.1f s\n", out,
           lm_quant_method_name(q.method), q.wbits, q.abits, q.gptq ? " gptq" : "", q.ssm_mode == LM_SSM_POT8 ? " ssm pot8" : "",
           q.datapath ? " datapath " : "", q.datapath ? lm_datapath_name(q.datapath, dp, sizeof dp) : "",
           cli_act_format_name(&q, act, sizeof act), cli_bits_name(q.embedding_bits), cli_bits_name(q.head_bits), bytes,
           lm_now_seconds() - t0);
    return 0;
}

const lm_command cmd_quantize = {"quantize", run_quantize, "quantize a float model (LightMamba, SmoothQuant or RTN; --ssm pot8: LightMamba*)", usage};
