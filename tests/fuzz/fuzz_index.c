/* A sharded checkpoint's model.safetensors.index.json: lm_safetensors_open_index on arbitrary
 * bytes, over valid shards of a small synthetic model written once to a temporary directory
 * (the seeds are that model's own index). When it opens, every tensor the index names is in it. */
#include <unistd.h>

#include "fuzz.h"
#include "format/safetensors.h"

static char dir[64];

static void remove_dir(void) { synth_remove_dir(dir); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    synth_config c;
    fuzz_small_model(&c);
    c.n_shards = 3;
    FUZZ_ASSERT(synth_tempdir(dir) == 0 && synth_write_checkpoint(dir, &c) == 0, "cannot write the shards");
    atexit(remove_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_safetensors st;
    lm_status s = lm_safetensors_open_index(&st, dir, (const char *)data, size, "model.safetensors.index.json");
    if (s != LM_OK) {
        fuzz_check_failure(s);
        return 0;
    }
    FUZZ_ASSERT(st.n_files <= 3, "%d files", st.n_files); /* none for an empty weight_map */
    for (int i = 0; i < st.n_tensors; i++)
        FUZZ_ASSERT(lm_safetensors_find(&st, st.tensors[i].name) == &st.tensors[i], "%s", st.tensors[i].name);
    lm_safetensors_close(&st);
    fuzz_accepted++;
    return 0;
}
