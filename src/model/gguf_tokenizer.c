/* The tokenizer in a GGUF file (tokenizer.ggml.*), both ways, in llama.cpp's conventions for a
 * GPT-2 style BPE vocabulary (convert_hf_to_gguf.py, llama-vocab.cpp):
 *   tokenizer.ggml.model   "gpt2"
 *   tokenizer.ggml.pre     the pre-tokenizer; "gpt-2", "mpt" and "olmo" all mean GPT-2's pattern,
 *                          the one GPT-NeoX uses (llama.cpp's converter writes "mpt" for
 *                          state-spaces Mamba2 models, whose tokenizer is GPT-NeoX's)
 *   tokenizer.ggml.tokens  every id's string: byte-level characters for vocabulary tokens, the
 *                          raw content for added tokens, "[PADi]" for unused rows
 *   tokenizer.ggml.token_type  1 normal, 3 control (special added tokens), 4 user-defined (other
 *                          added tokens, matched after normalization), 5 unused
 *   tokenizer.ggml.merges  "left right" in rank order
 * Reading builds the equivalent tokenizer.json (NFC normalizer, ByteLevel pre-tokenizer and
 * decoder, as GPT-NeoX's), which the model hands to the tokenizer like a quantized file's
 * embedded one; trailing unused tokens are dropped. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/model_load.h"
#include "tokenizer/tokenizer.h"

enum { TOKEN_NORMAL = 1, TOKEN_UNKNOWN = 2, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4, TOKEN_UNUSED = 5,
       TOKEN_BYTE = 6 };

static const char *const gpt2_pre[] = {"gpt-2", "mpt", "olmo"};

static lm_status array_kv(const lm_gguf *g, const char *key, lm_gguf_type elem, int required, const char *what,
                          const lm_gguf_kv **out) {
    *out = lm_gguf_find(g, key);
    if (!*out) return required ? lm_fail(LM_ERR_FORMAT, "%s: metadata %s is missing", what, key) : LM_OK;
    int ok = (*out)->type == LM_GGUF_ARRAY &&
             (elem == LM_GGUF_STRING ? (*out)->elem_type == LM_GGUF_STRING
                                     : (*out)->elem_type <= LM_GGUF_INT32 && (*out)->elem_type != LM_GGUF_FLOAT32);
    if (!ok)
        return lm_fail(LM_ERR_FORMAT, "%s: metadata %s is not an array of %s", what, key,
                       elem == LM_GGUF_STRING ? "strings" : "integers");
    return LM_OK;
}

/* A GGUF string as a NUL-terminated copy in *buf (grown as needed); one with a NUL byte is refused. */
static lm_status c_string(const char *s, size_t len, char **buf, size_t *cap, const char *what, const char *key,
                          uint64_t i) {
    if (memchr(s, '\0', len) || len > INT32_MAX)
        return lm_fail(LM_ERR_FORMAT, "%s: %s[%llu] has a NUL byte or is too long", what, key, (unsigned long long)i);
    if (len + 1 > *cap) {
        char *b = realloc(*buf, len + 1);
        if (!b) return lm_fail(LM_ERR_NOMEM, "out of memory reading %s", what);
        *buf = b;
        *cap = len + 1;
    }
    memcpy(*buf, s, len);
    (*buf)[len] = '\0';
    return LM_OK;
}

static lm_status add_member(json_object *obj, const char *key, json_object *value) {
    if (!value || json_object_object_add(obj, key, value)) {
        json_object_put(value);
        return lm_fail(LM_ERR_NOMEM, "out of memory building the tokenizer");
    }
    return LM_OK;
}

static lm_status add_item(json_object *arr, json_object *value) {
    if (!value || json_object_array_add(arr, value)) {
        json_object_put(value);
        return lm_fail(LM_ERR_NOMEM, "out of memory building the tokenizer");
    }
    return LM_OK;
}

static json_object *typed_section(const char *type) {
    json_object *o = json_object_new_object();
    if (o && json_object_object_add(o, "type", json_object_new_string(type))) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static lm_status check_model(const lm_gguf *g, const char *what) {
    const char *s;
    size_t len;
    LM_TRY(lm_gguf_get_string(g, "tokenizer.ggml.model", &s, &len, what));
    if (len != 4 || memcmp(s, "gpt2", 4))
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model is \"%.*s\", only \"gpt2\" (byte-level BPE as "
                       "GPT-NeoX's) is supported; put a tokenizer.json beside the file", what, (int)(len < 32 ? len : 32), s);
    if (!lm_gguf_find(g, "tokenizer.ggml.pre"))
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre is missing (llama.cpp then splits text differently "
                       "from GPT-NeoX); put a tokenizer.json beside the file", what);
    LM_TRY(lm_gguf_get_string(g, "tokenizer.ggml.pre", &s, &len, what));
    for (size_t i = 0; i < sizeof gpt2_pre / sizeof *gpt2_pre; i++)
        if (len == strlen(gpt2_pre[i]) && !memcmp(s, gpt2_pre[i], len)) return LM_OK;
    return lm_fail(LM_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre is \"%.*s\", not GPT-NeoX's pre-tokenizer (gpt-2, mpt "
                   "or olmo); put a tokenizer.json beside the file", what, (int)(len < 32 ? len : 32), s);
}

/* vocab, added_tokens and merges from the metadata, into model/root. */
static lm_status fill(const lm_gguf *g, const char *what, json_object *root, json_object *model) {
    const lm_gguf_kv *tokens, *types, *merges;
    LM_TRY(array_kv(g, "tokenizer.ggml.tokens", LM_GGUF_STRING, 1, what, &tokens));
    LM_TRY(array_kv(g, "tokenizer.ggml.token_type", LM_GGUF_INT32, 0, what, &types));
    LM_TRY(array_kv(g, "tokenizer.ggml.merges", LM_GGUF_STRING, 1, what, &merges));
    if (types && types->n != tokens->n)
        return lm_fail(LM_ERR_FORMAT, "%s: tokenizer.ggml.token_type has %llu entries for %llu tokens", what,
                       (unsigned long long)types->n, (unsigned long long)tokens->n);
    uint64_t n = tokens->n;
    while (n > 0 && types && lm_gguf_array_int(types, n - 1) == TOKEN_UNUSED) n--;
    if (n == 0 || n > INT32_MAX) return lm_fail(LM_ERR_FORMAT, "%s: tokenizer.ggml.tokens has no usable token", what);

    json_object *vocab = json_object_new_object(), *added = json_object_new_array(), *merge_list = json_object_new_array();
    lm_status s = add_member(model, "vocab", vocab);
    if (!s) s = add_member(root, "added_tokens", added);
    else json_object_put(added);
    if (!s) s = add_member(model, "merges", merge_list);
    else json_object_put(merge_list);
    char *buf = NULL;
    size_t cap = 0;
    const unsigned char *cursor = NULL;
    for (uint64_t i = 0; i < n && !s; i++) {
        const char *tok;
        size_t len;
        lm_gguf_array_string(tokens, &cursor, &tok, &len);
        int64_t type = types ? lm_gguf_array_int(types, i) : TOKEN_NORMAL;
        if ((s = c_string(tok, len, &buf, &cap, what, "tokenizer.ggml.tokens", i))) break;
        if (type == TOKEN_BYTE || type < TOKEN_NORMAL || type > TOKEN_BYTE) {
            s = lm_fail(type == TOKEN_BYTE ? LM_ERR_UNSUPPORTED : LM_ERR_FORMAT, "%s: token %llu has type %lld (%s)",
                        what, (unsigned long long)i, (long long)type,
                        type == TOKEN_BYTE ? "byte-fallback tokens are SentencePiece's, not GPT-2 BPE" : "unknown");
            break;
        }
        json_object *id = json_object_new_int64((int64_t)i);
        if (type != TOKEN_USER_DEFINED) {
            if ((s = add_member(vocab, buf, json_object_get(id)))) {
                json_object_put(id);
                break;
            }
        }
        if (type == TOKEN_NORMAL || type == TOKEN_UNUSED) {
            json_object_put(id);
            continue;
        }
        /* Control tokens are matched in the raw text, user-defined ones after normalization. */
        json_object *a = json_object_new_object();
        if (!a) {
            json_object_put(id);
            s = lm_fail(LM_ERR_NOMEM, "out of memory building the tokenizer");
            break;
        }
        s = add_item(added, a);
        if (!s) s = add_member(a, "id", id);
        else json_object_put(id);
        if (!s) s = add_member(a, "content", json_object_new_string_len(tok, (int)len));
        if (!s) s = add_member(a, "special", json_object_new_boolean(type != TOKEN_USER_DEFINED));
        if (!s) s = add_member(a, "normalized", json_object_new_boolean(type == TOKEN_USER_DEFINED));
    }
    cursor = NULL;
    for (uint64_t i = 0; i < merges->n && !s; i++) {
        const char *m;
        size_t len;
        lm_gguf_array_string(merges, &cursor, &m, &len);
        if (!(s = c_string(m, len, &buf, &cap, what, "tokenizer.ggml.merges", i)))
            s = add_item(merge_list, json_object_new_string(buf));
    }
    free(buf);
    return s;
}

lm_status lm_gguf_tokenizer_json(const lm_gguf *g, const char *what, char **json, size_t *len) {
    *json = NULL;
    *len = 0;
    LM_TRY(check_model(g, what));
    json_object *root = json_object_new_object(), *model = typed_section("BPE");
    lm_status s = root ? add_member(root, "model", model) : lm_fail(LM_ERR_NOMEM, "out of memory building the tokenizer");
    if (!s) s = add_member(root, "normalizer", typed_section("NFC"));
    if (!s) s = add_member(root, "pre_tokenizer", typed_section("ByteLevel"));
    if (!s) s = add_member(root, "decoder", typed_section("ByteLevel"));
    if (!s) s = fill(g, what, root, model);
    const char *text = s ? NULL : json_object_to_json_string_length(root, JSON_C_TO_STRING_PLAIN, len);
    if (!s && !text) s = lm_fail(LM_ERR_NOMEM, "out of memory building the tokenizer");
    if (!s && !(*json = strndup(text, *len))) s = lm_fail(LM_ERR_NOMEM, "out of memory building the tokenizer");
    json_object_put(root);
    return s;
}

/* ---- writing ---- */

typedef struct {
    const lm_tokenizer *t;
    int n_rows;
    char **strings;  /* [n_rows] token strings, then the merges */
    size_t *lens;
} strings_ctx;

static void string_at(void *ctx, uint64_t i, const char **s, size_t *len) {
    strings_ctx *c = ctx;
    *s = c->strings[i];
    *len = c->lens[i];
}

/* Raw bytes as byte-level characters (GPT-2's bytes_to_unicode), UTF-8 encoded into out (<= 2 bytes each). */
static size_t byte_level(const unsigned char *raw, size_t n, const int byte_char[256], char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int c = byte_char[raw[i]];
        if (c < 0x80) {
            out[k++] = (char)c;
        } else {
            out[k++] = (char)(0xC0 | (c >> 6));
            out[k++] = (char)(0x80 | (c & 0x3F));
        }
    }
    return k;
}

static const lm_added_token *added_of(const lm_tokenizer *t, int32_t id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return &t->added[i];
    return NULL;
}

typedef struct {
    int32_t rank, left, right;
} merge_entry;

static int cmp_rank(const void *a, const void *b) {
    int32_t x = ((const merge_entry *)a)->rank, y = ((const merge_entry *)b)->rank;
    return (x > y) - (x < y);
}

lm_status lm_gguf_add_tokenizer(lm_gguf_writer *w, const lm_tokenizer *t, int n_rows) {
    if (n_rows < t->n_vocab)
        return lm_fail(LM_ERR_ARG, "the tokenizer has %d tokens, more than the model's %d embedding rows (put the model's own tokenizer.json beside it)", t->n_vocab,
                       n_rows);
    int byte_char[256], byte_of_char[LM_BYTE_CHARS];
    lm_byte_level_tables(byte_char, byte_of_char);
    size_t n_merges = 0;
    for (size_t i = 0; i <= t->merges.mask; i++) n_merges += t->merges.keys[i] != LM_MERGE_EMPTY;
    size_t n_strings = (size_t)n_rows + n_merges;
    strings_ctx c = {t, n_rows, NULL, NULL};
    int32_t *types = NULL;
    merge_entry *order = NULL;
    lm_status s = lm_calloc(&c.strings, n_strings, sizeof *c.strings, "GGUF tokens");
    if (!s) s = lm_calloc(&c.lens, n_strings, sizeof *c.lens, "GGUF tokens");
    if (!s) s = lm_calloc(&types, (size_t)n_rows, sizeof *types, "GGUF token types");
    if (!s) s = lm_calloc(&order, n_merges ? n_merges : 1, sizeof *order, "GGUF merges");
    int32_t bos = -1, pad = -1;
    for (int id = 0; id < n_rows && !s; id++) {
        const lm_added_token *a = id < t->n_vocab ? added_of(t, id) : NULL;
        size_t raw_len = id < t->n_vocab ? t->token_offset[id + 1] - t->token_offset[id] : 0;
        char *str = malloc(a ? a->len + 1 : 2 * raw_len + 24);
        if (!str) {
            s = lm_fail(LM_ERR_NOMEM, "out of memory writing the GGUF tokenizer");
            break;
        }
        c.strings[id] = str;
        if (id >= t->n_vocab) { /* embedding rows no token maps to, as llama.cpp's converter pads */
            c.lens[id] = (size_t)snprintf(str, 24, "[PAD%d]", id);
            types[id] = TOKEN_UNUSED;
        } else if (a) {
            memcpy(str, a->content, a->len);
            c.lens[id] = a->len;
            types[id] = a->normalized ? TOKEN_USER_DEFINED : TOKEN_CONTROL;
            if (a->len == 13 && !memcmp(a->content, "<|endoftext|>", 13)) bos = id;
            if (a->len == 11 && !memcmp(a->content, "<|padding|>", 11)) pad = id;
        } else {
            c.lens[id] = byte_level((const unsigned char *)t->token_bytes + t->token_offset[id], raw_len, byte_char, str);
            types[id] = TOKEN_NORMAL;
        }
    }
    size_t k = 0;
    for (size_t i = 0; i <= t->merges.mask && !s; i++) {
        uint64_t key = t->merges.keys[i];
        if (key != LM_MERGE_EMPTY) order[k++] = (merge_entry){t->merges.rank[i], (int32_t)(key >> 32), (int32_t)(uint32_t)key};
    }
    if (!s) qsort(order, n_merges, sizeof *order, cmp_rank);
    for (size_t i = 0; i < n_merges && !s; i++) {
        const int32_t ids[2] = {order[i].left, order[i].right};
        size_t total = 0;
        for (int j = 0; j < 2; j++) total += 2 * (t->token_offset[ids[j] + 1] - t->token_offset[ids[j]]);
        char *str = malloc(total + 2);
        if (!str) {
            s = lm_fail(LM_ERR_NOMEM, "out of memory writing the GGUF tokenizer");
            break;
        }
        c.strings[(size_t)n_rows + i] = str;
        size_t len = 0;
        for (int j = 0; j < 2; j++) {
            if (j) str[len++] = ' ';
            len += byte_level((const unsigned char *)t->token_bytes + t->token_offset[ids[j]],
                              t->token_offset[ids[j] + 1] - t->token_offset[ids[j]], byte_char, str + len);
        }
        c.lens[(size_t)n_rows + i] = len;
    }
    if (!s) {
        lm_gguf_add_string(w, "tokenizer.ggml.model", "gpt2", 4);
        lm_gguf_add_string(w, "tokenizer.ggml.pre", "mpt", 3);
        lm_gguf_add_string_array(w, "tokenizer.ggml.tokens", (uint64_t)n_rows, string_at, &c);
        lm_gguf_add_i32_array(w, "tokenizer.ggml.token_type", types, (uint64_t)n_rows);
        strings_ctx m = {t, n_rows, c.strings + n_rows, c.lens + n_rows};
        lm_gguf_add_string_array(w, "tokenizer.ggml.merges", n_merges, string_at, &m);
        if (bos >= 0) {
            lm_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
            lm_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)bos);
            lm_gguf_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)bos);
        }
        if (pad >= 0) lm_gguf_add_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
        lm_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", 0);
    }
    for (size_t i = 0; c.strings && i < n_strings; i++) free(c.strings[i]);
    free(c.strings);
    free(c.lens);
    free(types);
    free(order);
    return s;
}
