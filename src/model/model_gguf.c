/* Mamba2 models in llama.cpp's GGUF layout (convert_hf_to_gguf.py's Mamba2Model, llama-model.cpp's
 * LLM_ARCH_MAMBA2), read and written. docs/checkpoint-formats.md has the full mapping:
 *
 *   mamba2.embedding_length d_model     .block_count n_layer      .ssm.conv_kernel d_conv
 *   mamba2.ssm.inner_size d_inner       .ssm.state_size d_state   .ssm.time_step_rank n_heads
 *   mamba2.ssm.group_count n_groups     .attention.layer_norm_rms_epsilon eps
 *
 *   GGUF tensor (ne, ggml order)            checkpoint tensor (PyTorch shape)
 *   token_embd.weight [d_model, vocab]      backbone.embeddings.weight [vocab, d_model]
 *   blk.N.ssm_conv1d.weight [d_conv, C]     ...mixer.conv1d.weight [C, 1, d_conv] (squeezed)
 *   blk.N.ssm_a [1, H]                      A = -exp(A_log) [H] (stored as A itself)
 *   blk.N.ssm_d [1, H]                      ...mixer.D [H]
 *   blk.N.ssm_norm.weight [d_inner/G, G]    ...mixer.norm.weight [d_inner] (one row per group)
 *   output.weight, absent when tied         lm_head.weight */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"
#include "format/config.h"
#include "format/gguf.h"
#include "model/layout.h"
#include "model/model.h"
#include "model/model_load.h"
#include "tokenizer/tokenizer.h"

/* llama.cpp's name of each tensor of the layout (model/layout.h); %d is the layer. It has no
 * in/out projection biases. */
static const char *const gguf_names[] = {
    [LM_T_EMBEDDING] = "token_embd.weight",      [LM_T_NORM] = "blk.%d.attn_norm.weight",
    [LM_T_IN_PROJ] = "blk.%d.ssm_in.weight",     [LM_T_CONV_W] = "blk.%d.ssm_conv1d.weight",
    [LM_T_CONV_B] = "blk.%d.ssm_conv1d.bias",    [LM_T_DT_BIAS] = "blk.%d.ssm_dt.bias",
    [LM_T_A_LOG] = "blk.%d.ssm_a",               [LM_T_D] = "blk.%d.ssm_d",
    [LM_T_GNORM] = "blk.%d.ssm_norm.weight",     [LM_T_OUT_PROJ] = "blk.%d.ssm_out.weight",
    [LM_T_NORM_F] = "output_norm.weight",        [LM_T_LM_HEAD] = "output.weight",
};

static void gguf_name(const lm_tensor_desc *t, char *buf, size_t size) { snprintf(buf, size, gguf_names[t->role], t->layer); }

/* The ggml shape (ne, contiguous dimension first) of a layout tensor; returns n_dims. */
static int gguf_ne(const lm_config *c, const lm_tensor_desc *t, int64_t ne[2]) {
    if (t->role == LM_T_A_LOG || t->role == LM_T_D) { /* [1, H]: llama.cpp broadcasts them as Mamba-1 did */
        ne[0] = 1, ne[1] = t->rows;
    } else if (t->role == LM_T_GNORM) {               /* one row per group */
        ne[0] = t->rows / c->n_groups, ne[1] = c->n_groups;
    } else if (t->cols) {                              /* matrices and the squeezed conv [W, CD] */
        ne[0] = t->cols, ne[1] = t->rows;
    } else {
        ne[0] = t->rows, ne[1] = 0;
        return 1;
    }
    return 2;
}

typedef struct {
    const lm_gguf *g;
    const lm_config *c;
    const char *what;
    lm_st_tensor *out;        /* [g->n_tensors] */
    int n;
    unsigned char *consumed;  /* [g->n_tensors] */
} gather;

/* One layout tensor from the GGUF, under its checkpoint name and PyTorch shape (A under
 * ...mixer.A: the file holds A = -exp(A_log), which the loader takes as it is). */
static lm_status gather_tensor(void *ctx, const lm_tensor_desc *t) {
    gather *G = ctx;
    char name[96];
    int64_t ne[2];
    gguf_name(t, name, sizeof name);
    int n_dims = gguf_ne(G->c, t, ne);
    const lm_gguf_tensor *gt = lm_gguf_find_tensor(G->g, name);
    if (!gt) return lm_fail(LM_ERR_FORMAT, "%s: tensor %s is missing", G->what, name);
    if (gt->type != LM_GGML_F32 && gt->type != LM_GGML_F16 && gt->type != LM_GGML_BF16 && gt->type != LM_GGML_Q8_0)
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: tensor %s has type %s (supported: F32, F16, BF16, Q8_0)", G->what,
                       name, lm_ggml_type_name(gt->type));
    if (gt->n_dims != n_dims || gt->ne[0] != ne[0] || (n_dims == 2 && gt->ne[1] != ne[1]))
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s has ne [%lld, %lld], the config needs [%lld, %lld]", G->what,
                       name, (long long)gt->ne[0], (long long)(gt->n_dims > 1 ? gt->ne[1] : 0), (long long)ne[0],
                       (long long)(n_dims > 1 ? ne[1] : 0));
    static const lm_dtype dtypes[] = {[LM_GGML_F32] = LM_DTYPE_F32, [LM_GGML_F16] = LM_DTYPE_F16,
                                      [LM_GGML_Q8_0] = LM_DTYPE_Q8_0, [LM_GGML_BF16] = LM_DTYPE_BF16};
    lm_st_tensor *o = &G->out[G->n];
    if (t->role == LM_T_A_LOG) snprintf(name, sizeof name, "backbone.layers.%d.mixer.A", t->layer);
    if (!(o->name = strdup(t->role == LM_T_A_LOG ? name : t->name))) return lm_fail(LM_ERR_NOMEM, "out of memory");
    G->n++;
    G->consumed[gt - G->g->tensors] = 1;
    o->dtype = dtypes[gt->type];
    o->numel = (size_t)gt->numel;
    o->nbytes = gt->nbytes;
    o->data = gt->data;
    o->ndim = t->role == LM_T_CONV_W ? 3 : t->cols ? 2 : 1;
    o->shape[0] = t->rows;
    o->shape[1] = t->role == LM_T_CONV_W ? 1 : t->cols;
    o->shape[2] = t->cols;
    return LM_OK;
}

/* The tensors the layout names, then the file's others under their own names (unused). */
static lm_status gather_all(gather *G, const lm_config *c) {
    LM_TRY(lm_layout_walk(c, gather_tensor, G));
    for (size_t i = 0; i < G->g->n_tensors; i++) {
        const lm_gguf_tensor *gt = &G->g->tensors[i];
        if (G->consumed[i]) continue;
        lm_st_tensor *o = &G->out[G->n];
        if (!(o->name = strdup(gt->name))) return lm_fail(LM_ERR_NOMEM, "out of memory");
        G->n++;
        o->dtype = LM_DTYPE_F32; /* for the table only: never converted */
        o->numel = (size_t)gt->numel;
        o->nbytes = gt->nbytes;
        o->ndim = gt->n_dims;
        for (int d = 0; d < gt->n_dims; d++) o->shape[d] = gt->ne[gt->n_dims - 1 - d];
    }
    return LM_OK;
}

static lm_status get_dim(const lm_gguf *g, const char *key, int64_t lo, int64_t hi, int *out, const char *what) {
    int64_t v;
    LM_TRY(lm_gguf_get_int(g, key, &v, what));
    if (v < lo || v > hi)
        return lm_fail(LM_ERR_FORMAT, "%s: metadata %s = %lld is out of range [%lld, %lld]", what, key, (long long)v,
                       (long long)lo, (long long)hi);
    *out = (int)v;
    return LM_OK;
}

/* lm_config from the mamba2.* keys; vocab_size and tying from the tensors. */
static lm_status gguf_config(const lm_gguf *g, lm_config *c, const char *what) {
    const char *arch;
    size_t len;
    LM_TRY(lm_gguf_get_string(g, "general.architecture", &arch, &len, what));
    if (len != 6 || memcmp(arch, "mamba2", 6))
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: general.architecture is \"%.*s\", only mamba2 is supported", what,
                       (int)(len < 32 ? len : 32), arch);
    const int64_t max = LM_CONFIG_MAX_DIM;
    memset(c, 0, sizeof *c);
    LM_TRY(get_dim(g, "mamba2.embedding_length", 1, max, &c->d_model, what));
    LM_TRY(get_dim(g, "mamba2.block_count", 1, max, &c->n_layer, what));
    LM_TRY(get_dim(g, "mamba2.ssm.conv_kernel", 1, 1024, &c->d_conv, what));
    LM_TRY(get_dim(g, "mamba2.ssm.inner_size", 1, max, &c->d_inner, what));
    LM_TRY(get_dim(g, "mamba2.ssm.state_size", 1, max, &c->d_state, what));
    LM_TRY(get_dim(g, "mamba2.ssm.time_step_rank", 1, max, &c->n_heads, what));
    c->n_groups = 1; /* llama.cpp reads the group count as optional */
    if (lm_gguf_find(g, "mamba2.ssm.group_count")) LM_TRY(get_dim(g, "mamba2.ssm.group_count", 1, max, &c->n_groups, what));
    double eps;
    LM_TRY(lm_gguf_get_float(g, "mamba2.attention.layer_norm_rms_epsilon", &eps, what));
    if (!(eps >= 1e-30 && eps <= 1e30))
        return lm_fail(LM_ERR_FORMAT, "%s: mamba2.attention.layer_norm_rms_epsilon = %g is not a valid epsilon", what, eps);
    c->eps = (float)eps;
    if (c->d_inner % c->n_heads)
        return lm_fail(LM_ERR_FORMAT, "%s: mamba2.ssm.inner_size %d is not a multiple of the %d heads (time_step_rank)",
                       what, c->d_inner, c->n_heads);
    c->head_dim = c->d_inner / c->n_heads;
    const lm_gguf_tensor *emb = lm_gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2 || emb->ne[1] < 1 || emb->ne[1] > (1 << 24))
        return lm_fail(LM_ERR_FORMAT, "%s: tensor token_embd.weight is missing or not [d_model, vocab]", what);
    c->vocab_size = (int)emb->ne[1];
    c->tie_embeddings = !lm_gguf_find_tensor(g, "output.weight");
    c->conv_bias = lm_gguf_find_tensor(g, "blk.0.ssm_conv1d.bias") != NULL;
    c->dt_limit_max = INFINITY; /* llama.cpp has no time_step_limit */
    return lm_config_check(c, what);
}

/* The GGUF's own tokenizer, as tokenizer.json bytes the model owns (none: the bundled one). */
static lm_status gguf_tokenizer(lm_model *m, const lm_gguf *g, const char *what) {
    if (!lm_gguf_find(g, "tokenizer.ggml.tokens")) return LM_OK;
    char *json;
    size_t len;
    LM_TRY(lm_gguf_tokenizer_json(g, what, &json, &len));
    LM_TRY(lm_model_adopt(m, json));
    if (!(m->tokenizer_path = strdup(what))) return lm_fail(LM_ERR_NOMEM, "out of memory");
    m->tokenizer_json = json;
    m->tokenizer_json_len = len;
    return LM_OK;
}

lm_status lm_model_load_gguf_memory(lm_model *m, const unsigned char *data, size_t size, int embedded_tokenizer,
                                    const char *what) {
    lm_gguf g;
    LM_TRY(lm_gguf_parse(&g, data, size, what));
    gather G = {&g, &m->cfg, what, NULL, 0, NULL};
    lm_status s = gguf_config(&g, &m->cfg, what);
    if (!s) s = lm_calloc(&G.out, g.n_tensors ? g.n_tensors : 1, sizeof *G.out, "tensors");
    if (!s) s = lm_calloc(&G.consumed, g.n_tensors ? g.n_tensors : 1, 1, "tensors");
    if (!s) s = gather_all(&G, &m->cfg);
    if (!s) s = lm_model_take_weights(m, G.out, G.n, what);
    for (int i = 0; i < G.n; i++) free(G.out[i].name);
    free(G.out);
    free(G.consumed);
    if (!s && embedded_tokenizer) s = gguf_tokenizer(m, &g, what);
    lm_gguf_free(&g);
    return s;
}

/* A tokenizer.json beside the file wins over the GGUF's own (which is then not read). */
lm_status lm_model_load_gguf(lm_model *m, const char *path) {
    char *dir = lm_parent_dir(path), *beside = dir ? lm_path_join(dir, "tokenizer.json") : NULL;
    free(dir);
    if (!beside) return lm_fail(LM_ERR_NOMEM, "out of memory");
    if (lm_file_exists(beside))
        m->tokenizer_path = beside;
    else
        free(beside);
    LM_TRY(lm_map_file(path, &m->file));
    return lm_model_load_gguf_memory(m, m->file.data, m->file.size, !m->tokenizer_path, path);
}

/* ---- writing ---- */

typedef struct {
    char name[96];
    uint32_t type;
    int64_t ne[2];
    int n_dims;
    const float *data;
} out_tensor;

typedef struct {
    const lm_model *m;
    lm_gguf_weights weights;
    out_tensor *list;  /* [3 + 11 n_layer]: at most every tensor of the layout */
    int n;
} out_list;

/* Matrices take the requested type; Q8_0 needs rows of whole 32-blocks, else F16 (as llama.cpp's converter). */
static uint32_t matrix_type(lm_gguf_weights w, int64_t row) {
    if (w == LM_GGUF_WEIGHTS_F32) return LM_GGML_F32;
    return w == LM_GGUF_WEIGHTS_Q8_0 && row % 32 == 0 ? LM_GGML_Q8_0 : LM_GGML_F16;
}

static lm_status list_tensor(void *ctx, const lm_tensor_desc *t) {
    out_list *L = ctx;
    out_tensor *o = &L->list[L->n++];
    gguf_name(t, o->name, sizeof o->name);
    o->n_dims = gguf_ne(&L->m->cfg, t, o->ne);
    o->type = lm_tensor_is_linear(t->role) || t->role == LM_T_EMBEDDING ? matrix_type(L->weights, o->ne[0]) : LM_GGML_F32;
    /* The model is only read: lm_tensor_slot/linear name fields, they do not change them. */
    lm_model *m = (lm_model *)L->m;
    const lm_linear *lin = lm_tensor_linear(m, t);
    o->data = lin ? lin->w : *lm_tensor_slot(m, t); /* A_LOG's slot holds A, as llama.cpp stores it */
    return LM_OK;
}

static lm_status check_float_model(const lm_model *m) {
    const lm_config *c = &m->cfg;
    if (m->quant.method != LM_QUANT_NONE || !m->embedding)
        return lm_fail(LM_ERR_UNSUPPORTED, "convert to GGUF needs a float model, not a quantized one");
    if (c->proj_bias)
        return lm_fail(LM_ERR_UNSUPPORTED, "the model has in_proj/out_proj biases, which llama.cpp's mamba2 lacks");
    if (!c->conv_bias) return lm_fail(LM_ERR_UNSUPPORTED, "the model has no conv1d bias, which llama.cpp's mamba2 requires");
    if (c->dt_limit_min != 0.0f || !isinf(c->dt_limit_max))
        return lm_fail(LM_ERR_UNSUPPORTED, "the model has time_step_limit [%g, %g], which llama.cpp's mamba2 lacks",
                       c->dt_limit_min, c->dt_limit_max);
    return LM_OK;
}

static lm_status write_tensors(lm_gguf_writer *w, lm_atomic_file *af, const out_tensor *list, int n) {
    for (int i = 0; i < n; i++) {
        const out_tensor *t = &list[i];
        size_t numel = (size_t)t->ne[0] * (size_t)(t->n_dims == 2 ? t->ne[1] : 1);
        size_t nbytes = lm_ggml_nbytes(t->type, numel);
        unsigned char *buf = malloc(nbytes ? nbytes : 1);
        if (!buf) return lm_fail(LM_ERR_NOMEM, "out of memory converting %s", t->name);
        lm_ggml_from_f32(buf, t->type, t->data, numel);
        lm_status s = lm_gguf_write_tensor(w, af, buf, nbytes);
        free(buf);
        LM_TRY(s);
    }
    return LM_OK;
}

static void add_metadata(lm_gguf_writer *w, const lm_config *c, lm_gguf_weights weights) {
    static const uint32_t file_type[] = {[LM_GGUF_WEIGHTS_F32] = 0, [LM_GGUF_WEIGHTS_F16] = 1,
                                         [LM_GGUF_WEIGHTS_Q8_0] = 7}; /* llama.cpp's LLAMA_FTYPE_* */
    lm_gguf_add_string(w, "general.architecture", "mamba2", 6);
    lm_gguf_add_u32(w, "general.file_type", file_type[weights]);
    if (weights == LM_GGUF_WEIGHTS_Q8_0) lm_gguf_add_u32(w, "general.quantization_version", 2);
    lm_gguf_add_u32(w, "mamba2.context_length", 1u << 20); /* no limit; the value llama.cpp's converter writes */
    lm_gguf_add_u32(w, "mamba2.embedding_length", (uint32_t)c->d_model);
    lm_gguf_add_u32(w, "mamba2.feed_forward_length", 0);
    lm_gguf_add_u32(w, "mamba2.attention.head_count", 0);
    lm_gguf_add_u32(w, "mamba2.block_count", (uint32_t)c->n_layer);
    lm_gguf_add_u32(w, "mamba2.ssm.conv_kernel", (uint32_t)c->d_conv);
    lm_gguf_add_u32(w, "mamba2.ssm.inner_size", (uint32_t)c->d_inner);
    lm_gguf_add_u32(w, "mamba2.ssm.state_size", (uint32_t)c->d_state);
    lm_gguf_add_u32(w, "mamba2.ssm.time_step_rank", (uint32_t)c->n_heads);
    lm_gguf_add_u32(w, "mamba2.ssm.group_count", (uint32_t)c->n_groups);
    lm_gguf_add_f32(w, "mamba2.attention.layer_norm_rms_epsilon", c->eps);
}

lm_status lm_model_write_gguf(const lm_model *m, lm_gguf_weights weights, const char *path) {
    if (weights < LM_GGUF_WEIGHTS_F32 || weights > LM_GGUF_WEIGHTS_Q8_0)
        return lm_fail(LM_ERR_ARG, "unknown GGUF weight type %d", (int)weights);
    LM_TRY(check_float_model(m));
    const lm_config *c = &m->cfg;
    out_list L = {m, weights, NULL, 0};
    LM_TRY(lm_calloc(&L.list, 3 + 11 * (size_t)c->n_layer, sizeof *L.list, "GGUF tensor list"));
    lm_status s = lm_layout_walk(c, list_tensor, &L);
    out_tensor *list = L.list;
    int n = L.n;
    lm_gguf_writer w = {0};
    add_metadata(&w, c, weights);
    lm_tokenizer *tok = NULL;
    if (!s) s = lm_tokenizer_init_for_model(&tok, m);
    if (!s) s = lm_gguf_add_tokenizer(&w, tok, c->vocab_size);
    lm_tokenizer_free(tok);
    for (int i = 0; i < n; i++) lm_gguf_add_tensor(&w, list[i].name, list[i].type, list[i].n_dims, list[i].ne);
    lm_atomic_file af = {0};
    if (!s) s = lm_atomic_open(&af, path);
    if (!s) s = lm_gguf_write_header(&w, &af);
    if (!s) s = write_tensors(&w, &af, list, n);
    if (!s) s = lm_atomic_commit(&af);
    if (s) lm_atomic_abort(&af);
    lm_gguf_writer_free(&w);
    free(list);
    return s;
}
