/* The quantized model file (docs/quantized-format.md): lm_qfile_load_memory on arbitrary bytes
 * with the checksum set right (fuzz.h). A file that loads gives its embedded tokenizer (or fails
 * cleanly), and a session over it runs two tokens: the loader's checks must leave nothing the
 * kernels cannot take (integer weights and scale exponents in range, shapes that match). */
#include "fuzz.h"
#include "model/model.h"
#include "model/qfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *file = fuzz_copy_with_crc(data, size);
    lm_model *m = calloc(1, sizeof *m);
    FUZZ_ASSERT(m != NULL, "out of memory");
    fuzz_finish_model(m, lm_qfile_load_memory(m, file, size, "model.lmq"));
    return 0;
}
