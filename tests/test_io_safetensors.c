/* safetensors and model loading: good checkpoints in every dtype, layout and sharding
 * load to the same float32 weights; every kind of damaged file gives a one-line error
 * naming the file and the tensor. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "format/safetensors.h"
#include "common/file.h"
#include "model/model.h"
#include "synth_checkpoint.h"

static char dir[64];

static char *file_in(const char *name) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

/* lm_model_init must fail with `want` and a one-line message containing both words. */
static void check_model_fails(const char *path, lm_status want, const char *w1, const char *w2) {
    lm_model *m = (lm_model *)1;
    lm_status s = lm_model_init(&m, path);
    const char *e = lm_last_error();
    CHECK(s == want, "status %d, want %d (error: %s)", s, want, e);
    CHECK(m == NULL, "model not NULL after failure");
    CHECK(!w1 || strstr(e, w1), "error does not mention '%s': %s", w1, e);
    CHECK(!w2 || strstr(e, w2), "error does not mention '%s': %s", w2, e);
    CHECK(!strchr(e, '\n'), "error is not one line");
    if (s == LM_OK) lm_model_free(m);
}

static int same(const float *a, const float *b, size_t n) {
    if (!a || !b) return a == b;
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static int same_linear(const lm_linear *a, const lm_linear *b) {
    return a->rows == b->rows && a->cols == b->cols && same(a->w, b->w, (size_t)a->rows * a->cols) &&
           same(a->bias, b->bias, (size_t)a->rows);
}

/* Every weight of a and b is bit-identical. */
static int same_model(const lm_model *a, const lm_model *b) {
    const lm_config *c = &a->cfg;
    if (memcmp(&a->cfg, &b->cfg, sizeof a->cfg)) return 0;
    size_t GN = (size_t)c->n_groups * c->d_state, conv_dim = (size_t)c->d_inner + 2 * GN;
    int ok = same(a->embedding, b->embedding, (size_t)c->vocab_size * c->d_model) &&
             same(a->norm_f, b->norm_f, (size_t)c->d_model) && same_linear(&a->lm_head, &b->lm_head);
    for (int i = 0; ok && i < c->n_layer; i++) {
        const lm_layer *x = &a->layers[i], *y = &b->layers[i];
        ok = same(x->norm, y->norm, (size_t)c->d_model) && same_linear(&x->in_proj, &y->in_proj) &&
             same(x->conv_w, y->conv_w, conv_dim * (size_t)c->d_conv) && same(x->conv_b, y->conv_b, conv_dim) &&
             same(x->dt_bias, y->dt_bias, (size_t)c->n_heads) && same(x->A, y->A, (size_t)c->n_heads) &&
             same(x->D, y->D, (size_t)c->n_heads) && same(x->gnorm, y->gnorm, (size_t)c->d_inner) &&
             same_linear(&x->out_proj, &y->out_proj);
    }
    return ok;
}

static lm_model *load_synth(const synth_config *c) {
    synth_remove_dir(dir);
    if (mkdir(dir, 0700) || synth_write_checkpoint(dir, c)) exit(1);
    lm_model *m = NULL;
    CHECK_OK(lm_model_init(&m, dir));
    return m;
}

/* The float32 checkpoint holds exactly what synth_checkpoint.h generated; F16, BF16,
 * misaligned F32, sharded and state-spaces checkpoints of the same seed load equal to it. */
static void test_good(void) {
    synth_config c;
    synth_default(&c);
    c.d_model = 48, c.n_layer = 3, c.d_state = 8, c.head_dim = 12, c.n_groups = 2, c.d_conv = 3;
    c.vocab_size = 250, c.pad_multiple = 16, c.tied = 0, c.proj_bias = 1, c.dt_limit_max = 0.5;
    lm_model *ref = load_synth(&c);
    if (!ref) return;
    const lm_config *k = lm_model_config(ref);
    CHECK(k->d_model == 48 && k->n_layer == 3 && k->d_inner == 96 && k->n_heads == 8 && k->head_dim == 12 &&
          k->d_state == 8 && k->n_groups == 2 && k->d_conv == 3 && k->vocab_size == 256 && !k->tie_embeddings &&
          k->proj_bias && k->conv_bias && k->dt_limit_max == 0.5f, "synthetic config");
    /* The loaded values are the generated ones. */
    synth_tensor *ts = calloc(64, sizeof *ts);
    int n = synth_tensors(ts, &c);
    uint64_t params = 0;
    for (int i = 0; i < n; i++) {
        params += ts[i].n;
        const float *p = NULL;
        if (!strcmp(ts[i].name, "backbone.embeddings.weight")) p = ref->embedding;
        if (!strcmp(ts[i].name, "lm_head.weight")) p = ref->lm_head.w;
        if (!strcmp(ts[i].name, "backbone.layers.2.mixer.in_proj.bias")) p = ref->layers[2].in_proj.bias;
        if (!strcmp(ts[i].name, "backbone.layers.1.mixer.conv1d.weight")) p = ref->layers[1].conv_w;
        if (p) CHECK(same(p, ts[i].data, ts[i].n), "%s differs from the generated values", ts[i].name);
        if (!strcmp(ts[i].name, "backbone.layers.0.mixer.A_log"))
            for (size_t h = 0; h < ts[i].n; h++)
                CHECK(ref->layers[0].A[h] == -expf(ts[i].data[h]), "A[%zu] != -exp(A_log)", h);
        free(ts[i].data);
    }
    free(ts);
    CHECK(lm_model_n_params(ref) == params, "params %llu, want %llu", (unsigned long long)lm_model_n_params(ref),
          (unsigned long long)params);
    CHECK(lm_model_n_tensors(ref) == n, "tensor table has %d rows, want %d", lm_model_n_tensors(ref), n);
    /* F32 in place: the embedding points into the memory map, not a copy. */
    CHECK(ref->n_owned == c.n_layer, "F32 aligned: only A is owned (%d buffers)", ref->n_owned);

    const char *dtypes[] = {"F16", "BF16", "F32"};
    for (int variant = 0; variant < 6; variant++) {
        synth_config v = c;
        if (variant < 3) v.dtype = dtypes[variant];
        if (variant == 2) v.misalign = 1;            /* F32 not 4-byte aligned: copied */
        if (variant == 3) v.n_shards = 3, v.dtype = "BF16";
        if (variant == 4) v.state_spaces = 1, v.n_shards = 2;
        if (variant == 5) v.extra = "backbone.layers.0.mixer.something_new";
        lm_model *m = load_synth(&v);
        if (!m) continue;
        CHECK(same_model(ref, m), "variant %d (%s, shards %d, state-spaces %d) loads different weights", variant,
              v.dtype, v.n_shards, v.state_spaces);
        if (variant == 5) {
            const lm_tensor_info *last = lm_model_tensor(m, lm_model_n_tensors(m) - 1);
            CHECK(last && !last->used && !strcmp(last->name, v.extra), "extra tensor listed as unused");
            CHECK(lm_model_n_params(m) == params, "extra tensor not counted");
        }
        lm_model_free(m);
    }
    lm_model_free(ref);

    /* Tied: lm_head is the embedding. */
    synth_default(&c);
    lm_model *m = load_synth(&c);
    if (m) CHECK(m->lm_head.w == m->embedding && m->lm_head.rows == 300, "tied lm_head");
    if (m) CHECK(!strcmp(lm_model_tokenizer_path(m), "(bundled)"), "default tokenizer: %s", lm_model_tokenizer_path(m));
    lm_model_free(m);
    /* The directory's tokenizer.json wins over the bundled one. */
    synth_write_file(file_in("tokenizer.json"), "{}", 2);
    CHECK_OK(lm_model_init(&m, dir));
    if (m) CHECK(!strcmp(lm_model_tokenizer_path(m), file_in("tokenizer.json")), "local tokenizer: %s",
                 lm_model_tokenizer_path(m));
    lm_model_free(m);
}

/* Raw file with a given header text and data_len zero bytes of data. */
static void write_raw(const char *path, const char *header, size_t data_len) {
    size_t h = strlen(header), total = 8 + h + data_len;
    unsigned char *buf = calloc(total, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    if (synth_write_file(path, buf, total)) exit(1);
    free(buf);
}

static void check_file_fails(const char *header, size_t data_len, lm_status want, const char *word) {
    const char *path = file_in("raw.safetensors");
    write_raw(path, header, data_len);
    lm_safetensors st;
    lm_status s = lm_safetensors_open(&st, path);
    const char *e = lm_last_error();
    CHECK(s == want, "status %d, want %d for header %s (error: %s)", s, want, header, e);
    CHECK(strstr(e, path), "error does not name the file: %s", e);
    CHECK(!word || strstr(e, word), "error does not mention '%s': %s", word, e);
    if (!s) lm_safetensors_close(&st);
}

static void test_bad_files(void) {
    synth_remove_dir(dir);
    if (mkdir(dir, 0700)) exit(1);
    /* Good raw file, and __metadata__ ignored. */
    write_raw(file_in("raw.safetensors"),
              "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
              "\"b\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[16,18]}}", 18);
    lm_safetensors st;
    CHECK_OK(lm_safetensors_open(&st, file_in("raw.safetensors")));
    CHECK(st.n_tensors == 2 && lm_safetensors_find(&st, "a") && lm_safetensors_find(&st, "b")->numel == 1 &&
          !lm_safetensors_find(&st, "__metadata__"), "raw file tensors");
    lm_safetensors_close(&st);

    const char *one = "\"dtype\":\"F32\",\"shape\":[4]";
    char h[512];
    snprintf(h, sizeof h, "{\"a\":{%s,\"data_offsets\":[0,1000]}}", one);
    check_file_fails(h, 16, LM_ERR_FORMAT, "out of range");            /* offsets past the data section */
    snprintf(h, sizeof h, "{\"a\":{%s,\"data_offsets\":[8,4]}}", one);
    check_file_fails(h, 16, LM_ERR_FORMAT, "out of range");            /* begin > end */
    snprintf(h, sizeof h, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}");
    check_file_fails(h, 16, LM_ERR_FORMAT, "shape");                    /* shape vs offsets */
    snprintf(h, sizeof h, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}}");
    check_file_fails(h, 16, LM_ERR_FORMAT, "a");                        /* numel overflows */
    snprintf(h, sizeof h, "{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}");
    check_file_fails(h, 16, LM_ERR_UNSUPPORTED, "I64");
    snprintf(h, sizeof h, "{\"a\":{\"dtype\":\"Q9\",\"shape\":[2],\"data_offsets\":[0,16]}}");
    check_file_fails(h, 16, LM_ERR_FORMAT, "dtype");
    snprintf(h, sizeof h, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}");
    check_file_fails(h, 16, LM_ERR_FORMAT, "shape");
    snprintf(h, sizeof h, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}");
    check_file_fails(h, 16, LM_ERR_FORMAT, "shape");
    snprintf(h, sizeof h, "{\"a\":{%s,\"data_offsets\":[0,16]},\"b\":{%s,\"data_offsets\":[8,24]}}", one, one);
    check_file_fails(h, 24, LM_ERR_FORMAT, "overlaps");
    snprintf(h, sizeof h, "{\"a\":{%s,\"data_offsets\":[0,16]},\"a\":{%s,\"data_offsets\":[16,32]}}", one, one);
    check_file_fails(h, 32, LM_ERR_FORMAT, "twice");                    /* duplicate name */
    snprintf(h, sizeof h, "{\"a\":{%s,\"data_offsets\":[0,16]}}", one);
    check_file_fails(h, 20, LM_ERR_FORMAT, "after the last tensor");
    check_file_fails("{\"a\":{\"dtype\":\"F32\",", 16, LM_ERR_FORMAT, "incomplete");
    check_file_fails("{\"a\" 5}", 16, LM_ERR_FORMAT, "malformed");
    check_file_fails("[]", 0, LM_ERR_FORMAT, "not a JSON object");

    /* Header length beyond the file, an empty file, a file shorter than 8 bytes. */
    const char *path = file_in("raw.safetensors");
    unsigned char big[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    synth_write_file(path, big, 10);
    CHECK(lm_safetensors_open(&st, path) == LM_ERR_FORMAT && strstr(lm_last_error(), "header length"), "%s",
          lm_last_error());
    synth_write_file(path, big, 0);
    CHECK(lm_safetensors_open(&st, path) == LM_ERR_FORMAT && strstr(lm_last_error(), path), "%s", lm_last_error());
    synth_write_file(path, big, 5);
    CHECK(lm_safetensors_open(&st, path) == LM_ERR_FORMAT, "%s", lm_last_error());
}

/* Damaged checkpoints through lm_model_init. */
static void test_bad_models(void) {
    synth_config c;
    synth_default(&c);
    lm_model *m;

    /* Truncated at several points: always a format error naming the file. */
    long sizes[] = {4, 8, 100, 2000, -1};
    for (int i = 0; i < 5; i++) {
        lm_model_free(load_synth(&c));
        const char *st = file_in("model.safetensors");
        FILE *f = fopen(st, "rb");
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fclose(f);
        if (truncate(st, sizes[i] < 0 ? size + sizes[i] : sizes[i])) exit(1);
        check_model_fails(dir, LM_ERR_FORMAT, "model.safetensors", NULL);
    }

    /* Wrong shape vs config: the config says d_state 32, the weights have 16. */
    lm_model_free(load_synth(&c));
    synth_config c2 = c;
    c2.d_state = 32;
    synth_write_config(dir, &c2);
    check_model_fails(dir, LM_ERR_FORMAT, "backbone.layers.0.mixer.in_proj.weight", "shape");

    /* A missing tensor, each kind once. */
    const char *omit[] = {"backbone.layers.1.mixer.D", "backbone.norm_f.weight", "backbone.embeddings.weight",
                          "backbone.layers.0.mixer.conv1d.bias"};
    for (int i = 0; i < 4; i++) {
        synth_config o = c;
        o.omit = omit[i];
        synth_remove_dir(dir);
        if (mkdir(dir, 0700) || synth_write_checkpoint(dir, &o)) exit(1);
        check_model_fails(dir, LM_ERR_FORMAT, omit[i], "missing");
    }
    /* Untied config without lm_head.weight. */
    synth_remove_dir(dir);
    if (mkdir(dir, 0700) || synth_write_checkpoint(dir, &c)) exit(1);
    c2 = c;
    c2.tied = 0;
    synth_write_config(dir, &c2);
    check_model_fails(dir, LM_ERR_FORMAT, "lm_head.weight", "missing");
    /* A bad dtype inside a real checkpoint. */
    write_raw(file_in("model.safetensors"), "{\"backbone.embeddings.weight\":{\"dtype\":\"I64\",\"shape\":[2],"
                                            "\"data_offsets\":[0,16]}}", 16);
    check_model_fails(dir, LM_ERR_UNSUPPORTED, "I64", "backbone.embeddings.weight");

    /* Sharded: a missing shard, a tensor the index puts in the wrong shard, a path outside. */
    c.n_shards = 3;
    lm_model_free(load_synth(&c));
    unlink(file_in("model-00002-of-00003.safetensors"));
    check_model_fails(dir, LM_ERR_IO, "model-00002-of-00003.safetensors", "missing");
    lm_model_free(load_synth(&c));
    const char *idx = "{\"weight_map\": {\"backbone.norm_f.weight\": \"model-00001-of-00003.safetensors\"}}";
    synth_write_file(file_in("model.safetensors.index.json"), idx, strlen(idx));
    check_model_fails(dir, LM_ERR_FORMAT, "backbone.norm_f.weight", "not in its shard");
    idx = "{\"weight_map\": {\"backbone.norm_f.weight\": \"../model-00001-of-00003.safetensors\"}}";
    synth_write_file(file_in("model.safetensors.index.json"), idx, strlen(idx));
    check_model_fails(dir, LM_ERR_FORMAT, "weight_map", NULL);
    idx = "{\"weight_map\": {\"backbone.norm_f.weight\": \"model-00001";
    synth_write_file(file_in("model.safetensors.index.json"), idx, strlen(idx));
    check_model_fails(dir, LM_ERR_FORMAT, "index.json", "incomplete");
    /* The same tensor in two shards. */
    c.n_shards = 2;
    lm_model_free(load_synth(&c));
    idx = "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"x.safetensors\", "
          "\"c\": \"model-00002-of-00002.safetensors\"}}";
    synth_write_file(file_in("model.safetensors.index.json"), idx, strlen(idx));
    char *data;
    size_t len;
    CHECK_OK(lm_read_file(file_in("model-00001-of-00002.safetensors"), &data, &len));
    synth_write_file(file_in("x.safetensors"), data, len);
    free(data);
    check_model_fails(dir, LM_ERR_FORMAT, "appears twice", NULL);

    /* No weights; no config; not a directory; nothing there. */
    synth_remove_dir(dir);
    if (mkdir(dir, 0700)) exit(1);
    check_model_fails(dir, LM_ERR_IO, "config.json", NULL);
    synth_default(&c);
    synth_write_config(dir, &c);
    check_model_fails(dir, LM_ERR_IO, "model.safetensors", NULL);
    check_model_fails(file_in("config.json"), LM_ERR_FORMAT, "model directory", NULL); /* nor a quantized model */
    check_model_fails("/nonexistent/model", LM_ERR_IO, "/nonexistent/model", NULL);
    synth_write_file(file_in("config.json"), "{\"hidden_size\": 64,", 19);
    check_model_fails(dir, LM_ERR_FORMAT, "config.json", "incomplete");
    m = NULL;
    lm_model_free(m); /* no-op */
}

/* The bundled tiny model: the parameter count of its train_report.json. */
static void test_tiny(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/models/mamba2-tiny", test_root());
    lm_model *m;
    CHECK_OK(lm_model_init(&m, path));
    if (!m) return;
    CHECK(lm_model_n_params(m) == 6975152, "tiny params %llu", (unsigned long long)lm_model_n_params(m));
    CHECK(lm_model_n_tensors(m) == 38, "tiny tensors %d", lm_model_n_tensors(m));
    CHECK(m->lm_head.w == m->embedding, "tiny lm_head tied");
    CHECK(!strcmp(lm_model_tokenizer_path(m), "(bundled)"), "tokenizer: %s", lm_model_tokenizer_path(m));
    lm_model_free(m);
}

int main(void) {
    if (synth_tempdir(dir)) return 1;
    test_tiny();
    test_good();
    test_bad_files();
    test_bad_models();
    synth_remove_dir(dir);
    return test_finish();
}
