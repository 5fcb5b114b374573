/* A .safetensors file: lm_safetensors_open_memory on arbitrary bytes. When it opens, every
 * tensor lies inside the input, has numel * dtype-size bytes, is found by name, and converts to
 * float32 (which reads all of its bytes). */
#include "fuzz.h"
#include "format/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_safetensors st;
    lm_status s = lm_safetensors_open_memory(&st, data, size, "model.safetensors");
    if (s != LM_OK) {
        fuzz_check_failure(s);
        return 0;
    }
    for (int i = 0; i < st.n_tensors; i++) {
        const lm_st_tensor *t = &st.tensors[i];
        FUZZ_ASSERT(t->nbytes == 0 || (t->data >= data && t->nbytes <= size && t->data - data <= (ptrdiff_t)(size - t->nbytes)),
                    "%s lies outside the input", t->name);
        FUZZ_ASSERT(lm_safetensors_find(&st, t->name) == t, "%s is not found by name", t->name);
        fuzz_check_tensor(t);
    }
    lm_safetensors_close(&st);
    fuzz_accepted++;
    return 0;
}
