/* Offline weight transforms: a private float copy of a model, the LightMamba rotation fused into
 * the weights, and SmoothQuant's per-channel smoothing folded into the norms. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "quant/transform.h"

/* *dst <- an owned copy of n floats of src (NULL stays NULL). */
static lm_status own_copy(lm_model *m, const float *src, size_t n, const float **dst) {
    *dst = NULL;
    if (!src) return LM_OK;
    float *p;
    LM_TRY(lm_model_own(m, n * sizeof *p, (void **)&p));
    memcpy(p, src, n * sizeof *p);
    *dst = p;
    return LM_OK;
}

static lm_status clone_linear(lm_model *m, const lm_linear *src, lm_linear *dst) {
    if (src->kind != LM_LINEAR_F32) return lm_fail(LM_ERR_ARG, "the model is already quantized");
    *dst = *src;
    LM_TRY(own_copy(m, src->w, (size_t)src->rows * src->cols, &dst->w));
    return own_copy(m, src->bias, (size_t)src->rows, &dst->bias);
}

static lm_status clone_into(lm_model *m, const lm_model *src) {
    const lm_config *c = &src->cfg;
    const size_t D = (size_t)c->d_model, DI = (size_t)c->d_inner, H = (size_t)c->n_heads,
                 CD = DI + 2 * (size_t)c->n_groups * c->d_state;
    m->cfg = *c;
    if (src->tokenizer_path && !(m->tokenizer_path = strdup(src->tokenizer_path)))
        return lm_fail(LM_ERR_NOMEM, "out of memory");
    m->tokenizer_json = src->tokenizer_json; /* in src's map, which outlives the clone */
    m->tokenizer_json_len = src->tokenizer_json_len;
    LM_TRY(own_copy(m, src->embedding, (size_t)c->vocab_size * D, &m->embedding));
    LM_TRY(own_copy(m, src->norm_f, D, &m->norm_f));
    if (c->tie_embeddings)
        m->lm_head = (lm_linear){.kind = LM_LINEAR_F32, .rows = c->vocab_size, .cols = c->d_model, .w = m->embedding};
    else
        LM_TRY(clone_linear(m, &src->lm_head, &m->lm_head));
    LM_TRY(lm_calloc(&m->layers, (size_t)c->n_layer, sizeof *m->layers, "layers"));
    for (int i = 0; i < c->n_layer; i++) {
        const lm_layer *s = &src->layers[i];
        lm_layer *d = &m->layers[i];
        LM_TRY(own_copy(m, s->norm, D, &d->norm));
        LM_TRY(clone_linear(m, &s->in_proj, &d->in_proj));
        LM_TRY(own_copy(m, s->conv_w, CD * (size_t)c->d_conv, &d->conv_w));
        LM_TRY(own_copy(m, s->conv_b, CD, &d->conv_b));
        LM_TRY(own_copy(m, s->dt_bias, H, &d->dt_bias));
        LM_TRY(own_copy(m, s->A, H, &d->A));
        LM_TRY(own_copy(m, s->D, H, &d->D));
        LM_TRY(own_copy(m, s->gnorm, DI, &d->gnorm));
        LM_TRY(clone_linear(m, &s->out_proj, &d->out_proj));
    }
    return LM_OK;
}

lm_status lm_model_clone_f32(lm_model **out, const lm_model *src) {
    *out = NULL;
    if (src->quant.method != LM_QUANT_NONE || src->rot_inner) return lm_fail(LM_ERR_ARG, "the model is already quantized");
    lm_model *m;
    LM_TRY(lm_calloc(&m, 1, sizeof *m, "model"));
    lm_status s = clone_into(m, src);
    if (s) {
        lm_model_free(m);
        return s;
    }
    *out = m;
    return LM_OK;
}

/* W [rows, cols] <- W diag(g): column j scaled by g[j]. */
static void scale_columns(float *W, int rows, int cols, const float *g) {
    for (int o = 0; o < rows; o++)
        for (int j = 0; j < cols; j++) W[(size_t)o * cols + j] *= g[j];
}

/* W [rows, cols] <- R W: every column rotated (through the transpose, so the transform runs on rows). */
static lm_status rotate_columns(float *W, int rows, int cols, const lm_hadamard *R) {
    float *T = malloc((size_t)rows * cols * sizeof *T);
    if (!T) return lm_fail(LM_ERR_NOMEM, "out of memory rotating a %d x %d matrix", rows, cols);
    for (int o = 0; o < rows; o++)
        for (int j = 0; j < cols; j++) T[(size_t)j * rows + o] = W[(size_t)o * cols + j];
    lm_hadamard_rotate(R, T, cols);
    for (int o = 0; o < rows; o++)
        for (int j = 0; j < cols; j++) W[(size_t)o * cols + j] = T[(size_t)j * rows + o];
    free(T);
    return LM_OK;
}

static float *writable(const float *p) { return (float *)p; } /* the clone owns every tensor */

static void set_ones(const float *p, int n) {
    for (int i = 0; i < n; i++) writable(p)[i] = 1.0f;
}

/* The residual stream rotated by R (d_model): embedding, in_proj (norm weight folded), out_proj's
 * output side, lm_head (norm_f folded; untied from the embedding unless norm_f == 1). */
static lm_status rotate_residual(lm_model *m, const lm_hadamard *R) {
    const lm_config *c = &m->cfg;
    const int D = c->d_model, DI = c->d_inner, V = c->vocab_size;
    int norm_f_ones = 1;
    for (int j = 0; j < D; j++) norm_f_ones &= m->norm_f[j] == 1.0f;
    if (c->tie_embeddings && !norm_f_ones) {
        LM_TRY(own_copy(m, m->embedding, (size_t)V * D, &m->lm_head.w));
        m->cfg.tie_embeddings = 0;
    }
    if (!m->cfg.tie_embeddings) { /* lm_head <- W diag(g_f) R^T */
        scale_columns(writable(m->lm_head.w), V, D, m->norm_f);
        lm_hadamard_rotate(R, writable(m->lm_head.w), V);
    }
    set_ones(m->norm_f, D);
    lm_hadamard_rotate(R, writable(m->embedding), V); /* also lm_head when still tied */
    for (int i = 0; i < c->n_layer; i++) {
        lm_layer *L = &m->layers[i];
        /* in_proj <- W diag(g) R^T: each row w_o becomes R (g . w_o). */
        scale_columns(writable(L->in_proj.w), L->in_proj.rows, D, L->norm);
        lm_hadamard_rotate(R, writable(L->in_proj.w), L->in_proj.rows);
        set_ones(L->norm, D);
        /* out_proj <- R W: every column through R. */
        LM_TRY(rotate_columns(writable(L->out_proj.w), D, DI, R));
        if (L->out_proj.bias) lm_hadamard_rotate(R, writable(L->out_proj.bias), 1);
    }
    return LM_OK;
}

lm_status lm_fuse_rotation_parts(lm_model *m, int residual, int online) {
    if (residual) {
        lm_hadamard *R = NULL;
        LM_TRY(lm_hadamard_init(&R, m->cfg.d_model));
        lm_status s = rotate_residual(m, R);
        lm_hadamard_free(R);
        LM_TRY(s);
    }
    if (online) { /* out_proj <- W R_i^T: each row through R_i; R_i y computed online */
        LM_TRY(lm_hadamard_init(&m->rot_inner, m->cfg.d_inner));
        for (int i = 0; i < m->cfg.n_layer; i++)
            lm_hadamard_rotate(m->rot_inner, writable(m->layers[i].out_proj.w), m->cfg.d_model);
        m->quant.rotated = 1;
    }
    return LM_OK;
}

lm_status lm_fuse_rotation(lm_model *m) { return lm_fuse_rotation_parts(m, 1, 1); }

void lm_fuse_smoothing(lm_model *m, int layer, lm_site site, const float *act_max, float alpha) {
    lm_layer *L = &m->layers[layer];
    lm_linear *lin = site == LM_SITE_IN_PROJ ? &L->in_proj : &L->out_proj;
    float *norm = writable(site == LM_SITE_IN_PROJ ? L->norm : L->gnorm);
    float *W = writable(lin->w);
    const int O = lin->rows, K = lin->cols;
    for (int j = 0; j < K; j++) {
        float wmax = 0;
        for (int o = 0; o < O; o++) wmax = fmaxf(wmax, fabsf(W[(size_t)o * K + j]));
        float s = act_max[j] > 0 && wmax > 0 ? powf(act_max[j], alpha) / powf(wmax, 1.0f - alpha) : 1.0f;
        if (!(s > 0 && isfinite(s))) s = 1.0f;
        norm[j] /= s;
        for (int o = 0; o < O; o++) W[(size_t)o * K + j] *= s;
    }
}
