/* Synthetic Mamba2 models (distributions in synth.h). One enumeration of the tensors
 * (for_each_tensor) drives both writers: the quantized one binds each tensor into an
 * lm_model and quantizes the linear layers as they come; the float one streams each tensor
 * into a safetensors file. */
#include "quant/synth.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/datadir.h"
#include "common/error.h"
#include "common/file.h"
#include "model/model.h"
#include "model/qfile.h"
#include "quant/intcalib.h"
#include "quant/quantize.h"
#include "model/layout.h"
#include "quant/transform.h"

/* ---- the values: a counter-based generator, value i of a tensor = f(hash(stream, i)) ---- */

typedef enum {
    DIST_NORMAL,      /* a + b N(0, 1) */
    DIST_UNIFORM,     /* U(a, b) */
    DIST_LOG_UNIFORM, /* log U(a, b)                               (A_log) */
    DIST_DT_BIAS,     /* softplus^-1(dt), dt = exp U(log a, log b) (dt_bias) */
} dist_kind;

typedef struct {
    dist_kind kind;
    float a, b;
} dist;

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* The stream of a tensor: FNV-1a of its name, mixed with the seed. */
static uint64_t tensor_stream(uint64_t seed, const char *name) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001B3ull;
    return splitmix64(h ^ splitmix64(seed));
}

static float draw(const dist *d, uint64_t stream, uint64_t i) {
    uint64_t h = splitmix64(stream + i * 0xD1B54A32D192ED03ull);
    double u1 = (double)((h >> 40) + 1) * 0x1p-24;    /* (0, 1] */
    double u2 = (double)(h & 0xFFFFFF) * 0x1p-24;     /* [0, 1) */
    switch (d->kind) {
    case DIST_NORMAL: return (float)(d->a + d->b * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
    case DIST_UNIFORM: return (float)(d->a + (d->b - d->a) * u2);
    case DIST_LOG_UNIFORM: return (float)log(d->a + (d->b - d->a) * u2);
    case DIST_DT_BIAS: {
        double dt = exp(log(d->a) + (log(d->b) - log(d->a)) * u2);
        return (float)(dt + log(-expm1(-dt))); /* softplus(dt_bias) = dt */
    }
    }
    return 0.0f;
}

typedef struct {
    float *x;
    size_t n;
    const dist *d;
    uint64_t stream;
} fill_task;

static void fill_part(void *p, int i, int n) {
    fill_task *t = p;
    size_t i0 = t->n * (size_t)i / (size_t)n, i1 = t->n * (size_t)(i + 1) / (size_t)n;
    for (size_t k = i0; k < i1; k++) t->x[k] = draw(t->d, t->stream, k);
}

/* x [n] = the values of tensor `name`. */
static void fill(float *x, size_t n, const dist *d, uint64_t seed, const char *name, lm_pool *pool) {
    fill_task t = {x, n, d, tensor_stream(seed, name)};
    lm_pool_run(pool, fill_part, &t);
}

/* ---- each tensor's distribution (the layout itself is model/layout.h) ---- */

static dist dist_of(const lm_config *c, const lm_tensor_desc *t) {
    const float conv_bound = 1.0f / sqrtf((float)c->d_conv);
    switch (t->role) {
    case LM_T_EMBEDDING: return (dist){DIST_NORMAL, 0.0f, 0.02f};
    case LM_T_NORM: case LM_T_GNORM: case LM_T_NORM_F: return (dist){DIST_NORMAL, 1.0f, 0.05f};
    case LM_T_IN_PROJ: case LM_T_OUT_PROJ: case LM_T_LM_HEAD: return (dist){DIST_NORMAL, 0.0f, 1.0f / sqrtf((float)t->cols)};
    case LM_T_CONV_W: case LM_T_CONV_B: return (dist){DIST_UNIFORM, -conv_bound, conv_bound};
    case LM_T_DT_BIAS: return (dist){DIST_DT_BIAS, 1e-3f, 0.1f};
    case LM_T_A_LOG: return (dist){DIST_LOG_UNIFORM, 1.0f, 16.0f};
    case LM_T_D: return (dist){DIST_NORMAL, 1.0f, 0.0f};
    default: return (dist){DIST_NORMAL, 0.0f, 0.0f}; /* projection biases */
    }
}

/* x [numel] = the values of tensor t. */
static void fill_tensor(float *x, const lm_config *c, const lm_tensor_desc *t, uint64_t seed, lm_pool *pool) {
    const dist d = dist_of(c, t);
    fill(x, lm_tensor_numel(t), &d, seed, t->name, pool);
}

static lm_status check_config(const lm_config *c) {
    if (c->d_inner != c->n_heads * c->head_dim || c->n_heads % c->n_groups)
        return lm_fail(LM_ERR_ARG, "synth: inconsistent config (d_inner %d, %d heads of %d, %d groups)", c->d_inner,
                       c->n_heads, c->head_dim, c->n_groups);
    return LM_OK;
}

/* ---- the quantized writer ---- */

typedef struct {
    lm_model *m;
    const lm_quant_settings *q;
    uint64_t seed;
    lm_pool *pool;
    float *scratch; /* one linear layer's float weights */
} qbuild;

/* A float tensor of the model, in memory the model owns. */
static lm_status owned_tensor(qbuild *b, const lm_tensor_desc *t, float **out) {
    LM_TRY(lm_model_own(b->m, lm_tensor_numel(t) * sizeof(float), (void **)out));
    fill_tensor(*out, &b->m->cfg, t, b->seed, b->pool);
    return LM_OK;
}

/* Round to nearest with a fixed row exponent. The real quantizer (lm_quantize_rtn) tries nine
 * row exponents e0 per row, each with a full pair search per group: 10x the work, an hour for
 * Mamba2-2.7B on two cores. Here e0 = floor(log2(max|W[o]| / qmax)) - 6 puts the largest group's
 * ideal mantissa in [64, 128), inside the pairs' range [2, 256]; each group then takes the real
 * quantizer's best exponent pair (lm_wgroup_best_pair) and rounds to nearest. The integer weights
 * and scales have the distribution of a real quantized model, which is what speed depends on. */
typedef struct {
    lm_qweight_buf *out;
    const float *W;
    int8_t *qrows; /* [workers, K] */
} synth_quant_task;

static void quantize_rows(void *p, int i, int n) {
    synth_quant_task *t = p;
    const lm_qweight *v = &t->out->view;
    const int K = v->cols, qmax = lm_qmax(v->wbits), G = lm_wgroups(K);
    int8_t *q = t->qrows + (size_t)i * K;
    for (int o = (int)((long)v->rows * i / n); o < (int)((long)v->rows * (i + 1) / n); o++) {
        const float *w = t->W + (size_t)o * K;
        float m = 0.0f;
        for (int k = 0; k < K; k++) m = fmaxf(m, fabsf(w[k]));
        int E = 0;
        if (m > 0) frexpf(m / (float)qmax, &E); /* m / qmax = f 2^E, f in [0.5, 1) */
        const int e0 = m > 0 ? E - 1 - 6 : 0;
        t->out->e0[o] = (int8_t)e0;
        for (int g = 0; g < G; g++) {
            const int k0 = g * LM_WEIGHT_GROUP, len = K - k0 < LM_WEIGHT_GROUP ? K - k0 : LM_WEIGHT_GROUP;
            uint8_t *pair = &t->out->scale[(size_t)o * G + g];
            lm_wgroup_best_pair(w + k0, len, e0, qmax, pair);
            const float s = ldexpf((float)lm_wscale_mult(*pair), e0);
            for (int k = k0; k < k0 + len; k++) {
                float r = roundf(w[k] / s);
                q[k] = (int8_t)(r > qmax ? qmax : r < -qmax ? -qmax : r);
            }
        }
        uint8_t *row = t->out->q + (size_t)o * v->row_stride;
        if (v->wbits == 4)
            lm_pack_int4_row(row, q, K);
        else
            memcpy(row, q, (size_t)K);
    }
}

/* Tensor t drawn and quantized to `bits` into *out (storage owned by the model). */
static lm_status quantized_matrix(qbuild *b, const lm_tensor_desc *t, int bits, lm_qweight *out) {
    fill_tensor(b->scratch, &b->m->cfg, t, b->seed, b->pool);
    lm_qweight_buf w;
    LM_TRY(lm_qweight_buf_init(&w, t->rows, t->cols, bits));
    synth_quant_task task = {&w, b->scratch, NULL};
    if (lm_calloc(&task.qrows, (size_t)lm_pool_size(b->pool), (size_t)t->cols, "weight rows") != LM_OK) {
        lm_qweight_buf_free(&w);
        return LM_ERR_NOMEM;
    }
    lm_pool_run(b->pool, quantize_rows, &task);
    free(task.qrows);
    *out = w.view;
    return lm_qweight_buf_give(&w, b->m);
}

static lm_status quantized_linear(qbuild *b, const lm_tensor_desc *t, int wbits, int abits, lm_linear *lin) {
    *lin = (lm_linear){.kind = LM_LINEAR_INT, .rows = t->rows, .cols = t->cols, .abits = abits};
    return quantized_matrix(b, t, wbits, &lin->q);
}

static lm_status bind_tensor(void *ctx, const lm_tensor_desc *t) {
    qbuild *b = ctx;
    const int hb = b->q->head_bits; /* == embedding_bits */
    if (t->role == LM_T_IN_PROJ || t->role == LM_T_OUT_PROJ)
        return quantized_linear(b, t, b->q->wbits, b->q->abits, lm_tensor_linear(b->m, t));
    if (hb && t->role == LM_T_EMBEDDING) return quantized_matrix(b, t, hb, &b->m->embedding_q);
    if (hb && t->role == LM_T_LM_HEAD) return quantized_linear(b, t, hb, LM_HEAD_ABITS, &b->m->lm_head);
    float *x = NULL;
    LM_TRY(owned_tensor(b, t, &x));
    if (t->role == LM_T_A_LOG)
        for (int h = 0; h < t->rows; h++) x[h] = -expf(x[h]); /* the model holds A = -exp(A_log) */
    lm_linear *lin = lm_tensor_linear(b->m, t);
    if (lin)
        *lin = (lm_linear){.kind = LM_LINEAR_F32, .rows = t->rows, .cols = t->cols, .w = x};
    else
        *lm_tensor_slot(b->m, t) = x;
    return LM_OK;
}

/* SSM mode pot8: every block's integer parameters, its sites calibrated on one sample of
 * SYNTH_CALIB_LEN tokens drawn from the seed, run through the model itself (integer in_proj and
 * out_proj): the ranges of random weights, which is all a speed measurement needs; the integer
 * datapath does the same work whatever they are. m->int_layers [n_layer] is the caller's to free. */
enum { SYNTH_CALIB_LEN = 128 };
static lm_status build_int_layers(lm_model *m, uint64_t seed, int n_threads) {
    const lm_config *c = &m->cfg;
    int32_t ids[SYNTH_CALIB_LEN];
    for (int i = 0; i < SYNTH_CALIB_LEN; i++)
        ids[i] = (int32_t)(splitmix64(tensor_stream(seed, "calibration") + (uint64_t)i) % (uint64_t)c->vocab_size);
    lm_int_calib *cal = NULL;
    lm_int_layer *layers = NULL;
    lm_status s = lm_calloc(&cal, (size_t)c->n_layer, sizeof *cal, "integer calibration");
    if (!s) s = lm_int_calibrate(m, ids, SYNTH_CALIB_LEN, 1, SYNTH_CALIB_LEN, n_threads, cal, NULL, NULL);
    if (!s) s = lm_calloc(&layers, (size_t)c->n_layer, sizeof *layers, "integer layers");
    if (!s) s = lm_int_build_layers(layers, m, cal, m->quant.abits, 0);
    if (!s) m->int_layers = layers;
    else free(layers);
    free(cal);
    return s;
}

/* The bundled GPT-NeoX tokenizer.json, embedded in or written beside every synthetic model. */
static lm_status read_bundled_tokenizer(char **json, size_t *len) {
    char *path = NULL;
    LM_TRY(lm_data_path("tokenizer.json", &path));
    lm_status s = lm_read_file(path, json, len);
    free(path);
    return s;
}

lm_status lm_synth_quantized(const char *path, const lm_config *c, const lm_quant_settings *q, uint64_t seed,
                             int n_threads) {
    LM_TRY(check_config(c));
    if (q->method != LM_QUANT_RTN && q->method != LM_QUANT_LIGHTMAMBA)
        return lm_fail(LM_ERR_ARG, "synth: method must be rtn or lightmamba");
    if ((q->wbits != 4 && q->wbits != 8) || (q->abits != 4 && q->abits != 8) || (q->wbits == 8 && q->abits == 4))
        return lm_fail(LM_ERR_ARG, "synth: W%dA%d is not supported (W4A4, W4A8 or W8A8)", q->wbits, q->abits);
    if ((q->head_bits != 0 && q->head_bits != 8 && q->head_bits != 4) || q->embedding_bits != q->head_bits)
        return lm_fail(LM_ERR_ARG, "synth: embedding and lm_head format %d, %d: one of 0 (float16), 8 or 4 bits for both",
                       q->embedding_bits, q->head_bits);
    if (q->ssm_mode != LM_SSM_FLOAT && q->ssm_mode != LM_SSM_POT8)
        return lm_fail(LM_ERR_UNSUPPORTED, "synth: SSM mode %d is not supported", (int)q->ssm_mode);
    if (q->datapath || q->act_group != LM_ACT_GROUP || q->act_scale != LM_ACT_SCALE_POW2)
        return lm_fail(LM_ERR_UNSUPPORTED, "synth: only our datapath and the hardware's activation format");
    lm_model *m;
    LM_TRY(lm_calloc(&m, 1, sizeof *m, "model"));
    m->cfg = *c;
    m->quant = *q;
    m->quant.rotated = q->method == LM_QUANT_LIGHTMAMBA;
    m->quant.gptq = 0;
    const int pot8 = q->ssm_mode == LM_SSM_POT8;
    m->quant.calib_samples = pot8 ? 1 : 0;
    m->quant.calib_len = pot8 ? SYNTH_CALIB_LEN : 0;
    qbuild b = {m, &m->quant, seed, NULL, NULL};
    const size_t E = 2 * (size_t)c->d_inner + 2 * (size_t)c->n_groups * c->d_state + c->n_heads;
    size_t biggest = E * c->d_model > (size_t)c->d_model * c->d_inner ? E * c->d_model : (size_t)c->d_model * c->d_inner;
    if (q->head_bits && (size_t)c->vocab_size * c->d_model > biggest) biggest = (size_t)c->vocab_size * c->d_model;
    char *tok = NULL;
    size_t tok_len = 0;
    lm_status s = read_bundled_tokenizer(&tok, &tok_len);
    if (!s) s = lm_calloc(&b.scratch, biggest, sizeof(float), "weights of one layer");
    if (!s && m->quant.rotated) s = lm_hadamard_init(&m->rot_inner, c->d_inner); /* fails early on an unsupported d_inner */
    if (!s) s = lm_pool_init(&b.pool, n_threads);
    if (!s) s = lm_layout_bind(m, -1, NULL, bind_tensor, &b);
    if (!s && pot8) s = build_int_layers(m, seed, n_threads);
    if (!s) s = lm_qfile_write(path, m, tok, tok_len);
    for (int l = 0; m->int_layers && l < c->n_layer; l++) lm_int_layer_free(&m->int_layers[l]);
    free(m->int_layers);
    m->int_layers = NULL;
    free(tok);
    lm_pool_free(b.pool);
    free(b.scratch);
    lm_model_free(m);
    return s;
}

/* ---- the float writer: config.json + model.safetensors ---- */

typedef struct {
    char *text;
    size_t len, cap;
    lm_status status;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...) {
    if (b->status) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->text ? b->text + b->len : NULL, b->text ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->status = lm_fail(LM_ERR_ARG, "synth: formatting failed");
            return;
        }
        if (b->text && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = 2 * (b->cap + (size_t)n + 64);
        char *g = realloc(b->text, cap);
        if (!g) {
            b->status = lm_fail(LM_ERR_NOMEM, "out of memory");
            return;
        }
        b->text = g;
        b->cap = cap;
    }
}

typedef struct {
    strbuf json;
    size_t offset; /* data bytes of the entries so far */
} st_header;

static lm_status header_entry(void *ctx, const lm_tensor_desc *t) {
    st_header *h = ctx;
    size_t bytes = lm_tensor_numel(t) * sizeof(float);
    sb_printf(&h->json, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d", h->offset ? "," : "", t->name, t->rows);
    if (t->role == LM_T_CONV_W) sb_printf(&h->json, ",1");
    if (t->cols) sb_printf(&h->json, ",%d", t->cols);
    sb_printf(&h->json, "],\"data_offsets\":[%zu,%zu]}", h->offset, h->offset + bytes);
    h->offset += bytes;
    return h->json.status;
}

typedef struct {
    const lm_config *c;
    lm_atomic_file *af;
    uint64_t seed;
    lm_pool *pool;
    float *scratch;
} fwrite_ctx;

static lm_status write_tensor(void *ctx, const lm_tensor_desc *t) {
    fwrite_ctx *w = ctx;
    fill_tensor(w->scratch, w->c, t, w->seed, w->pool);
    return lm_atomic_write(w->af, w->scratch, lm_tensor_numel(t) * sizeof(float));
}

static lm_status write_text_file(const char *dir, const char *name, const char *text, size_t len) {
    char *path = lm_path_join(dir, name);
    if (!path) return lm_fail(LM_ERR_NOMEM, "out of memory");
    lm_atomic_file af = {0};
    lm_status s = lm_atomic_open(&af, path);
    if (!s) s = lm_atomic_write(&af, text, len);
    if (!s) s = lm_atomic_commit(&af);
    if (s) lm_atomic_abort(&af);
    free(path);
    return s;
}

lm_status lm_synth_float(const char *dir, const lm_config *c, uint64_t seed, int n_threads) {
    LM_TRY(check_config(c));
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return lm_fail(LM_ERR_IO, "cannot create directory %s: %s", dir, strerror(errno));
    if (!lm_is_directory(dir)) return lm_fail(LM_ERR_IO, "%s exists and is not a directory", dir);

    strbuf cfg = {0};
    char lim[64];
    if (isinf(c->dt_limit_max))
        snprintf(lim, sizeof lim, "[%.9g, {\"__float__\": \"Infinity\"}]", c->dt_limit_min);
    else
        snprintf(lim, sizeof lim, "[%.9g, %.9g]", c->dt_limit_min, c->dt_limit_max);
    sb_printf(&cfg,
              "{\n  \"model_type\": \"mamba2\",\n  \"hidden_size\": %d,\n  \"num_hidden_layers\": %d,\n  \"state_size\": %d,\n"
              "  \"head_dim\": %d,\n  \"num_heads\": %d,\n  \"n_groups\": %d,\n  \"expand\": %d,\n  \"conv_kernel\": %d,\n"
              "  \"layer_norm_epsilon\": %.9g,\n  \"vocab_size\": %d,\n  \"tie_word_embeddings\": %s,\n  \"use_bias\": %s,\n"
              "  \"use_conv_bias\": %s,\n  \"rms_norm\": true,\n  \"norm_before_gate\": false,\n  \"time_step_limit\": %s\n}\n",
              c->d_model, c->n_layer, c->d_state, c->head_dim, c->n_heads, c->n_groups, c->d_inner / c->d_model, c->d_conv,
              c->eps, c->vocab_size, c->tie_embeddings ? "true" : "false", c->proj_bias ? "true" : "false",
              c->conv_bias ? "true" : "false", lim);
    if (!cfg.status && c->d_inner % c->d_model)
        cfg.status = lm_fail(LM_ERR_ARG, "synth: the float variant needs d_inner a multiple of d_model (expand)");

    /* safetensors: u64 header length, the JSON header (padded with spaces to 8 bytes), the data */
    st_header hd = {{0}, 0};
    strbuf *h = &hd.json;
    sb_printf(h, "{");
    lm_status s = cfg.status ? cfg.status : lm_layout_walk(c, header_entry, &hd);
    sb_printf(h, "}");
    while (!h->status && (8 + h->len) % 8) sb_printf(h, " ");
    if (!s) s = h->status;

    fwrite_ctx w = {c, NULL, seed, NULL, NULL};
    lm_atomic_file af = {0};
    char *path = NULL;
    size_t biggest = (size_t)c->vocab_size * c->d_model;
    size_t E = 2 * (size_t)c->d_inner + 2 * (size_t)c->n_groups * c->d_state + c->n_heads;
    if (E * c->d_model > biggest) biggest = E * c->d_model;
    if (!s) s = lm_calloc(&w.scratch, biggest, sizeof(float), "weights of one tensor");
    if (!s) s = lm_pool_init(&w.pool, n_threads);
    if (!s && !(path = lm_path_join(dir, "model.safetensors"))) s = lm_fail(LM_ERR_NOMEM, "out of memory");
    if (!s) s = lm_atomic_open(&af, path);
    w.af = &af;
    uint64_t hlen = h->len;
    if (!s) s = lm_atomic_write(&af, &hlen, 8);
    if (!s) s = lm_atomic_write(&af, h->text, h->len);
    if (!s) s = lm_layout_walk(c, write_tensor, &w);
    if (!s) s = lm_atomic_commit(&af);
    if (s) lm_atomic_abort(&af);
    if (!s) s = write_text_file(dir, "config.json", cfg.text, cfg.len);
    char *tok = NULL;
    size_t tok_len = 0;
    if (!s) s = read_bundled_tokenizer(&tok, &tok_len);
    if (!s) s = write_text_file(dir, "tokenizer.json", tok, tok_len);
    free(tok);
    free(path);
    lm_pool_free(w.pool);
    free(w.scratch);
    free(h->text);
    free(cfg.text);
    return s;
}
