/* Synthetic Mamba2 checkpoints for tests: writes a model directory (config.json +
 * model.safetensors, or shards + model.safetensors.index.json) with random weights for
 * any configuration. Header-only (static functions), include it from a tests/test_*.c.
 *
 *   synth_config c;
 *   synth_default(&c);                      small HF-layout model, F32, tied
 *   c.d_model = 96; c.n_groups = 2; c.dtype = "BF16"; c.n_shards = 3;
 *   char dir[64];
 *   if (synth_tempdir(dir) || synth_write_checkpoint(dir, &c)) return 1;
 *   ... lm_model_init(&m, dir) ...
 *   synth_remove_dir(dir);
 *
 * Every value is rounded to bfloat16 precision (and values below 2^-14 to zero), so it is
 * exactly representable in F32, F16 and BF16: the same seed gives bit-identical float32
 * weights whichever dtype is written. Values depend only on (seed, tensor name), not on
 * dtype or sharding. Weights are scaled like a real initialisation (linear layers
 * U(-1,1)/sqrt(fan_in), norms near 1, dt_bias = softplus^-1 of dt in [1e-3, 0.1],
 * A_log = log U(1,16)), so a forward pass gives finite, non-trivial activations. */
#ifndef LM_TEST_SYNTH_CHECKPOINT_H
#define LM_TEST_SYNTH_CHECKPOINT_H
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/half.h"

typedef struct {
    int d_model, n_layer, d_state, head_dim, n_groups, d_conv;
    int expand;            /* d_inner = expand * d_model; n_heads = d_inner / head_dim */
    int vocab_size;        /* tokens; the embedding has it rounded up to pad_multiple rows */
    int pad_multiple;      /* >= 1 */
    int tied;              /* lm_head tied to the embedding (no lm_head.weight) */
    int conv_bias, proj_bias;
    double eps;
    double dt_limit_min, dt_limit_max; /* time_step_limit; max may be INFINITY */
    const char *dtype;     /* "F32", "F16" or "BF16" */
    int state_spaces;      /* 1: state-spaces config keys and backbone.embedding.weight */
    int n_shards;          /* <= 1: model.safetensors; > 1: that many shards + index */
    int misalign;          /* 1: header padded so the data section starts at an address = 2 mod 4 */
    uint64_t seed;
    const char *omit;      /* NULL, or a tensor name to leave out */
    const char *extra;     /* NULL, or the name of an extra [4] tensor to add */
} synth_config;

static inline void synth_default(synth_config *c) {
    memset(c, 0, sizeof *c);
    c->d_model = 64;
    c->n_layer = 2;
    c->d_state = 16;
    c->head_dim = 16;
    c->n_groups = 1;
    c->d_conv = 4;
    c->expand = 2;
    c->vocab_size = 300;
    c->pad_multiple = 1;
    c->tied = 1;
    c->conv_bias = 1;
    c->eps = 1e-5;
    c->dt_limit_max = INFINITY;
    c->dtype = "F32";
    c->seed = 1;
}

static inline int synth_vocab_rows(const synth_config *c) {
    return (c->vocab_size + c->pad_multiple - 1) / c->pad_multiple * c->pad_multiple;
}
static inline int synth_n_heads(const synth_config *c) { return c->expand * c->d_model / c->head_dim; }

/* ---- small utilities ---- */
static inline int synth_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return -1; }
    int bad = len && fwrite(data, 1, len, f) != len;
    bad |= fclose(f) != 0;
    if (bad) fprintf(stderr, "synth: cannot write %s\n", path);
    return bad ? -1 : 0;
}

/* dir: a buffer of at least 32 bytes; gets a fresh directory under /tmp. */
static inline int synth_tempdir(char *dir) {
    strcpy(dir, "/tmp/lm_synth_XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return -1; }
    return 0;
}

/* Removes the files directly inside dir, then dir. */
static inline void synth_remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* A growing text buffer. */
typedef struct { char *s; size_t len, cap; } synth_buf;
static inline void synth_printf(synth_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void synth_printf(synth_buf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (b->s && (size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s) abort();
    }
}

/* ---- config.json ---- */
static inline int synth_write_config(const char *dir, const synth_config *c) {
    synth_buf b = {0};
    char lim[64];
    if (isinf(c->dt_limit_max)) snprintf(lim, sizeof lim, "[%.17g, {\"__float__\": \"Infinity\"}]", c->dt_limit_min);
    else snprintf(lim, sizeof lim, "[%.17g, %.17g]", c->dt_limit_min, c->dt_limit_max);
    if (c->state_spaces) {
        synth_printf(&b, "{\n  \"d_model\": %d,\n  \"d_intermediate\": 0,\n  \"n_layer\": %d,\n  \"vocab_size\": %d,\n"
                         "  \"ssm_cfg\": {\"layer\": \"Mamba2\", \"d_state\": %d, \"d_conv\": %d, \"expand\": %d, "
                         "\"headdim\": %d, \"ngroups\": %d, \"bias\": %s, \"conv_bias\": %s, \"dt_limit\": %s},\n"
                         "  \"attn_layer_idx\": [],\n  \"attn_cfg\": {},\n  \"rms_norm\": true,\n  \"norm_epsilon\": %.17g,\n"
                         "  \"residual_in_fp32\": true,\n  \"fused_add_norm\": true,\n"
                         "  \"pad_vocab_size_multiple\": %d,\n  \"tie_embeddings\": %s\n}\n",
                     c->d_model, c->n_layer, c->vocab_size, c->d_state, c->d_conv, c->expand, c->head_dim, c->n_groups,
                     c->proj_bias ? "true" : "false", c->conv_bias ? "true" : "false", lim, c->eps, c->pad_multiple,
                     c->tied ? "true" : "false");
    } else {
        synth_printf(&b, "{\n  \"architectures\": [\"Mamba2ForCausalLM\"],\n  \"model_type\": \"mamba2\",\n"
                         "  \"hidden_size\": %d,\n  \"num_hidden_layers\": %d,\n  \"state_size\": %d,\n  \"head_dim\": %d,\n"
                         "  \"num_heads\": %d,\n  \"n_groups\": %d,\n  \"expand\": %d,\n  \"conv_kernel\": %d,\n"
                         "  \"layer_norm_epsilon\": %.17g,\n  \"vocab_size\": %d,\n  \"tie_word_embeddings\": %s,\n"
                         "  \"use_bias\": %s,\n  \"use_conv_bias\": %s,\n  \"rms_norm\": true,\n"
                         "  \"norm_before_gate\": false,\n  \"time_step_limit\": %s\n}\n",
                     c->d_model, c->n_layer, c->d_state, c->head_dim, synth_n_heads(c), c->n_groups, c->expand,
                     c->d_conv, c->eps, synth_vocab_rows(c), c->tied ? "true" : "false",
                     c->proj_bias ? "true" : "false", c->conv_bias ? "true" : "false", lim);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int r = synth_write_file(path, b.s, b.len);
    free(b.s);
    return r;
}

/* ---- weights ---- */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[3];
    size_t n;
    float *data;
} synth_tensor;

static inline uint64_t synth_mix(uint64_t x) { /* splitmix64 finaliser */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
static inline double synth_uniform(uint64_t *state, double lo, double hi) {
    *state = synth_mix(*state);
    return lo + (hi - lo) * (double)(*state >> 11) * (1.0 / 9007199254740992.0);
}

/* Rounds to bfloat16 (nearest even), flushing |x| < 2^-14 to zero: exact in F16 and BF16. */
static inline float synth_round(float x) {
    if (fabsf(x) < 0x1p-14f) return 0.0f;
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

typedef enum { SY_UNIFORM, SY_NORM, SY_DT_BIAS, SY_A_LOG } synth_kind;

static inline void synth_add(synth_tensor *ts, int *n, const synth_config *c, const char *name, synth_kind kind, double scale,
                      int ndim, int64_t d0, int64_t d1, int64_t d2) {
    if (c->omit && !strcmp(c->omit, name)) return;
    synth_tensor *t = &ts[(*n)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0, t->shape[1] = d1, t->shape[2] = d2;
    t->n = 1;
    for (int d = 0; d < ndim; d++) t->n *= (size_t)t->shape[d];
    t->data = malloc(t->n * sizeof(float) + 1);
    if (!t->data) abort();
    /* The values depend on the seed and the name (the embedding's under its HF name in both layouts). */
    const char *key = strcmp(name, "backbone.embedding.weight") ? name : "backbone.embeddings.weight";
    uint64_t state = c->seed;
    for (const char *p = key; *p; p++) state = synth_mix(state ^ (unsigned char)*p);
    for (size_t i = 0; i < t->n; i++) {
        double v;
        switch (kind) {
        case SY_NORM: v = 1.0 + synth_uniform(&state, -0.2, 0.2); break;
        case SY_DT_BIAS: {
            double dt = exp(synth_uniform(&state, log(1e-3), log(0.1)));
            v = dt + log(-expm1(-dt)); /* softplus^-1(dt) */
            break;
        }
        case SY_A_LOG: v = log(synth_uniform(&state, 1.0, 16.0)); break;
        default: v = synth_uniform(&state, -scale, scale); break;
        }
        t->data[i] = synth_round((float)v);
    }
}

/* The tensors of a checkpoint for c, in the loader's order; returns their count. */
static inline int synth_tensors(synth_tensor *ts, const synth_config *c) {
    int n = 0;
    const int64_t H = synth_n_heads(c), d_inner = (int64_t)c->expand * c->d_model, GN = (int64_t)c->n_groups * c->d_state;
    const int64_t V = synth_vocab_rows(c);
    char name[96];
    synth_add(ts, &n, c, c->state_spaces ? "backbone.embedding.weight" : "backbone.embeddings.weight", SY_UNIFORM, 1.0,
              2, V, c->d_model, 0);
    for (int i = 0; i < c->n_layer; i++) {
#define SY(suffix, kind, scale, ndim, d0, d1, d2) \
    (snprintf(name, sizeof name, "backbone.layers.%d.%s", i, suffix), \
     synth_add(ts, &n, c, name, kind, scale, ndim, d0, d1, d2))
        SY("norm.weight", SY_NORM, 0, 1, c->d_model, 0, 0);
        SY("mixer.in_proj.weight", SY_UNIFORM, 1 / sqrt(c->d_model), 2, 2 * d_inner + 2 * GN + H, c->d_model, 0);
        if (c->proj_bias) SY("mixer.in_proj.bias", SY_UNIFORM, 0.1, 1, 2 * d_inner + 2 * GN + H, 0, 0);
        SY("mixer.conv1d.weight", SY_UNIFORM, 0.5, 3, d_inner + 2 * GN, 1, c->d_conv);
        if (c->conv_bias) SY("mixer.conv1d.bias", SY_UNIFORM, 0.1, 1, d_inner + 2 * GN, 0, 0);
        SY("mixer.dt_bias", SY_DT_BIAS, 0, 1, H, 0, 0);
        SY("mixer.A_log", SY_A_LOG, 0, 1, H, 0, 0);
        SY("mixer.D", SY_UNIFORM, 1.0, 1, H, 0, 0);
        SY("mixer.norm.weight", SY_NORM, 0, 1, d_inner, 0, 0);
        SY("mixer.out_proj.weight", SY_UNIFORM, 1 / sqrt((double)d_inner), 2, c->d_model, d_inner, 0);
        if (c->proj_bias) SY("mixer.out_proj.bias", SY_UNIFORM, 0.1, 1, c->d_model, 0, 0);
#undef SY
    }
    synth_add(ts, &n, c, "backbone.norm_f.weight", SY_NORM, 0, 1, c->d_model, 0, 0);
    if (!c->tied) synth_add(ts, &n, c, "lm_head.weight", SY_UNIFORM, 1 / sqrt(c->d_model), 2, V, c->d_model, 0);
    if (c->extra) synth_add(ts, &n, c, c->extra, SY_UNIFORM, 1.0, 1, 4, 0, 0);
    return n;
}

/* Writes tensors ts[0..n) in dtype to one safetensors file. */
static inline int synth_write_safetensors(const char *path, const synth_tensor *ts, int n, const char *dtype, int misalign) {
    size_t es = strcmp(dtype, "F32") ? 2 : 4;
    synth_buf h = {0};
    size_t off = 0;
    synth_printf(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        synth_printf(&h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", ts[i].name, dtype);
        for (int d = 0; d < ts[i].ndim; d++) synth_printf(&h, "%s%lld", d ? "," : "", (long long)ts[i].shape[d]);
        synth_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + ts[i].n * es);
        off += ts[i].n * es;
    }
    synth_printf(&h, "}");
    /* Pad with spaces so the data section starts 8-aligned (or at 2 mod 4 when misaligned). */
    while ((8 + h.len) % 8 != (misalign ? 2u : 0u)) synth_printf(&h, " ");
    size_t total = 8 + h.len + off;
    unsigned char *buf = malloc(total);
    if (!buf) abort();
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    memcpy(buf + 8, h.s, h.len);
    unsigned char *p = buf + 8 + h.len;
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < ts[i].n; k++) {
            float x = ts[i].data[k];
            uint32_t u;
            memcpy(&u, &x, 4);
            uint16_t v = !strcmp(dtype, "F16") ? lm_f32_to_f16(x) : (uint16_t)(u >> 16);
            if (es == 4) memcpy(p, &x, 4);
            else memcpy(p, &v, 2);
            p += es;
        }
    int r = synth_write_file(path, buf, total);
    free(buf);
    free(h.s);
    return r;
}

/* Writes dir/config.json and the weights (dir must exist). */
static inline int synth_write_checkpoint(const char *dir, const synth_config *c) {
    if (synth_write_config(dir, c)) return -1;
    synth_tensor *ts = calloc((size_t)(16 * c->n_layer + 8), sizeof *ts);
    if (!ts) abort();
    int n = synth_tensors(ts, c), r = 0;
    char path[4096];
    if (c->n_shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        r = synth_write_safetensors(path, ts, n, c->dtype, c->misalign);
    } else {
        synth_buf idx = {0};
        synth_printf(&idx, "{\"metadata\": {}, \"weight_map\": {");
        for (int s = 0; s < c->n_shards && !r; s++) {
            int lo = n * s / c->n_shards, hi = n * (s + 1) / c->n_shards;
            char file[64];
            snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, c->n_shards);
            snprintf(path, sizeof path, "%s/%s", dir, file);
            r = synth_write_safetensors(path, ts + lo, hi - lo, c->dtype, c->misalign);
            for (int i = lo; i < hi; i++) synth_printf(&idx, "%s\"%s\": \"%s\"", i ? ", " : "", ts[i].name, file);
        }
        synth_printf(&idx, "}}\n");
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (!r) r = synth_write_file(path, idx.s, idx.len);
        free(idx.s);
    }
    for (int i = 0; i < n; i++) free(ts[i].data);
    free(ts);
    return r;
}

#endif
