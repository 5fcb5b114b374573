/* The published Mamba2 configurations by name (docs/mamba2.md section 1), shared by the
 * accelerator simulator (lightmamba sim) and the synthetic-model writer (lightmamba synth).
 * Every state-spaces/mamba2-* checkpoint has head_dim 64, d_state 128, one group, a conv of
 * width 4 with bias, no projection biases, RMSNorm eps 1e-5, dt unclamped, and a tied
 * embedding of 50288 rows (50277 tokens padded to a multiple of 16). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"
#include "format/config.h"

static const struct {
    const char *name;
    int d_model, n_layer, d_inner, n_heads;
} named_configs[] = {
    {"mamba2-130m", 768, 24, 1536, 24},   {"mamba2-370m", 1024, 48, 2048, 32}, {"mamba2-780m", 1536, 48, 3072, 48},
    {"mamba2-1.3b", 2048, 48, 4096, 64}, {"mamba2-2.7b", 2560, 64, 5120, 80},
};

lm_status lm_config_named(lm_config *c, const char *name_or_path) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < sizeof named_configs / sizeof named_configs[0]; i++) {
        if (strcmp(name_or_path, named_configs[i].name)) continue;
        c->d_model = named_configs[i].d_model;
        c->n_layer = named_configs[i].n_layer;
        c->d_inner = named_configs[i].d_inner;
        c->n_heads = named_configs[i].n_heads;
        c->head_dim = 64;
        c->d_state = 128;
        c->n_groups = 1;
        c->d_conv = 4;
        c->vocab_size = 50288;
        c->eps = 1e-5f;
        c->dt_limit_min = 0.0f;
        c->dt_limit_max = INFINITY;
        c->tie_embeddings = 1;
        c->conv_bias = 1;
        return LM_OK;
    }
    if (lm_is_directory(name_or_path)) {
        char *p = lm_path_join(name_or_path, "config.json");
        if (!p) return lm_fail(LM_ERR_NOMEM, "out of memory");
        lm_status st = lm_config_load(c, p);
        free(p);
        return st;
    }
    if (!lm_file_exists(name_or_path))
        return lm_fail(LM_ERR_ARG, "unknown model config '%s' (mamba2-130m, -370m, -780m, -1.3b, -2.7b, a config.json or a model directory)",
                       name_or_path);
    return lm_config_load(c, name_or_path);
}
