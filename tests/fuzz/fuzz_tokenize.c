/* The bundled GPT-NeoX tokenizer on arbitrary input. The first byte picks the direction:
 *   even: encode the rest as text. Invalid UTF-8 fails cleanly; otherwise every id is in the
 *         vocabulary, and when the text is in NFC, decode(encode(text)) gives it back byte for byte;
 *   odd:  decode the rest as little-endian int32 ids. Any id outside the vocabulary fails cleanly
 *         (LM_ERR_ARG); otherwise the text is the tokens' bytes concatenated. */
#include <utf8proc.h>

#include "fuzz.h"

static lm_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char path[4096];
    snprintf(path, sizeof path, "%s/data/tokenizer.json", fuzz_root());
    FUZZ_ASSERT(lm_tokenizer_init(&tok, path) == LM_OK, "%s", lm_last_error());
    return 0;
}

/* 1 when text (valid UTF-8) is unchanged by NFC. */
static int is_nfc(const uint8_t *text, size_t len) {
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t n = utf8proc_map(text, (utf8proc_ssize_t)len, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    int same = n == (utf8proc_ssize_t)len && !memcmp(nfc, text, len);
    free(nfc);
    return same;
}

static void check_encode(const uint8_t *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    lm_status s = lm_tokenizer_encode(tok, (const char *)text, len, &ids, &n);
    if (s != LM_OK) {
        fuzz_check_failure(s);
        FUZZ_ASSERT(s == LM_ERR_FORMAT, "status %d for bad UTF-8", (int)s);
        free(ids);
        return;
    }
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT(ids[i] >= 0 && ids[i] < lm_tokenizer_vocab_size(tok), "id %d", ids[i]);
    char *out = NULL;
    size_t out_len = 0;
    FUZZ_ASSERT(lm_tokenizer_decode(tok, ids, n, &out, &out_len) == LM_OK, "%s", lm_last_error());
    if (is_nfc(text, len))
        FUZZ_ASSERT(out_len == len && !memcmp(out, text, len), "decode(encode(text)) differs from the NFC text");
    fuzz_accepted++;
    free(out);
    free(ids);
}

static void check_decode(const uint8_t *data, size_t size) {
    size_t n = size / 4;
    int32_t *ids = malloc(n ? n * sizeof *ids : 1);
    FUZZ_ASSERT(ids != NULL, "out of memory");
    memcpy(ids, data, n * 4);
    int all_in = 1;
    size_t want = 0;
    for (size_t i = 0; i < n; i++) {
        size_t tl = 0;
        all_in &= lm_tokenizer_token(tok, ids[i], &tl) != NULL;
        want += tl;
    }
    char *out = NULL;
    size_t len = 0;
    lm_status s = lm_tokenizer_decode(tok, ids, n, &out, &len);
    if (!all_in) {
        FUZZ_ASSERT(s == LM_ERR_ARG, "status %d for an id outside the vocabulary", (int)s);
        fuzz_check_failure(s);
    } else {
        FUZZ_ASSERT(s == LM_OK && len == want && out[len] == '\0', "decode: status %d, %zu bytes (want %zu)", (int)s,
                    len, want);
        fuzz_accepted++;
    }
    free(out);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    if (data[0] % 2 == 0)
        check_encode(data + 1, size - 1);
    else
        check_decode(data + 1, size - 1);
    return 0;
}
