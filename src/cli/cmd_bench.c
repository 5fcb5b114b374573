/* lightmamba bench -m MODEL: prefill and decode speed against this machine's memory bandwidth.
 *
 *   1. the read bandwidth of the same number of threads, measured first (lm_measure_read_bandwidth)
 *   2. one decode step to warm up (touches every weight once), then a reset
 *   3. prefill: a prompt of --prompt random token ids in one lm_session_forward call (chunks of 64)
 *   4. decode: --gen steps of one token each, each fed the greedy argmax of the previous logits
 * Bytes per decode token are counted from the model's tensors (src/model/traffic.h: weights as
 * held in memory + the recurrent state read and written); achieved GB/s = bytes x tokens/s.
 * --profile also times each stage of the forward pass (model/session.h: one clock read per
 * stage, well under 0.1 % of a step) during the same prefill and decode. */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "common/clock.h"
#include "kernels/kernels.h"
#include "lightmamba.h"
#include "model/session.h"
#include "model/softmax.h"
#include "model/traffic.h"

static const char usage[] =
    "usage: lightmamba bench -m MODEL [--prompt N] [--gen N] [--threads K] [--seed S] [--profile] [--json]\n"
    "  -m, --model MODEL  a model directory or a quantized model file (e.g. from lightmamba synth)\n"
    "  --prompt N         prompt tokens for prefill (default 512; random ids)\n"
    "  --gen N            decode steps (default 128; greedy)\n"
    "  --threads K        worker threads (default: all cores)\n"
    "  --seed S           seed of the prompt's token ids (default 1)\n"
    "  --profile          also break prefill and decode time down by stage (norms, linear layers, conv,\n"
    "                     SSM, Hadamard, lm_head, other; outside: the argmax between steps), as wall\n"
    "                     time of the calling thread, in ms per token\n"
    "  --json             one JSON object on stdout instead of the table\n"
    "Reports prefill and decode tokens/s, the bytes a decode step reads (weights as held in memory, plus\n"
    "the recurrent state read and written), the GB/s that makes, and its share of this machine's read\n"
    "bandwidth measured in the same run with the same threads.\n";

#define BANDWIDTH_BUFFER ((size_t)512 << 20)

static int run_bench(int argc, char **argv) {
    const char *model_path = NULL;
    int prompt = 512, gen = 128, n_threads = 0, json = 0, profile = 0;
    uint64_t seed = 1;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STRING, &model_path, 0, 0},
        {NULL, "--prompt", CLI_INT, &prompt, 1, 1 << 20},
        {NULL, "--gen", CLI_INT, &gen, 1, 1 << 20},
        {NULL, "--threads", CLI_INT, &n_threads, 0, 4096},
        {NULL, "--seed", CLI_U64, &seed, 0, 0},
        {NULL, "--profile", CLI_FLAG, &profile, 0, 0},
        {NULL, "--json", CLI_FLAG, &json, 0, 0},
    };
    if (cli_parse("bench", argc, argv, opts, CLI_COUNT(opts))) return 1;
    if (!model_path) return cli_error("bench: -m MODEL is required (see 'lightmamba help bench')");

    double t0 = lm_now_seconds();
    lm_model *m;
    if (lm_model_init(&m, model_path) != LM_OK) return cli_error("%s", lm_last_error());
    double load_s = lm_now_seconds() - t0;
    const lm_config *c = lm_model_config(m);
    const lm_quant_settings *q = lm_model_quant(m);

    lm_pool *pool;
    if (lm_pool_init(&pool, n_threads) != LM_OK) {
        lm_model_free(m);
        return cli_error("%s", lm_last_error());
    }
    int threads = lm_pool_size(pool);
    double bw = lm_measure_read_bandwidth(pool, BANDWIDTH_BUFFER);
    lm_pool_free(pool);

    lm_session *s = NULL;
    lm_session_params sp = lm_session_default_params();
    sp.n_threads = threads;
    int32_t *tokens = malloc(sizeof *tokens * (size_t)prompt);
    float *logits = malloc(sizeof *logits * (size_t)c->vocab_size);
    if (!tokens || !logits || lm_session_init(&s, m, &sp) != LM_OK) {
        free(tokens), free(logits), lm_model_free(m);
        return cli_error("%s", tokens && logits ? lm_last_error() : "bench: out of memory");
    }
    uint64_t r = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < prompt; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = (int32_t)((r >> 33) % (uint64_t)c->vocab_size);
    }

    lm_status st = lm_session_forward(s, tokens, 1, NULL, logits); /* warm-up */
    lm_session_reset(s);
    lm_stage_profile prefill_prof = {0}, decode_prof = {0};
    if (profile) lm_session_set_profile(s, &prefill_prof);
    double p0 = lm_now_seconds();
    if (st == LM_OK) st = lm_session_forward(s, tokens, (size_t)prompt, NULL, logits);
    double prefill_s = lm_now_seconds() - p0;
    if (profile) lm_session_set_profile(s, &decode_prof);
    double d0 = lm_now_seconds();
    for (int i = 0; i < gen && st == LM_OK; i++) {
        int32_t next = lm_argmax(logits, c->vocab_size);
        st = lm_session_forward(s, &next, 1, NULL, logits);
    }
    double decode_s = lm_now_seconds() - d0;
    lm_session_free(s);
    free(tokens);
    free(logits);
    if (st != LM_OK) {
        lm_model_free(m);
        return cli_error("%s", lm_last_error());
    }

    lm_decode_traffic tr;
    lm_decode_traffic_count(m, &tr);
    double prefill_tps = prompt / prefill_s, decode_tps = gen / decode_s;
    double gbps = (double)tr.total * decode_tps / 1e9;
    char kind[32];
    if (q->method == LM_QUANT_NONE)
        snprintf(kind, sizeof kind, "float32");
    else
        snprintf(kind, sizeof kind, "%s W%dA%d", lm_quant_method_name(q->method), q->wbits, q->abits);
    const char *simd = lm_simd_level_name(lm_simd_level_get());
    /* --profile: the time not in any stage (the greedy argmax between steps, the calls themselves) */
    double prefill_outside = prefill_s, decode_outside = decode_s;
    for (int k = 0; k < LM_STAGE_COUNT; k++)
        prefill_outside -= prefill_prof.seconds[k], decode_outside -= decode_prof.seconds[k];
    if (json) {
        printf("{\"model\": \"%s\", \"weights\": \"%s\", \"d_model\": %d, \"n_layer\": %d, \"threads\": %d, \"simd\": \"%s\", "
               "\"load_seconds\": %.3f, \"prompt_tokens\": %d, \"prefill_seconds\": %.4f, \"prefill_tokens_per_second\": %.2f, "
               "\"gen_tokens\": %d, \"decode_seconds\": %.4f, \"decode_tokens_per_second\": %.2f, "
               "\"prefill_vs_decode\": %.2f, \"decode_bytes_per_token\": %llu, \"weight_bytes\": %llu, "
               "\"lm_head_bytes\": %llu, \"state_bytes\": %llu, \"achieved_gb_per_second\": %.2f, "
               "\"read_bandwidth_gb_per_second\": %.2f, \"bandwidth_percent\": %.1f",
               model_path, kind, c->d_model, c->n_layer, threads, simd, load_s, prompt, prefill_s, prefill_tps, gen, decode_s,
               decode_tps, prefill_tps / decode_tps, (unsigned long long)tr.total, (unsigned long long)tr.weights,
               (unsigned long long)tr.lm_head, (unsigned long long)tr.state, gbps, bw, 100.0 * gbps / bw);
        if (profile) {
            /* per stage: seconds per prefill token and per decode token */
            printf(", \"profile\": {");
            for (int k = 0; k < LM_STAGE_COUNT; k++)
                printf("%s\"%s\": {\"prefill_ms_per_token\": %.4f, \"decode_ms_per_token\": %.4f}", k ? ", " : "",
                       lm_stage_name((lm_stage)k), 1e3 * prefill_prof.seconds[k] / prompt, 1e3 * decode_prof.seconds[k] / gen);
            printf(", \"outside\": {\"prefill_ms_per_token\": %.4f, \"decode_ms_per_token\": %.4f}}",
                   1e3 * prefill_outside / prompt, 1e3 * decode_outside / gen);
        }
        printf("}\n");
    } else {
        printf("model: %s (%s, d_model %d, %d layers), %d threads, %s kernels, loaded in %.2f s\n", model_path, kind,
               c->d_model, c->n_layer, threads, simd, load_s);
        printf("prefill: %d tokens in %.3f s: %.1f tokens/s (%.1fx the decode rate)\n", prompt, prefill_s, prefill_tps,
               prefill_tps / decode_tps);
        printf("decode:  %d tokens in %.3f s: %.2f tokens/s\n", gen, decode_s, decode_tps);
        printf("bytes per decode token: %.1f MB (weights %.1f MB of which lm_head %.1f MB, state 2 x %.1f MB)\n",
               tr.total / 1e6, tr.weights / 1e6, tr.lm_head / 1e6, tr.state / 1e6);
        printf("achieved: %.2f GB/s = %.1f%% of the measured read bandwidth %.2f GB/s\n", gbps, 100.0 * gbps / bw, bw);
        if (profile) {
            printf("%-15s %12s %8s %12s %8s\n", "stage", "prefill ms/t", "share", "decode ms/t", "share");
            for (int k = 0; k < LM_STAGE_COUNT; k++) {
                if (prefill_prof.seconds[k] == 0 && decode_prof.seconds[k] == 0) continue;
                printf("%-15s %12.4f %7.1f%% %12.4f %7.1f%%\n", lm_stage_name((lm_stage)k),
                       1e3 * prefill_prof.seconds[k] / prompt, 100.0 * prefill_prof.seconds[k] / prefill_s,
                       1e3 * decode_prof.seconds[k] / gen, 100.0 * decode_prof.seconds[k] / decode_s);
            }
            printf("%-15s %12.4f %7.1f%% %12.4f %7.1f%%\n", "outside", 1e3 * prefill_outside / prompt,
                   100.0 * prefill_outside / prefill_s, 1e3 * decode_outside / gen, 100.0 * decode_outside / decode_s);
        }
    }
    lm_model_free(m);
    return 0;
}

const lm_command cmd_bench = {"bench", run_bench, "measure prefill/decode speed against the memory bandwidth", usage};
