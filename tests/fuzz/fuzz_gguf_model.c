/* A GGUF model file loaded all the way: lm_model_load_gguf_memory on arbitrary bytes (config from
 * the mamba2.* metadata, every tensor's type and shape against it, the embedded tokenizer). A
 * model that loads gives its tokenizer (or fails cleanly) and a session over it runs two tokens,
 * so the loader's checks must leave nothing the kernels cannot take. */
#include "fuzz.h"
#include "model/model.h"
#include "model/model_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_model *m = calloc(1, sizeof *m);
    FUZZ_ASSERT(m != NULL, "out of memory");
    fuzz_finish_model(m, lm_model_load_gguf_memory(m, data, size, 1, "model.gguf"));
    return 0;
}
