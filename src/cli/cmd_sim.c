/* lightmamba sim: the cycle-level simulator of the LightMamba accelerator (hw/sim, hw/README.md). */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "sim/sim.h"

/* ri: the same design with memory that never stalls (LM_HW_IDEAL_MEMORY): its compute time. */
static void print_text(const lm_hw_platform *p, const lm_hw_design *d, const lm_config *c, const char *cfg,
                       const lm_hw_result *r, const lm_hw_result *ri, const lm_hw_resources *rs, const lm_hw_energy *e) {
    double f = p->clock_mhz * 1e6;
    printf("platform %s: %.0f MHz, %s, %d of %d channels, %.1f GB/s peak, %.2f GB/s achievable (efficiency %.2f, %d-bit ports)\n",
           p->name, p->clock_mhz, p->mem_type, d->mem_channels, p->mem_channels, r->bw_peak / 1e9, r->bw_achievable / 1e9,
           p->mem_efficiency, d->port_bits);
    printf("model %s: %d layers, d_model %d, d_inner %d, %d heads x %d, d_state %d, vocab %d\n", cfg, c->n_layer, c->d_model,
           c->d_inner, c->n_heads, c->head_dim, c->d_state, c->vocab_size);
    printf("design: MMU %dx%d (%d %d-bit MACs/cycle), SSMU %d lanes, tile %d states x %d head_dim, conv %d, norm %d, HTU %d wide, "
           "W%dA%d, reorder %s, tiling %s\n",
           d->cip, d->cop, d->cip * d->cop * 4 / d->wbits, d->wbits, d->ssmu_lanes, d->n_p, d->p_p, d->conv_lanes, d->norm_lanes,
           d->htu_width, d->wbits, d->abits, d->reorder ? "on" : "off", d->tiling ? "on" : "off");
    printf("tokens/s        %.2f  (%.2f ms/token, %.0f cycles; %d layers simulated, the rest at the steady period)\n",
           r->tokens_per_s, r->seconds_token * 1e3, r->cycles_token, r->layers_simulated);
    printf("cycles/layer    %.0f  (layer 0: %.0f; norm_f + lm_head + logits after the last layer: %.0f)\n", r->cycles_layer,
           r->cycles_layer0, r->cycles_head);
    printf("bytes/token     %.4f GB  (per layer: weights+scales %.2f MB, state+conv state r/w %.2f MB; lm_head %.1f MB)\n",
           r->bytes_token / 1e9, r->bytes_layer_weights / 1e6, r->bytes_layer_state / 1e6, r->bytes_lm_head / 1e6);
    printf("bandwidth       %.2f GB/s achieved = %.0f%% of achievable, %.0f%% of peak; roofline %.2f tok/s (achievable), %.2f (peak)\n",
           r->bytes_token / r->seconds_token / 1e9, 100 * r->bytes_token / r->seconds_token / r->bw_achievable,
           100 * r->bytes_token / r->seconds_token / r->bw_peak, r->bw_achievable / r->bytes_token, r->bw_peak / r->bytes_token);
    printf("units           %-16s %7s %9s %9s %9s\n", "", "busy", "wait mem", "wait dep", "out full");
    for (int u = 0; u < HW_N_UNITS; u++) {
        const lm_hw_unit_stats *s = &r->unit[u];
        double t = r->cycles_token;
        if (u <= HW_U_MEM_S)
            printf("                %-16s %6.1f%%\n", lm_hw_unit_names[u], 100 * s->busy / t);
        else
            printf("                %-16s %6.1f%% %8.1f%% %8.1f%% %8.1f%%\n", lm_hw_unit_names[u], 100 * s->busy / t,
                   100 * s->stall_mem / t, 100 * s->stall_dep / t, 100 * s->stall_full / t);
    }
    const lm_hw_unit_stats *m = &r->unit[HW_U_MMU];
    printf("MMU             utilization %.1f%% (computing), %.1f%% occupied (computing or waiting for weights)\n",
           100 * m->busy / r->cycles_token, 100 * (m->busy + m->stall_mem) / r->cycles_token);
    printf("compute time    %.0f cycles/layer, MMU utilization %.1f%% with memory that never stalls (the units' work and "
           "dependencies only)\n", ri->cycles_layer, 100 * ri->unit[HW_U_MMU].busy / ri->cycles_token);
    printf("on-chip memory  BRAM36 %ld of %ld, URAM %ld of %ld (SSMU: BRAM %ld, URAM %ld)\n", rs->bram, p->bram, rs->uram, p->uram,
           rs->bram_ssmu, rs->uram_ssmu);
    const char *v = lm_hw_resource_violation(rs, p);
    printf("logic estimate  LUT %ldk of %ldk, FF %ldk of %ldk, DSP %ld of %ld%s%s\n", rs->lut / 1000, p->lut / 1000,
           rs->ff / 1000, p->ff / 1000, rs->dsp, p->dsp, *v ? "  DOES NOT FIT: " : "", v);
    printf("energy          %.3f J/token = %.2f tokens/J at %.2f W (static %.2f W, logic %.3f J, DRAM %.3f J per token)\n",
           e->total_j, e->tokens_per_j, e->watts, e->static_w, e->logic_j, e->dram_j);
    (void)f;
}

static json_object *design_json(const lm_hw_design *d) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "cip", json_object_new_int(d->cip));
    json_object_object_add(o, "cop", json_object_new_int(d->cop));
    json_object_object_add(o, "ssmu_lanes", json_object_new_int(d->ssmu_lanes));
    json_object_object_add(o, "n_p", json_object_new_int(d->n_p));
    json_object_object_add(o, "p_p", json_object_new_int(d->p_p));
    json_object_object_add(o, "conv_lanes", json_object_new_int(d->conv_lanes));
    json_object_object_add(o, "norm_lanes", json_object_new_int(d->norm_lanes));
    json_object_object_add(o, "htu_width", json_object_new_int(d->htu_width));
    json_object_object_add(o, "mem_channels", json_object_new_int(d->mem_channels));
    json_object_object_add(o, "port_bits", json_object_new_int(d->port_bits));
    json_object_object_add(o, "state_buffers", json_object_new_int(d->state_buffers));
    json_object_object_add(o, "wbits", json_object_new_int(d->wbits));
    json_object_object_add(o, "reorder", json_object_new_boolean(d->reorder));
    json_object_object_add(o, "tiling", json_object_new_boolean(d->tiling));
    return o;
}

static json_object *resources_json(const lm_hw_resources *rs) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "lut", json_object_new_int64(rs->lut));
    json_object_object_add(o, "ff", json_object_new_int64(rs->ff));
    json_object_object_add(o, "dsp", json_object_new_int64(rs->dsp));
    json_object_object_add(o, "bram", json_object_new_int64(rs->bram));
    json_object_object_add(o, "uram", json_object_new_int64(rs->uram));
    json_object_object_add(o, "bram_ssmu", json_object_new_int64(rs->bram_ssmu));
    json_object_object_add(o, "uram_ssmu", json_object_new_int64(rs->uram_ssmu));
    return o;
}

static void print_json(const lm_hw_platform *p, const lm_hw_design *d, const char *cfg, const lm_hw_result *r,
                       const lm_hw_result *ri, const lm_hw_resources *rs, const lm_hw_energy *e) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "platform", json_object_new_string(p->name));
    json_object_object_add(o, "config", json_object_new_string(cfg));
    json_object_object_add(o, "design", design_json(d));
    json_object_object_add(o, "tokens_per_s", json_object_new_double(r->tokens_per_s));
    json_object_object_add(o, "cycles_token", json_object_new_double(r->cycles_token));
    json_object_object_add(o, "cycles_layer", json_object_new_double(r->cycles_layer));
    json_object_object_add(o, "cycles_layer0", json_object_new_double(r->cycles_layer0));
    json_object_object_add(o, "cycles_lm_head", json_object_new_double(r->cycles_head));
    json_object_object_add(o, "bytes_token", json_object_new_double(r->bytes_token));
    json_object_object_add(o, "bandwidth_achieved", json_object_new_double(r->bytes_token / r->seconds_token));
    json_object_object_add(o, "bandwidth_achievable", json_object_new_double(r->bw_achievable));
    json_object_object_add(o, "bandwidth_peak", json_object_new_double(r->bw_peak));
    json_object *u = json_object_new_object();
    for (int i = 0; i < HW_N_UNITS; i++) {
        json_object *s = json_object_new_object();
        json_object_object_add(s, "busy", json_object_new_double(r->unit[i].busy / r->cycles_token));
        json_object_object_add(s, "wait_mem", json_object_new_double(r->unit[i].stall_mem / r->cycles_token));
        json_object_object_add(s, "wait_dep", json_object_new_double(r->unit[i].stall_dep / r->cycles_token));
        json_object_object_add(s, "out_full", json_object_new_double(r->unit[i].stall_full / r->cycles_token));
        json_object_object_add(u, lm_hw_unit_names[i], s);
    }
    json_object_object_add(o, "units", u);
    json_object_object_add(o, "mmu_utilization", json_object_new_double(r->unit[HW_U_MMU].busy / r->cycles_token));
    json_object_object_add(o, "mmu_occupancy",
                           json_object_new_double((r->unit[HW_U_MMU].busy + r->unit[HW_U_MMU].stall_mem) / r->cycles_token));
    json_object *ci = json_object_new_object();
    json_object_object_add(ci, "cycles_token", json_object_new_double(ri->cycles_token));
    json_object_object_add(ci, "cycles_layer", json_object_new_double(ri->cycles_layer));
    json_object_object_add(ci, "mmu_utilization", json_object_new_double(ri->unit[HW_U_MMU].busy / ri->cycles_token));
    json_object_object_add(o, "compute_only", ci);
    json_object_object_add(o, "resources", resources_json(rs));
    json_object_object_add(o, "fits", json_object_new_boolean(!*lm_hw_resource_violation(rs, p)));
    json_object *en = json_object_new_object();
    json_object_object_add(en, "joules_per_token", json_object_new_double(e->total_j));
    json_object_object_add(en, "tokens_per_joule", json_object_new_double(e->tokens_per_j));
    json_object_object_add(en, "watts", json_object_new_double(e->watts));
    json_object_object_add(en, "dram_joules", json_object_new_double(e->dram_j));
    json_object_object_add(en, "logic_joules", json_object_new_double(e->logic_j));
    json_object_object_add(en, "ops", json_object_new_double(e->ops));
    json_object_object_add(o, "energy", en);
    puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
    json_object_put(o);
}

static int run_explore(const lm_hw_platform *p, const lm_config *c, const char *cfg, int wbits, int json) {
    enum { N_BEST = 5 };
    lm_hw_point best[N_BEST];
    int found;
    long n_eval, n_sim;
    if (lm_hw_explore(best, N_BEST, &found, &n_eval, &n_sim, p, c, wbits) != LM_OK) return cli_error("%s", lm_last_error());
    double bytes = c->n_layer * (lm_hw_bytes_layer_weights(c, wbits) + lm_hw_bytes_layer_state(c)) + lm_hw_bytes_lm_head(c, wbits);
    double peak = p->mem_channels * p->mem_channel_bits / 8.0 * p->mem_mtps * 1e6;
    if (json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "platform", json_object_new_string(p->name));
        json_object_object_add(o, "config", json_object_new_string(cfg));
        json_object_object_add(o, "designs_evaluated", json_object_new_int64(n_eval));
        json_object_object_add(o, "designs_simulated", json_object_new_int64(n_sim));
        json_object_object_add(o, "roofline_peak_tokens_per_s", json_object_new_double(peak / bytes));
        json_object *a = json_object_new_array();
        for (int i = 0; i < found; i++) {
            json_object *b = json_object_new_object();
            json_object_object_add(b, "design", design_json(&best[i].design));
            json_object_object_add(b, "resources", resources_json(&best[i].res));
            json_object_object_add(b, "tokens_per_s", json_object_new_double(best[i].tokens_per_s));
            json_object_object_add(b, "bound_tokens_per_s", json_object_new_double(best[i].bound_tokens_per_s));
            json_object_object_add(b, "limit", json_object_new_string(best[i].limit));
            json_object_array_add(a, b);
        }
        json_object_object_add(o, "best", a);
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
        json_object_put(o);
        return 0;
    }
    printf("explore %s on %s, W%d: %ld designs in the grid, %ld simulated; HBM/DDR roofline at peak %.1f tok/s (%.3f GB/token)\n",
           cfg, p->name, wbits, n_eval, n_sim, peak / bytes, bytes / 1e9);
    printf("%4s %4s %4s %5s %5s %4s %3s %3s %7s %6s %5s %5s %5s %5s  %s\n", "CIP", "COP", "MACs", "lanes", "tile", "wide", "ch",
           "st", "tok/s", "kLUT", "kFF", "DSP", "BRAM", "URAM", "limit");
    for (int i = 0; i < found; i++) {
        const lm_hw_design *d = &best[i].design;
        const lm_hw_resources *r = &best[i].res;
        char tile[16];
        snprintf(tile, sizeof tile, "%dx%d", d->n_p, d->p_p);
        printf("%4d %4d %4d %5d %5s %4d %3d %3d %7.1f %6ld %5ld %5ld %5ld %5ld  %s\n", d->cip, d->cop, d->cip * d->cop, d->ssmu_lanes,
               tile, d->htu_width, d->mem_channels, d->state_buffers, best[i].tokens_per_s, r->lut / 1000, r->ff / 1000, r->dsp,
               r->bram, r->uram, best[i].limit);
    }
    return 0;
}

static int run_sim(int argc, char **argv) {
    const char *platform = NULL, *cfg = NULL, *svg = NULL;
    int wbits = 4, no_reorder = 0, no_tiling = 0, json = 0, explore = 0, exact = 0;
    const cli_opt opts[] = {
        {NULL, "--platform", CLI_STRING, &platform, 0, 0}, {NULL, "--config", CLI_STRING, &cfg, 0, 0},
        {NULL, "--wbits", CLI_INT, &wbits, 4, 8}, {NULL, "--no-reorder", CLI_FLAG, &no_reorder, 0, 0},
        {NULL, "--no-tiling", CLI_FLAG, &no_tiling, 0, 0}, {NULL, "--json", CLI_FLAG, &json, 0, 0},
        {NULL, "--svg", CLI_STRING, &svg, 0, 0}, {NULL, "--explore", CLI_FLAG, &explore, 0, 0},
        {NULL, "--exact", CLI_FLAG, &exact, 0, 0},
    };
    if (cli_parse("sim", argc, argv, opts, CLI_COUNT(opts))) return 1;
    if (!platform) return cli_error("sim: --platform vck190|u280|FILE is required (see 'lightmamba help sim')");
    if (!cfg) return cli_error("sim: --config mamba2-130m..mamba2-2.7b|MODEL is required (see 'lightmamba help sim')");
    if (wbits != 4 && wbits != 8) return cli_error("sim: --wbits must be 4 or 8, not %d", wbits);
    lm_hw_platform p;
    lm_config c;
    if (lm_hw_platform_load(&p, platform) != LM_OK) return cli_error("%s", lm_last_error());
    if (lm_hw_model_load(&c, cfg) != LM_OK) return cli_error("%s", lm_last_error());
    if (explore) {
        if (svg || no_reorder || no_tiling || exact) return cli_error("sim: --explore takes only --platform, --config, --wbits, --json");
        return run_explore(&p, &c, cfg, wbits, json);
    }
    lm_hw_design d = p.design;
    d.wbits = d.abits = wbits;
    d.reorder = !no_reorder;
    d.tiling = !no_tiling;
    lm_hw_result r, ri;
    if (lm_hw_simulate(&ri, &p, &d, &c, exact, LM_HW_IDEAL_MEMORY) != LM_OK) return cli_error("%s", lm_last_error());
    if (lm_hw_simulate(&r, &p, &d, &c, exact, svg ? LM_HW_TRACE : 0) != LM_OK) return cli_error("%s", lm_last_error());
    lm_hw_resources rs;
    lm_hw_estimate_resources(&rs, &p, &d, &c);
    lm_hw_energy e;
    lm_hw_estimate_energy(&e, &p, &d, &c, &r);
    if (svg && lm_hw_write_svg(svg, &r, &p, &d, &c) != LM_OK) {
        lm_hw_result_free(&r);
        return cli_error("%s", lm_last_error());
    }
    if (json) print_json(&p, &d, cfg, &r, &ri, &rs, &e);
    else print_text(&p, &d, &c, cfg, &r, &ri, &rs, &e);
    lm_hw_result_free(&r);
    return 0;
}

const lm_command cmd_sim = {
    "sim", run_sim, "cycle-level simulation of the LightMamba accelerator (tokens/s, utilization, resources, energy)",
    "usage: lightmamba sim --platform vck190|u280|FILE --config mamba2-2.7b|MODEL [--wbits 4|8] [--no-reorder]\n"
    "                      [--no-tiling] [--json] [--svg FILE] [--exact]\n"
    "       lightmamba sim --explore --platform u280 --config mamba2-2.7b [--wbits 4|8] [--json]\n"
    "  --platform P    vck190, u280 (hw/platforms/P.json; $LM_HW_PLATFORMS overrides the folder) or a platform JSON file\n"
    "  --config C      mamba2-130m, mamba2-370m, mamba2-780m, mamba2-1.3b, mamba2-2.7b, or a model directory / config.json\n"
    "  --wbits 4|8     W4A4 (default) or W8A8\n"
    "  --no-reorder    in_proj emits [z|x|B|C|dt] in natural order: the SSM waits for all of in_proj\n"
    "  --no-tiling     SSM intermediates as whole tensors, the SSM ops one after another (no fusion)\n"
    "  --svg FILE      the per-unit timeline of one steady-state layer\n"
    "  --exact         simulate every layer instead of extrapolating the steady-state period\n"
    "  --explore       search parallelism and tiling that fit the platform; print the best designs\n"
    "Prints tokens/s, cycles per layer, per-unit utilization and stalls, bytes per token and bandwidth,\n"
    "the compute time (the same design with memory that never stalls),\n"
    "on-chip memory (BRAM/URAM), a LUT/FF/DSP estimate and energy per token (models in hw/README.md).\n"};
