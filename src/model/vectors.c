/* Test vectors of one layer's decode step (vectors.h). */
#include "model/vectors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "model/int_forward.h"
#include "model/ops.h"
#include "model/session.h"

enum { MAX_ARRAYS = 128, NAME_MAX_LEN = 64 };

static const char *const dtype_names[] = {"int8", "uint8", "int16", "int32", "int64"};
static const size_t dtype_size[] = {1, 1, 2, 4, 8};

typedef struct {
    char name[NAME_MAX_LEN];
    lm_int_dtype dtype;
    int n0, n1, F;
} vec_array;

typedef struct {
    const char *tmp;          /* the directory being written */
    vec_array a[MAX_ARRAYS];
    int n;
    lm_status status;         /* the first failure */
} vec_writer;

/* The file of an array: its name with the dtype as extension ("conv.out.int32"). */
static void array_file(char *buf, size_t size, const vec_array *a) {
    snprintf(buf, size, "%s.%s", a->name, dtype_names[a->dtype]);
}

static void put_array(void *ctx, const char *name, lm_int_dtype dtype, const void *data, int n0, int n1, int F) {
    vec_writer *w = ctx;
    if (w->status) return;
    if (w->n == MAX_ARRAYS || strlen(name) >= NAME_MAX_LEN) {
        w->status = lm_fail(LM_ERR_ARG, "vectors: too many arrays or name %s too long", name);
        return;
    }
    vec_array *a = &w->a[w->n++];
    snprintf(a->name, sizeof a->name, "%s", name);
    a->dtype = dtype;
    a->n0 = n0;
    a->n1 = n1;
    a->F = F;
    char file[NAME_MAX_LEN + 8], path[4096];
    array_file(file, sizeof file, a);
    snprintf(path, sizeof path, "%s/%s", w->tmp, file);
    const size_t n = (size_t)n0 * (size_t)(n1 ? n1 : 1) * dtype_size[dtype];
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, n, f) == n;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) w->status = lm_fail(LM_ERR_IO, "vectors: cannot write %s: %s", path, strerror(errno));
}

/* A linear layer's weights as stored (kernels.h layout). */
static void put_weights(vec_writer *w, const char *name, const lm_qweight *W) {
    char b[NAME_MAX_LEN];
    snprintf(b, sizeof b, "param.%s.qweight", name);
    put_array(w, b, LM_INT_U8, W->q, W->rows, (int)W->row_stride, LM_INT_NO_SITE);
    snprintf(b, sizeof b, "param.%s.scales", name);
    put_array(w, b, LM_INT_U8, W->scale, W->rows, (W->cols + 127) / 128, LM_INT_NO_SITE);
    snprintf(b, sizeof b, "param.%s.e0", name);
    put_array(w, b, LM_INT_I8, W->e0, W->rows, 0, LM_INT_NO_SITE);
}

static lm_status write_manifest(const vec_writer *w, const lm_model *m, int layer, const int32_t *ids, size_t n_ids,
                                int32_t token) {
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", w->tmp);
    FILE *f = fopen(path, "w");
    if (!f) return lm_fail(LM_ERR_IO, "vectors: cannot write %s: %s", path, strerror(errno));
    const lm_config *c = &m->cfg;
    const lm_quant_settings *q = &m->quant;
    fprintf(f, "{\n  \"format\": \"lightmamba-vectors\",\n  \"version\": 1,\n");
    fprintf(f, "  \"contract\": \"%s\",\n  \"byte_order\": \"little-endian\",\n",
            q->datapath ? "docs/release-datapath.md" : "docs/integer-datapath.md");
    fprintf(f, "  \"layer\": %d,\n  \"n_layer\": %d,\n  \"position\": %zu,\n  \"token\": %d,\n", layer, c->n_layer,
            n_ids, (int)token);
    fprintf(f, "  \"prompt_ids\": [");
    for (size_t i = 0; i < n_ids; i++) fprintf(f, "%s%d", i ? ", " : "", (int)ids[i]);
    fprintf(f, "],\n");
    fprintf(f, "  \"config\": {\"d_model\": %d, \"d_inner\": %d, \"n_heads\": %d, \"head_dim\": %d, \"d_state\": %d, "
               "\"n_groups\": %d, \"d_conv\": %d},\n",
            c->d_model, c->d_inner, c->n_heads, c->head_dim, c->d_state, c->n_groups, c->d_conv);
    char dp[64];
    fprintf(f, "  \"quant\": {\"method\": \"%s\", \"wbits\": %d, \"abits\": %d, \"rotated\": %d, \"ssm\": \"pot8\", "
               "\"datapath\": \"%s\"},\n",
            lm_quant_method_name(q->method), q->wbits, q->abits, q->rotated, lm_datapath_name(q->datapath, dp, sizeof dp));
    fprintf(f, "  \"residual_F\": %d,\n  \"arrays\": [\n", LM_RES_F);
    for (int i = 0; i < w->n; i++) {
        const vec_array *a = &w->a[i];
        char file[NAME_MAX_LEN + 8], F[16] = "null";
        array_file(file, sizeof file, a);
        if (a->F != LM_INT_NO_SITE) snprintf(F, sizeof F, "%d", a->F);
        fprintf(f, "    {\"name\": \"%s\", \"dtype\": \"%s\", \"shape\": [%d", a->name, dtype_names[a->dtype], a->n0);
        if (a->n1) fprintf(f, ", %d", a->n1);
        fprintf(f, "], \"F\": %s, \"file\": \"%s\"}%s\n", F, file, i + 1 < w->n ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    if (ferror(f) | (fclose(f) != 0)) return lm_fail(LM_ERR_IO, "vectors: cannot write %s", path);
    return LM_OK;
}

/* Removes what the writer put into tmp, then tmp itself. */
static void remove_tmp(const vec_writer *w) {
    char path[4096], file[NAME_MAX_LEN + 8];
    for (int i = 0; i < w->n; i++) {
        array_file(file, sizeof file, &w->a[i]);
        snprintf(path, sizeof path, "%s/%s", w->tmp, file);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/manifest.json", w->tmp);
    unlink(path);
    rmdir(w->tmp);
}

lm_status lm_vectors_dump(const lm_model *m, const int32_t *ids, size_t n_ids, int n_candidates, int layer,
                          const char *dir, int n_threads, lm_vectors_result *result) {
    const lm_config *c = &m->cfg;
    if (!m->int_layers)
        return lm_fail(LM_ERR_ARG, "vectors: the model is not an integer model (quantize it with --ssm pot8)");
    if (layer < 0 || layer >= c->n_layer)
        return lm_fail(LM_ERR_ARG, "vectors: layer %d is out of range (the model has %d layers: 0..%d)", layer,
                       c->n_layer, c->n_layer - 1);
    if (n_ids == 0) return lm_fail(LM_ERR_ARG, "vectors: the prompt has no tokens");
    if (n_candidates < 1 || n_candidates > c->vocab_size)
        return lm_fail(LM_ERR_ARG, "vectors: %d candidate tokens is out of range [1, %d]", n_candidates, c->vocab_size);
    struct stat sb;
    if (lstat(dir, &sb) == 0) return lm_fail(LM_ERR_ARG, "vectors: %s already exists (remove it first)", dir);
    if (strlen(dir) > 4000) return lm_fail(LM_ERR_ARG, "vectors: output path too long");

    lm_session *s = NULL;
    lm_sampler *greedy = NULL;
    float *logits = NULL, *row = NULL;
    int32_t *u = NULL;
    lm_int_scratch *ws = NULL;
    vec_writer *w = NULL;
    char tmp[4096];
    int made_tmp = 0;
    lm_session_params sp = lm_session_default_params();
    lm_sampler_params gp = lm_sampler_default_params();
    sp.n_threads = n_threads;
    gp.temperature = 0.0f;
    lm_status st = lm_session_init(&s, m, &sp);
    if (!st) st = lm_sampler_init(&greedy, n_candidates, &gp);
    if (!st) st = lm_calloc(&logits, (size_t)c->vocab_size, sizeof *logits, "vectors");
    if (!st) st = lm_calloc(&u, (size_t)c->d_model, sizeof *u, "vectors");
    if (!st) st = lm_calloc(&row, (size_t)c->d_model, sizeof *row, "vectors");
    if (!st) st = lm_calloc(&w, 1, sizeof *w, "vectors");
    if (!st) st = lm_int_scratch_init(&ws, &m->int_layers[0]);
    /* the prompt's prefill, then the greedy next token as the decode step's input */
    if (!st) st = lm_session_forward(s, ids, n_ids, NULL, logits);
    int32_t token = 0;
    if (!st) {
        token = lm_sampler_sample(greedy, logits);
        snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", dir);
        if (!mkdtemp(tmp))
            st = lm_fail(LM_ERR_IO, "vectors: cannot create a directory beside %s: %s", dir, strerror(errno));
        else
            made_tmp = 1;
    }
    if (!st) {
        /* the step's residual through the layers before (the same golden step the session takes) */
        w->tmp = tmp;
        embedding_forward(row, m, &token, 1);
        lm_int_residual_from_f32(u, row, c->d_model, m->int_layers[0].dp);
        for (int l = 0; l < layer; l++)
            lm_int_block_forward(u, lm_int_session_state(s->int_s, l), &m->int_layers[l], ws);
        const lm_int_layer *L = &m->int_layers[layer];
        put_weights(w, "in_proj", L->in_proj);
        put_weights(w, "out_proj", L->out_proj);
        const lm_int_tracer tr = {put_array, w};
        lm_int_block_trace(u, lm_int_session_state(s->int_s, layer), L, ws, &tr);
        st = w->status;
    }
    if (!st) st = write_manifest(w, m, layer, ids, n_ids, token);
    if (!st && rename(tmp, dir) != 0) st = lm_fail(LM_ERR_IO, "vectors: cannot rename %s to %s: %s", tmp, dir, strerror(errno));
    if (st && made_tmp) remove_tmp(w);
    if (!st && result) *result = (lm_vectors_result){token, w->n};
    lm_int_scratch_free(ws);
    lm_sampler_free(greedy);
    lm_session_free(s);
    free(logits);
    free(row);
    free(u);
    free(w);
    return st;
}
