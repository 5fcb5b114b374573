/* tokenizer.json: lm_tokenizer_init_json on arbitrary bytes. A tokenizer that loads encodes and
 * decodes a fixed text with ids inside its vocabulary. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_tokenizer *tok;
    lm_status s = lm_tokenizer_init_json(&tok, (const char *)data, size, "tokenizer.json");
    if (s != LM_OK) {
        fuzz_check_failure(s);
        FUZZ_ASSERT(tok == NULL, "handle set on failure");
        return 0;
    }
    static const char text[] = "Hello, world!  It's <|endoftext|> caf\xc3\xa9 e\xcc\x81 123\n\n\t x";
    int32_t *ids = NULL;
    size_t n = 0;
    s = lm_tokenizer_encode(tok, text, sizeof text - 1, &ids, &n);
    if (s == LM_OK) {
        for (size_t i = 0; i < n; i++)
            FUZZ_ASSERT(ids[i] >= 0 && ids[i] < lm_tokenizer_vocab_size(tok), "id %d of %d", ids[i],
                        lm_tokenizer_vocab_size(tok));
        char *out = NULL;
        size_t len = 0;
        FUZZ_ASSERT(lm_tokenizer_decode(tok, ids, n, &out, &len) == LM_OK, "%s", lm_last_error());
        free(out);
    } else {
        fuzz_check_failure(s);
    }
    free(ids);
    lm_tokenizer_free(tok);
    fuzz_accepted++;
    return 0;
}
