/* The session state file (docs/state-format.md): lm_state_set on arbitrary bytes, with
 * the checksum set right (fuzz.h). The first byte picks the session (even: the small float model,
 * odd: its pot8 quantization, whose state is integer; small_model.h), the rest is the file. A
 * failed load leaves the session as it was; a state that loads is run one more token. */
#include "fuzz.h"
#include "small_model.h"

static small_sessions ss;

static void release(void) { small_sessions_free(&ss); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    small_sessions_init(&ss);
    atexit(release);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    lm_session *session = ss.session[data[0] & 1];
    const uint8_t *file = fuzz_copy_with_crc(data + 1, size - 1);
    const uint64_t before = lm_session_n_tokens(session);
    lm_status s = lm_state_set(session, file, size - 1);
    if (s != LM_OK) {
        fuzz_check_failure(s);
        FUZZ_ASSERT(lm_session_n_tokens(session) == before, "a failed load changed the session");
        return 0;
    }
    const int32_t id = 0;
    float logits[SMALL_VOCAB];
    FUZZ_ASSERT(lm_session_forward(session, &id, 1, NULL, logits) == LM_OK, "%s", lm_last_error());
    fuzz_accepted++;
    return 0;
}
