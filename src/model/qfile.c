/* The quantized model file: writer and validating loader (layout in docs/quantized-format.md).
 *
 *   [0, 256)        header: magic, version, sizes, CRC-32C, config, quantization settings
 *   [256, ...)      tensor table: n_tensors entries of 128 bytes
 *   (64-aligned)    tokenizer.json bytes
 *   (64-aligned)    each tensor's data, in table order
 * All integers little-endian. The CRC covers every byte of the file, the CRC field read as zero. */
#include "model/qfile.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/error.h"
#include "common/half.h"
#include "format/config.h"

enum {
    HEADER_BYTES = 256,
    ENTRY_BYTES = 128,
    NAME_BYTES = 80,
    MAX_DIMS = 4,
    ALIGN = 64,
    /* header field offsets */
    H_MAGIC = 0, H_VERSION = 8, H_HEADER_BYTES = 12, H_FILE_BYTES = 16, H_CRC = 24, H_N_TENSORS = 28,
    H_TABLE = 32, H_TOK_OFFSET = 40, H_TOK_BYTES = 48, H_CONFIG = 56, H_SETTINGS = 116,
    /* entry field offsets */
    E_NAME = 0, E_DTYPE = 80, E_NDIM = 84, E_SHAPE = 88, E_OFFSET = 120,
};

typedef enum { DT_F32 = 0, DT_F16, DT_Q4, DT_Q8, DT_U8, DT_I8, DT_I16, DT_I32, DT_COUNT } qdtype;
static const char *const dtype_names[DT_COUNT] = {"F32", "F16", "Q4", "Q8", "U8", "I8", "I16", "I32"};
static const size_t dtype_bytes[DT_COUNT] = {4, 2, 0 /* two per byte along each row */, 1, 1, 1, 2, 4};

typedef struct {
    char name[NAME_BYTES];
    qdtype dtype;
    int ndim;
    uint64_t shape[MAX_DIMS];
    uint64_t offset;
    uint64_t nbytes;
    const void *data; /* writer: the bytes to store */
} qtensor;

/* Bytes of a tensor, or 0 when the shape is invalid or the size overflows. Q4 is [rows, cols]
 * packed two per byte, each row padded to a whole byte. */
static uint64_t tensor_bytes(qdtype dt, int ndim, const uint64_t *shape) {
    if (ndim < 1 || ndim > MAX_DIMS || (dt == DT_Q4 && ndim != 2)) return 0;
    uint64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        uint64_t s = shape[d];
        if (dt == DT_Q4 && d == 1) s = (s + 1) / 2;
        if (shape[d] == 0 || shape[d] > (1ull << 40) || n > UINT64_MAX / 4 / s) return 0;
        n *= s;
    }
    return dt == DT_Q4 ? n : n * dtype_bytes[dt];
}

static uint64_t align_up(uint64_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get_u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get_u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static float get_f32(const unsigned char *p) { float v; memcpy(&v, p, 4); return v; }

/* The config and the settings as 32-bit fields, in this order (shared by writer and loader). */
enum { N_CONFIG = LM_CONFIG_FIELDS, N_SETTINGS = 10 };

static void settings_fields(const lm_quant_settings *q, uint32_t f[N_SETTINGS]) {
    f[0] = (uint32_t)q->method;
    f[1] = (uint32_t)q->wbits;
    f[2] = (uint32_t)q->abits;
    f[3] = (uint32_t)q->rotated;
    f[4] = (uint32_t)q->gptq;
    f[5] = (uint32_t)q->ssm_mode;
    memcpy(&f[6], &q->alpha, 4);
    f[7] = (uint32_t)q->calib_samples;
    f[8] = (uint32_t)q->calib_len;
    f[9] = 0; /* reserved */
}

/* ======================= writer ======================= */

typedef struct {
    qtensor *t;
    int n, cap;
    void **owned; /* converted copies (F16) */
    int n_owned;
    lm_status status;
} tensor_list;

static void list_add(tensor_list *L, const char *name, qdtype dt, int ndim, const uint64_t *shape, const void *data) {
    if (L->status) return;
    if (L->n == L->cap) {
        int cap = L->cap ? 2 * L->cap : 64;
        qtensor *g = realloc(L->t, (size_t)cap * sizeof *g);
        if (!g) {
            L->status = lm_fail(LM_ERR_NOMEM, "out of memory for the tensor table");
            return;
        }
        L->t = g;
        L->cap = cap;
    }
    qtensor *t = &L->t[L->n++];
    memset(t, 0, sizeof *t);
    if (strlen(name) >= NAME_BYTES) L->status = lm_fail(LM_ERR_ARG, "tensor name %s is too long", name);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dt;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->nbytes = tensor_bytes(dt, ndim, shape);
    t->data = data;
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

/* A float tensor stored as F16 (a converted copy). */
static void list_add_f16(tensor_list *L, const char *name, int ndim, const uint64_t *shape, const float *x) {
    if (L->status) return;
    uint64_t n = tensor_bytes(DT_F16, ndim, shape) / 2;
    void **g = realloc(L->owned, ((size_t)L->n_owned + 1) * sizeof *g);
    uint16_t *h = malloc(n ? n * 2 : 1);
    if (!g || !h) {
        free(h);
        if (g) L->owned = g;
        L->status = lm_fail(LM_ERR_NOMEM, "out of memory converting %s to float16", name);
        return;
    }
    L->owned = g;
    L->owned[L->n_owned++] = h;
    for (uint64_t i = 0; i < n; i++) h[i] = lm_f32_to_f16(x[i]);
    list_add(L, name, DT_F16, ndim, shape, h);
}

#define SHAPE(...) (int)(sizeof((uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t)), (const uint64_t[]){__VA_ARGS__}

static void list_add_linear(tensor_list *L, const char *prefix, const lm_linear *lin) {
    char name[NAME_BYTES + 32];
    uint64_t O = (uint64_t)lin->rows, K = (uint64_t)lin->cols;
    if (lin->kind == LM_LINEAR_INT) {
        snprintf(name, sizeof name, "%s.qweight", prefix);
        list_add(L, name, lin->q.wbits == 4 ? DT_Q4 : DT_Q8, SHAPE(O, K), lin->q.q);
        snprintf(name, sizeof name, "%s.scales", prefix);
        list_add(L, name, DT_U8, SHAPE(O, (uint64_t)lm_wgroups(lin->cols)), lin->q.scale);
        snprintf(name, sizeof name, "%s.e0", prefix);
        list_add(L, name, DT_I8, SHAPE(O), lin->q.e0);
    } else {
        snprintf(name, sizeof name, "%s.weight", prefix);
        list_add(L, name, DT_F32, SHAPE(O, K), lin->w);
    }
    if (lin->bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        list_add(L, name, DT_F32, SHAPE(O), lin->bias);
    }
}

/* The four lookup tables of a layer, in the file's order. */
static const lm_lut *int_lut(const lm_int_layer *IL, int i) {
    const lm_lut *t[4] = {&IL->silu_xbc, &IL->silu_z, &IL->softplus, &IL->exp};
    return t[i];
}
enum { N_LUTS = 4, LUT_PARAMS = 5 };

/* SSM mode pot8: a layer's integer parameters (docs/quantized-format.md, "LightMamba*"). */
static void list_add_int_layer(tensor_list *L, const char *p, const lm_int_layer *IL, const lm_config *c) {
    char name[2 * NAME_BYTES + 64];   /* list_add refuses names of NAME_BYTES or more */
#define NAME(suffix) (snprintf(name, sizeof name, "%s.%s", p, suffix), name)
    const uint64_t C = (uint64_t)IL->C, H = (uint64_t)IL->H, Hg = (uint64_t)lm_pot_groups(IL->H);
    int32_t *sc = list_own(L, sizeof(int32_t) * LM_INT_SCALARS);
    int32_t *lp = list_own(L, sizeof(int32_t) * N_LUTS * LUT_PARAMS);
    int16_t *lv = list_own(L, sizeof(int16_t) * N_LUTS * LM_LUT_ENTRIES);
    uint8_t *ls = list_own(L, N_LUTS * LM_LUT_SEGMENTS);
    if (L->status) return;
    lm_int_layer_scalars(IL, sc);
    for (int i = 0; i < N_LUTS; i++) {
        const lm_lut *t = int_lut(IL, i);
        const int32_t v[LUT_PARAMS] = {t->alpha, t->k, t->F_in, t->F_out, t->tail_identity};
        memcpy(lp + i * LUT_PARAMS, v, sizeof v);
        memcpy(lv + i * LM_LUT_ENTRIES, t->value, sizeof t->value);
        memcpy(ls + i * LM_LUT_SEGMENTS, t->shift, sizeof t->shift);
    }
    list_add(L, NAME("scalars"), DT_I32, SHAPE(LM_INT_SCALARS), sc);
    list_add(L, NAME("norm.gamma"), DT_I16, SHAPE((uint64_t)IL->D), IL->norm_gq);
    list_add(L, NAME("gnorm.gamma"), DT_I16, SHAPE((uint64_t)IL->d_inner), IL->gnorm_gq);
    list_add(L, NAME("conv.weight"), DT_I8, SHAPE(C, (uint64_t)IL->W), IL->conv_w);
    list_add(L, NAME("conv.weight_exp"), DT_I8, SHAPE(C / 8, (uint64_t)IL->W), IL->conv_ew);
    if (c->conv_bias) {
        list_add(L, NAME("conv.bias"), DT_I8, SHAPE(C), IL->conv_b);
        list_add(L, NAME("conv.bias_exp"), DT_I8, SHAPE(C / 8), IL->conv_eb);
    }
    list_add(L, NAME("dt_bias"), DT_I16, SHAPE(H), IL->dt_bq);
    list_add(L, NAME("dt_bias_exp"), DT_I8, SHAPE(Hg), IL->dt_be);
    list_add(L, NAME("A"), DT_I16, SHAPE(H), IL->A_q);
    list_add(L, NAME("A_exp"), DT_I8, SHAPE(Hg), IL->A_e);
    list_add(L, NAME("D"), DT_I16, SHAPE(H), IL->D_q);
    list_add(L, NAME("D_exp"), DT_I8, SHAPE(Hg), IL->D_e);
    list_add(L, NAME("lut.params"), DT_I32, SHAPE(N_LUTS, LUT_PARAMS), lp);
    list_add(L, NAME("lut.value"), DT_I16, SHAPE(N_LUTS, LM_LUT_ENTRIES), lv);
    list_add(L, NAME("lut.shift"), DT_U8, SHAPE(N_LUTS, LM_LUT_SEGMENTS), ls);
#undef NAME
}

static void collect_tensors(tensor_list *L, const lm_model *m) {
    const lm_config *c = &m->cfg;
    const uint64_t D = (uint64_t)c->d_model, V = (uint64_t)c->vocab_size, DI = (uint64_t)c->d_inner,
                   H = (uint64_t)c->n_heads, CD = DI + 2 * (uint64_t)c->n_groups * c->d_state;
    /* The embedding and an untied lm_head are stored as float16 (the checkpoints' own precision);
     * a model loaded from a file holds them as float16 already. */
    if (m->embedding_f16)
        list_add(L, "backbone.embeddings.weight", DT_F16, SHAPE(V, D), m->embedding_f16);
    else
        list_add_f16(L, "backbone.embeddings.weight", SHAPE(V, D), m->embedding);
    for (int i = 0; i < c->n_layer; i++) {
        const lm_layer *ly = &m->layers[i];
        char p[NAME_BYTES], name[NAME_BYTES + 32];
#define NAME(suffix) (snprintf(name, sizeof name, "%s.%s", p, suffix), name)
        snprintf(p, sizeof p, "backbone.layers.%d", i);
        list_add(L, NAME("norm.weight"), DT_F32, SHAPE(D), ly->norm);
        snprintf(p, sizeof p, "backbone.layers.%d.mixer", i);
        list_add_linear(L, NAME("in_proj"), &ly->in_proj);
        list_add(L, NAME("conv1d.weight"), DT_F32, SHAPE(CD, (uint64_t)c->d_conv), ly->conv_w);
        if (ly->conv_b) list_add(L, NAME("conv1d.bias"), DT_F32, SHAPE(CD), ly->conv_b);
        list_add(L, NAME("dt_bias"), DT_F32, SHAPE(H), ly->dt_bias);
        list_add(L, NAME("A"), DT_F32, SHAPE(H), ly->A);
        list_add(L, NAME("D"), DT_F32, SHAPE(H), ly->D);
        list_add(L, NAME("norm.weight"), DT_F32, SHAPE(DI), ly->gnorm);
        list_add_linear(L, NAME("out_proj"), &ly->out_proj);
        if (m->int_layers) list_add_int_layer(L, NAME("int"), &m->int_layers[i], c);
#undef NAME
    }
    list_add(L, "backbone.norm_f.weight", DT_F32, SHAPE(D), m->norm_f);
    if (!c->tie_embeddings) {
        if (m->lm_head.kind == LM_LINEAR_INT)
            L->status = lm_fail(LM_ERR_UNSUPPORTED, "an integer lm_head cannot be stored (format version 1)");
        else if (m->lm_head.kind == LM_LINEAR_F16)
            list_add(L, "lm_head.weight", DT_F16, SHAPE(V, D), m->lm_head.w16);
        else
            list_add_f16(L, "lm_head.weight", SHAPE(V, D), m->lm_head.w);
    }
}

/* Bytes go either into the checksum (first pass) or to the file (second pass). */
typedef struct {
    lm_atomic_file *af; /* NULL: checksum pass */
    uint32_t crc;
    uint64_t pos;
    lm_status status;
} sink;

static void emit(sink *s, const void *p, uint64_t n) {
    if (s->status || !n) return;
    if (s->af)
        s->status = lm_atomic_write(s->af, p, (size_t)n);
    else
        s->crc = lm_crc32c(s->crc, p, (size_t)n);
    s->pos += n;
}

static void emit_pad(sink *s, uint64_t to) {
    static const unsigned char zeros[ALIGN];
    while (s->pos < to) emit(s, zeros, to - s->pos < ALIGN ? to - s->pos : ALIGN);
}

static void emit_file(sink *s, const unsigned char *header, const unsigned char *table, uint64_t table_bytes,
                      uint64_t tok_offset, const char *tok, uint64_t tok_len, const tensor_list *L) {
    emit(s, header, HEADER_BYTES);
    emit(s, table, table_bytes);
    emit_pad(s, tok_offset);
    emit(s, tok, tok_len);
    for (int i = 0; i < L->n; i++) {
        emit_pad(s, L->t[i].offset);
        emit(s, L->t[i].data, L->t[i].nbytes);
    }
}

lm_status lm_qfile_write(const char *path, const lm_model *m, const char *tokenizer_json, size_t tokenizer_len) {
    tensor_list L = {0};
    unsigned char *table = NULL;
    lm_atomic_file af = {0};
    collect_tensors(&L, m);
    lm_status s = L.status;
    for (int i = 0; i < L.n && !s; i++)
        if (!L.t[i].nbytes || !L.t[i].data) s = lm_fail(LM_ERR_ARG, "tensor %s has no data or a bad shape", L.t[i].name);
    uint64_t table_bytes = (uint64_t)L.n * ENTRY_BYTES;
    if (!s) s = lm_calloc(&table, table_bytes ? table_bytes : 1, 1, "tensor table");
    if (s) goto done;

    /* Layout. */
    uint64_t tok_offset = align_up(HEADER_BYTES + table_bytes), pos = tok_offset + tokenizer_len;
    for (int i = 0; i < L.n; i++) {
        qtensor *t = &L.t[i];
        t->offset = align_up(pos);
        pos = t->offset + t->nbytes;
        unsigned char *e = table + (size_t)i * ENTRY_BYTES;
        memcpy(e + E_NAME, t->name, NAME_BYTES);
        put_u32(e + E_DTYPE, (uint32_t)t->dtype);
        put_u32(e + E_NDIM, (uint32_t)t->ndim);
        for (int d = 0; d < MAX_DIMS; d++) put_u64(e + E_SHAPE + 8 * d, d < t->ndim ? t->shape[d] : 0);
        put_u64(e + E_OFFSET, t->offset);
    }
    unsigned char header[HEADER_BYTES] = {0};
    memcpy(header + H_MAGIC, LM_QFILE_MAGIC, 8);
    put_u32(header + H_VERSION, LM_QFILE_VERSION);
    put_u32(header + H_HEADER_BYTES, HEADER_BYTES);
    put_u64(header + H_FILE_BYTES, pos);
    put_u32(header + H_N_TENSORS, (uint32_t)L.n);
    put_u64(header + H_TABLE, HEADER_BYTES);
    put_u64(header + H_TOK_OFFSET, tok_offset);
    put_u64(header + H_TOK_BYTES, tokenizer_len);
    uint32_t cf[N_CONFIG], sf[N_SETTINGS];
    lm_config_fields(&m->cfg, cf);
    settings_fields(&m->quant, sf);
    for (int i = 0; i < N_CONFIG; i++) put_u32(header + H_CONFIG + 4 * i, cf[i]);
    for (int i = 0; i < N_SETTINGS; i++) put_u32(header + H_SETTINGS + 4 * i, sf[i]);

    sink crc = {0};
    emit_file(&crc, header, table, table_bytes, tok_offset, tokenizer_json, tokenizer_len, &L);
    put_u32(header + H_CRC, crc.crc);

    if ((s = lm_atomic_open(&af, path)) != LM_OK) goto done;
    sink out = {.af = &af};
    emit_file(&out, header, table, table_bytes, tok_offset, tokenizer_json, tokenizer_len, &L);
    s = out.status ? out.status : lm_atomic_commit(&af);
done:
    if (s) lm_atomic_abort(&af);
    for (int i = 0; i < L.n_owned; i++) free(L.owned[i]);
    free(L.owned);
    free(L.t);
    free(table);
    return s;
}

/* ======================= loader ======================= */

typedef struct {
    uint32_t n_tensors;
    uint64_t table, tok_offset, tok_bytes;
} qheader;

/* Checks size, magic, version, declared size and checksum, in that order, so each kind of damage
 * gets its own message. */
static lm_status check_header(const char *path, const unsigned char *d, size_t size, qheader *h) {
    if (size < 8 || memcmp(d + H_MAGIC, LM_QFILE_MAGIC, 8) != 0)
        return lm_fail(LM_ERR_FORMAT, "%s: neither a model directory nor a lightmamba quantized model (no %s magic)", path, LM_QFILE_MAGIC);
    if (size < HEADER_BYTES)
        return lm_fail(LM_ERR_FORMAT, "%s: truncated: %zu bytes, the header alone needs %d", path, size, HEADER_BYTES);
    uint32_t version = get_u32(d + H_VERSION);
    if (version != LM_QFILE_VERSION)
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: quantized file format version %" PRIu32 " (this build reads version %d)",
                       path, version, LM_QFILE_VERSION);
    if (get_u32(d + H_HEADER_BYTES) != HEADER_BYTES)
        return lm_fail(LM_ERR_FORMAT, "%s: header size %" PRIu32 ", expected %d", path, get_u32(d + H_HEADER_BYTES),
                       HEADER_BYTES);
    uint64_t file_bytes = get_u64(d + H_FILE_BYTES);
    if (file_bytes != size)
        return lm_fail(LM_ERR_FORMAT, "%s: %s: the header says %" PRIu64 " bytes, the file has %zu", path,
                       size < file_bytes ? "truncated" : "trailing data", file_bytes, size);
    uint32_t stored = get_u32(d + H_CRC), zero = 0;
    uint32_t crc = lm_crc32c(0, d, H_CRC);
    crc = lm_crc32c(crc, &zero, 4);
    crc = lm_crc32c(crc, d + H_CRC + 4, size - H_CRC - 4);
    if (crc != stored)
        return lm_fail(LM_ERR_FORMAT, "%s: checksum mismatch (stored %08" PRIx32 ", computed %08" PRIx32 "): the file is corrupted",
                       path, stored, crc);
    h->n_tensors = get_u32(d + H_N_TENSORS);
    h->table = get_u64(d + H_TABLE);
    h->tok_offset = get_u64(d + H_TOK_OFFSET);
    h->tok_bytes = get_u64(d + H_TOK_BYTES);
    if (h->table < HEADER_BYTES || h->table > size || h->n_tensors > (size - h->table) / ENTRY_BYTES)
        return lm_fail(LM_ERR_FORMAT, "%s: tensor table (%" PRIu32 " entries at %" PRIu64 ") lies outside the file", path,
                       h->n_tensors, h->table);
    if (h->tok_offset > size || h->tok_bytes > size - h->tok_offset)
        return lm_fail(LM_ERR_FORMAT, "%s: tokenizer (%" PRIu64 " bytes at %" PRIu64 ") lies outside the file", path,
                       h->tok_bytes, h->tok_offset);
    return LM_OK;
}

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

static lm_status check_settings(const char *path, const lm_quant_settings *q) {
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
    return LM_OK;
}

typedef struct {
    lm_model *m;
    const char *path;
    qtensor *t;
    int n;
    unsigned char *used;
} qloader;

static lm_status parse_table(qloader *L, const unsigned char *d, size_t size, const qheader *h) {
    LM_TRY(lm_calloc(&L->t, h->n_tensors ? h->n_tensors : 1, sizeof *L->t, "tensor table"));
    LM_TRY(lm_calloc(&L->used, h->n_tensors ? h->n_tensors : 1, 1, "tensor table"));
    L->n = (int)h->n_tensors;
    for (int i = 0; i < L->n; i++) {
        const unsigned char *e = d + h->table + (size_t)i * ENTRY_BYTES;
        qtensor *t = &L->t[i];
        if (!memchr(e + E_NAME, 0, NAME_BYTES))
            return lm_fail(LM_ERR_FORMAT, "%s: tensor table entry %d has an unterminated name", L->path, i);
        memcpy(t->name, e + E_NAME, NAME_BYTES);
        uint32_t dt = get_u32(e + E_DTYPE), nd = get_u32(e + E_NDIM);
        if (dt >= DT_COUNT) return lm_fail(LM_ERR_FORMAT, "%s: tensor %s has unknown dtype %" PRIu32, L->path, t->name, dt);
        if (nd < 1 || nd > MAX_DIMS)
            return lm_fail(LM_ERR_FORMAT, "%s: tensor %s has %" PRIu32 " dimensions", L->path, t->name, nd);
        t->dtype = (qdtype)dt;
        t->ndim = (int)nd;
        for (int k = 0; k < MAX_DIMS; k++) t->shape[k] = get_u64(e + E_SHAPE + 8 * k);
        t->offset = get_u64(e + E_OFFSET);
        t->nbytes = tensor_bytes(t->dtype, t->ndim, t->shape);
        if (!t->nbytes) return lm_fail(LM_ERR_FORMAT, "%s: tensor %s has an invalid shape", L->path, t->name);
        if (t->offset % ALIGN || t->offset < HEADER_BYTES || t->offset > size || t->nbytes > size - t->offset)
            return lm_fail(LM_ERR_FORMAT, "%s: tensor %s (%" PRIu64 " bytes at %" PRIu64 ") is misaligned or outside the file",
                           L->path, t->name, t->nbytes, t->offset);
        t->data = d + t->offset;
    }
    return LM_OK;
}

static lm_status own_block(lm_model *m, size_t bytes, void **out) {
    void **g = realloc(m->owned, ((size_t)m->n_owned + 1) * sizeof *g);
    if (!g) return lm_fail(LM_ERR_NOMEM, "out of memory");
    m->owned = g;
    void *p = aligned_alloc(ALIGN, (bytes + ALIGN - 1) / ALIGN * ALIGN);
    if (!p) return lm_fail(LM_ERR_NOMEM, "cannot allocate %zu bytes", bytes);
    m->owned[m->n_owned++] = p;
    *out = p;
    return LM_OK;
}

static lm_status add_table_row(lm_model *m, const qtensor *t, int used) {
    lm_tensor_info *g = realloc(m->tensors, ((size_t)m->n_tensors + 1) * sizeof *g);
    if (!g) return lm_fail(LM_ERR_NOMEM, "out of memory for the tensor table");
    m->tensors = g;
    lm_tensor_info *r = &m->tensors[m->n_tensors];
    memset(r, 0, sizeof *r);
    if (!(r->name = strdup(t->name))) return lm_fail(LM_ERR_NOMEM, "out of memory for the tensor table");
    m->n_tensors++;
    r->dtype = dtype_names[t->dtype];
    r->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) r->shape[d] = (int64_t)t->shape[d];
    r->nbytes = t->nbytes;
    r->used = used;
    return LM_OK;
}

static const qtensor *find(const qloader *L, const char *name) {
    for (int i = 0; i < L->n; i++)
        if (!strcmp(L->t[i].name, name)) return &L->t[i];
    return NULL;
}

/* The tensor `name` with one of the dtypes in `dtypes` (a bit mask) and exactly this shape. */
static lm_status take(qloader *L, const char *name, int optional, unsigned dtypes, int ndim, const uint64_t *shape,
                      const qtensor **out) {
    *out = NULL;
    const qtensor *t = find(L, name);
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
static lm_status take_float(qloader *L, const char *name, int optional, int ndim, const uint64_t *shape,
                            const float **out) {
    const qtensor *t;
    *out = NULL;
    LM_TRY(take(L, name, optional, 1u << DT_F32 | 1u << DT_F16, ndim, shape, &t));
    if (!t) return LM_OK;
    if (t->dtype == DT_F32) {
        *out = t->data;
        return LM_OK;
    }
    size_t n = (size_t)t->nbytes / 2;
    float *f = NULL;
    LM_TRY(own_block(L->m, n * sizeof *f, (void **)&f));
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
    const qtensor *t;
    *f = NULL;
    *h = NULL;
    LM_TRY(take(L, name, 0, 1u << DT_F32 | 1u << DT_F16, ndim, shape, &t));
    if (t->dtype == DT_F16)
        *h = t->data;
    else
        *f = t->data;
    return LM_OK;
}

/* Weights outside [-qmax, qmax] (the nibble -8, the byte -128) break the kernels' contract. */
static int weights_in_range(const qtensor *t) {
    const unsigned char *p = t->data;
    for (uint64_t i = 0; i < t->nbytes; i++)
        if (t->dtype == DT_Q4 ? ((p[i] & 15) == 8 || (p[i] >> 4) == 8) : p[i] == 0x80) return 0;
    return 1;
}

/* A linear layer: integer (qweight, scales, e0) when `integer`, else float16 or float32 (weight). */
static lm_status take_linear(qloader *L, const char *prefix, int integer, int rows, int cols, lm_linear *lin) {
    char name[NAME_BYTES + 32];
    const uint64_t O = (uint64_t)rows, K = (uint64_t)cols;
    lin->rows = rows;
    lin->cols = cols;
    const qtensor *q, *sc, *e0;
    if (integer) {
        /* Version 1: every in_proj and out_proj has the file's weight bits. */
        const unsigned dtype = L->m->quant.wbits == 4 ? 1u << DT_Q4 : 1u << DT_Q8;
        snprintf(name, sizeof name, "%s.qweight", prefix);
        LM_TRY(take(L, name, 0, dtype, SHAPE(O, K), &q));
        if (!weights_in_range(q))
            return lm_fail(LM_ERR_FORMAT, "%s: tensor %s holds a weight outside [-%d, %d]", L->path, name,
                           lm_qmax(L->m->quant.wbits), lm_qmax(L->m->quant.wbits));
        lin->kind = LM_LINEAR_INT;
        lin->abits = L->m->quant.abits;
        snprintf(name, sizeof name, "%s.scales", prefix);
        LM_TRY(take(L, name, 0, 1u << DT_U8, SHAPE(O, (uint64_t)lm_wgroups(cols)), &sc));
        snprintf(name, sizeof name, "%s.e0", prefix);
        LM_TRY(take(L, name, 0, 1u << DT_I8, SHAPE(O), &e0));
        int wbits = q->dtype == DT_Q4 ? 4 : 8;
        lin->q = (lm_qweight){.rows = rows, .cols = cols, .wbits = wbits, .q = q->data,
                              .row_stride = wbits == 4 ? (K + 1) / 2 : K, .scale = sc->data, .e0 = e0->data};
        /* Exponents beyond the contract's range would shift out of the accumulator. */
        const unsigned char *s = sc->data;
        for (uint64_t i = 0; i < sc->nbytes; i++)
            if ((s[i] & 15) > LM_WEXP_MAX || (s[i] >> 4) > LM_WEXP_MAX)
                return lm_fail(LM_ERR_FORMAT, "%s: tensor %s.scales has an exponent above %d", L->path, prefix, LM_WEXP_MAX);
    } else {
        snprintf(name, sizeof name, "%s.weight", prefix);
        LM_TRY(take_f16_or_f32(L, name, SHAPE(O, K), &lin->w, &lin->w16));
        lin->kind = lin->w16 ? LM_LINEAR_F16 : LM_LINEAR_F32;
    }
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (integer && L->m->cfg.proj_bias) /* use_bias: in_proj and out_proj (the integer layers) only */
        LM_TRY(take_float(L, name, 0, SHAPE(O), &lin->bias));
    return LM_OK;
}

/* ---- SSM mode pot8: the integer parameters of layer i ---- */

/* Every element of an int8/int16 tensor within [-lim, lim]. */
static int ints_within(const qtensor *t, int lim) {
    const uint64_t n = t->nbytes / dtype_bytes[t->dtype];
    for (uint64_t i = 0; i < n; i++) {
        int v;
        if (t->dtype == DT_I16) {
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
static lm_status take_int(qloader *L, const char *p, const char *suffix, qdtype dt, int lim, int ndim,
                          const uint64_t *shape, const void **out) {
    char name[NAME_BYTES + 32];
    const qtensor *t;
    snprintf(name, sizeof name, "%s.%s", p, suffix);
    LM_TRY(take(L, name, 0, 1u << dt, ndim, shape, &t));
    if (lim && !ints_within(t, lim))
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s holds a value outside [-%d, %d]", L->path, name, lim, lim);
    *out = t->data;
    return LM_OK;
}

static lm_status bind_int_layer(qloader *L, int i, lm_int_layer *IL) {
    lm_model *m = L->m;
    const lm_config *c = &m->cfg;
    const lm_layer *ly = &m->layers[i];
    const int di = c->d_inner, H = c->n_heads, P = c->head_dim, N = c->d_state, G = c->n_groups, W = c->d_conv;
    const int C = di + 2 * G * N, E = 2 * di + 2 * G * N + H, D = c->d_model;
    const uint64_t Hg = (uint64_t)lm_pot_groups(H);
    char p[NAME_BYTES];
    snprintf(p, sizeof p, "backbone.layers.%d.mixer.int", i);
    if (P % 8 || N % 8 || D % 8 || di % (8 * G))
        return lm_fail(LM_ERR_FORMAT, "%s: SSM mode pot8 needs head_dim, d_state, d_model and d_inner/groups in multiples of 8",
                       L->path);
    const int32_t *sc, *lp;
    const int16_t *lv;
    const uint8_t *ls;
    const void *v;
    memset(IL, 0, sizeof *IL);
    *IL = (lm_int_layer){.D = D, .d_inner = di, .H = H, .P = P, .N = N, .G = G, .W = W, .C = C, .E = E,
                         .eps = c->eps, .in_proj = &ly->in_proj.q, .out_proj = &ly->out_proj.q};
    LM_TRY(take_int(L, p, "scalars", DT_I32, 0, SHAPE(LM_INT_SCALARS), &v)); sc = v;
    /* scalars: F_ip F_conv F_u F_zs F_dt F_dtA F_dA F_dB F_h F_y F_g dt_lo dt_hi norm(F_out e_gamma eps lo hi)
     * gnorm(F_out e_gamma eps lo hi) abits rot_m F_rot */
    for (int k = 0; k <= 10; k++)
        if (!site_ok(sc[k])) return lm_fail(LM_ERR_FORMAT, "%s: %s.scalars[%d] = %d is not a site in [-8, 30]", L->path, p, k, sc[k]);
    const uint64_t eps1 = (uint32_t)sc[15] | (uint64_t)(uint32_t)sc[16] << 32, eps2 = (uint32_t)sc[19] | (uint64_t)(uint32_t)sc[20] << 32;
    const int rot_m = m->rot_inner ? lm_hadamard_base(m->rot_inner) : 0;
    if (sc[11] < 0 || sc[12] < sc[11] || !site_ok(sc[13]) || !site_ok(sc[17]) || sc[14] < -64 || sc[14] > 64 ||
        sc[18] < -64 || sc[18] > 64 || eps1 > (1ull << 62) || eps2 > (1ull << 62) || sc[21] != m->quant.abits ||
        sc[22] != rot_m || (rot_m && !site_ok(sc[23])))
        return lm_fail(LM_ERR_FORMAT, "%s: %s.scalars are inconsistent (time step limits, norm sites, abits or rotation)",
                       L->path, p);
    IL->abits = sc[21];
    IL->F_ip = sc[0]; IL->F_u = sc[2]; IL->F_zs = sc[3]; IL->F_dt = sc[4]; IL->F_dA = sc[6]; IL->F_dB = sc[7];
    IL->F_h = sc[8]; IL->F_y = sc[9]; IL->F_g = sc[10]; IL->dt_lo = sc[11]; IL->dt_hi = sc[12];
    IL->rot_m = rot_m;
    IL->F_rot = rot_m ? sc[23] : 0;
    IL->rot_Hm = rot_m ? lm_hadamard_base_matrix(m->rot_inner) : NULL;
    LM_TRY(take_int(L, p, "norm.gamma", DT_I16, 4095, SHAPE((uint64_t)D), &v)); IL->norm_gq = (int16_t *)v;
    LM_TRY(take_int(L, p, "gnorm.gamma", DT_I16, 4095, SHAPE((uint64_t)di), &v)); IL->gnorm_gq = (int16_t *)v;
    IL->norm = (lm_int_norm){.n = D, .group = D, .F_in = LM_RES_F, .F_out = sc[13], .e_gamma = sc[14], .eps_term = eps1,
                             .gq = IL->norm_gq};
    IL->gnorm = (lm_int_norm){.n = di, .group = di / G, .F_in = IL->F_g, .F_out = sc[17], .e_gamma = sc[18],
                              .eps_term = eps2, .gq = IL->gnorm_gq};
    LM_TRY(take_int(L, p, "conv.weight", DT_I8, 127, SHAPE((uint64_t)C, (uint64_t)W), &v)); IL->conv_w = (int8_t *)v;
    LM_TRY(take_int(L, p, "conv.weight_exp", DT_I8, 0, SHAPE((uint64_t)C / 8, (uint64_t)W), &v)); IL->conv_ew = (int8_t *)v;
    if (c->conv_bias) {
        LM_TRY(take_int(L, p, "conv.bias", DT_I8, 127, SHAPE((uint64_t)C), &v)); IL->conv_b = (int8_t *)v;
        LM_TRY(take_int(L, p, "conv.bias_exp", DT_I8, 0, SHAPE((uint64_t)C / 8), &v)); IL->conv_eb = (int8_t *)v;
    }
    IL->conv = (lm_int_conv){.C = C, .W = W, .F_in = IL->F_ip, .F_out = sc[1], .w = IL->conv_w, .ew = IL->conv_ew,
                             .b = IL->conv_b, .eb = IL->conv_eb};
    LM_TRY(take_int(L, p, "dt_bias", DT_I16, 32767, SHAPE((uint64_t)H), &v)); IL->dt_bq = (int16_t *)v;
    LM_TRY(take_int(L, p, "dt_bias_exp", DT_I8, 0, SHAPE(Hg), &v)); IL->dt_be = (int8_t *)v;
    LM_TRY(take_int(L, p, "A", DT_I16, 32767, SHAPE((uint64_t)H), &v)); IL->A_q = (int16_t *)v;
    LM_TRY(take_int(L, p, "A_exp", DT_I8, 0, SHAPE(Hg), &v)); IL->A_e = (int8_t *)v;
    LM_TRY(take_int(L, p, "D", DT_I16, 127, SHAPE((uint64_t)H), &v)); IL->D_q = (int16_t *)v;
    LM_TRY(take_int(L, p, "D_exp", DT_I8, 0, SHAPE(Hg), &v)); IL->D_e = (int8_t *)v;
    LM_TRY(take_int(L, p, "lut.params", DT_I32, 0, SHAPE(N_LUTS, LUT_PARAMS), &v)); lp = v;
    LM_TRY(take_int(L, p, "lut.value", DT_I16, 0, SHAPE(N_LUTS, LM_LUT_ENTRIES), &v)); lv = v;
    LM_TRY(take_int(L, p, "lut.shift", DT_U8, 0, SHAPE(N_LUTS, LM_LUT_SEGMENTS), &v)); ls = v;
    /* each table's sites are the block's: SiLU(conv) F_conv -> F_u, SiLU(z) F_ip -> F_zs,
     * softplus F_ip -> F_dt, exp F_dtA -> F_dA; exp alone has no identity tail */
    const int32_t want[N_LUTS][3] = {{sc[1], sc[2], 1}, {sc[0], sc[3], 1}, {sc[0], sc[4], 1}, {sc[5], sc[6], 0}};
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

static lm_status bind_model(qloader *L) {
    lm_model *m = L->m;
    const lm_config *c = &m->cfg;
    const uint64_t D = (uint64_t)c->d_model, V = (uint64_t)c->vocab_size, DI = (uint64_t)c->d_inner,
                   H = (uint64_t)c->n_heads, CD = DI + 2 * (uint64_t)c->n_groups * c->d_state;
    const int E = (int)(2 * DI + 2 * (uint64_t)c->n_groups * c->d_state + H);
    LM_TRY(take_f16_or_f32(L, "backbone.embeddings.weight", SHAPE(V, D), &m->embedding, &m->embedding_f16));
    LM_TRY(lm_calloc(&m->layers, (size_t)c->n_layer, sizeof *m->layers, "layers"));
    for (int i = 0; i < c->n_layer; i++) {
        lm_layer *ly = &m->layers[i];
        char p[NAME_BYTES], name[NAME_BYTES + 32];
#define NAME(suffix) (snprintf(name, sizeof name, "%s.%s", p, suffix), name)
        snprintf(p, sizeof p, "backbone.layers.%d", i);
        LM_TRY(take_float(L, NAME("norm.weight"), 0, SHAPE(D), &ly->norm));
        snprintf(p, sizeof p, "backbone.layers.%d.mixer", i);
        LM_TRY(take_linear(L, NAME("in_proj"), 1, E, c->d_model, &ly->in_proj));
        LM_TRY(take_float(L, NAME("conv1d.weight"), 0, SHAPE(CD, (uint64_t)c->d_conv), &ly->conv_w));
        LM_TRY(take_float(L, NAME("conv1d.bias"), !c->conv_bias, SHAPE(CD), &ly->conv_b));
        LM_TRY(take_float(L, NAME("dt_bias"), 0, SHAPE(H), &ly->dt_bias));
        LM_TRY(take_float(L, NAME("A"), 0, SHAPE(H), &ly->A));
        LM_TRY(take_float(L, NAME("D"), 0, SHAPE(H), &ly->D));
        LM_TRY(take_float(L, NAME("norm.weight"), 0, SHAPE(DI), &ly->gnorm));
        LM_TRY(take_linear(L, NAME("out_proj"), 1, c->d_model, c->d_inner, &ly->out_proj));
#undef NAME
    }
    LM_TRY(take_float(L, "backbone.norm_f.weight", 0, SHAPE(D), &m->norm_f));
    if (c->tie_embeddings)
        m->lm_head = (lm_linear){.kind = m->embedding_f16 ? LM_LINEAR_F16 : LM_LINEAR_F32, .rows = c->vocab_size,
                                 .cols = c->d_model, .w = m->embedding, .w16 = m->embedding_f16};
    else
        LM_TRY(take_linear(L, "lm_head", 0, c->vocab_size, c->d_model, &m->lm_head));
    if (m->quant.ssm_mode == LM_SSM_POT8) {
        void *p;
        LM_TRY(own_block(m, sizeof(lm_int_layer) * (size_t)c->n_layer, &p));
        m->int_layers = p;
        for (int i = 0; i < c->n_layer; i++) LM_TRY(bind_int_layer(L, i, &m->int_layers[i]));
    }
    for (int i = 0; i < L->n; i++)
        if (!L->used[i]) LM_TRY(add_table_row(m, &L->t[i], 0));
    return LM_OK;
}

lm_status lm_qfile_load(lm_model *m, const char *path) {
    LM_TRY(lm_map_file(path, &m->qfile));
    const unsigned char *d = m->qfile.data;
    size_t size = m->qfile.size;
    qheader h = {0};
    LM_TRY(check_header(path, d, size, &h));

    uint32_t cf[N_CONFIG], sf[N_SETTINGS];
    for (int i = 0; i < N_CONFIG; i++) cf[i] = get_u32(d + H_CONFIG + 4 * i);
    for (int i = 0; i < N_SETTINGS; i++) sf[i] = get_u32(d + H_SETTINGS + 4 * i);
    lm_config *c = &m->cfg;
    int *ints[] = {&c->d_model, &c->n_layer, &c->d_inner, &c->n_heads, &c->head_dim,
                   &c->d_state, &c->n_groups, &c->d_conv, &c->vocab_size};
    for (int i = 0; i < 9; i++) *ints[i] = (int)cf[i];
    c->eps = get_f32(d + H_CONFIG + 36);
    c->dt_limit_min = get_f32(d + H_CONFIG + 40);
    c->dt_limit_max = get_f32(d + H_CONFIG + 44);
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
    q->alpha = get_f32(d + H_SETTINGS + 24);
    q->calib_samples = (int)sf[7];
    q->calib_len = (int)sf[8];
    LM_TRY(check_settings(path, q));
    if (q->rotated) LM_TRY(lm_hadamard_init(&m->rot_inner, c->d_inner));

    qloader L = {m, path, NULL, 0, NULL};
    lm_status s = parse_table(&L, d, size, &h);
    if (s == LM_OK) s = bind_model(&L);
    free(L.t);
    free(L.used);
    LM_TRY(s);
    if (h.tok_bytes) {
        m->tokenizer_json = (const char *)d + h.tok_offset;
        m->tokenizer_json_len = h.tok_bytes;
        if (!(m->tokenizer_path = strdup(path))) return lm_fail(LM_ERR_NOMEM, "out of memory");
    }
    return LM_OK;
}
