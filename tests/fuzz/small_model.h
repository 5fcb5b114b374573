/* The small model of the quantized-file and state-file harnesses and their seeds: a 1-layer
 * synthetic checkpoint (d_model 16, vocabulary 304) with a 302-id tokenizer cut from
 * data/tokenizer.json, small enough that a state file is a few KB and a quantized file tens of KB
 * (mamba2-tiny's state file is 550 KB: its harness ran 280 inputs a second). Deterministic: the
 * harnesses rebuild the models their seeds were written from, bit for bit. */
#ifndef LM_FUZZ_SMALL_MODEL_H
#define LM_FUZZ_SMALL_MODEL_H
#include <json-c/json.h>

#include "common/file.h"
#include "fuzz.h"

/* data/tokenizer.json (its text, malloc'd) cut to the ids below n_ids (every byte token is
 * among the first 258), the merges between them (as "a b" or as ["a", "b"]), the added tokens below n_ids and two runs of
 * spaces renumbered to n_ids and n_ids + 1. */
static inline char *small_tokenizer_json(int n_ids, int pair_merges) {
    char *path = lm_path_join(fuzz_root(), "data/tokenizer.json");
    json_object *root = json_object_from_file(path);
    FUZZ_ASSERT(root, "cannot read %s", path);
    free(path);
    json_object *model, *vocab, *merges, *added;
    FUZZ_ASSERT(json_object_object_get_ex(root, "model", &model) && json_object_object_get_ex(model, "vocab", &vocab) &&
                    json_object_object_get_ex(model, "merges", &merges) &&
                    json_object_object_get_ex(root, "added_tokens", &added),
                "unexpected data/tokenizer.json");
    json_object *v2 = json_object_new_object(), *m2 = json_object_new_array(), *a2 = json_object_new_array();
    json_object_object_foreach(vocab, tok, id)
        if (json_object_get_int(id) < n_ids) json_object_object_add(v2, tok, json_object_new_int(json_object_get_int(id)));
    for (size_t i = 0; i < json_object_array_length(merges); i++) {
        const char *m = json_object_get_string(json_object_array_get_idx(merges, i));
        const char *sp = strchr(m, ' ');
        char left[256], both[512];
        if (!sp || (size_t)(sp - m) >= sizeof left) continue;
        memcpy(left, m, (size_t)(sp - m));
        left[sp - m] = '\0';
        snprintf(both, sizeof both, "%s%s", left, sp + 1);
        json_object *a, *b, *ab;
        if (!json_object_object_get_ex(v2, left, &a) || !json_object_object_get_ex(v2, sp + 1, &b) ||
            !json_object_object_get_ex(v2, both, &ab))
            continue;
        json_object *e = json_object_new_string(m);
        if (pair_merges) {
            json_object_put(e);
            e = json_object_new_array();
            json_object_array_add(e, json_object_new_string(left));
            json_object_array_add(e, json_object_new_string(sp + 1));
        }
        json_object_array_add(m2, e);
    }
    int next = n_ids;
    for (size_t i = 0; i < json_object_array_length(added); i++) {
        json_object *a = json_object_array_get_idx(added, i), *id, *content;
        json_object_object_get_ex(a, "id", &id);
        json_object_object_get_ex(a, "content", &content);
        int keep = json_object_get_int(id) < n_ids, renumber = !keep && next < n_ids + 2;
        if (!keep && !renumber) continue;
        json_object *copy = NULL;
        json_object_deep_copy(a, &copy, NULL);
        if (renumber) json_object_object_add(copy, "id", json_object_new_int(next++));
        json_object_array_add(a2, copy);
    }
    json_object_object_add(model, "vocab", v2);
    json_object_object_add(model, "merges", m2);
    json_object_object_add(root, "added_tokens", a2);
    char *text = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
    FUZZ_ASSERT(text, "out of memory");
    json_object_put(root);
    return text;
}

enum { SMALL_VOCAB = 304 }; /* tokens (the tokenizer has 302) */

/* A temporary directory (dir: 64 bytes) with the small checkpoint, its tokenizer.json and 4 KB of
 * WikiText-2 as calibration text (calib.txt). 0 on success. */
static inline int small_model_dir(char *dir) {
    synth_config c;
    fuzz_small_model(&c);
    c.vocab_size = SMALL_VOCAB;
    if (synth_tempdir(dir) || synth_write_checkpoint(dir, &c)) return -1;
    char *tok = small_tokenizer_json(300, 0), *tok_path = lm_path_join(dir, "tokenizer.json");
    char *calib_path = lm_path_join(dir, "calib.txt"), *wiki = lm_path_join(fuzz_root(), "data/wikitext2_test.txt"), *text;
    size_t len;
    int r = lm_read_file(wiki, &text, &len) != LM_OK || synth_write_file(tok_path, tok, strlen(tok)) ||
            synth_write_file(calib_path, text, len < 4096 ? len : 4096);
    if (!r) free(text);
    free(wiki);
    free(calib_path);
    free(tok_path);
    free(tok);
    return r ? -1 : 0;
}

/* The quantized configurations: RTN W4A4, RTN W8A8, LightMamba W4A4, LightMamba* (pot8). */
enum { SMALL_QUANT_KINDS = 4, SMALL_POT8 = 3 };
static inline lm_status small_model_quantize(const lm_model *m, const char *dir, int kind, const char *out) {
    lm_quant_settings q = lm_quant_defaults();
    q.method = kind < 2 ? LM_QUANT_RTN : LM_QUANT_LIGHTMAMBA;
    q.wbits = q.abits = kind == 1 ? 8 : 4;
    q.ssm_mode = kind == SMALL_POT8 ? LM_SSM_POT8 : LM_SSM_FLOAT;
    q.calib_samples = 4;
    q.calib_len = 64;
    char *calib = lm_path_join(dir, "calib.txt");
    lm_status s = lm_quantize(m, &q, calib, 1, out, NULL, NULL);
    free(calib);
    return s;
}

/* The two sessions of the state harness: [0] the float model, [1] its pot8 quantization (integer
 * state, the other state kind). */
typedef struct {
    char dir[64];
    lm_model *model[2];
    lm_session *session[2];
} small_sessions;

static inline void small_sessions_init(small_sessions *ss) {
    memset(ss, 0, sizeof *ss);
    FUZZ_ASSERT(small_model_dir(ss->dir) == 0, "cannot write the small model");
    char *q = lm_path_join(ss->dir, "pot8.lmq");
    FUZZ_ASSERT(lm_model_init(&ss->model[0], ss->dir) == LM_OK &&
                    small_model_quantize(ss->model[0], ss->dir, SMALL_POT8, q) == LM_OK &&
                    lm_model_init(&ss->model[1], q) == LM_OK && lm_session_init(&ss->session[0], ss->model[0], fuzz_one_thread()) == LM_OK &&
                    lm_session_init(&ss->session[1], ss->model[1], fuzz_one_thread()) == LM_OK,
                "%s", lm_last_error());
    free(q);
}

static inline void small_sessions_free(small_sessions *ss) {
    for (int k = 0; k < 2; k++) {
        lm_session_free(ss->session[k]);
        lm_model_free(ss->model[k]);
    }
    synth_remove_dir(ss->dir);
}

#endif
