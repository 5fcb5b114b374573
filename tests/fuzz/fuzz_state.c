/* The session state file (docs/state-format.md): lm_state_load_memory on arbitrary bytes, with
 * the checksum set right (fuzz.h), into a session of the bundled mamba2-tiny model. A failed load
 * leaves the session as it was; a state that loads is run one more token (logits skipped). */
#include "fuzz.h"

static lm_model *model;
static lm_session *session;

static void release(void) {
    lm_session_free(session);
    lm_model_free(model);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char path[4096];
    snprintf(path, sizeof path, "%s/models/mamba2-tiny", fuzz_root());
    FUZZ_ASSERT(lm_model_init(&model, path) == LM_OK && lm_session_init(&session, model, 1) == LM_OK, "%s",
                lm_last_error());
    atexit(release);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *file = fuzz_copy_with_crc(data, size);
    const uint64_t before = lm_session_n_tokens(session);
    lm_status s = lm_state_load_memory(session, file, size, "state.lms");
    free(file);
    if (s != LM_OK) {
        fuzz_check_failure(s);
        FUZZ_ASSERT(lm_session_n_tokens(session) == before, "a failed load changed the session");
        return 0;
    }
    const int32_t id = 0;
    FUZZ_ASSERT(lm_session_forward(session, &id, 1, NULL, NULL) == LM_OK, "%s", lm_last_error());
    fuzz_accepted++;
    return 0;
}
