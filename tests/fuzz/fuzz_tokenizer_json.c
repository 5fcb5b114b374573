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
    fuzz_check_tokenizer(tok);
    lm_tokenizer_free(tok);
    fuzz_accepted++;
    return 0;
}
