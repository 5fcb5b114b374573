/* The tensor table of a Mamba2 model (model/layout.h). */
#include "model/layout.h"

#include <stdio.h>

#include "common/error.h"
#include "common/file.h"

static lm_status emit(lm_tensor_fn fn, void *ctx, lm_tensor_role role, int layer, const char *name, int rows, int cols) {
    lm_tensor_desc t = {role, layer, "", rows, cols};
    snprintf(t.name, sizeof t.name, "%s", name);
    return fn(ctx, &t);
}

lm_status lm_layout_head(const lm_config *c, lm_tensor_fn fn, void *ctx) {
    return emit(fn, ctx, LM_T_EMBEDDING, -1, "backbone.embeddings.weight", c->vocab_size, c->d_model);
}

lm_status lm_layout_layer(const lm_config *c, int l, lm_tensor_fn fn, void *ctx) {
    const int D = c->d_model, DI = c->d_inner, H = c->n_heads, GN = c->n_groups * c->d_state;
    const int CD = DI + 2 * GN, E = 2 * DI + 2 * GN + H;
    const struct {
        lm_tensor_role role;
        const char *suffix;
        int rows, cols, present;
    } block[] = {
        {LM_T_NORM, "norm.weight", D, 0, 1},
        {LM_T_IN_PROJ, "mixer.in_proj.weight", E, D, 1},
        {LM_T_IN_PROJ_BIAS, "mixer.in_proj.bias", E, 0, c->proj_bias},
        {LM_T_CONV_W, "mixer.conv1d.weight", CD, c->d_conv, 1},
        {LM_T_CONV_B, "mixer.conv1d.bias", CD, 0, c->conv_bias},
        {LM_T_DT_BIAS, "mixer.dt_bias", H, 0, 1},
        {LM_T_A_LOG, "mixer.A_log", H, 0, 1},
        {LM_T_D, "mixer.D", H, 0, 1},
        {LM_T_GNORM, "mixer.norm.weight", DI, 0, 1},
        {LM_T_OUT_PROJ, "mixer.out_proj.weight", D, DI, 1},
        {LM_T_OUT_PROJ_BIAS, "mixer.out_proj.bias", D, 0, c->proj_bias},
    };
    for (size_t i = 0; i < sizeof block / sizeof block[0]; i++) {
        if (!block[i].present) continue;
        char name[96];
        snprintf(name, sizeof name, "backbone.layers.%d.%s", l, block[i].suffix);
        LM_TRY(emit(fn, ctx, block[i].role, l, name, block[i].rows, block[i].cols));
    }
    return LM_OK;
}

lm_status lm_layout_tail(const lm_config *c, lm_tensor_fn fn, void *ctx) {
    LM_TRY(emit(fn, ctx, LM_T_NORM_F, -1, "backbone.norm_f.weight", c->d_model, 0));
    if (c->tie_embeddings) return LM_OK;
    return emit(fn, ctx, LM_T_LM_HEAD, -1, "lm_head.weight", c->vocab_size, c->d_model);
}

lm_status lm_layout_walk(const lm_config *c, lm_tensor_fn fn, void *ctx) {
    LM_TRY(lm_layout_head(c, fn, ctx));
    for (int l = 0; l < c->n_layer; l++) LM_TRY(lm_layout_layer(c, l, fn, ctx));
    return lm_layout_tail(c, fn, ctx);
}

lm_status lm_layout_bind(lm_model *m, int n_tensors, const char *what, lm_tensor_fn bind, void *ctx) {
    const lm_config *c = &m->cfg;
    /* per layer: norm, in_proj, conv weight, dt_bias, A_log, D, gated norm, out_proj */
    const int64_t least = 2 + 8 * (int64_t)c->n_layer;
    if (n_tensors >= 0 && least > n_tensors)
        return lm_fail(LM_ERR_FORMAT, "%s: config n_layer %d needs at least %lld tensors, the file has %d", what,
                       c->n_layer, (long long)least, n_tensors);
    LM_TRY(lm_calloc(&m->layers, (size_t)c->n_layer, sizeof *m->layers, "layers"));
    LM_TRY(lm_layout_walk(c, bind, ctx));
    if (c->tie_embeddings)
        m->lm_head = (lm_linear){.kind = m->embedding_q.q ? LM_LINEAR_INT : m->embedding_f16 ? LM_LINEAR_F16 : LM_LINEAR_F32,
                                 .rows = c->vocab_size, .cols = c->d_model, .w = m->embedding, .w16 = m->embedding_f16,
                                 .q = m->embedding_q, .abits = LM_HEAD_ABITS};
    return LM_OK;
}

const float **lm_tensor_slot(lm_model *m, const lm_tensor_desc *t) {
    lm_layer *L = t->layer >= 0 ? &m->layers[t->layer] : NULL;
    switch (t->role) {
    case LM_T_EMBEDDING: return &m->embedding;
    case LM_T_NORM: return &L->norm;
    case LM_T_IN_PROJ_BIAS: return &L->in_proj.bias;
    case LM_T_CONV_W: return &L->conv_w;
    case LM_T_CONV_B: return &L->conv_b;
    case LM_T_DT_BIAS: return &L->dt_bias;
    case LM_T_A_LOG: return &L->A;
    case LM_T_D: return &L->D;
    case LM_T_GNORM: return &L->gnorm;
    case LM_T_OUT_PROJ_BIAS: return &L->out_proj.bias;
    case LM_T_NORM_F: return &m->norm_f;
    default: return NULL;
    }
}

lm_linear *lm_tensor_linear(lm_model *m, const lm_tensor_desc *t) {
    switch (t->role) {
    case LM_T_IN_PROJ: return &m->layers[t->layer].in_proj;
    case LM_T_OUT_PROJ: return &m->layers[t->layer].out_proj;
    case LM_T_LM_HEAD: return &m->lm_head;
    default: return NULL;
    }
}
