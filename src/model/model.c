/* The model's lifecycle (lm_model_init, lm_model_free, the memory it owns) and its loaders for
 * float checkpoints: a model directory (config.json + safetensors or pytorch_model.bin), a PyTorch
 * .bin/.pt file (config.json beside it) or a GGUF file (model_gguf.c) -> struct lm_model
 * (src/model/model.h). Every reader gives a list of named tensors; every tensor's shape is checked
 * against the config. F32 tensors whose data is 4-byte aligned are used in place from the memory
 * map; F16, BF16 and Q8_0 (and unaligned F32) tensors are converted once into float32 buffers the
 * model owns. Quantized model files have their own loader (qfile.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/datadir.h"
#include "common/error.h"
#include "common/file.h"
#include "format/safetensors.h"
#include "format/torchzip.h"
#include "model/layout.h"
#include "model/model.h"
#include "model/model_load.h"
#include "model/qfile.h"

typedef struct {
    lm_model *m;
    const lm_st_tensor *tensors; /* [n] sorted by name */
    int n;
    const char *where;           /* the checkpoint, for errors */
    unsigned char *used;         /* [n]: taken by the model */
} loader;

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const lm_st_tensor *)a)->name, ((const lm_st_tensor *)b)->name);
}

static const lm_st_tensor *find(const loader *L, const char *name) {
    if (!L->n) return NULL;
    lm_st_tensor key = {.name = (char *)name};
    return bsearch(&key, L->tensors, (size_t)L->n, sizeof *L->tensors, cmp_tensor_name);
}

lm_status lm_model_adopt(lm_model *m, void *p) {
    void **grown = realloc(m->owned, ((size_t)m->n_owned + 1) * sizeof *grown);
    if (!grown) {
        free(p);
        return lm_fail(LM_ERR_NOMEM, "out of memory");
    }
    m->owned = grown;
    m->owned[m->n_owned++] = p;
    return LM_OK;
}

lm_status lm_model_own(lm_model *m, size_t bytes, void **out) {
    *out = NULL;
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64 * !bytes);
    if (!p) return lm_fail(LM_ERR_NOMEM, "cannot allocate %zu bytes", bytes);
    LM_TRY(lm_model_adopt(m, p));
    *out = p;
    return LM_OK;
}

lm_status lm_model_add_tensor_info(lm_model *m, const lm_tensor_info *info) {
    lm_tensor_info *grown = realloc(m->tensors, ((size_t)m->n_tensors + 1) * sizeof *grown);
    if (!grown) return lm_fail(LM_ERR_NOMEM, "out of memory for the tensor table");
    m->tensors = grown;
    m->tensors[m->n_tensors] = *info;
    if (!(m->tensors[m->n_tensors].name = strdup(info->name))) return lm_fail(LM_ERR_NOMEM, "out of memory for the tensor table");
    m->n_tensors++;
    return LM_OK;
}

/* Appends a checkpoint tensor to the tensor table. */
static lm_status add_table_row(lm_model *m, const lm_st_tensor *t, int used) {
    lm_tensor_info row = {.name = t->name, .dtype = lm_dtype_name(t->dtype), .ndim = t->ndim, .nbytes = t->nbytes, .used = used};
    memcpy(row.shape, t->shape, sizeof row.shape);
    return lm_model_add_tensor_info(m, &row);
}

static int format_shape(char *buf, size_t size, int ndim, const int64_t *shape) {
    int k = snprintf(buf, size, "[");
    for (int d = 0; d < ndim && k < (int)size; d++)
        k += snprintf(buf + k, size - (size_t)k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < (int)size) k += snprintf(buf + k, size - (size_t)k, "]");
    return k;
}

/* Finds `name`, checks it has exactly `ndim` sizes `shape`, and gives its float32 data.
 * optional: an absent tensor gives *out = NULL instead of an error. */
static lm_status take(loader *L, const char *name, int optional, int ndim, const int64_t *shape, const float **out) {
    *out = NULL;
    const lm_st_tensor *t = find(L, name);
    if (!t) {
        if (optional) return LM_OK;
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s is missing", L->where, name);
    }
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same) {
        char want[128], got[128];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(got, sizeof got, t->ndim, t->shape);
        return lm_fail(LM_ERR_FORMAT, "%s: tensor %s has shape %s, the config needs %s", L->where, name, got, want);
    }
    L->used[t - L->tensors] = 1;
    LM_TRY(add_table_row(L->m, t, 1));
    if (t->dtype == LM_DTYPE_F32 && (uintptr_t)t->data % sizeof(float) == 0) {
        *out = (const float *)t->data;
        return LM_OK;
    }
    float *buf;
    LM_TRY(lm_model_own(L->m, t->numel * sizeof *buf, (void **)&buf));
    lm_st_tensor_to_f32(buf, t);
    *out = buf;
    return LM_OK;
}

#define SHAPE(...) (sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

/* One tensor of the layout (model/layout.h) from the checkpoint into its place in the model. */
static lm_status take_tensor(void *ctx, const lm_tensor_desc *t) {
    loader *L = ctx;
    const char *name = t->name;
    /* Hugging Face names the embedding backbone.embeddings, state-spaces backbone.embedding. */
    if (t->role == LM_T_EMBEDDING && !find(L, name)) {
        name = "backbone.embedding.weight";
        if (!find(L, name))
            return lm_fail(LM_ERR_FORMAT, "%s: tensor backbone.embeddings.weight (or backbone.embedding.weight) is missing",
                           L->where);
    }
    /* GGUF files store A itself (model_gguf.c names it ...mixer.A). */
    char a_name[sizeof t->name];
    snprintf(a_name, sizeof a_name, "backbone.layers.%d.mixer.A", t->layer);
    const float *data;
    if (t->role == LM_T_A_LOG && find(L, a_name)) {
        LM_TRY(take(L, a_name, 0, SHAPE(t->rows), lm_tensor_slot(L->m, t)));
        return LM_OK;
    }
    if (t->role == LM_T_CONV_W)
        LM_TRY(take(L, name, 0, SHAPE(t->rows, 1, t->cols), &data));
    else if (t->cols)
        LM_TRY(take(L, name, 0, SHAPE(t->rows, t->cols), &data));
    else
        LM_TRY(take(L, name, 0, SHAPE(t->rows), &data));
    if (t->role == LM_T_A_LOG) { /* A = -exp(A_log), once, into owned memory */
        float *A;
        LM_TRY(lm_model_own(L->m, (size_t)t->rows * sizeof *A, (void **)&A));
        for (int h = 0; h < t->rows; h++) A[h] = -expf(data[h]);
        data = A;
    }
    lm_linear *lin = lm_tensor_linear(L->m, t);
    if (lin)
        *lin = (lm_linear){.kind = LM_LINEAR_F32, .rows = t->rows, .cols = t->cols, .w = data};
    else
        *lm_tensor_slot(L->m, t) = data;
    return LM_OK;
}

lm_status lm_model_take_weights(lm_model *m, lm_st_tensor *tensors, int n, const char *where) {
    if (n) qsort(tensors, (size_t)n, sizeof *tensors, cmp_tensor_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(tensors[i - 1].name, tensors[i].name))
            return lm_fail(LM_ERR_FORMAT, "%s: tensor %s appears twice", where, tensors[i].name);
    loader L = {m, tensors, n, where, NULL};
    LM_TRY(lm_calloc(&L.used, n ? (size_t)n : 1, 1, "tensor flags"));
    lm_status s = lm_layout_bind(m, n, where, take_tensor, &L);
    /* The rest of the checkpoint goes into the table as unused. */
    for (int i = 0; i < n && !s; i++)
        if (!L.used[i]) s = add_table_row(m, &tensors[i], 0);
    free(L.used);
    return s;
}

/* The directory's own tokenizer.json when there is one, else (NULL) the bundled one. */
static lm_status set_tokenizer_path(lm_model *m, const char *dir) {
    char *local = lm_path_join(dir, "tokenizer.json");
    if (!local) return lm_fail(LM_ERR_NOMEM, "out of memory");
    if (lm_file_exists(local))
        m->tokenizer_path = local;
    else
        free(local);
    return LM_OK;
}

static lm_status read_config(lm_model *m, const char *dir) {
    char *config_path = lm_path_join(dir, "config.json");
    if (!config_path) return lm_fail(LM_ERR_NOMEM, "out of memory");
    lm_status s = lm_file_exists(config_path) ? lm_config_load(&m->cfg, config_path)
                                               : lm_fail(LM_ERR_IO, "%s: no config.json in the model directory", dir);
    free(config_path);
    return s;
}

/* A PyTorch zip checkpoint (format/torchzip.h) with the config.json of its directory. */
static lm_status load_torch(lm_model *m, const char *path, const char *dir) {
    LM_TRY(read_config(m, dir));
    LM_TRY(lm_map_file(path, &m->file));
    lm_torch_checkpoint ck;
    LM_TRY(lm_torch_read(&ck, m->file.data, m->file.size, path));
    /* Inflated entries (which tensors may point into) become the model's. */
    lm_status s = LM_OK;
    for (int i = 0; i < ck.n_owned && !s; i++) {
        s = lm_model_adopt(m, ck.owned[i]);
        ck.owned[i] = NULL;
    }
    if (!s) s = lm_model_take_weights(m, ck.tensors, ck.n_tensors, path);
    lm_torch_free(&ck);
    LM_TRY(s);
    m->format = "pytorch";
    return set_tokenizer_path(m, dir);
}

static lm_status load_directory(lm_model *m, const char *dir) {
    char *bin = lm_path_join(dir, "pytorch_model.bin"), *single = lm_path_join(dir, "model.safetensors"),
         *index = lm_path_join(dir, "model.safetensors.index.json");
    lm_status s = bin && single && index ? LM_OK : lm_fail(LM_ERR_NOMEM, "out of memory");
    if (!s && !lm_file_exists(single) && !lm_file_exists(index) && lm_file_exists(bin)) {
        s = load_torch(m, bin, dir);
    } else if (!s) {
        s = read_config(m, dir);
        if (!s && !lm_file_exists(single) && !lm_file_exists(index))
            s = lm_fail(LM_ERR_IO, "%s: no model.safetensors, model.safetensors.index.json or pytorch_model.bin", dir);
        if (!s) s = lm_calloc(&m->checkpoint, 1, sizeof *m->checkpoint, "checkpoint");
        if (!s) s = lm_safetensors_open_dir(m->checkpoint, dir);
        if (!s) s = lm_model_take_weights(m, m->checkpoint->tensors, m->checkpoint->n_tensors, dir);
        if (!s) s = set_tokenizer_path(m, dir);
        m->format = "safetensors";
    }
    free(bin);
    free(single);
    free(index);
    return s;
}

lm_status lm_model_init(lm_model **model, const char *path) {
    *model = NULL;
    lm_model *m;
    LM_TRY(lm_calloc(&m, 1, sizeof *m, "model"));
    lm_status s;
    if (lm_is_directory(path)) {
        s = load_directory(m, path);
    } else if (lm_file_starts_with(path, "GGUF", 4)) {
        s = lm_model_load_gguf(m, path);
        m->format = "gguf";
    } else if (lm_file_starts_with(path, "PK\3\4", 4)) {
        char *dir = lm_parent_dir(path);
        s = dir ? load_torch(m, path, dir) : lm_fail(LM_ERR_NOMEM, "out of memory");
        free(dir);
    } else if (lm_file_exists(path)) {
        /* Any other regular file should be a quantized model (it checks its own magic). */
        s = lm_qfile_load(m, path);
        m->format = "quantized";
    } else {
        s = lm_fail(LM_ERR_IO, "%s: no such model directory or file", path);
    }
    if (s) {
        lm_model_free(m);
        return s;
    }
    *model = m;
    return LM_OK;
}

void lm_model_free(lm_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_tensors; i++) free((char *)m->tensors[i].name);
    free(m->tensors);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    if (m->checkpoint) lm_safetensors_close(m->checkpoint);
    free(m->checkpoint);
    free(m->layers);
    free(m->tokenizer_path);
    lm_hadamard_free(m->rot_inner);
    lm_unmap_file(&m->qfile);
    lm_unmap_file(&m->file);
    free(m);
}

const lm_config *lm_model_config(const lm_model *m) { return &m->cfg; }
const char *lm_model_format(const lm_model *m) { return m->format; }
const char *lm_model_tokenizer_path(const lm_model *m) { return m->tokenizer_path ? m->tokenizer_path : "(bundled)"; }

lm_status lm_tokenizer_init_for_model(lm_tokenizer **tok, const lm_model *m) {
    if (m->tokenizer_json) return lm_tokenizer_init_json(tok, m->tokenizer_json, m->tokenizer_json_len, m->tokenizer_path);
    return lm_tokenizer_init(tok, m->tokenizer_path);
}

lm_status lm_model_tokenizer_json(const lm_model *m, char **json, size_t *len) {
    *json = NULL;
    *len = 0;
    if (!m->tokenizer_json) {
        char *bundled = NULL;
        if (!m->tokenizer_path) LM_TRY(lm_data_path("tokenizer.json", &bundled));
        lm_status s = lm_read_file(m->tokenizer_path ? m->tokenizer_path : bundled, json, len);
        free(bundled);
        return s;
    }
    LM_TRY(lm_calloc(json, m->tokenizer_json_len + 1, 1, "tokenizer"));
    memcpy(*json, m->tokenizer_json, m->tokenizer_json_len);
    *len = m->tokenizer_json_len;
    return LM_OK;
}
int lm_model_n_tensors(const lm_model *m) { return m->n_tensors; }
const lm_tensor_info *lm_model_tensor(const lm_model *m, int i) {
    return i >= 0 && i < m->n_tensors ? &m->tensors[i] : NULL;
}

uint64_t lm_model_n_params(const lm_model *m) {
    uint64_t n = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        if (!m->tensors[i].used) continue;
        uint64_t e = 1;
        for (int d = 0; d < m->tensors[i].ndim; d++) e *= (uint64_t)m->tensors[i].shape[d];
        n += e;
    }
    return n;
}
