/* The tokenizer embedded in a GGUF file (tokenizer.ggml.*): lm_gguf_parse, then
 * lm_gguf_tokenizer_json on arbitrary bytes. The tokenizer.json it builds is valid JSON for
 * lm_tokenizer_init_json, which loads it or fails cleanly; one that loads encodes and decodes a
 * fixed text with ids inside its vocabulary. */
#include "fuzz.h"
#include "format/gguf.h"
#include "model/model_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_gguf g;
    lm_status s = lm_gguf_parse(&g, data, size, "model.gguf");
    if (s != LM_OK) {
        fuzz_check_failure(s);
        return 0;
    }
    char *json = NULL;
    size_t len = 0;
    s = lm_gguf_tokenizer_json(&g, "model.gguf", &json, &len);
    lm_gguf_free(&g);
    if (s != LM_OK) {
        fuzz_check_failure(s);
        FUZZ_ASSERT(json == NULL, "JSON set on failure");
        return 0;
    }
    FUZZ_ASSERT(json && strlen(json) == len, "%zu bytes of JSON, %zu said", json ? strlen(json) : 0, len);
    lm_tokenizer *tok = NULL;
    s = lm_tokenizer_init_json(&tok, json, len, "model.gguf");
    free(json);
    if (s != LM_OK) {
        fuzz_check_failure(s);
        return 0;
    }
    fuzz_check_tokenizer(tok);
    lm_tokenizer_free(tok);
    fuzz_accepted++;
    return 0;
}
