/* Accelerator platform files (hw/platforms/NAME.json): lm_hw_platform_parse on arbitrary bytes.
 * A platform that parses has a finite, positive bandwidth; its own design is checked against a
 * model shape and, when it fits, its resources are estimated and (FUZZ_PLATFORM_SIMULATE, the
 * harness fuzz_platform_sim) it is simulated as `lightmamba sim --platform FILE` does: finite,
 * positive results. The shape is mamba2-tiny's cut to 2 layers, d_model 64, d_state 32 and 256
 * tokens, so that one simulation takes under a millisecond. */
#include <math.h>

#include "fuzz.h"
#include "sim/sim.h"

#ifndef FUZZ_PLATFORM_SIMULATE
#define FUZZ_PLATFORM_SIMULATE 0
#endif

static lm_config shape;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char path[4096];
    snprintf(path, sizeof path, "%s/models/mamba2-tiny/config.json", fuzz_root());
    FUZZ_ASSERT(lm_config_load(&shape, path) == LM_OK, "%s", lm_last_error());
    shape.n_layer = 2;
    shape.d_model = 64;
    shape.d_inner = 128;
    shape.n_heads = 2;
    shape.d_state = 32;
    shape.vocab_size = 256;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_hw_platform p;
    lm_status s = lm_hw_platform_parse(&p, (const char *)data, size, "platform.json");
    if (s != LM_OK) {
        fuzz_check_failure(s);
        return 0;
    }
    double bw = lm_hw_bandwidth(&p, &p.design);
    FUZZ_ASSERT(isfinite(bw) && bw > 0, "bandwidth %g", bw);
    fuzz_accepted++;
    if ((s = lm_hw_design_check(&p.design, &shape)) != LM_OK) {
        fuzz_check_failure(s);
        return 0;
    }
    lm_hw_resources res;
    lm_hw_estimate_resources(&res, &p, &p.design, &shape);
    FUZZ_ASSERT(res.lut >= 0 && res.ff >= 0 && res.dsp >= 0 && res.bram >= 0 && res.uram >= 0, "negative resources");
    lm_hw_resource_violation(&res, &p);
    if (!FUZZ_PLATFORM_SIMULATE) return 0;
    lm_hw_result r;
    if ((s = lm_hw_simulate(&r, &p, &p.design, &shape, 0, 0)) != LM_OK) {
        fuzz_check_failure(s);
        return 0;
    }
    FUZZ_ASSERT(isfinite(r.tokens_per_s) && r.tokens_per_s > 0, "tokens/s %g", r.tokens_per_s);
    lm_hw_energy e;
    lm_hw_estimate_energy(&e, &p, &p.design, &shape, &r);
    FUZZ_ASSERT(isfinite(e.total_j) && e.total_j >= 0, "energy %g J", e.total_j);
    lm_hw_result_free(&r);
    return 0;
}
