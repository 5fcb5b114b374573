/* The quantized model file (layout in docs/quantized-format.md): the model's side of it. The bytes
 * are a container (format/container.h: header, array table, 64-aligned data, CRC-32C, atomic
 * write); this file decides what goes in and checks what comes out: the header fields (config,
 * quantization settings, where the tokenizer.json bytes lie), the tensors of the layout
 * (model/layout.h) as the model holds them, and in SSM mode pot8 each layer's integer parameters.
 * The loader checks every value the kernels rely on (weight and exponent ranges, sites, tables)
 * before the model uses it. */
#include "model/qfile.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/half.h"
#include "format/config.h"
#include "format/container.h"
#include "model/layout.h"

/* The file's own header fields (after the container's common ones). */
enum { H_TOK_OFFSET = 40, H_TOK_BYTES = 48, H_CONFIG = 56, H_SETTINGS = 116 };
enum { N_CONFIG = LM_CONFIG_FIELDS, N_SETTINGS = 14 };

/* The settings as header fields; returns the format version they need. */
static uint32_t settings_fields(const lm_quant_settings *q, uint32_t f[N_SETTINGS]) {
    f[0] = (uint32_t)q->method;
    f[1] = (uint32_t)q->wbits;
    f[2] = (uint32_t)q->abits;
    f[3] = (uint32_t)q->rotated;
    f[4] = (uint32_t)q->gptq;
    f[5] = (uint32_t)q->ssm_mode;
    memcpy(&f[6], &q->alpha, 4);
    f[7] = (uint32_t)q->calib_samples;
    f[8] = (uint32_t)q->calib_len;
    /* f[9..13]: version 2; version 1 (our datapath, the hardware's activations, a float16 embedding
     * and lm_head) has them zero */
    if (!q->datapath && q->act_group == LM_ACT_GROUP && q->act_scale == LM_ACT_SCALE_POW2 && !q->head_bits &&
        !q->embedding_bits) {
        f[9] = f[10] = f[11] = f[12] = f[13] = 0;
        return LM_QFILE_VERSION_OURS;
    }
    f[9] = (uint32_t)q->datapath;
    f[10] = (uint32_t)q->act_group;
    f[11] = (uint32_t)q->act_scale;
    f[12] = (uint32_t)q->head_bits;
    f[13] = (uint32_t)q->embedding_bits;
    return LM_QFILE_VERSION;
}

/* A linear layer's name prefix ("backbone.layers.3.mixer.in_proj") from its weight's name. */
static void linear_prefix(const lm_tensor_desc *t, char *out, size_t n) {
    snprintf(out, n, "%.*s", (int)(strlen(t->name) - strlen(".weight")), t->name);
}

/* The four lookup tables of a layer, in the file's order. */
enum { N_LUTS = 4, LUT_PARAMS = 5 };
static lm_lut *int_lut(lm_int_layer *IL, int i) {
    lm_lut *t[N_LUTS] = {&IL->silu_xbc, &IL->silu_z, &IL->softplus, &IL->exp};
    return t[i];
}

#define SHAPE(...) (int)(sizeof((uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t)), (const uint64_t[]){__VA_ARGS__}

/* ======================= writer ======================= */

typedef struct {
    const lm_model *m;
    lm_ct_array *a;
    int n, cap;
    void **owned; /* converted copies (F16) and packed integer parameters */
    int n_owned;
    lm_status status;
} tensor_list;

static void list_add(tensor_list *L, const char *name, lm_ct_dtype dt, int ndim, const uint64_t *shape, const void *data) {
    if (L->status) return;
    if (L->n == L->cap) {
        int cap = L->cap ? 2 * L->cap : 64;
        lm_ct_array *g = realloc(L->a, (size_t)cap * sizeof *g);
        if (!g) {
            L->status = lm_fail(LM_ERR_NOMEM, "out of memory for the tensor table");
            return;
        }
        L->a = g;
        L->cap = cap;
    }
    L->status = lm_ct_array_set(&L->a[L->n++], name, dt, ndim, shape, data);
}

/* A buffer of n bytes owned by the list (freed with it); NULL after a failure. */
static void *list_own(tensor_list *L, size_t n) {
    if (L->status) return NULL;
    void **g = realloc(L->owned, ((size_t)L->n_owned + 1) * sizeof *g);
    void *p = calloc(n ? n : 1, 1);
    if (!g || !p) {
        free(p);
        if (g) L->owned = g;
        L->status = lm_fail(LM_ERR_NOMEM, "out of memory writing the model file");
        return NULL;
    }
    L->owned = g;
    L->owned[L->n_owned++] = p;
    return p;
}

/* A float tensor stored as F16: as held (h), or a converted copy of x. */
static void list_add_f16(tensor_list *L, const char *name, int ndim, const uint64_t *shape, const uint16_t *h,
                         const float *x) {
    if (!h) {
        const uint64_t n = lm_ct_nbytes(LM_CT_F16, ndim, shape) / 2;
        uint16_t *c = list_own(L, n * 2);
        if (!c) return;
        for (uint64_t i = 0; i < n; i++) c[i] = lm_f32_to_f16(x[i]);
        h = c;
    }
    list_add(L, name, LM_CT_F16, ndim, shape, h);
}

/* An integer matrix as prefix.qweight, prefix.scales, prefix.e0. */
static void list_add_qweight(tensor_list *L, const char *prefix, const lm_qweight *w) {
    char name[LM_CT_NAME_BYTES + 32];
    const uint64_t O = (uint64_t)w->rows, K = (uint64_t)w->cols;
    snprintf(name, sizeof name, "%s.qweight", prefix);
    list_add(L, name, w->wbits == 4 ? LM_CT_Q4 : LM_CT_Q8, SHAPE(O, K), w->q);
    snprintf(name, sizeof name, "%s.scales", prefix);
    list_add(L, name, LM_CT_U8, SHAPE(O, (uint64_t)lm_wgroups(w->cols)), w->scale);
    snprintf(name, sizeof name, "%s.e0", prefix);
    list_add(L, name, LM_CT_I8, SHAPE(O), w->e0);
}

static void list_add_linear(tensor_list *L, const char *prefix, const lm_linear *lin) {
    char name[LM_CT_NAME_BYTES + 32];
    const uint64_t O = (uint64_t)lin->rows, K = (uint64_t)lin->cols;
    if (lin->kind == LM_LINEAR_INT) {
        list_add_qweight(L, prefix, &lin->q);
    } else {
        snprintf(name, sizeof name, "%s.weight", prefix);
        list_add(L, name, LM_CT_F32, SHAPE(O, K), lin->w);
    }
    if (lin->bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        list_add(L, name, LM_CT_F32, SHAPE(O), lin->bias);
    }
}

/* SSM mode pot8: a layer's integer parameters (docs/quantized-format.md, "LightMamba*"). */
static void list_add_int_layer(tensor_list *L, int layer, const lm_int_layer *IL) {
    char p[LM_CT_NAME_BYTES], name[2 * LM_CT_NAME_BYTES];   /* list_add refuses names of LM_CT_NAME_BYTES or more */
    snprintf(p, sizeof p, "backbone.layers.%d.mixer.int", layer);
#define NAME(suffix) (snprintf(name, sizeof name, "%s.%s", p, suffix), name)
    const uint64_t C = (uint64_t)IL->C, H = (uint64_t)IL->H, Hg = (uint64_t)lm_pot_groups(IL->H);
    int32_t *sc = list_own(L, sizeof(int32_t) * LM_INT_SCALARS);
    int32_t *lp = list_own(L, sizeof(int32_t) * N_LUTS * LUT_PARAMS);
    int16_t *lv = list_own(L, sizeof(int16_t) * N_LUTS * LM_LUT_ENTRIES);
    uint8_t *ls = list_own(L, N_LUTS * LM_LUT_SEGMENTS);
    if (L->status) return;
    lm_int_layer_scalars(IL, sc);
    for (int i = 0; i < N_LUTS; i++) {
        const lm_lut *t = int_lut((lm_int_layer *)IL, i);
        const int32_t v[LUT_PARAMS] = {t->alpha, t->k, t->F_in, t->F_out, t->tail_identity};
        memcpy(lp + i * LUT_PARAMS, v, sizeof v);
        memcpy(lv + i * LM_LUT_ENTRIES, t->value, sizeof t->value);
        memcpy(ls + i * LM_LUT_SEGMENTS, t->shift, sizeof t->shift);
    }
    list_add(L, NAME("scalars"), LM_CT_I32, SHAPE(LM_INT_SCALARS), sc);
    list_add(L, NAME("norm.gamma"), LM_CT_I16, SHAPE((uint64_t)IL->D), IL->norm_gq);
    list_add(L, NAME("gnorm.gamma"), LM_CT_I16, SHAPE((uint64_t)IL->d_inner), IL->gnorm_gq);
    list_add(L, NAME("conv.weight"), LM_CT_I8, SHAPE(C, (uint64_t)IL->W), IL->conv_w);
    list_add(L, NAME("conv.weight_exp"), LM_CT_I8, SHAPE(C / 8, (uint64_t)IL->W), IL->conv_ew);
    if (L->m->cfg.conv_bias) {
        list_add(L, NAME("conv.bias"), LM_CT_I8, SHAPE(C), IL->conv_b);
        list_add(L, NAME("conv.bias_exp"), LM_CT_I8, SHAPE(C / 8), IL->conv_eb);
    }
    list_add(L, NAME("dt_bias"), LM_CT_I16, SHAPE(H), IL->dt_bq);
    list_add(L, NAME("dt_bias_exp"), LM_CT_I8, SHAPE(Hg), IL->dt_be);
    list_add(L, NAME("A"), LM_CT_I16, SHAPE(H), IL->A_q);
    list_add(L, NAME("A_exp"), LM_CT_I8, SHAPE(Hg), IL->A_e);
    list_add(L, NAME("D"), LM_CT_I16, SHAPE(H), IL->D_q);
    list_add(L, NAME("D_exp"), LM_CT_I8, SHAPE(Hg), IL->D_e);
    list_add(L, NAME("lut.params"), LM_CT_I32, SHAPE(N_LUTS, LUT_PARAMS), lp);
    list_add(L, NAME("lut.value"), LM_CT_I16, SHAPE(N_LUTS, LM_LUT_ENTRIES), lv);
    list_add(L, NAME("lut.shift"), LM_CT_U8, SHAPE(N_LUTS, LM_LUT_SEGMENTS), ls);
    /* the release's RMSNorm tables (format version 2): thresholds as int64 in two int32 words */
    const lm_rsqrt8 *r8[2] = {IL->norm_rsqrt8, IL->gnorm_rsqrt8};
    for (int k = 0; k < 2 && r8[0]; k++) {
        const char *norm = k ? "gnorm" : "norm";
        int32_t *alpha = list_own(L, sizeof(int32_t) * 2 * LM_RSQRT_TABLES);
        if (L->status) return;
        for (int t = 0; t < LM_RSQRT_TABLES; t++) {
            alpha[2 * t] = (int32_t)(uint32_t)r8[k]->alpha[t];
            alpha[2 * t + 1] = (int32_t)(uint32_t)((uint64_t)r8[k]->alpha[t] >> 32);
        }
        char sub[32];
        snprintf(sub, sizeof sub, "%s.rsqrt8.alpha", norm); list_add(L, NAME(sub), LM_CT_I32, SHAPE(LM_RSQRT_TABLES, 2), alpha);
        snprintf(sub, sizeof sub, "%s.rsqrt8.ld", norm); list_add(L, NAME(sub), LM_CT_U8, SHAPE(LM_RSQRT_TABLES), r8[k]->ld);
        snprintf(sub, sizeof sub, "%s.rsqrt8.off", norm); list_add(L, NAME(sub), LM_CT_U8, SHAPE(LM_RSQRT_TABLES), r8[k]->off);
        snprintf(sub, sizeof sub, "%s.rsqrt8.value", norm);
        list_add(L, NAME(sub), LM_CT_U8, SHAPE(LM_RSQRT_TABLES, LM_RSQRT_ENTRIES), r8[k]->value);
    }
#undef NAME
}

/* One tensor of the layout as the file stores it: the embedding and an untied lm_head in float16
 * (the checkpoints' own precision) or, with head_bits, as integer matrices (prefix.qweight,
 * .scales, .e0), in_proj/out_proj as the model holds them (with their biases), A = -exp(A_log)
 * itself (named A), the conv weight as [CD, W], the rest float32. */
static lm_status add_tensor(void *ctx, const lm_tensor_desc *t) {
    tensor_list *L = ctx;
    const lm_model *m = L->m;
    const uint64_t rows = (uint64_t)t->rows, cols = (uint64_t)t->cols;
    char name[sizeof t->name];
    switch (t->role) {
    case LM_T_EMBEDDING:
        if (m->embedding_q.q) {
            linear_prefix(t, name, sizeof name);
            list_add_qweight(L, name, &m->embedding_q);
        } else {
            list_add_f16(L, t->name, SHAPE(rows, cols), m->embedding_f16, m->embedding);
        }
        break;
    case LM_T_IN_PROJ: case LM_T_OUT_PROJ:
        linear_prefix(t, name, sizeof name);
        list_add_linear(L, name, lm_tensor_linear((lm_model *)m, t));
        break;
    case LM_T_IN_PROJ_BIAS: case LM_T_OUT_PROJ_BIAS: break; /* with their linear layer */
    case LM_T_LM_HEAD:
        if (m->lm_head.kind == LM_LINEAR_INT) {
            linear_prefix(t, name, sizeof name);
            list_add_qweight(L, name, &m->lm_head.q);
        } else {
            list_add_f16(L, t->name, SHAPE(rows, cols), m->lm_head.w16, m->lm_head.w);
        }
        break;
    case LM_T_A_LOG:
        snprintf(name, sizeof name, "%.*s", (int)(strlen(t->name) - strlen("_log")), t->name);
        list_add(L, name, LM_CT_F32, SHAPE(rows), *lm_tensor_slot((lm_model *)m, t));
        break;
    default:
        if (cols) list_add(L, t->name, LM_CT_F32, SHAPE(rows, cols), *lm_tensor_slot((lm_model *)m, t));
        else list_add(L, t->name, LM_CT_F32, SHAPE(rows), *lm_tensor_slot((lm_model *)m, t));
        break;
    }
    return L->status;
}

lm_status lm_qfile_write(const char *path, const lm_model *m, const char *tokenizer_json, size_t tokenizer_len) {
    const lm_config *c = &m->cfg;
    /* the header's formats must say how the embedding and lm_head are stored, or no reader could bind them */
    const int hb = m->quant.head_bits, eb = m->quant.embedding_bits;
    if ((hb ? !(m->lm_head.kind == LM_LINEAR_INT && m->lm_head.q.wbits == hb) : m->lm_head.kind == LM_LINEAR_INT) ||
        (eb ? !(m->embedding_q.q && m->embedding_q.wbits == eb) : m->embedding_q.q != NULL) || (c->tie_embeddings && hb != eb))
        return lm_fail(LM_ERR_ARG, "the embedding and lm_head are not held as their formats %d, %d say", eb, hb);
    tensor_list L = {.m = m};
    lm_status s = lm_layout_head(c, add_tensor, &L);
    for (int l = 0; l < c->n_layer && !s; l++) {
        s = lm_layout_layer(c, l, add_tensor, &L);
        if (!s && m->int_layers) {
            list_add_int_layer(&L, l, &m->int_layers[l]);
            s = L.status;
        }
    }
    if (!s) s = lm_layout_tail(c, add_tensor, &L);
    if (!s) {
        lm_ct_writer w = {.arrays = L.a, .n = L.n, .blob = tokenizer_json, .blob_bytes = tokenizer_len};
        lm_ct_layout(&w);
        lm_put_u64(w.header + H_TOK_OFFSET, w.blob_offset);
        lm_put_u64(w.header + H_TOK_BYTES, tokenizer_len);
        uint32_t cf[N_CONFIG], sf[N_SETTINGS];
        lm_config_fields(c, cf);
        const uint32_t version = settings_fields(&m->quant, sf);
        for (int i = 0; i < N_CONFIG; i++) lm_put_u32(w.header + H_CONFIG + 4 * i, cf[i]);
        for (int i = 0; i < N_SETTINGS; i++) lm_put_u32(w.header + H_SETTINGS + 4 * i, sf[i]);
        s = lm_ct_write(&w, LM_QFILE_MAGIC, version, path);
    }
    for (int i = 0; i < L.n_owned; i++) free(L.owned[i]);
    free(L.owned);
    free(L.a);
    return s;
}

/* ======================= loader ======================= */

static lm_status check_config(const char *path, const lm_config *c) {
    const int *ints[] = {&c->d_model, &c->n_layer, &c->d_inner, &c->n_heads, &c->head_dim,
                         &c->d_state, &c->n_groups, &c->d_conv, &c->vocab_size};
    static const char *const names[] = {"d_model", "n_layer", "d_inner", "n_heads", "head_dim",
                                        "d_state", "n_groups", "d_conv", "vocab_size"};
    for (int i = 0; i < 9; i++)
        if (*ints[i] < 1 || *ints[i] > (1 << 24))
            return lm_fail(LM_ERR_FORMAT, "%s: config %s = %d is out of range", path, names[i], *ints[i]);
    if ((int64_t)c->n_heads * c->head_dim != c->d_inner)
        return lm_fail(LM_ERR_FORMAT, "%s: config d_inner %d != n_heads %d x head_dim %d", path, c->d_inner, c->n_heads,
                       c->head_dim);
    if (c->n_heads % c->n_groups || c->d_inner % c->n_groups)
        return lm_fail(LM_ERR_FORMAT, "%s: config n_groups %d does not divide n_heads %d", path, c->n_groups, c->n_heads);
    if (c->d_conv > 64) return lm_fail(LM_ERR_FORMAT, "%s: config d_conv %d is out of range", path, c->d_conv);
    if (!(c->eps > 0 && isfinite(c->eps)) || !(c->dt_limit_min >= 0 && c->dt_limit_max >= c->dt_limit_min))
        return lm_fail(LM_ERR_FORMAT, "%s: config eps %g or time_step_limit [%g, %g] is invalid", path, c->eps,
                       c->dt_limit_min, c->dt_limit_max);
    if ((unsigned)c->tie_embeddings > 1 || (unsigned)c->conv_bias > 1 || (unsigned)c->proj_bias > 1)
        return lm_fail(LM_ERR_FORMAT, "%s: config flags must be 0 or 1", path);
    return LM_OK;
}

static lm_status check_settings(const char *path, const lm_quant_settings *q, uint32_t version) {
    if (q->method < LM_QUANT_RTN || q->method > LM_QUANT_LIGHTMAMBA)
        return lm_fail(LM_ERR_FORMAT, "%s: unknown quantization method %d", path, (int)q->method);
    if ((q->wbits != 4 && q->wbits != 8) || (q->abits != 4 && q->abits != 8))
        return lm_fail(LM_ERR_FORMAT, "%s: weight/activation bits %d/%d (must be 4 or 8)", path, q->wbits, q->abits);
    if (q->wbits == 8 && q->abits == 4)
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: W8A4 is not supported by the integer kernels", path);
    if ((unsigned)q->rotated > 1 || (unsigned)q->gptq > 1 || !isfinite(q->alpha) || q->calib_samples < 0 ||
        q->calib_len < 0)
        return lm_fail(LM_ERR_FORMAT, "%s: invalid quantization settings", path);
    if (q->ssm_mode != LM_SSM_FLOAT && q->ssm_mode != LM_SSM_POT8)
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: SSM mode %d is not supported by this build", path, (int)q->ssm_mode);
    /* Version 1 holds only our datapath and the hardware's activation format (the fields reserved,
     * zero); version 2 records the release datapath's flags (pot8 only) and any activation format. */
    if (version == LM_QFILE_VERSION_OURS ? q->datapath != 0
                                         : q->datapath & ~LM_DP_RELEASE || (q->datapath && q->ssm_mode != LM_SSM_POT8))
        return lm_fail(LM_ERR_FORMAT, "%s: datapath flags 0x%x do not fit format version %" PRIu32 " (SSM mode %d)", path,
                       (unsigned)q->datapath, version, (int)q->ssm_mode);
    if ((q->head_bits != 0 && q->head_bits != 8 && q->head_bits != 4) ||
        (q->embedding_bits != 0 && q->embedding_bits != 8 && q->embedding_bits != 4))
        return lm_fail(LM_ERR_FORMAT, "%s: lm_head format %d, embedding format %d (each 0 = float16, 8 or 4 bits)", path,
                       q->head_bits, q->embedding_bits);
    if (!lm_act_format_valid(q->act_group, q->act_scale) ||
        (q->ssm_mode == LM_SSM_POT8 && (q->act_group != LM_ACT_GROUP || q->act_scale != LM_ACT_SCALE_POW2)))
        return lm_fail(LM_ERR_FORMAT, "%s: activation group %d, scale type %d (the group must be 8, 16, 32, 64, 128 or 0 "
                       "= per token, the scale 0 = power of two or 1 = real; SSM mode pot8 takes only 8, 0)",
                       path, q->act_group, (int)q->act_scale);
    return LM_OK;
}

typedef struct {
    lm_model *m;
    const char *path;
    lm_ct_array *t;
    int n;
    unsigned char *used;
} qloader;

static lm_status parse_table(qloader *L, const lm_ct_reader *r) {
    LM_TRY(lm_calloc(&L->t, r->n ? r->n : 1, sizeof *L->t, "tensor table"));
    LM_TRY(lm_calloc(&L->used, r->n ? r->n : 1, 1, "tensor table"));
    L->n = (int)r->n;
    for (uint32_t i = 0; i < r->n; i++) LM_TRY(lm_ct_entry(r, i, &L->t[i]));
    return LM_OK;
}

/* Appends a file tensor to the tensor table. */
static lm_status add_table_row(lm_model *m, const lm_ct_array *t, int used) {
    lm_tensor_info row = {.name = t->name, .dtype = lm_ct_dtype_name(t->dtype), .ndim = t->ndim, .nbytes = t->nbytes, .used = used};
    for (int d = 0; d < t->ndim; d++) row.shape[d] = (int64_t)t->shape[d];
    return lm_model_add_tensor_info(m, &row);
}

static const lm_ct_array *find(const qloader *L, const char *name) {
    for (int i = 0; i < L->n; i++)
        if (!strcmp(L->t[i].name, name)) return &L->t[i];
    return NULL;
}

/* The tensor `name` with one of the dtypes in `dtypes` (a bit mask) and exactly this shape. */
static lm_status take(qloader *L, const char *name, int optional, unsigned dtypes, int ndim, const uint64_t *shape,
                      const lm_ct_array **out) {
    *out = NULL;
    const lm_ct_array *t = find(L, name);
    if (!t) return optional ? LM_OK : lm_fail(LM_ERR_FORMAT, "%s: tensor %s is missing", L->path, name);
    int same = t->ndim == ndim && (dtypes >> t->dtype & 1);
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same) return lm_fail(LM_ERR_FORMAT, "%s: tensor %s has the wrong dtype or shape for the config", L->path, name);
    L->used[t - L->t] = 1;
    LM_TRY(add_table_row(L->m, t, 1));
    *out = t;
    return LM_OK;
}

/* A float tensor: F32 is used in place from the map, F16 converted into owned memory. */
static lm_status take_float(qloader *L, const char *name, int ndim, const uint64_t *shape, const float **out) {
    const lm_ct_array *t;
    *out = NULL;
    LM_TRY(take(L, name, 0, 1u << LM_CT_F32 | 1u << LM_CT_F16, ndim, shape, &t));
    if (t->dtype == LM_CT_F32) {
        *out = t->data;
        return LM_OK;
    }
    size_t n = (size_t)t->nbytes / 2;
    float *f = NULL;
    LM_TRY(lm_model_own(L->m, n * sizeof *f, (void **)&f));
    const unsigned char *h = t->data;
    for (size_t i = 0; i < n; i++) {
        uint16_t v;
        memcpy(&v, h + 2 * i, 2);
        f[i] = lm_f16_to_f32(v);
    }
    *out = f;
    return LM_OK;
}

/* The embedding or the lm_head, used in place from the map as stored: F16 in *h (for the float16
 * kernels: half the bytes to read of float32), F32 in *f; the other pointer is NULL. */
static lm_status take_f16_or_f32(qloader *L, const char *name, int ndim, const uint64_t *shape, const float **f,
                                 const uint16_t **h) {
    const lm_ct_array *t;
    *f = NULL;
    *h = NULL;
    LM_TRY(take(L, name, 0, 1u << LM_CT_F32 | 1u << LM_CT_F16, ndim, shape, &t));
    if (t->dtype == LM_CT_F16)
        *h = t->data;
    else
        *f = t->data;
    return LM_OK;
}

/* Weights outside [-qmax, qmax] (the nibble -8, the byte -128) break the kernels' contract. */
static int weights_in_range(const lm_ct_array *t) {
    const unsigned char *p = t->data;
    for (uint64_t i = 0; i < t->nbytes; i++)
        if (t->dtype == LM_CT_Q4 ? ((p[i] & 15) == 8 || (p[i] >> 4) == 8) : p[i] == 0x80) return 0;
    return 1;
}

/* An integer matrix of wbits (prefix.qweight, .scales, .e0), used in place from the map: weights in
 * [-qmax, qmax], scale exponents in [0, 7]. */
static lm_status take_qweight(qloader *L, const char *prefix, int wbits, int rows, int cols, lm_qweight *w) {
    char name[LM_CT_NAME_BYTES + 32];
    const uint64_t O = (uint64_t)rows, K = (uint64_t)cols;
    const lm_ct_array *q, *sc, *e0;
    snprintf(name, sizeof name, "%s.qweight", prefix);
    LM_TRY(take(L, name, 0, wbits == 4 ? 1u << LM_CT_Q4 : 1u << LM_CT_Q8, SHAPE(O, K), &q));
    if (!weights_in_range(q))
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s holds a weight outside [-%d, %d]", L->path, name, lm_qmax(wbits),
                       lm_qmax(wbits));
    snprintf(name, sizeof name, "%s.scales", prefix);
    LM_TRY(take(L, name, 0, 1u << LM_CT_U8, SHAPE(O, (uint64_t)lm_wgroups(cols)), &sc));
    snprintf(name, sizeof name, "%s.e0", prefix);
    LM_TRY(take(L, name, 0, 1u << LM_CT_I8, SHAPE(O), &e0));
    *w = (lm_qweight){.rows = rows, .cols = cols, .wbits = wbits, .q = q->data,
                      .row_stride = wbits == 4 ? (K + 1) / 2 : K, .scale = sc->data, .e0 = e0->data};
    /* Exponents beyond the contract's range would shift out of the accumulator. */
    const unsigned char *s = sc->data;
    for (uint64_t i = 0; i < sc->nbytes; i++)
        if ((s[i] & 15) > LM_WEXP_MAX || (s[i] >> 4) > LM_WEXP_MAX)
            return lm_fail(LM_ERR_FORMAT, "%s: tensor %s.scales has an exponent above %d", L->path, prefix, LM_WEXP_MAX);
    return LM_OK;
}

/* A linear layer: integer (qweight, scales, e0) of wbits with abits inputs when wbits is 4 or 8,
 * else (wbits 0) float16 or float32 (weight); the bias when use_bias, for in_proj and out_proj
 * (`biased`) only. */
static lm_status take_linear(qloader *L, const char *prefix, int wbits, int abits, int biased, int rows, int cols,
                             lm_linear *lin) {
    char name[LM_CT_NAME_BYTES + 32];
    const uint64_t O = (uint64_t)rows;
    lin->rows = rows;
    lin->cols = cols;
    if (!wbits) {
        snprintf(name, sizeof name, "%s.weight", prefix);
        LM_TRY(take_f16_or_f32(L, name, SHAPE(O, (uint64_t)cols), &lin->w, &lin->w16));
        lin->kind = lin->w16 ? LM_LINEAR_F16 : LM_LINEAR_F32;
        return LM_OK;
    }
    LM_TRY(take_qweight(L, prefix, wbits, rows, cols, &lin->q));
    lin->kind = LM_LINEAR_INT;
    lin->abits = abits;
    if (!biased || !L->m->cfg.proj_bias) return LM_OK; /* use_bias: in_proj and out_proj only */
    snprintf(name, sizeof name, "%s.bias", prefix);
    return take_float(L, name, SHAPE(O), &lin->bias);
}

/* ---- SSM mode pot8: the integer parameters of layer i ---- */

/* Every element of an int8/int16 tensor within [-lim, lim]. */
static int ints_within(const lm_ct_array *t, int lim) {
    const uint64_t n = t->nbytes / lm_ct_dtype_size(t->dtype);
    for (uint64_t i = 0; i < n; i++) {
        int v;
        if (t->dtype == LM_CT_I16) {
            int16_t x;
            memcpy(&x, (const unsigned char *)t->data + 2 * i, 2);
            v = x;
        } else {
            v = ((const int8_t *)t->data)[i];
        }
        if (v < -lim || v > lim) return 0;
    }
    return 1;
}

static int site_ok(int32_t F) { return F >= -8 && F <= 30; }

/* An integer tensor of the layer: dtype, exact shape and (for weights) the value range. */
static lm_status take_int(qloader *L, const char *p, const char *suffix, lm_ct_dtype dt, int lim, int ndim,
                          const uint64_t *shape, const void **out) {
    char name[LM_CT_NAME_BYTES + 32];
    const lm_ct_array *t;
    snprintf(name, sizeof name, "%s.%s", p, suffix);
    LM_TRY(take(L, name, 0, 1u << dt, ndim, shape, &t));
    if (lim && !ints_within(t, lim))
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s holds a value outside [-%d, %d]", L->path, name, lim, lim);
    *out = t->data;
    return LM_OK;
}

/* The release's RMSNorm tables of both norms (LM_DP_NORM8), copied into blocks the model owns:
 * thresholds increasing and below 2^62, bin widths below 2^62, output shifts <= 40. */
static lm_status bind_rsqrt8(qloader *L, const char *p, lm_int_layer *IL) {
    for (int k = 0; k < 2; k++) {
        const char *norm = k ? "gnorm" : "norm";
        char sub[32];
        const void *va, *vl, *vo, *vv;
        snprintf(sub, sizeof sub, "%s.rsqrt8.alpha", norm); LM_TRY(take_int(L, p, sub, LM_CT_I32, 0, SHAPE(LM_RSQRT_TABLES, 2), &va));
        snprintf(sub, sizeof sub, "%s.rsqrt8.ld", norm); LM_TRY(take_int(L, p, sub, LM_CT_U8, 0, SHAPE(LM_RSQRT_TABLES), &vl));
        snprintf(sub, sizeof sub, "%s.rsqrt8.off", norm); LM_TRY(take_int(L, p, sub, LM_CT_U8, 0, SHAPE(LM_RSQRT_TABLES), &vo));
        snprintf(sub, sizeof sub, "%s.rsqrt8.value", norm);
        LM_TRY(take_int(L, p, sub, LM_CT_U8, 0, SHAPE(LM_RSQRT_TABLES, LM_RSQRT_ENTRIES), &vv));
        lm_rsqrt8 *t;
        LM_TRY(lm_model_own(L->m, sizeof *t, (void **)&t));
        const int32_t *a = va;
        for (int j = 0; j < LM_RSQRT_TABLES; j++) {
            t->alpha[j] = (int64_t)((uint64_t)(uint32_t)a[2 * j] | (uint64_t)(uint32_t)a[2 * j + 1] << 32);
            t->ld[j] = ((const uint8_t *)vl)[j];
            t->off[j] = ((const uint8_t *)vo)[j];
            if (t->alpha[j] < 0 || t->alpha[j] >= ((int64_t)1 << 62) || (j && t->alpha[j] <= t->alpha[j - 1]) ||
                t->ld[j] > 61 || t->off[j] > 40)
                return lm_fail(LM_ERR_FORMAT, "%s: %s.%s.rsqrt8 table %d is inconsistent (threshold, bin width or shift)",
                               L->path, p, norm, j);
        }
        memcpy(t->value, vv, sizeof t->value);
        if (k) IL->gnorm.rsqrt8 = IL->gnorm_rsqrt8 = t;
        else IL->norm.rsqrt8 = IL->norm_rsqrt8 = t;
    }
    return LM_OK;
}

static lm_status bind_int_layer(qloader *L, int i, lm_int_layer *IL) {
    lm_model *m = L->m;
    const lm_config *c = &m->cfg;
    const lm_layer *ly = &m->layers[i];
    const int di = c->d_inner, H = c->n_heads, P = c->head_dim, N = c->d_state, G = c->n_groups, W = c->d_conv;
    const int C = di + 2 * G * N, E = 2 * di + 2 * G * N + H, D = c->d_model;
    const uint64_t Hg = (uint64_t)lm_pot_groups(H);
    char p[LM_CT_NAME_BYTES];
    snprintf(p, sizeof p, "backbone.layers.%d.mixer.int", i);
    if (P % 8 || N % 8 || D % 8 || di % (8 * G))
        return lm_fail(LM_ERR_FORMAT, "%s: SSM mode pot8 needs head_dim, d_state, d_model and d_inner/groups in multiples of 8",
                       L->path);
    const int32_t *sc, *lp;
    const int16_t *lv;
    const uint8_t *ls;
    const void *v;
    memset(IL, 0, sizeof *IL);
    const int dp = m->quant.datapath, wlim = dp & LM_DP_QRULE ? 1 : 0;   /* the release's -2^(b-1) */
    *IL = (lm_int_layer){.D = D, .d_inner = di, .H = H, .P = P, .N = N, .G = G, .W = W, .C = C, .E = E, .dp = dp,
                         .eps = c->eps, .in_proj = &ly->in_proj.q, .out_proj = &ly->out_proj.q};
    LM_TRY(take_int(L, p, "scalars", LM_CT_I32, 0, SHAPE(LM_INT_SCALARS), &v)); sc = v;
    for (int k = LM_SC_F_IP; k <= LM_SC_F_G; k++)
        if (!site_ok(sc[k])) return lm_fail(LM_ERR_FORMAT, "%s: %s.scalars[%d] = %d is not a site in [-8, 30]", L->path, p, k, sc[k]);
    const uint64_t eps1 = (uint32_t)sc[LM_SC_NORM_EPS_LO] | (uint64_t)(uint32_t)sc[LM_SC_NORM_EPS_HI] << 32, eps2 = (uint32_t)sc[LM_SC_GNORM_EPS_LO] | (uint64_t)(uint32_t)sc[LM_SC_GNORM_EPS_HI] << 32;
    const int rot_m = m->rot_inner ? lm_hadamard_base(m->rot_inner) : 0;
    if (sc[LM_SC_DT_LO] < 0 || sc[LM_SC_DT_HI] < sc[LM_SC_DT_LO] || !site_ok(sc[LM_SC_NORM_F_OUT]) || !site_ok(sc[LM_SC_GNORM_F_OUT]) || sc[LM_SC_NORM_E_GAMMA] < -64 || sc[LM_SC_NORM_E_GAMMA] > 64 ||
        sc[LM_SC_GNORM_E_GAMMA] < -64 || sc[LM_SC_GNORM_E_GAMMA] > 64 || eps1 > (1ull << 62) || eps2 > (1ull << 62) || sc[LM_SC_ABITS] != m->quant.abits ||
        sc[LM_SC_ROT_M] != rot_m || (rot_m && !site_ok(sc[LM_SC_F_ROT])))
        return lm_fail(LM_ERR_FORMAT, "%s: %s.scalars are inconsistent (time step limits, norm sites, abits or rotation)",
                       L->path, p);
    IL->abits = sc[LM_SC_ABITS];
    IL->F_ip = sc[LM_SC_F_IP]; IL->F_u = sc[LM_SC_F_U]; IL->F_zs = sc[LM_SC_F_ZS]; IL->F_dt = sc[LM_SC_F_DT]; IL->F_dA = sc[LM_SC_F_DA]; IL->F_dB = sc[LM_SC_F_DB];
    IL->F_h = sc[LM_SC_F_H]; IL->F_y = sc[LM_SC_F_Y]; IL->F_g = sc[LM_SC_F_G]; IL->dt_lo = sc[LM_SC_DT_LO]; IL->dt_hi = sc[LM_SC_DT_HI];
    IL->rot_m = rot_m;
    IL->F_rot = rot_m ? sc[LM_SC_F_ROT] : 0;
    IL->rot_Hm = rot_m ? lm_hadamard_base_matrix(m->rot_inner) : NULL;
    LM_TRY(take_int(L, p, "norm.gamma", LM_CT_I16, 4095, SHAPE((uint64_t)D), &v)); IL->norm_gq = (int16_t *)v;
    LM_TRY(take_int(L, p, "gnorm.gamma", LM_CT_I16, 4095, SHAPE((uint64_t)di), &v)); IL->gnorm_gq = (int16_t *)v;
    IL->norm = (lm_int_norm){.n = D, .group = D, .F_in = LM_RES_F, .F_out = sc[LM_SC_NORM_F_OUT], .e_gamma = sc[LM_SC_NORM_E_GAMMA], .eps_term = eps1,
                             .gq = IL->norm_gq};
    IL->gnorm = (lm_int_norm){.n = di, .group = di / G, .F_in = IL->F_g, .F_out = sc[LM_SC_GNORM_F_OUT], .e_gamma = sc[LM_SC_GNORM_E_GAMMA],
                              .eps_term = eps2, .gq = IL->gnorm_gq};
    if (dp & LM_DP_NORM8) LM_TRY(bind_rsqrt8(L, p, IL));
    LM_TRY(take_int(L, p, "conv.weight", LM_CT_I8, 127 + wlim, SHAPE((uint64_t)C, (uint64_t)W), &v)); IL->conv_w = (int8_t *)v;
    LM_TRY(take_int(L, p, "conv.weight_exp", LM_CT_I8, 0, SHAPE((uint64_t)C / 8, (uint64_t)W), &v)); IL->conv_ew = (int8_t *)v;
    if (c->conv_bias) {
        LM_TRY(take_int(L, p, "conv.bias", LM_CT_I8, 127 + wlim, SHAPE((uint64_t)C), &v)); IL->conv_b = (int8_t *)v;
        LM_TRY(take_int(L, p, "conv.bias_exp", LM_CT_I8, 0, SHAPE((uint64_t)C / 8), &v)); IL->conv_eb = (int8_t *)v;
    }
    IL->conv = (lm_int_conv){.C = C, .W = W, .F_in = IL->F_ip, .F_out = sc[LM_SC_F_CONV], .dp = dp, .w = IL->conv_w,
                             .ew = IL->conv_ew, .b = IL->conv_b, .eb = IL->conv_eb};
    LM_TRY(take_int(L, p, "dt_bias", LM_CT_I16, 32767, SHAPE((uint64_t)H), &v)); IL->dt_bq = (int16_t *)v;
    LM_TRY(take_int(L, p, "dt_bias_exp", LM_CT_I8, 0, SHAPE(Hg), &v)); IL->dt_be = (int8_t *)v;
    LM_TRY(take_int(L, p, "A", LM_CT_I16, 32767 + wlim, SHAPE((uint64_t)H), &v)); IL->A_q = (int16_t *)v;
    LM_TRY(take_int(L, p, "A_exp", LM_CT_I8, 0, SHAPE(Hg), &v)); IL->A_e = (int8_t *)v;
    LM_TRY(take_int(L, p, "D", LM_CT_I16, 127 + wlim, SHAPE((uint64_t)H), &v)); IL->D_q = (int16_t *)v;
    LM_TRY(take_int(L, p, "D_exp", LM_CT_I8, 0, SHAPE(Hg), &v)); IL->D_e = (int8_t *)v;
    LM_TRY(take_int(L, p, "lut.params", LM_CT_I32, 0, SHAPE(N_LUTS, LUT_PARAMS), &v)); lp = v;
    LM_TRY(take_int(L, p, "lut.value", LM_CT_I16, 0, SHAPE(N_LUTS, LM_LUT_ENTRIES), &v)); lv = v;
    LM_TRY(take_int(L, p, "lut.shift", LM_CT_U8, 0, SHAPE(N_LUTS, LM_LUT_SEGMENTS), &v)); ls = v;
    /* each table's sites are the block's: SiLU(conv) F_conv -> F_u, SiLU(z) F_ip -> F_zs,
     * softplus F_ip -> F_dt, exp F_dtA -> F_dA; exp alone has no identity tail (the release's none) */
    const int tail = !(dp & LM_DP_LUT8);
    const int32_t want[N_LUTS][3] = {{sc[LM_SC_F_CONV], sc[LM_SC_F_U], tail}, {sc[LM_SC_F_IP], sc[LM_SC_F_ZS], tail},
                                     {sc[LM_SC_F_IP], sc[LM_SC_F_DT], tail}, {sc[LM_SC_F_DTA], sc[LM_SC_F_DA], 0}};
    lm_lut *luts[N_LUTS] = {&IL->silu_xbc, &IL->silu_z, &IL->softplus, &IL->exp};
    for (int k = 0; k < N_LUTS; k++) {
        const int32_t *q = lp + k * LUT_PARAMS;
        if (q[1] < 0 || q[1] > 32 || q[2] != want[k][0] || q[3] != want[k][1] || q[4] != want[k][2])
            return lm_fail(LM_ERR_FORMAT, "%s: %s.lut.params of table %d do not fit the layer's sites", L->path, p, k);
        for (int j = 0; j < LM_LUT_SEGMENTS; j++)
            if (ls[k * LM_LUT_SEGMENTS + j] > LM_POT_SMAX)
                return lm_fail(LM_ERR_FORMAT, "%s: %s.lut.shift of table %d exceeds %d", L->path, p, k, LM_POT_SMAX);
        *luts[k] = (lm_lut){.alpha = q[0], .k = q[1], .F_in = q[2], .F_out = q[3], .tail_identity = q[4]};
        memcpy(luts[k]->value, lv + (size_t)k * LM_LUT_ENTRIES, sizeof luts[k]->value);
        memcpy(luts[k]->shift, ls + (size_t)k * LM_LUT_SEGMENTS, sizeof luts[k]->shift);
    }
    return LM_OK;
}

/* One tensor of the layout from the file into the model (add_tensor's inverse). */
static lm_status bind_tensor(void *ctx, const lm_tensor_desc *t) {
    qloader *L = ctx;
    lm_model *m = L->m;
    const uint64_t rows = (uint64_t)t->rows, cols = (uint64_t)t->cols;
    char name[sizeof t->name];
    switch (t->role) {
    case LM_T_EMBEDDING:
        if (!m->quant.embedding_bits) return take_f16_or_f32(L, t->name, SHAPE(rows, cols), &m->embedding, &m->embedding_f16);
        linear_prefix(t, name, sizeof name);
        return take_qweight(L, name, m->quant.embedding_bits, t->rows, t->cols, &m->embedding_q);
    case LM_T_IN_PROJ: case LM_T_OUT_PROJ:
        /* every in_proj and out_proj has the file's weight and activation bits */
        linear_prefix(t, name, sizeof name);
        return take_linear(L, name, m->quant.wbits, m->quant.abits, 1, t->rows, t->cols, lm_tensor_linear(m, t));
    case LM_T_IN_PROJ_BIAS: case LM_T_OUT_PROJ_BIAS: return LM_OK; /* with their linear layer */
    case LM_T_LM_HEAD:
        return take_linear(L, "lm_head", m->quant.head_bits, LM_HEAD_ABITS, 0, t->rows, t->cols, &m->lm_head);
    case LM_T_A_LOG:
        snprintf(name, sizeof name, "%.*s", (int)(strlen(t->name) - strlen("_log")), t->name);
        return take_float(L, name, SHAPE(rows), lm_tensor_slot(m, t));
    default:
        if (cols) return take_float(L, t->name, SHAPE(rows, cols), lm_tensor_slot(m, t));
        return take_float(L, t->name, SHAPE(rows), lm_tensor_slot(m, t));
    }
}

static lm_status bind_model(qloader *L) {
    lm_model *m = L->m;
    const lm_config *c = &m->cfg;
    LM_TRY(lm_layout_bind(m, L->n, L->path, bind_tensor, L));
    if (m->quant.ssm_mode == LM_SSM_POT8) {
        LM_TRY(lm_model_own(m, sizeof(lm_int_layer) * (size_t)c->n_layer, (void **)&m->int_layers));
        for (int i = 0; i < c->n_layer; i++) LM_TRY(bind_int_layer(L, i, &m->int_layers[i]));
    }
    for (int i = 0; i < L->n; i++)
        if (!L->used[i]) LM_TRY(add_table_row(m, &L->t[i], 0));
    return LM_OK;
}

lm_status lm_qfile_load(lm_model *m, const char *path) {
    LM_TRY(lm_map_file(path, &m->qfile));
    return lm_qfile_load_memory(m, m->qfile.data, m->qfile.size, path);
}

lm_status lm_qfile_load_memory(lm_model *m, const void *data, size_t size, const char *path) {
    const unsigned char *d = data;
    lm_ct_reader r;
    LM_TRY(lm_ct_open(&r, d, size, LM_QFILE_MAGIC, LM_QFILE_VERSION_OURS, LM_QFILE_VERSION,
                      "quantized model file, nor a model directory", path));
    d = r.data;
    const uint64_t tok_offset = lm_get_u64(d + H_TOK_OFFSET), tok_bytes = lm_get_u64(d + H_TOK_BYTES);
    if (tok_offset > size || tok_bytes > size - tok_offset)
        return lm_fail(LM_ERR_FORMAT, "%s: tokenizer (%" PRIu64 " bytes at %" PRIu64 ") lies outside the file", path,
                       tok_bytes, tok_offset);

    uint32_t cf[N_CONFIG], sf[N_SETTINGS];
    for (int i = 0; i < N_CONFIG; i++) cf[i] = lm_get_u32(d + H_CONFIG + 4 * i);
    for (int i = 0; i < N_SETTINGS; i++) sf[i] = lm_get_u32(d + H_SETTINGS + 4 * i);
    lm_config *c = &m->cfg;
    int *ints[] = {&c->d_model, &c->n_layer, &c->d_inner, &c->n_heads, &c->head_dim,
                   &c->d_state, &c->n_groups, &c->d_conv, &c->vocab_size};
    for (int i = 0; i < 9; i++) *ints[i] = (int)cf[i];
    c->eps = lm_get_f32(d + H_CONFIG + 36);
    c->dt_limit_min = lm_get_f32(d + H_CONFIG + 40);
    c->dt_limit_max = lm_get_f32(d + H_CONFIG + 44);
    c->tie_embeddings = (int)cf[12];
    c->conv_bias = (int)cf[13];
    c->proj_bias = (int)cf[14];
    LM_TRY(check_config(path, c));
    lm_quant_settings *q = &m->quant;
    q->method = (lm_quant_method)sf[0];
    q->wbits = (int)sf[1];
    q->abits = (int)sf[2];
    q->rotated = (int)sf[3];
    q->gptq = (int)sf[4];
    q->ssm_mode = (lm_ssm_mode)sf[5];
    q->alpha = lm_get_f32(d + H_SETTINGS + 24);
    q->calib_samples = (int)sf[7];
    q->calib_len = (int)sf[8];
    q->datapath = (int)sf[9];
    /* version 1 had no activation format and no head format (reserved zeros there): the hardware's,
     * and a float16 embedding and lm_head */
    const int v1 = r.version == LM_QFILE_VERSION_OURS;
    if (v1 && (sf[10] || sf[11] || sf[12] || sf[13]))
        return lm_fail(LM_ERR_FORMAT, "%s: reserved settings are not zero in format version 1", path);
    q->act_group = v1 ? LM_ACT_GROUP : (int)sf[10];
    q->act_scale = v1 ? LM_ACT_SCALE_POW2 : (lm_act_scale)sf[11];
    q->head_bits = (int)sf[12];
    q->embedding_bits = (int)sf[13];
    LM_TRY(check_settings(path, q, r.version));
    if (c->tie_embeddings && q->head_bits != q->embedding_bits)
        return lm_fail(LM_ERR_FORMAT, "%s: a tied lm_head (format %d) must have the embedding's format (%d)", path,
                       q->head_bits, q->embedding_bits);
    if (q->rotated) LM_TRY(lm_hadamard_init(&m->rot_inner, c->d_inner));

    qloader L = {m, path, NULL, 0, NULL};
    lm_status s = parse_table(&L, &r);
    if (s == LM_OK) s = bind_model(&L);
    free(L.t);
    free(L.used);
    LM_TRY(s);
    if (tok_bytes) {
        m->tokenizer_json = (const char *)d + tok_offset;
        m->tokenizer_json_len = tok_bytes;
        if (!(m->tokenizer_path = strdup(path))) return lm_fail(LM_ERR_NOMEM, "out of memory");
    }
    return LM_OK;
}
