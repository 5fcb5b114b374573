/* GGUF reading and writing (format/gguf.h), following ggml's gguf.cpp: duplicate keys or
 * tensor names, nested arrays, more than 4 dimensions, a row size that is not a whole number
 * of blocks and misaligned offsets are refused as it refuses them. */
#include "format/gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/half.h"

/* ggml's types: name, elements per block, bytes per block (0: no such type). */
static const struct {
    const char *name;
    uint32_t block, size;
} ggml_types[] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},          [2] = {"Q4_0", 32, 18},      [3] = {"Q4_1", 32, 20},
    [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},       [8] = {"Q8_0", 32, 34},      [9] = {"Q8_1", 32, 36},
    [10] = {"Q2_K", 256, 84},    [11] = {"Q3_K", 256, 110},    [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292},    [16] = {"IQ2_XXS", 256, 66}, [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},    [20] = {"IQ4_NL", 32, 18},   [21] = {"IQ3_S", 256, 110},
    [22] = {"IQ2_S", 256, 82},   [23] = {"IQ4_XS", 256, 136},  [24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},         [28] = {"F64", 1, 8},        [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},       [34] = {"TQ1_0", 256, 54},    [35] = {"TQ2_0", 256, 66},   [39] = {"MXFP4", 32, 17},
};
#define N_GGML_TYPES (sizeof ggml_types / sizeof *ggml_types)

/* Bytes of one scalar value of each metadata type (0: string or array). */
static const uint8_t kv_size[LM_GGUF_N_TYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *const kv_type_names[LM_GGUF_N_TYPES] = {"uint8", "int8",   "uint16", "int16", "uint32",
                                                           "int32", "float32", "bool",  "string", "array",
                                                           "uint64", "int64", "float64"};

const char *lm_ggml_type_name(uint32_t type) { return type < N_GGML_TYPES ? ggml_types[type].name : NULL; }

size_t lm_ggml_nbytes(uint32_t type, uint64_t n) { return (size_t)(n / ggml_types[type].block * ggml_types[type].size); }

/* ---- reading ---- */

typedef struct {
    const unsigned char *p;
    size_t len, at;
    const char *what;
} cursor;

static uint64_t rd(const unsigned char *p, int bytes) {
    uint64_t x = 0;
    for (int i = bytes - 1; i >= 0; i--) x = x << 8 | p[i];
    return x;
}

static lm_status need(cursor *c, uint64_t n, const char *what_for) {
    if (n > c->len - c->at)
        return lm_fail(LM_ERR_FORMAT, "%s: %s of %llu bytes at byte %zu runs past the end of the file (%zu bytes)",
                       c->what, what_for, (unsigned long long)n, c->at, c->len);
    return LM_OK;
}

static lm_status read_u32(cursor *c, uint32_t *out, const char *what_for) {
    LM_TRY(need(c, 4, what_for));
    *out = (uint32_t)rd(c->p + c->at, 4);
    c->at += 4;
    return LM_OK;
}

static lm_status read_u64(cursor *c, uint64_t *out, const char *what_for) {
    LM_TRY(need(c, 8, what_for));
    *out = rd(c->p + c->at, 8);
    c->at += 8;
    return LM_OK;
}

static lm_status read_string(cursor *c, const char **s, uint64_t *len, const char *what_for) {
    LM_TRY(read_u64(c, len, what_for));
    LM_TRY(need(c, *len, what_for));
    *s = (const char *)c->p + c->at;
    c->at += (size_t)*len;
    return LM_OK;
}

/* Skips one value of a type, checking it lies inside the buffer. */
static lm_status skip_value(cursor *c, lm_gguf_type type) {
    if (type == LM_GGUF_STRING) {
        const char *s;
        uint64_t len;
        return read_string(c, &s, &len, "a metadata string");
    }
    LM_TRY(need(c, kv_size[type], "a metadata value"));
    c->at += kv_size[type];
    return LM_OK;
}

static lm_status read_kv(cursor *c, lm_gguf_kv *kv) {
    const char *key;
    uint64_t key_len;
    uint32_t type;
    LM_TRY(read_string(c, &key, &key_len, "a metadata key"));
    kv->key = key;
    kv->key_len = (size_t)key_len;
    LM_TRY(read_u32(c, &type, "a metadata type"));
    char name[72];
    snprintf(name, sizeof name, "%.*s", (int)(key_len < 64 ? key_len : 64), key);
    for (char *q = name; *q; q++)
        if (*q < 0x20 || *q >= 0x7f) *q = '?';
    if (type >= LM_GGUF_N_TYPES)
        return lm_fail(LM_ERR_FORMAT, "%s: metadata %s has unknown value type %u", c->what, name, type);
    kv->type = (lm_gguf_type)type;
    if (type != LM_GGUF_ARRAY) {
        kv->value = c->p + c->at;
        if (type == LM_GGUF_STRING) {
            const char *s;
            LM_TRY(read_string(c, &s, &kv->n, "a metadata string"));
            kv->value = (const unsigned char *)s;
            return LM_OK;
        }
        return skip_value(c, kv->type);
    }
    uint32_t elem;
    LM_TRY(read_u32(c, &elem, "an array type"));
    LM_TRY(read_u64(c, &kv->n, "an array length"));
    if (elem >= LM_GGUF_N_TYPES || elem == LM_GGUF_ARRAY)
        return lm_fail(LM_ERR_FORMAT, "%s: metadata %s is an array of %s (unsupported element type %u)", c->what, name,
                       elem == LM_GGUF_ARRAY ? "arrays" : "an unknown type", elem);
    kv->elem_type = (lm_gguf_type)elem;
    kv->value = c->p + c->at;
    if (elem != LM_GGUF_STRING) {
        if (kv->n > (c->len - c->at) / kv_size[elem])
            return lm_fail(LM_ERR_FORMAT, "%s: metadata array %s of %llu elements runs past the end of the file",
                           c->what, name, (unsigned long long)kv->n);
        c->at += (size_t)kv->n * kv_size[elem];
        return LM_OK;
    }
    /* Every string needs at least its 8-byte length. */
    if (kv->n > (c->len - c->at) / 8)
        return lm_fail(LM_ERR_FORMAT, "%s: metadata array %s of %llu strings runs past the end of the file", c->what,
                       name, (unsigned long long)kv->n);
    for (uint64_t i = 0; i < kv->n; i++) LM_TRY(skip_value(c, LM_GGUF_STRING));
    return LM_OK;
}

static int key_is(const lm_gguf_kv *kv, const char *key) {
    return kv->key_len == strlen(key) && !memcmp(kv->key, key, kv->key_len);
}

static lm_status read_tensor_info(cursor *c, lm_gguf_tensor *t) {
    const char *name;
    uint64_t name_len;
    uint32_t n_dims;
    LM_TRY(read_string(c, &name, &name_len, "a tensor name"));
    if (name_len == 0 || name_len > 255 || memchr(name, '\0', (size_t)name_len))
        return lm_fail(LM_ERR_FORMAT, "%s: tensor name at byte %zu is empty, longer than 255 bytes or has a NUL",
                       c->what, c->at);
    if (!(t->name = malloc((size_t)name_len + 1))) return lm_fail(LM_ERR_NOMEM, "%s: out of memory", c->what);
    memcpy(t->name, name, (size_t)name_len);
    t->name[name_len] = '\0';
    LM_TRY(read_u32(c, &n_dims, "a tensor's dimension count"));
    if (n_dims < 1 || n_dims > LM_GGML_MAX_DIMS)
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s has %u dimensions (1 to %d)", c->what, t->name, n_dims,
                       LM_GGML_MAX_DIMS);
    t->n_dims = (int)n_dims;
    t->numel = 1;
    int overflow = 0;
    for (int d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        LM_TRY(read_u64(c, &ne, "a tensor dimension"));
        if (ne > INT64_MAX) return lm_fail(LM_ERR_FORMAT, "%s: tensor %s has a negative dimension", c->what, t->name);
        t->ne[d] = (int64_t)ne;
        overflow |= __builtin_mul_overflow(t->numel, ne, &t->numel);
    }
    LM_TRY(read_u32(c, &t->type, "a tensor type"));
    LM_TRY(read_u64(c, &t->offset, "a tensor offset"));
    if (!lm_ggml_type_name(t->type) || !ggml_types[t->type].block)
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s has unknown type %u", c->what, t->name, t->type);
    if (t->ne[0] % ggml_types[t->type].block)
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s: row of %lld elements is not a whole number of %s blocks of %u",
                       c->what, t->name, (long long)t->ne[0], ggml_types[t->type].name, ggml_types[t->type].block);
    uint64_t blocks = t->numel / ggml_types[t->type].block, nbytes;
    overflow |= __builtin_mul_overflow(blocks, (uint64_t)ggml_types[t->type].size, &nbytes);
    if (overflow || nbytes > SIZE_MAX / 2)
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s is too large", c->what, t->name);
    t->nbytes = (size_t)nbytes;
    return LM_OK;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const lm_gguf_tensor *)a)->name, ((const lm_gguf_tensor *)b)->name);
}

static lm_status parse(lm_gguf *g, cursor *c) {
    uint32_t magic;
    uint64_t n_tensors, n_kv;
    LM_TRY(read_u32(c, &magic, "the magic"));
    if (magic != 0x46554747u) return lm_fail(LM_ERR_FORMAT, "%s: not a GGUF file (no GGUF magic)", c->what);
    LM_TRY(read_u32(c, &g->version, "the version"));
    if (g->version != 2 && g->version != 3)
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: GGUF version %u (supported: 2 and 3, little-endian)", c->what,
                       g->version);
    LM_TRY(read_u64(c, &n_tensors, "the tensor count"));
    LM_TRY(read_u64(c, &n_kv, "the metadata count"));
    /* A metadata pair takes at least 12 bytes, a tensor info at least 32: counts past that overflow the file. */
    if (n_kv > (c->len - c->at) / 12)
        return lm_fail(LM_ERR_FORMAT, "%s: metadata count %llu is more than the file can hold", c->what,
                       (unsigned long long)n_kv);
    if (n_tensors > (c->len - c->at) / 32)
        return lm_fail(LM_ERR_FORMAT, "%s: tensor count %llu is more than the file can hold", c->what,
                       (unsigned long long)n_tensors);
    LM_TRY(lm_calloc(&g->kv, n_kv ? n_kv : 1, sizeof *g->kv, "GGUF metadata"));
    for (uint64_t i = 0; i < n_kv; i++, g->n_kv++) {
        LM_TRY(read_kv(c, &g->kv[i]));
        for (uint64_t j = 0; j < i; j++)
            if (g->kv[j].key_len == g->kv[i].key_len && !memcmp(g->kv[j].key, g->kv[i].key, g->kv[i].key_len))
                return lm_fail(LM_ERR_FORMAT, "%s: metadata key %.*s appears twice", c->what,
                               (int)(g->kv[i].key_len < 64 ? g->kv[i].key_len : 64), g->kv[i].key);
    }
    g->alignment = LM_GGUF_DEFAULT_ALIGNMENT;
    const lm_gguf_kv *al = lm_gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != LM_GGUF_UINT32)
            return lm_fail(LM_ERR_FORMAT, "%s: general.alignment is a %s, not a uint32", c->what,
                           kv_type_names[al->type]);
        g->alignment = (uint32_t)rd(al->value, 4);
        if (!g->alignment || (g->alignment & (g->alignment - 1)))
            return lm_fail(LM_ERR_FORMAT, "%s: general.alignment %u is not a power of two", c->what, g->alignment);
    }
    LM_TRY(lm_calloc(&g->tensors, n_tensors ? n_tensors : 1, sizeof *g->tensors, "GGUF tensor infos"));
    for (uint64_t i = 0; i < n_tensors; i++) {
        g->n_tensors++;
        LM_TRY(read_tensor_info(c, &g->tensors[i]));
    }
    size_t data_start = (c->at + g->alignment - 1) / g->alignment * g->alignment;
    size_t data_size = data_start <= c->len ? c->len - data_start : 0;
    for (size_t i = 0; i < g->n_tensors; i++) {
        lm_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return lm_fail(LM_ERR_FORMAT, "%s: tensor %s: offset %llu is not a multiple of the alignment %u", c->what,
                           t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return lm_fail(LM_ERR_FORMAT, "%s: tensor %s: bytes [%llu, %llu) of the data section run past its end "
                           "(%zu bytes; truncated file?)", c->what, t->name, (unsigned long long)t->offset,
                           (unsigned long long)(t->offset + t->nbytes), data_size);
        t->data = c->p + data_start + t->offset;
    }
    if (g->n_tensors) qsort(g->tensors, g->n_tensors, sizeof *g->tensors, cmp_name);
    for (size_t i = 1; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i - 1].name, g->tensors[i].name))
            return lm_fail(LM_ERR_FORMAT, "%s: tensor %s appears twice", c->what, g->tensors[i].name);
    return LM_OK;
}

lm_status lm_gguf_parse(lm_gguf *g, const unsigned char *data, size_t len, const char *what) {
    memset(g, 0, sizeof *g);
    cursor c = {data, len, 0, what};
    lm_status s = parse(g, &c);
    if (s) lm_gguf_free(g);
    return s;
}

void lm_gguf_free(lm_gguf *g) {
    for (size_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    free(g->kv);
    memset(g, 0, sizeof *g);
}

const lm_gguf_kv *lm_gguf_find(const lm_gguf *g, const char *key) {
    for (size_t i = 0; i < g->n_kv; i++)
        if (key_is(&g->kv[i], key)) return &g->kv[i];
    return NULL;
}

const lm_gguf_tensor *lm_gguf_find_tensor(const lm_gguf *g, const char *name) {
    if (!g->n_tensors) return NULL;
    lm_gguf_tensor key = {.name = (char *)name};
    return bsearch(&key, g->tensors, g->n_tensors, sizeof *g->tensors, cmp_name);
}

static int is_int_type(lm_gguf_type t) {
    return t <= LM_GGUF_INT32 || t == LM_GGUF_UINT64 || t == LM_GGUF_INT64;
}

/* A scalar of integer type t at p, sign-extended for the signed types. */
static int64_t int_value(lm_gguf_type t, const unsigned char *p) {
    switch (t) {
    case LM_GGUF_INT8: return (int8_t)p[0];
    case LM_GGUF_INT16: return (int16_t)rd(p, 2);
    case LM_GGUF_INT32: return (int32_t)rd(p, 4);
    default: return (int64_t)rd(p, kv_size[t]);
    }
}

static lm_status find_typed(const lm_gguf *g, const char *key, const char *what, const lm_gguf_kv **kv) {
    *kv = lm_gguf_find(g, key);
    if (!*kv) return lm_fail(LM_ERR_FORMAT, "%s: metadata %s is missing", what, key);
    return LM_OK;
}

lm_status lm_gguf_get_int(const lm_gguf *g, const char *key, int64_t *out, const char *what) {
    const lm_gguf_kv *kv;
    LM_TRY(find_typed(g, key, what, &kv));
    if (!is_int_type(kv->type))
        return lm_fail(LM_ERR_FORMAT, "%s: metadata %s is a %s, not an integer", what, key, kv_type_names[kv->type]);
    *out = int_value(kv->type, kv->value);
    return LM_OK;
}

lm_status lm_gguf_get_float(const lm_gguf *g, const char *key, double *out, const char *what) {
    const lm_gguf_kv *kv;
    LM_TRY(find_typed(g, key, what, &kv));
    if (kv->type == LM_GGUF_FLOAT32) {
        uint32_t u = (uint32_t)rd(kv->value, 4);
        float f;
        memcpy(&f, &u, 4);
        *out = f;
    } else if (kv->type == LM_GGUF_FLOAT64) {
        uint64_t u = rd(kv->value, 8);
        memcpy(out, &u, 8);
    } else {
        return lm_fail(LM_ERR_FORMAT, "%s: metadata %s is a %s, not a float", what, key, kv_type_names[kv->type]);
    }
    return LM_OK;
}

lm_status lm_gguf_get_string(const lm_gguf *g, const char *key, const char **s, size_t *len, const char *what) {
    const lm_gguf_kv *kv;
    LM_TRY(find_typed(g, key, what, &kv));
    if (kv->type != LM_GGUF_STRING)
        return lm_fail(LM_ERR_FORMAT, "%s: metadata %s is a %s, not a string", what, key, kv_type_names[kv->type]);
    *s = (const char *)kv->value;
    *len = (size_t)kv->n;
    return LM_OK;
}

void lm_gguf_array_string(const lm_gguf_kv *kv, const unsigned char **cursor, const char **s, size_t *len) {
    const unsigned char *p = *cursor ? *cursor : kv->value;
    *len = (size_t)rd(p, 8);
    *s = (const char *)p + 8;
    *cursor = p + 8 + *len;
}

int64_t lm_gguf_array_int(const lm_gguf_kv *kv, uint64_t i) {
    return int_value(kv->elem_type, kv->value + i * kv_size[kv->elem_type]);
}

/* ---- tensor data ---- */

void lm_ggml_to_f32(float *dst, uint32_t type, const unsigned char *src, size_t n) {
    switch (type) {
    case LM_GGML_F32: memcpy(dst, src, n * sizeof(float)); break;
    case LM_GGML_F16: for (size_t i = 0; i < n; i++) dst[i] = lm_f16_to_f32((uint16_t)rd(src + 2 * i, 2)); break;
    case LM_GGML_BF16: for (size_t i = 0; i < n; i++) dst[i] = lm_bf16_to_f32((uint16_t)rd(src + 2 * i, 2)); break;
    case LM_GGML_Q8_0: /* blocks of {f16 d, int8 q[32]}: x = d * q */
        for (size_t b = 0; b < n / 32; b++) {
            const unsigned char *blk = src + 34 * b;
            float d = lm_f16_to_f32((uint16_t)rd(blk, 2));
            for (int j = 0; j < 32; j++) dst[32 * b + (size_t)j] = d * (float)(int8_t)blk[2 + j];
        }
        break;
    }
}

void lm_ggml_from_f32(unsigned char *dst, uint32_t type, const float *src, size_t n) {
    switch (type) {
    case LM_GGML_F32: memcpy(dst, src, n * sizeof(float)); break;
    case LM_GGML_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = lm_f32_to_f16(src[i]);
            dst[2 * i] = (unsigned char)h, dst[2 * i + 1] = (unsigned char)(h >> 8);
        }
        break;
    case LM_GGML_Q8_0: /* ggml's quantize_row_q8_0_ref */
        for (size_t b = 0; b < n / 32; b++) {
            const float *x = src + 32 * b;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
            float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
            unsigned char *blk = dst + 34 * b;
            uint16_t h = lm_f32_to_f16(d);
            blk[0] = (unsigned char)h, blk[1] = (unsigned char)(h >> 8);
            for (int j = 0; j < 32; j++) blk[2 + j] = (unsigned char)(int8_t)roundf(x[j] * id);
        }
        break;
    }
}

/* ---- writing ---- */

static void put(lm_gguf_writer *w, unsigned char **buf, size_t *len, size_t *cap, const void *src, size_t n) {
    if (w->error) return;
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n) c *= 2;
        unsigned char *b = realloc(*buf, c);
        if (!b) {
            w->error = lm_fail(LM_ERR_NOMEM, "out of memory building GGUF metadata");
            return;
        }
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, src, n);
    *len += n;
}

static void put_le(lm_gguf_writer *w, int info, uint64_t v, int bytes) {
    unsigned char b[8];
    for (int i = 0; i < bytes; i++) b[i] = (unsigned char)(v >> (8 * i));
    if (info) put(w, &w->info, &w->info_len, &w->info_cap, b, (size_t)bytes);
    else put(w, &w->kv, &w->kv_len, &w->kv_cap, b, (size_t)bytes);
}

static void put_str(lm_gguf_writer *w, int info, const char *s, size_t len) {
    put_le(w, info, len, 8);
    if (info) put(w, &w->info, &w->info_len, &w->info_cap, s, len);
    else put(w, &w->kv, &w->kv_len, &w->kv_cap, s, len);
}

static void put_key(lm_gguf_writer *w, const char *key, lm_gguf_type type) {
    put_str(w, 0, key, strlen(key));
    put_le(w, 0, type, 4);
    w->n_kv++;
}

void lm_gguf_add_u32(lm_gguf_writer *w, const char *key, uint32_t v) {
    put_key(w, key, LM_GGUF_UINT32);
    put_le(w, 0, v, 4);
}

void lm_gguf_add_f32(lm_gguf_writer *w, const char *key, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    put_key(w, key, LM_GGUF_FLOAT32);
    put_le(w, 0, u, 4);
}

void lm_gguf_add_bool(lm_gguf_writer *w, const char *key, int v) {
    put_key(w, key, LM_GGUF_BOOL);
    put_le(w, 0, v != 0, 1);
}

void lm_gguf_add_string(lm_gguf_writer *w, const char *key, const char *s, size_t len) {
    put_key(w, key, LM_GGUF_STRING);
    put_str(w, 0, s, len);
}

void lm_gguf_add_string_array(lm_gguf_writer *w, const char *key, uint64_t n, lm_gguf_string_fn fn, void *ctx) {
    put_key(w, key, LM_GGUF_ARRAY);
    put_le(w, 0, LM_GGUF_STRING, 4);
    put_le(w, 0, n, 8);
    for (uint64_t i = 0; i < n && !w->error; i++) {
        const char *s;
        size_t len;
        fn(ctx, i, &s, &len);
        put_str(w, 0, s, len);
    }
}

void lm_gguf_add_i32_array(lm_gguf_writer *w, const char *key, const int32_t *v, uint64_t n) {
    put_key(w, key, LM_GGUF_ARRAY);
    put_le(w, 0, LM_GGUF_INT32, 4);
    put_le(w, 0, n, 8);
    for (uint64_t i = 0; i < n; i++) put_le(w, 0, (uint32_t)v[i], 4);
}

static uint64_t align_up(uint64_t x) {
    return (x + LM_GGUF_DEFAULT_ALIGNMENT - 1) / LM_GGUF_DEFAULT_ALIGNMENT * LM_GGUF_DEFAULT_ALIGNMENT;
}

void lm_gguf_add_tensor(lm_gguf_writer *w, const char *name, uint32_t type, int n_dims, const int64_t *ne) {
    if (w->error) return;
    uint64_t *grown = realloc(w->tensor_bytes, (w->n_tensors + 1) * sizeof *grown);
    if (!grown) {
        w->error = lm_fail(LM_ERR_NOMEM, "out of memory building GGUF tensor infos");
        return;
    }
    w->tensor_bytes = grown;
    uint64_t numel = 1;
    put_str(w, 1, name, strlen(name));
    put_le(w, 1, (uint64_t)n_dims, 4);
    for (int d = 0; d < n_dims; d++) {
        put_le(w, 1, (uint64_t)ne[d], 8);
        numel *= (uint64_t)ne[d];
    }
    put_le(w, 1, type, 4);
    put_le(w, 1, w->data_size, 8);
    w->tensor_bytes[w->n_tensors++] = lm_ggml_nbytes(type, numel);
    w->data_size = align_up(w->data_size + lm_ggml_nbytes(type, numel));
}

static lm_status write_padding(lm_atomic_file *af, uint64_t at) {
    static const unsigned char zeros[LM_GGUF_DEFAULT_ALIGNMENT];
    return lm_atomic_write(af, zeros, (size_t)(align_up(at) - at));
}

lm_status lm_gguf_write_header(lm_gguf_writer *w, lm_atomic_file *af) {
    LM_TRY(w->error);
    unsigned char head[24];
    const uint64_t fields[] = {0x46554747u, 3, w->n_tensors, w->n_kv};
    const int sizes[] = {4, 4, 8, 8};
    for (int f = 0, at = 0; f < 4; at += sizes[f++])
        for (int i = 0; i < sizes[f]; i++) head[at + i] = (unsigned char)(fields[f] >> (8 * i));
    LM_TRY(lm_atomic_write(af, head, sizeof head));
    LM_TRY(lm_atomic_write(af, w->kv, w->kv_len));
    LM_TRY(lm_atomic_write(af, w->info, w->info_len));
    return write_padding(af, sizeof head + w->kv_len + w->info_len);
}

lm_status lm_gguf_write_tensor(lm_gguf_writer *w, lm_atomic_file *af, const void *data, size_t nbytes) {
    if (w->written >= w->n_tensors || nbytes != w->tensor_bytes[w->written])
        return lm_fail(LM_ERR_ARG, "GGUF writer: tensor %llu data of %zu bytes does not match its info",
                       (unsigned long long)w->written, nbytes);
    w->written++;
    LM_TRY(lm_atomic_write(af, data, nbytes));
    return write_padding(af, nbytes);
}

void lm_gguf_writer_free(lm_gguf_writer *w) {
    free(w->kv);
    free(w->info);
    free(w->tensor_bytes);
    memset(w, 0, sizeof *w);
}
