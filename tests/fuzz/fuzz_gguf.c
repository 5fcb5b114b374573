/* A GGUF file: lm_gguf_parse on arbitrary bytes. A file that parses has every metadata value and
 * tensor inside the input: each key is found, each value read through the typed getters (arrays
 * walked element by element), and each tensor is aligned, of lm_ggml_nbytes bytes, found by name
 * and, when of a type the loaders take, converted to float32 (which reads all of its bytes). */
#include "fuzz.h"
#include "format/gguf.h"

#define INSIDE(p, n) ((const uint8_t *)(p) >= data && (n) <= size && (const uint8_t *)(p) - data <= (ptrdiff_t)(size - (n)))

static void check_kv(const lm_gguf *g, const lm_gguf_kv *kv, const uint8_t *data, size_t size) {
    FUZZ_ASSERT(INSIDE(kv->key, kv->key_len), "a key lies outside the input");
    char key[256];
    const char *s;
    size_t len;
    int64_t i;
    double f;
    /* Keys are unique (duplicates are refused), so one without a NUL is found by name. */
    if (kv->key_len < sizeof key && !memchr(kv->key, '\0', kv->key_len)) {
        memcpy(key, kv->key, kv->key_len);
        key[kv->key_len] = '\0';
        FUZZ_ASSERT(lm_gguf_find(g, key) == kv, "%s is not found", key);
        if (kv->type == LM_GGUF_STRING)
            FUZZ_ASSERT(lm_gguf_get_string(g, key, &s, &len, "f") == LM_OK, "%s: not a string", key);
        else if (kv->type != LM_GGUF_ARRAY && kv->type != LM_GGUF_BOOL)
            FUZZ_ASSERT(lm_gguf_get_int(g, key, &i, "f") == LM_OK || lm_gguf_get_float(g, key, &f, "f") == LM_OK,
                        "%s: neither an integer nor a float", key);
    }
    if (kv->type == LM_GGUF_STRING) {
        FUZZ_ASSERT(INSIDE(kv->value, kv->n), "a string lies outside the input");
    } else if (kv->type != LM_GGUF_ARRAY) {
        FUZZ_ASSERT(INSIDE(kv->value, 1), "a value lies outside the input");
    } else if (kv->elem_type == LM_GGUF_STRING) {
        const unsigned char *cursor = NULL;
        for (uint64_t e = 0; e < kv->n; e++) {
            lm_gguf_array_string(kv, &cursor, &s, &len);
            FUZZ_ASSERT(INSIDE(s, len), "string %llu of an array lies outside the input", (unsigned long long)e);
        }
    } else if (kv->elem_type <= LM_GGUF_INT32 || kv->elem_type == LM_GGUF_UINT64 || kv->elem_type == LM_GGUF_INT64) {
        for (uint64_t e = 0; e < kv->n; e++) (void)lm_gguf_array_int(kv, e); /* ASan checks each read */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_gguf g;
    lm_status s = lm_gguf_parse(&g, data, size, "model.gguf");
    if (s != LM_OK) {
        fuzz_check_failure(s);
        FUZZ_ASSERT(g.n_kv == 0 && g.n_tensors == 0 && g.kv == NULL && g.tensors == NULL, "not left empty on failure");
        return 0;
    }
    FUZZ_ASSERT(g.alignment && !(g.alignment & (g.alignment - 1)), "alignment %u", g.alignment);
    for (size_t k = 0; k < g.n_kv; k++) check_kv(&g, &g.kv[k], data, size);
    for (size_t k = 0; k < g.n_tensors; k++) {
        const lm_gguf_tensor *t = &g.tensors[k];
        FUZZ_ASSERT(lm_ggml_type_name(t->type) != NULL, "%s: type %u", t->name, t->type);
        FUZZ_ASSERT(t->n_dims >= 1 && t->n_dims <= LM_GGML_MAX_DIMS, "%s: %d dimensions", t->name, t->n_dims);
        FUZZ_ASSERT(t->nbytes == lm_ggml_nbytes(t->type, t->numel), "%s: %zu bytes for %llu elements", t->name,
                    t->nbytes, (unsigned long long)t->numel);
        FUZZ_ASSERT(t->offset % g.alignment == 0, "%s: offset %llu", t->name, (unsigned long long)t->offset);
        FUZZ_ASSERT(t->nbytes == 0 || INSIDE(t->data, t->nbytes), "%s lies outside the input", t->name);
        FUZZ_ASSERT(lm_gguf_find_tensor(&g, t->name) == t, "%s is not found by name", t->name);
        if (t->type != LM_GGML_F32 && t->type != LM_GGML_F16 && t->type != LM_GGML_BF16 && t->type != LM_GGML_Q8_0)
            continue;
        float *f = malloc(t->numel ? (size_t)t->numel * sizeof *f : 1);
        FUZZ_ASSERT(f != NULL, "out of memory for %llu floats", (unsigned long long)t->numel);
        lm_ggml_to_f32(f, t->type, t->data, (size_t)t->numel);
        free(f);
    }
    lm_gguf_free(&g);
    fuzz_accepted++;
    return 0;
}
