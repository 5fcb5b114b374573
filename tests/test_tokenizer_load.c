/* Tokenizer loading: variants of data/tokenizer.json, each written to a temporary file.
 *  - bad files (missing, malformed JSON, missing model.vocab or model.merges, a merge naming
 *    an unknown token, duplicate or missing ids) -> a one-line error of the right kind;
 *  - sections we do not implement (another normalizer, pre-tokenizer, decoder or model type,
 *    added-token flags) -> LM_ERR_UNSUPPORTED naming them, never a silently different tokenization;
 *  - variants we do implement: merges as ["a", "b"] pairs, no normalizer, add_prefix_space. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "common/file.h"

static char tmp_dir[] = "/tmp/lm_test_tokenizer_XXXXXX";
static json_object *original;

/* Writes raw bytes as NAME in the temporary directory; returns the path (heap). */
static char *write_temp(const char *name, const char *data, size_t len) {
    char *path = lm_path_join(tmp_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
    return path;
}

/* Loads TEXT as a tokenizer.json; checks the status and that the one-line message contains
 * WANT. */
static void expect_failure(const char *what, const char *data, size_t len, lm_status want_status, const char *want) {
    char *path = write_temp("bad.json", data, len);
    lm_tokenizer *tok = (lm_tokenizer *)1;
    lm_status s = lm_tokenizer_init(&tok, path);
    const char *msg = lm_last_error();
    CHECK(s == want_status, "%s: status %s, expected %s (%s)", what, lm_status_name(s), lm_status_name(want_status), msg);
    CHECK(tok == NULL, "%s: handle not cleared on failure", what);
    CHECK(strstr(msg, want) != NULL, "%s: message \"%s\" does not mention \"%s\"", what, msg, want);
    CHECK(strchr(msg, '\n') == NULL, "%s: message is not one line", what);
    printf("%-32s -> %s\n", what, msg);
    if (s == LM_OK) lm_tokenizer_free(tok);
    unlink(path);
    free(path);
}

static void expect_json_failure(const char *what, json_object *root, lm_status want_status, const char *want) {
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
    expect_failure(what, text, strlen(text), want_status, want);
    json_object_put(root);
}

/* A modifiable copy of data/tokenizer.json and its "model" section. */
static json_object *copy(json_object **model) {
    json_object *root = NULL;
    if (json_object_deep_copy(original, &root, NULL) != 0) {
        fprintf(stderr, "json_object_deep_copy failed\n");
        exit(1);
    }
    json_object_object_get_ex(root, "model", model);
    return root;
}

static void set_type(json_object *root, const char *section, const char *type) {
    json_object *obj = json_object_new_object();
    json_object_object_add(obj, "type", json_object_new_string(type));
    json_object_object_add(root, section, obj);
}

/* Encodes TEXT with a tokenizer built from ROOT (consumed); NULL ids when it does not load. */
static int32_t *encode_with(json_object *root, const char *text, size_t *n) {
    const char *json = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
    char *path = write_temp("variant.json", json, strlen(json));
    json_object_put(root);
    lm_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    *n = 0;
    CHECK_OK(lm_tokenizer_init(&tok, path));
    if (tok) CHECK_OK(lm_tokenizer_encode(tok, text, strlen(text), &ids, n));
    lm_tokenizer_free(tok);
    unlink(path);
    free(path);
    return ids;
}

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return a && b && na == nb && !memcmp(a, b, na * sizeof *a);
}

static void test_bad_files(const char *good_text, size_t good_len) {
    char *missing = lm_path_join(tmp_dir, "does-not-exist.json");
    lm_tokenizer *tok = (lm_tokenizer *)1;
    CHECK(lm_tokenizer_init(&tok, missing) == LM_ERR_IO, "missing file: not an I/O error");
    CHECK(strstr(lm_last_error(), missing) != NULL, "missing file: message \"%s\" does not name it", lm_last_error());
    CHECK(tok == NULL, "missing file: handle not cleared");
    free(missing);

    expect_failure("empty file", "", 0, LM_ERR_FORMAT, "malformed JSON");
    expect_failure("truncated JSON", good_text, good_len / 2, LM_ERR_FORMAT, "malformed JSON");
    expect_failure("not JSON", "vocab: {a: 1}", 13, LM_ERR_FORMAT, "malformed JSON");
    expect_failure("trailing data", "{\"model\": {}} x", 15, LM_ERR_FORMAT, "trailing data");
    expect_failure("trailing NUL byte", "{\"model\": {}}\n\0", 15, LM_ERR_FORMAT, "trailing data");
    expect_failure("JSON array", "[1, 2]", 6, LM_ERR_FORMAT, "\"model\"");

    json_object *model, *root;
    root = copy(&model);
    json_object_object_del(model, "vocab");
    expect_json_failure("no model.vocab", root, LM_ERR_FORMAT, "model.vocab is missing");

    root = copy(&model);
    json_object_object_del(model, "merges");
    expect_json_failure("no model.merges", root, LM_ERR_FORMAT, "model.merges is missing");

    root = copy(&model);
    json_object_object_add(model, "merges", json_object_new_string("a b"));
    expect_json_failure("model.merges not an array", root, LM_ERR_FORMAT, "model.merges");

    json_object *merges;
    root = copy(&model);
    json_object_object_get_ex(model, "merges", &merges);
    json_object_array_put_idx(merges, 7, json_object_new_string("Ġ nosuchtoken"));
    expect_json_failure("merge naming an unknown token", root, LM_ERR_FORMAT, "\"nosuchtoken\", which is not in model.vocab");

    root = copy(&model);
    json_object_object_get_ex(model, "merges", &merges);
    json_object_array_put_idx(merges, 3, json_object_new_string("Ġt"));
    expect_json_failure("merge without a space", root, LM_ERR_FORMAT, "not two tokens separated by one space");

    root = copy(&model);
    json_object_object_get_ex(model, "merges", &merges);
    json_object_array_put_idx(merges, 3, json_object_new_int(5));
    expect_json_failure("merge that is a number", root, LM_ERR_FORMAT, "merge 3 is neither");

    json_object *vocab;
    root = copy(&model);
    json_object_object_get_ex(model, "vocab", &vocab);
    json_object_object_add(vocab, "newtoken", json_object_new_int(12092));
    expect_json_failure("duplicate id in model.vocab", root, LM_ERR_FORMAT, "duplicate id 12092");

    root = copy(&model);
    json_object_object_get_ex(model, "vocab", &vocab);
    json_object_object_add(vocab, "newtoken", json_object_new_int(-3));
    expect_json_failure("negative id", root, LM_ERR_FORMAT, "out of range");

    root = copy(&model);
    json_object_object_get_ex(model, "vocab", &vocab);
    json_object_object_add(vocab, "newtoken", json_object_new_string("7"));
    expect_json_failure("id that is a string", root, LM_ERR_FORMAT, "not an integer id");

    root = copy(&model);
    json_object_object_get_ex(model, "vocab", &vocab);
    json_object_object_add(vocab, "newtoken", json_object_new_int(60000));
    expect_json_failure("an id past the end", root, LM_ERR_FORMAT, "ids run up to 60000 but there are only");

    root = copy(&model);
    json_object_object_get_ex(model, "vocab", &vocab);
    json_object_object_add(vocab, "Hello", json_object_new_int(50277)); /* id 12092 is left without a token */
    expect_json_failure("a gap in the ids", root, LM_ERR_FORMAT, "no token has id 12092");

    json_object *added;
    root = copy(&model);
    json_object_object_get_ex(root, "added_tokens", &added);
    json_object_object_add(json_object_array_get_idx(added, 3), "id", json_object_new_int(50254));
    expect_json_failure("duplicate id in added_tokens", root, LM_ERR_FORMAT, "duplicate id 50254 in added_tokens");
}

static void test_unsupported(void) {
    json_object *model, *root, *added;
    root = copy(&model);
    set_type(root, "normalizer", "NFKC");
    expect_json_failure("NFKC normalizer", root, LM_ERR_UNSUPPORTED, "normalizer NFKC");
    root = copy(&model);
    set_type(root, "pre_tokenizer", "Whitespace");
    expect_json_failure("Whitespace pre-tokenizer", root, LM_ERR_UNSUPPORTED, "pre_tokenizer Whitespace");
    root = copy(&model);
    json_object_object_del(root, "pre_tokenizer");
    expect_json_failure("no pre-tokenizer", root, LM_ERR_UNSUPPORTED, "pre_tokenizer none");
    root = copy(&model);
    set_type(root, "decoder", "WordPiece");
    expect_json_failure("WordPiece decoder", root, LM_ERR_UNSUPPORTED, "decoder WordPiece");
    root = copy(&model);
    json_object_object_add(model, "type", json_object_new_string("Unigram"));
    expect_json_failure("Unigram model", root, LM_ERR_UNSUPPORTED, "model type Unigram");
    root = copy(&model);
    json_object_object_add(model, "byte_fallback", json_object_new_boolean(1));
    expect_json_failure("byte_fallback", root, LM_ERR_UNSUPPORTED, "byte_fallback");
    root = copy(&model);
    json_object_object_add(model, "continuing_subword_prefix", json_object_new_string("##"));
    expect_json_failure("continuing_subword_prefix", root, LM_ERR_UNSUPPORTED, "continuing_subword_prefix");
    root = copy(&model);
    json_object_object_get_ex(root, "added_tokens", &added);
    json_object_object_add(json_object_array_get_idx(added, 0), "lstrip", json_object_new_boolean(1));
    expect_json_failure("added token with lstrip", root, LM_ERR_UNSUPPORTED, "lstrip");
}

static void test_variants(const char *sample) {
    json_object *model, *root;
    size_t n_ref, n;
    int32_t *ref = encode_with(copy(&model), sample, &n_ref);
    CHECK(ref && n_ref > 1000, "sample: %zu ids", n_ref);

    /* Newer files write each merge as a pair: the same merges, the same ids. */
    root = copy(&model);
    json_object *merges, *pairs = json_object_new_array();
    json_object_object_get_ex(model, "merges", &merges);
    for (size_t i = 0; i < json_object_array_length(merges); i++) {
        const char *m = json_object_get_string(json_object_array_get_idx(merges, i));
        const char *sp = strchr(m, ' ');
        json_object *pair = json_object_new_array();
        json_object_array_add(pair, json_object_new_string_len(m, (int)(sp - m)));
        json_object_array_add(pair, json_object_new_string(sp + 1));
        json_object_array_add(pairs, pair);
    }
    json_object_object_add(model, "merges", pairs);
    int32_t *ids = encode_with(root, sample, &n);
    CHECK(same_ids(ids, n, ref, n_ref), "merges as [a, b] pairs tokenize differently from \"a b\" strings");
    free(ids);
    free(ref);

    /* Without a normalizer a decomposed é stays two characters, so the ids differ. */
    const char *decomposed = u8"cafe\u0301";
    int32_t *nfc_ids = encode_with(copy(&model), decomposed, &n_ref);
    root = copy(&model);
    json_object_object_add(root, "normalizer", NULL);
    ids = encode_with(root, decomposed, &n);
    CHECK(ids && nfc_ids && !same_ids(ids, n, nfc_ids, n_ref), "no normalizer: \"cafe\\u0301\" still composed");
    free(ids);
    free(nfc_ids);

    /* add_prefix_space: "Hello world" tokenizes as " Hello world" does without it. */
    int32_t *spaced = encode_with(copy(&model), " Hello world", &n_ref);
    root = copy(&model);
    json_object *pre;
    json_object_object_get_ex(root, "pre_tokenizer", &pre);
    json_object_object_add(pre, "add_prefix_space", json_object_new_boolean(1));
    ids = encode_with(root, "Hello world", &n);
    CHECK(same_ids(ids, n, spaced, n_ref), "add_prefix_space: \"Hello world\" differs from \" Hello world\"");
    free(ids);
    free(spaced);

    /* Without added tokens there is no <|endoftext|>: lm_tokenizer_eos says -1. */
    root = copy(&model);
    json_object_object_add(root, "added_tokens", json_object_new_array());
    const char *json = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
    char *path = write_temp("no_added.json", json, strlen(json));
    json_object_put(root);
    lm_tokenizer *tok = NULL;
    CHECK_OK(lm_tokenizer_init(&tok, path));
    CHECK(tok && lm_tokenizer_eos(tok) == -1, "a tokenizer without added tokens has an end-of-text id");
    lm_tokenizer_free(tok);
    unlink(path);
    free(path);
}

int main(void) {
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    char *path = lm_path_join(test_root(), "data/tokenizer.json");
    char *good = NULL, *wiki = NULL;
    size_t good_len = 0, wiki_len = 0;
    CHECK_OK(lm_read_file(path, &good, &good_len));
    original = good ? json_tokener_parse(good) : NULL;
    CHECK(original != NULL, "cannot parse %s", path);
    char *wiki_path = lm_path_join(test_root(), "data/wikitext2_test.txt");
    CHECK_OK(lm_read_file(wiki_path, &wiki, &wiki_len));
    if (original && wiki) {
        wiki[wiki_len < 100000 ? wiki_len : 100000] = '\0'; /* a 100 kB sample (cut at an ASCII byte) */
        test_bad_files(good, good_len);
        test_unsupported();
        test_variants(wiki);
    }
    json_object_put(original);
    free(good);
    free(wiki);
    free(path);
    free(wiki_path);
    rmdir(tmp_dir);
    return test_finish();
}
