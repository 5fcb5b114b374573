/* safetensors: [u64 little-endian header length n][n bytes of JSON header][data section].
 * The header maps each tensor name to {dtype, shape, data_offsets [begin, end)} relative
 * to the data section; "__metadata__" (string -> string) is ignored. As in the reference
 * implementation (huggingface/safetensors), the tensors must tile the data section
 * exactly: no overlap, no hole, nothing after the last tensor. That also catches a name
 * written twice in the header (the JSON parser keeps one of the two, leaving a hole). */
#include "format/config.h"
#include "format/safetensors.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/file.h"
#include "format/gguf.h"

/* The reference implementation's limit on the header (100 MB). */
#define MAX_HEADER_BYTES (100u << 20)

static const char *const dtype_names[] = {"F32", "F16", "BF16", "Q8_0"};
static const size_t dtype_sizes[] = {4, 2, 2, 0};

const char *lm_dtype_name(lm_dtype t) { return dtype_names[t]; }
size_t lm_dtype_size(lm_dtype t) { return dtype_sizes[t]; }

/* Other dtypes the format defines: named in the error so the user knows what was found. */
static const char *const known_dtypes[] = {"F64", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8",
                                           "BOOL", "F8_E4M3", "F8_E5M2", "F4", "F6_E2M3", "F6_E3M2", "E8M0"};

static int is_nonneg_int(json_object *v) {
    return json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0;
}

/* Fills t from one header entry; the data pointer is set by the caller's coverage check. */
static lm_status parse_entry(lm_st_tensor *t, const char *path, const char *name, json_object *v,
                             size_t data_size, size_t *begin) {
    json_object *dtype, *shape, *offs;
    if (!json_object_is_type(v, json_type_object) || !json_object_object_get_ex(v, "dtype", &dtype) ||
        !json_object_object_get_ex(v, "shape", &shape) || !json_object_object_get_ex(v, "data_offsets", &offs))
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s: header entry needs dtype, shape and data_offsets", path, name);
    if (!json_object_is_type(dtype, json_type_string))
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s: dtype is not a string", path, name);
    const char *ds = json_object_get_string(dtype);
    int found = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(ds, dtype_names[i])) found = i;
    if (found < 0) {
        for (size_t i = 0; i < sizeof known_dtypes / sizeof *known_dtypes; i++)
            if (!strcmp(ds, known_dtypes[i]))
                return lm_fail(LM_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s (supported: F32, F16, BF16)", path,
                               name, ds);
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s has an unknown dtype \"%.32s\"", path, name, ds);
    }
    t->dtype = (lm_dtype)found;

    if (!json_object_is_type(shape, json_type_array) || json_object_array_length(shape) > LM_TENSOR_MAX_DIMS)
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s: shape must be an array of at most %d sizes", path, name,
                       LM_TENSOR_MAX_DIMS);
    t->ndim = (int)json_object_array_length(shape);
    size_t numel = 1;
    int overflow = 0;
    for (int d = 0; d < t->ndim; d++) {
        json_object *e = json_object_array_get_idx(shape, d);
        if (!is_nonneg_int(e))
            return lm_fail(LM_ERR_FORMAT, "%s: tensor %s: shape[%d] is not a non-negative integer", path, name, d);
        t->shape[d] = json_object_get_int64(e);
        overflow |= __builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel);
    }
    overflow |= __builtin_mul_overflow(numel, dtype_sizes[found], &t->nbytes);
    t->numel = numel;

    if (!json_object_is_type(offs, json_type_array) || json_object_array_length(offs) != 2 ||
        !is_nonneg_int(json_object_array_get_idx(offs, 0)) || !is_nonneg_int(json_object_array_get_idx(offs, 1)))
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s: data_offsets must be [begin, end]", path, name);
    uint64_t b = (uint64_t)json_object_get_int64(json_object_array_get_idx(offs, 0));
    uint64_t e = (uint64_t)json_object_get_int64(json_object_array_get_idx(offs, 1));
    if (b > e || e > data_size)
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s: data_offsets [%llu, %llu] out of range (data section %zu bytes)",
                       path, name, (unsigned long long)b, (unsigned long long)e, data_size);
    if (overflow || t->nbytes != e - b)
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s: shape and dtype %s need %s bytes but data_offsets span %llu",
                       path, name, ds, overflow ? "too many" : "a different number of", (unsigned long long)(e - b));
    *begin = (size_t)b;
    return LM_OK;
}

typedef struct {
    size_t begin;
    lm_st_tensor *t;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* The tensors must tile [0, data_size) exactly. */
static lm_status check_coverage(span *spans, int n, size_t data_size, const char *path) {
    qsort(spans, (size_t)n, sizeof *spans, cmp_span);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if (spans[i].begin < at)
            return lm_fail(LM_ERR_FORMAT, "%s: tensor %s overlaps the tensor before it (byte %zu)", path,
                           spans[i].t->name, spans[i].begin);
        if (spans[i].begin > at)
            return lm_fail(LM_ERR_FORMAT, "%s: hole in the data section at bytes [%zu, %zu) (a gap, or a tensor "
                           "name written twice in the header)", path, at, spans[i].begin);
        at += spans[i].t->nbytes;
    }
    if (at != data_size)
        return lm_fail(LM_ERR_FORMAT, "%s: %zu bytes after the last tensor", path, data_size - at);
    return LM_OK;
}

/* Parses the header of a mapped file and appends its tensors to st (which owns the names). */
static lm_status parse_header(lm_safetensors *st, const lm_mapping *map, const char *path, int file) {
    if (map->size < 8)
        return lm_fail(LM_ERR_FORMAT, "%s: not a safetensors file (%zu bytes, shorter than the 8-byte header length)",
                       path, map->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | map->data[i];
    if (n > map->size - 8)
        return lm_fail(LM_ERR_FORMAT, "%s: header length %llu exceeds the file size %zu (truncated file?)", path,
                       (unsigned long long)n, map->size);
    if (n > MAX_HEADER_BYTES)
        return lm_fail(LM_ERR_FORMAT, "%s: header length %llu is over the 100 MB limit", path, (unsigned long long)n);
    const unsigned char *data = map->data + 8 + n;
    size_t data_size = map->size - 8 - (size_t)n;

    json_object *root;
    LM_TRY(lm_json_parse(&root, (const char *)map->data + 8, (size_t)n, path));
    lm_status s = LM_OK;
    span *spans = NULL;
    if (!json_object_is_type(root, json_type_object)) {
        s = lm_fail(LM_ERR_FORMAT, "%s: the header is not a JSON object", path);
        goto done;
    }
    int max_new = json_object_object_length(root);
    lm_st_tensor *grown = realloc(st->tensors, ((size_t)st->n_tensors + (size_t)max_new + 1) * sizeof *grown);
    if (!grown || (s = lm_calloc(&spans, (size_t)max_new + 1, sizeof *spans, "safetensors header")) != LM_OK) {
        if (grown) st->tensors = grown;
        s = grown ? s : lm_fail(LM_ERR_NOMEM, "%s: out of memory reading the header", path);
        goto done;
    }
    st->tensors = grown;
    int n_new = 0;
    json_object_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) continue;
        lm_st_tensor *t = &st->tensors[st->n_tensors];
        memset(t, 0, sizeof *t);
        t->file = file;
        size_t begin = 0;
        if ((s = parse_entry(t, path, key, val, data_size, &begin)) != LM_OK) goto done;
        if (!(t->name = strdup(key))) {
            s = lm_fail(LM_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        t->data = data + begin;
        st->n_tensors++;
        spans[n_new++] = (span){begin, t};
    }
    s = check_coverage(spans, n_new, data_size, path);
done:
    free(spans);
    json_object_put(root);
    return s;
}

/* Appends the tensors of path to st: mapped from the file, or from memory (the caller's bytes,
 * which st borrows and does not unmap) when memory is not NULL. */
static lm_status add_file(lm_safetensors *st, const char *path, const lm_mapping *memory) {
    char **paths = realloc(st->paths, ((size_t)st->n_files + 1) * sizeof *paths);
    if (paths) st->paths = paths;
    lm_mapping *maps = realloc(st->maps, ((size_t)st->n_files + 1) * sizeof *maps);
    if (maps) st->maps = maps;
    char *copy = strdup(path);
    if (!paths || !maps || !copy) {
        free(copy);
        return lm_fail(LM_ERR_NOMEM, "out of memory opening %s", path);
    }
    lm_mapping map = {NULL, 0};
    lm_status s = memory ? LM_OK : lm_map_file(path, &map);
    if (s) {
        free(copy);
        return s;
    }
    int file = st->n_files++;
    st->paths[file] = copy;
    st->maps[file] = map; /* {NULL, 0} for borrowed memory: nothing to unmap */
    return parse_header(st, memory ? memory : &map, path, file);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const lm_st_tensor *)a)->name, ((const lm_st_tensor *)b)->name);
}

/* Sorts by name for lm_safetensors_find and rejects a name found in two files. */
static lm_status finish(lm_safetensors *st) {
    if (st->n_tensors) qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_tensor_name);
    for (int i = 1; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i - 1].name, st->tensors[i].name))
            return lm_fail(LM_ERR_FORMAT, "tensor %s appears twice: in %s and in %s", st->tensors[i].name,
                           st->paths[st->tensors[i - 1].file], st->paths[st->tensors[i].file]);
    return LM_OK;
}

/* One file, mapped or borrowed (memory not NULL). */
static lm_status open_one(lm_safetensors *st, const char *path, const lm_mapping *memory) {
    memset(st, 0, sizeof *st);
    lm_status s = add_file(st, path, memory);
    if (!s) s = finish(st);
    if (s) lm_safetensors_close(st);
    return s;
}

lm_status lm_safetensors_open(lm_safetensors *st, const char *path) { return open_one(st, path, NULL); }

lm_status lm_safetensors_open_memory(lm_safetensors *st, const void *data, size_t size, const char *name) {
    lm_mapping memory = {data, size};
    return open_one(st, name, &memory);
}

/* A shard name from the index: a plain file name inside the model directory. */
static int is_plain_name(const char *s) {
    return *s && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

/* The shards an index names (text: the index's bytes; index_path names it in errors). */
static lm_status open_sharded(lm_safetensors *st, const char *dir, const char *text, size_t len,
                              const char *index_path) {
    json_object *root;
    LM_TRY(lm_json_parse(&root, text, len, index_path));
    lm_status s = LM_OK;
    json_object *map;
    if (!json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, "weight_map", &map) ||
        !json_object_is_type(map, json_type_object)) {
        json_object_put(root);
        return lm_fail(LM_ERR_FORMAT, "%s: no weight_map object", index_path);
    }
    /* Open each shard once, in order of first mention. */
    json_object_object_foreach(map, name, shard) {
        const char *file = json_object_is_type(shard, json_type_string) ? json_object_get_string(shard) : "";
        if (!is_plain_name(file)) {
            s = lm_fail(LM_ERR_FORMAT, "%s: weight_map[%s] is not a file name in the model directory", index_path,
                        name);
            break;
        }
        char *path = lm_path_join(dir, file);
        if (!path) {
            s = lm_fail(LM_ERR_NOMEM, "out of memory");
            break;
        }
        int seen = 0;
        for (int i = 0; i < st->n_files && !seen; i++) seen = !strcmp(st->paths[i], path);
        if (!seen && !lm_file_exists(path))
            s = lm_fail(LM_ERR_IO, "%s: shard %s (holding %s) is missing", index_path, path, name);
        else if (!seen)
            s = add_file(st, path, NULL);
        free(path);
        if (s) break;
    }
    if (!s) s = finish(st);
    /* Every tensor the index names must be in the shard it names. */
    if (!s) {
        json_object_object_foreach(map, name2, shard2) {
            const lm_st_tensor *t = lm_safetensors_find(st, name2);
            char *path = lm_path_join(dir, json_object_get_string(shard2));
            if (!path) s = lm_fail(LM_ERR_NOMEM, "out of memory");
            else if (!t || strcmp(st->paths[t->file], path))
                s = lm_fail(LM_ERR_FORMAT, "%s: tensor %s is not in its shard %s", index_path, name2, path);
            free(path);
            if (s) break;
        }
    }
    json_object_put(root);
    return s;
}

lm_status lm_safetensors_open_index(lm_safetensors *st, const char *dir, const char *text, size_t len,
                                    const char *index_path) {
    memset(st, 0, sizeof *st);
    lm_status s = open_sharded(st, dir, text, len, index_path);
    if (s) lm_safetensors_close(st);
    return s;
}

lm_status lm_safetensors_open_dir(lm_safetensors *st, const char *dir) {
    memset(st, 0, sizeof *st);
    char *single = lm_path_join(dir, "model.safetensors");
    char *index = lm_path_join(dir, "model.safetensors.index.json");
    char *text = NULL;
    size_t len = 0;
    lm_status s;
    if (!single || !index)
        s = lm_fail(LM_ERR_NOMEM, "out of memory");
    else if (lm_file_exists(single))
        s = lm_safetensors_open(st, single);
    else if (!lm_file_exists(index))
        s = lm_fail(LM_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
    else if ((s = lm_read_file_max(index, LM_JSON_MAX_BYTES, &text, &len)) == LM_OK)
        s = lm_safetensors_open_index(st, dir, text, len, index);
    if (s) lm_safetensors_close(st);
    free(text);
    free(single);
    free(index);
    return s;
}

const lm_st_tensor *lm_safetensors_find(const lm_safetensors *st, const char *name) {
    if (!st->n_tensors) return NULL;
    lm_st_tensor key = {.name = (char *)name};
    return bsearch(&key, st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_tensor_name);
}

void lm_st_tensor_to_f32(float *dst, const lm_st_tensor *t) {
    static const uint32_t ggml_type[] = {LM_GGML_F32, LM_GGML_F16, LM_GGML_BF16, LM_GGML_Q8_0};
    lm_ggml_to_f32(dst, ggml_type[t->dtype], t->data, t->numel); /* byte-aligned data is fine */
}

void lm_safetensors_close(lm_safetensors *st) {
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    for (int i = 0; i < st->n_files; i++) {
        lm_unmap_file(&st->maps[i]);
        free(st->paths[i]);
    }
    free(st->tensors);
    free(st->maps);
    free(st->paths);
    memset(st, 0, sizeof *st);
}
