/* Loading a Hugging Face tokenizer.json (BPE model, ByteLevel pre-tokenizer and decoder,
 * optional NFC normalizer) into struct lm_tokenizer. Everything else fails with
 * LM_ERR_UNSUPPORTED naming the section, rather than tokenizing differently. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/error.h"
#include "common/file.h"
#include "common/datadir.h"
#include "tokenizer/tokenizer.h"

void lm_byte_level_tables(int byte_char[256], int byte_of_char[LM_BYTE_CHARS]) {
    int next = 256;
    for (int c = 0; c < LM_BYTE_CHARS; c++) byte_of_char[c] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        byte_char[b] = printable ? b : next++;
        byte_of_char[byte_char[b]] = b;
    }
}

/* A vocab string's raw bytes: each character mapped back to its byte; a string with a
 * character outside the byte alphabet (an added token such as a run of spaces) stands for
 * its own UTF-8 bytes, as the ByteLevel decoder does. Writes at most strlen(s) bytes. */
static size_t token_raw_bytes(const char *s, const int byte_of_char[LM_BYTE_CHARS], char *out) {
    size_t n = strlen(s), k = 0;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t step = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &c);
        if (step <= 0 || c < 0 || c >= LM_BYTE_CHARS || byte_of_char[c] < 0) {
            memcpy(out, s, n);
            return n;
        }
        out[k++] = (char)byte_of_char[c];
        i += (size_t)step;
    }
    return k;
}

/* Member KEY of OBJ (NULL when absent or JSON null). */
static json_object *member(json_object *obj, const char *key) {
    json_object *v = NULL;
    return json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

static int is_type(json_object *section, const char *type) {
    json_object *t = member(section, "type");
    return t && json_object_is_type(t, json_type_string) && !strcmp(json_object_get_string(t), type);
}

static const char *type_name(json_object *section) {
    json_object *t = member(section, "type");
    return t && json_object_is_type(t, json_type_string) ? json_object_get_string(t) : "(no type)";
}

/* A boolean member that must have the value WANT when present. */
static lm_status expect_flag(json_object *obj, const char *key, int want, const char *path, const char *where) {
    json_object *v = member(obj, key);
    if (v && json_object_get_boolean(v) != want)
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: %s.%s = %s is not supported", path, where, key, want ? "false" : "true");
    return LM_OK;
}

static lm_status check_pipeline(lm_tokenizer *t, json_object *root, json_object *model, const char *path) {
    if (!is_type(model, "BPE") && member(model, "type"))
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: model type %s is not supported (only BPE)", path, type_name(model));
    json_object *dropout = member(model, "dropout");
    if (dropout && json_object_get_double(dropout) != 0.0)
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: BPE dropout is not supported", path);
    const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        json_object *a = member(model, affixes[i]);
        if (a && json_object_get_string_len(a) > 0)
            return lm_fail(LM_ERR_UNSUPPORTED, "%s: model.%s is not supported", path, affixes[i]);
    }
    LM_TRY(expect_flag(model, "byte_fallback", 0, path, "model"));
    LM_TRY(expect_flag(model, "ignore_merges", 0, path, "model"));

    json_object *norm = member(root, "normalizer");
    if (norm && !is_type(norm, "NFC"))
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: normalizer %s is not supported (only NFC or none)", path, type_name(norm));
    t->nfc = norm != NULL;

    json_object *pre = member(root, "pre_tokenizer");
    if (!pre || !is_type(pre, "ByteLevel"))
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: pre_tokenizer %s is not supported (only ByteLevel)", path,
                       pre ? type_name(pre) : "none");
    LM_TRY(expect_flag(pre, "use_regex", 1, path, "pre_tokenizer"));
    json_object *prefix = member(pre, "add_prefix_space");
    t->add_prefix_space = prefix && json_object_get_boolean(prefix);

    json_object *dec = member(root, "decoder");
    if (dec && !is_type(dec, "ByteLevel"))
        return lm_fail(LM_ERR_UNSUPPORTED, "%s: decoder %s is not supported (only ByteLevel)", path, type_name(dec));
    return LM_OK;
}

/* token_of_id[id] = the token string of each id: model.vocab, then added_tokens (which win,
 * as in `tokenizers`). Sets t->n_vocab. */
static lm_status collect_tokens(lm_tokenizer *t, json_object *vocab, json_object *added, const char *path,
                                const char ***token_of_id) {
    int64_t max_id = -1;
    json_object_object_foreach(vocab, key, val) {
        (void)key;
        if (!json_object_is_type(val, json_type_int))
            return lm_fail(LM_ERR_FORMAT, "%s: model.vocab[\"%s\"] is not an integer id", path, key);
        int64_t id = json_object_get_int64(val);
        if (id < 0 || id >= INT32_MAX) return lm_fail(LM_ERR_FORMAT, "%s: model.vocab[\"%s\"] = %lld is out of range", path, key, (long long)id);
        if (id > max_id) max_id = id;
    }
    size_t n_added = added ? json_object_array_length(added) : 0;
    for (size_t i = 0; i < n_added; i++) {
        json_object *id = member(json_object_array_get_idx(added, i), "id");
        if (!id || !json_object_is_type(id, json_type_int) || json_object_get_int64(id) < 0 || json_object_get_int64(id) >= INT32_MAX)
            return lm_fail(LM_ERR_FORMAT, "%s: added_tokens[%zu] has no valid id", path, i);
        if (json_object_get_int64(id) > max_id) max_id = json_object_get_int64(id);
    }
    if (max_id < 0) return lm_fail(LM_ERR_FORMAT, "%s: model.vocab is empty", path);
    /* Ids must run 0..n-1 without gaps, so n is at most the number of entries (this also
     * bounds the tables below by the file's size, whatever ids it claims). */
    size_t n_entries = (size_t)json_object_object_length(vocab) + n_added;
    if ((uint64_t)max_id >= n_entries)
        return lm_fail(LM_ERR_FORMAT, "%s: ids run up to %lld but there are only %zu tokens (ids must run 0..n-1 without gaps)",
                       path, (long long)max_id, n_entries);
    t->n_vocab = (int)(max_id + 1);

    const char **tok_of = NULL;
    LM_TRY(lm_calloc(&tok_of, (size_t)t->n_vocab, sizeof *tok_of, "token table"));
    *token_of_id = tok_of;
    json_object_object_foreach(vocab, k2, v2) {
        int32_t id = (int32_t)json_object_get_int64(v2);
        if (tok_of[id]) return lm_fail(LM_ERR_FORMAT, "%s: duplicate id %d in model.vocab (\"%s\" and \"%s\")", path, id, tok_of[id], k2);
        tok_of[id] = k2;
    }

    LM_TRY(lm_calloc(&t->added, n_added ? n_added : 1, sizeof *t->added, "added tokens"));
    uint8_t *added_seen = NULL;
    LM_TRY(lm_calloc(&added_seen, (size_t)t->n_vocab, 1, "added token ids"));
    lm_status s = LM_OK;
    for (size_t i = 0; i < n_added && s == LM_OK; i++) {
        json_object *a = json_object_array_get_idx(added, i);
        json_object *content = member(a, "content");
        int32_t id = (int32_t)json_object_get_int64(member(a, "id"));
        if (!content || !json_object_is_type(content, json_type_string) || json_object_get_string_len(content) == 0) {
            s = lm_fail(LM_ERR_FORMAT, "%s: added_tokens[%zu] has no content", path, i);
            break;
        }
        if (added_seen[id]) {
            s = lm_fail(LM_ERR_FORMAT, "%s: duplicate id %d in added_tokens", path, id);
            break;
        }
        added_seen[id] = 1;
        const char *flags[] = {"lstrip", "rstrip", "single_word"};
        for (int f = 0; f < 3 && s == LM_OK; f++) {
            json_object *v = member(a, flags[f]);
            if (v && json_object_get_boolean(v))
                s = lm_fail(LM_ERR_UNSUPPORTED, "%s: added token \"%s\" has %s = true (not supported)", path,
                            json_object_get_string(content), flags[f]);
        }
        if (s != LM_OK) break;
        json_object *special = member(a, "special"), *normalized = member(a, "normalized");
        lm_added_token *at = &t->added[t->n_added++];
        at->id = id;
        at->normalized = normalized ? json_object_get_boolean(normalized) : !(special && json_object_get_boolean(special));
        /* A normalized token is matched in normalized text, so its content is normalized too. */
        at->content = (char *)(at->normalized && t->nfc ? utf8proc_NFC((const utf8proc_uint8_t *)json_object_get_string(content))
                                                         : (utf8proc_uint8_t *)strdup(json_object_get_string(content)));
        if (!at->content) {
            s = lm_fail(LM_ERR_FORMAT, "%s: added token %d is not valid UTF-8", path, id);
            break;
        }
        at->len = strlen(at->content);
        t->added_first[at->normalized][(uint8_t)at->content[0]] = 1;
        tok_of[id] = json_object_get_string(content);
    }
    free(added_seen);
    LM_TRY(s);
    for (int id = 0; id < t->n_vocab; id++)
        if (!tok_of[id]) return lm_fail(LM_ERR_FORMAT, "%s: no token has id %d (ids must run 0..%d without gaps)", path, id, t->n_vocab - 1);
    return LM_OK;
}

static lm_status build_token_bytes(lm_tokenizer *t, const char **token_of_id, const int byte_of_char[LM_BYTE_CHARS]) {
    size_t total = 0;
    for (int id = 0; id < t->n_vocab; id++) total += strlen(token_of_id[id]);
    LM_TRY(lm_calloc(&t->token_bytes, total + 1, 1, "token bytes"));
    LM_TRY(lm_calloc(&t->token_offset, (size_t)t->n_vocab + 1, sizeof *t->token_offset, "token offsets"));
    size_t off = 0;
    for (int id = 0; id < t->n_vocab; id++) {
        t->token_offset[id] = off;
        off += token_raw_bytes(token_of_id[id], byte_of_char, t->token_bytes + off);
    }
    t->token_offset[t->n_vocab] = off;
    return LM_OK;
}

/* The id of token S, named by merge I ("LEFT RIGHT"). */
static lm_status vocab_id(json_object *vocab, const char *s, const char *path, size_t i, const char *left,
                          const char *right, int32_t *id) {
    json_object *v = NULL;
    if (!json_object_object_get_ex(vocab, s, &v))
        return lm_fail(LM_ERR_FORMAT, "%s: merge %zu (\"%s %s\") names \"%s\", which is not in model.vocab", path, i, left,
                       right, s);
    *id = (int32_t)json_object_get_int64(v);
    return LM_OK;
}

/* Merge I as two strings, from "left right" (older files) or ["left", "right"] (newer ones),
 * copied into *buf as "left\0right\0leftright\0". */
static lm_status merge_strings(json_object *e, size_t i, const char *path, char **buf, size_t *buf_cap,
                               const char **left, const char **right, const char **merged) {
    const char *l, *r;
    size_t l_len, r_len;
    if (json_object_is_type(e, json_type_array) && json_object_array_length(e) == 2 &&
        json_object_is_type(json_object_array_get_idx(e, 0), json_type_string) &&
        json_object_is_type(json_object_array_get_idx(e, 1), json_type_string)) {
        l = json_object_get_string(json_object_array_get_idx(e, 0));
        r = json_object_get_string(json_object_array_get_idx(e, 1));
        l_len = strlen(l);
    } else if (json_object_is_type(e, json_type_string)) {
        l = json_object_get_string(e);
        const char *sp = strchr(l, ' ');
        if (!sp || sp == l || !sp[1] || strchr(sp + 1, ' '))
            return lm_fail(LM_ERR_FORMAT, "%s: merge %zu (\"%s\") is not two tokens separated by one space", path, i, l);
        l_len = (size_t)(sp - l);
        r = sp + 1;
    } else {
        return lm_fail(LM_ERR_FORMAT, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", path, i);
    }
    r_len = strlen(r);
    size_t need = 2 * (l_len + r_len) + 3;
    if (need > *buf_cap) {
        char *nb = realloc(*buf, need);
        if (!nb) return lm_fail(LM_ERR_NOMEM, "out of memory reading merges");
        *buf = nb;
        *buf_cap = need;
    }
    char *b = *buf;
    memcpy(b, l, l_len);
    b[l_len] = '\0';
    memcpy(b + l_len + 1, r, r_len);
    b[l_len + 1 + r_len] = '\0';
    memcpy(b + l_len + r_len + 2, l, l_len);
    memcpy(b + 2 * l_len + r_len + 2, r, r_len + 1);
    *left = b;
    *right = b + l_len + 1;
    *merged = b + l_len + r_len + 2;
    return LM_OK;
}

/* model.merges -> the merge table: (left id, right id) -> (rank = position in the list, merged id). */
static lm_status build_merges(lm_tokenizer *t, json_object *vocab, json_object *merges, const char *path) {
    size_t n = json_object_array_length(merges), cap = 16;
    if (n >= INT32_MAX) return lm_fail(LM_ERR_FORMAT, "%s: too many merges (%zu)", path, n);
    while (cap < 2 * n) cap *= 2;
    lm_merge_table *m = &t->merges;
    LM_TRY(lm_calloc(&m->keys, cap, sizeof *m->keys, "merge table"));
    LM_TRY(lm_calloc(&m->rank, cap, sizeof *m->rank, "merge table"));
    LM_TRY(lm_calloc(&m->result, cap, sizeof *m->result, "merge table"));
    m->mask = cap - 1;
    for (size_t i = 0; i < cap; i++) m->keys[i] = LM_MERGE_EMPTY;

    char *buf = NULL;
    size_t buf_cap = 0;
    lm_status s = LM_OK;
    for (size_t i = 0; i < n && s == LM_OK; i++) {
        const char *left = NULL, *right = NULL, *merged = NULL;
        int32_t a = 0, b = 0, ab = 0;
        s = merge_strings(json_object_array_get_idx(merges, i), i, path, &buf, &buf_cap, &left, &right, &merged);
        if (s == LM_OK) s = vocab_id(vocab, left, path, i, left, right, &a);
        if (s == LM_OK) s = vocab_id(vocab, right, path, i, left, right, &b);
        if (s == LM_OK) s = vocab_id(vocab, merged, path, i, left, right, &ab);
        if (s != LM_OK) break;
        /* A pair listed twice keeps its later rank, as the `tokenizers` hash map does. */
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        size_t slot = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & m->mask;
        while (m->keys[slot] != LM_MERGE_EMPTY && m->keys[slot] != key) slot = (slot + 1) & m->mask;
        m->keys[slot] = key;
        m->rank[slot] = (int32_t)i;
        m->result[slot] = ab;
    }
    free(buf);
    return s;
}

/* The GPT-2 pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * with \s spelled out as the Unicode White_Space set that `tokenizers` (Oniguruma) uses:
 * PCRE2's UCP \s also takes U+180E, which Unicode no longer counts as white space. */
#define WS "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";

static lm_status compile_pattern(lm_tokenizer *t) {
    int err;
    PCRE2_SIZE err_off;
    t->pattern = pcre2_compile((PCRE2_SPTR)gpt2_pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &err_off, NULL);
    if (!t->pattern) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return lm_fail(LM_ERR_UNSUPPORTED, "pre-tokenizer pattern does not compile at %zu: %s", (size_t)err_off, (char *)msg);
    }
    pcre2_jit_compile(t->pattern, PCRE2_JIT_COMPLETE); /* optional: the interpreter is the fallback */
    return LM_OK;
}

static lm_status load(lm_tokenizer *t, json_object *root, const char *path) {
    json_object *model = member(root, "model");
    if (!json_object_is_type(root, json_type_object) || !model || !json_object_is_type(model, json_type_object))
        return lm_fail(LM_ERR_FORMAT, "%s: no \"model\" object (not a Hugging Face tokenizer.json?)", path);
    json_object *vocab = member(model, "vocab"), *merges = member(model, "merges"), *added = member(root, "added_tokens");
    if (!vocab || !json_object_is_type(vocab, json_type_object))
        return lm_fail(LM_ERR_FORMAT, "%s: model.vocab is missing or not an object", path);
    if (!merges || !json_object_is_type(merges, json_type_array))
        return lm_fail(LM_ERR_FORMAT, "%s: model.merges is missing or not an array", path);
    if (added && !json_object_is_type(added, json_type_array))
        return lm_fail(LM_ERR_FORMAT, "%s: added_tokens is not an array", path);
    LM_TRY(check_pipeline(t, root, model, path));

    int byte_char[256], byte_of_char[LM_BYTE_CHARS];
    lm_byte_level_tables(byte_char, byte_of_char);
    const char **token_of_id = NULL;
    lm_status s = collect_tokens(t, vocab, added, path, &token_of_id);
    if (s == LM_OK) s = build_token_bytes(t, token_of_id, byte_of_char);
    free(token_of_id);
    LM_TRY(s);
    /* Input is valid UTF-8, so only the bytes that never occur in it (0xC0, 0xC1, 0xF5-0xFF,
     * which GPT-NeoX's vocab lacks) may go without a token. */
    for (int b = 0; b < 256; b++) {
        char ch[8];
        ch[utf8proc_encode_char(byte_char[b], (utf8proc_uint8_t *)ch)] = '\0';
        json_object *v = NULL;
        int in_utf8 = b != 0xC0 && b != 0xC1 && b < 0xF5;
        if (!json_object_object_get_ex(vocab, ch, &v) && in_utf8)
            return lm_fail(LM_ERR_FORMAT, "%s: model.vocab has no token for byte 0x%02X (\"%s\")", path, b, ch);
        t->byte_token[b] = v ? (int32_t)json_object_get_int64(v) : -1;
    }
    LM_TRY(build_merges(t, vocab, merges, path));
    return compile_pattern(t);
}

lm_status lm_tokenizer_init_json(lm_tokenizer **tok, const char *data, size_t len, const char *what) {
    *tok = NULL;
    if (!what) what = "tokenizer.json";
    json_tokener *jt = json_tokener_new();
    if (!jt) return lm_fail(LM_ERR_NOMEM, "out of memory parsing %s", what);
    json_object *root = json_tokener_parse_ex(jt, data, (int)(len < INT32_MAX ? len : INT32_MAX));
    enum json_tokener_error jerr = json_tokener_get_error(jt);
    size_t end = json_tokener_get_parse_end(jt);
    json_tokener_free(jt);
    while (end < len && data[end] && strchr(" \t\r\n", data[end])) end++; /* strchr finds a NUL too */
    if (!root || jerr != json_tokener_success || end != len) {
        json_object_put(root);
        const char *why = jerr == json_tokener_continue ? "unexpected end of file"
                          : jerr != json_tokener_success  ? json_tokener_error_desc(jerr)
                                                          : "trailing data after the document";
        return lm_fail(LM_ERR_FORMAT, "%s: malformed JSON near byte %zu: %s", what, end, why);
    }
    lm_tokenizer *t = NULL;
    lm_status s = lm_calloc(&t, 1, sizeof *t, "tokenizer");
    if (s == LM_OK) s = load(t, root, what);
    json_object_put(root);
    if (s != LM_OK) {
        lm_tokenizer_free(t);
        return s;
    }
    *tok = t;
    return LM_OK;
}

lm_status lm_tokenizer_init(lm_tokenizer **tok, const char *path) {
    *tok = NULL;
    char *bundled = NULL, *data = NULL;
    size_t len = 0;
    if (!path) LM_TRY(lm_data_path("tokenizer.json", &bundled));
    lm_status s = lm_read_file_max(path ? path : bundled, LM_JSON_MAX_BYTES, &data, &len);
    if (s == LM_OK) s = lm_tokenizer_init_json(tok, data, len, path ? path : bundled);
    free(data);
    free(bundled);
    return s;
}

void lm_tokenizer_free(lm_tokenizer *t) {
    if (!t) return;
    free(t->token_bytes);
    free(t->token_offset);
    free(t->merges.keys);
    free(t->merges.rank);
    free(t->merges.result);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    pcre2_code_free(t->pattern);
    free(t);
}
