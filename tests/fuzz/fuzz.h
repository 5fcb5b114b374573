/* Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c), the replay runner and the seed writer.
 *
 * A harness feeds the fuzzer's bytes to one loader and checks what the library promises about
 * bad input: a known status and a one-line, non-empty message; on success, invariants of the
 * result. A broken promise aborts, which libFuzzer reports as a finding (as it does sanitizer
 * reports, leaks and timeouts). */
#ifndef LM_FUZZ_FUZZ_H
#define LM_FUZZ_FUZZ_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang */
#define FUZZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(FUZZ_ASAN) /* gcc, clang */
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#endif

#include "common/crc32c.h"
#include "format/safetensors.h"
#include "lightmamba.h"
#include "synth_checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs the loader accepted (a harness counts them): the replay runner checks that every seed
 * is accepted, so the seeds are known to reach past the loaders' checks. */
__attribute__((weak)) int fuzz_accepted = 0;

#define FUZZ_ASSERT(cond, ...)                                                         \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz: %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
            abort();                                                                   \
        }                                                                              \
    } while (0)

/* A failing loader's contract: a known status and a one-line message. */
static inline void fuzz_check_failure(lm_status s) {
    const char *e = lm_last_error();
    FUZZ_ASSERT(s > LM_OK && s <= LM_ERR_UNSUPPORTED, "status %d", (int)s);
    FUZZ_ASSERT(e && *e && !strchr(e, '\n'), "error message \"%s\"", e ? e : "(null)");
}

/* A tokenizer that loaded (from tokenizer.json or a GGUF's metadata) encodes a fixed text with ids
 * inside its vocabulary, or fails cleanly, and decodes those ids. */
static inline void fuzz_check_tokenizer(const lm_tokenizer *tok) {
    static const char text[] = "Hello, world!  It's <|endoftext|> caf\xc3\xa9 e\xcc\x81 123\n\n\t x";
    int32_t *ids = NULL;
    size_t n = 0;
    lm_status s = lm_tokenizer_encode(tok, text, sizeof text - 1, &ids, &n);
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
}

/* One worker thread: the harness, not the thread pool, is what is being fuzzed. */
static inline const lm_session_params *fuzz_one_thread(void) {
    static lm_session_params p;
    p = lm_session_default_params();
    p.n_threads = 1;
    return &p;
}

/* A model that loaded: its tokenizer loads (and passes fuzz_check_tokenizer) or fails cleanly,
 * and a session over it runs two tokens (the first and the last id), so the loader's checks must
 * leave nothing the kernels cannot take. */
static inline void fuzz_run_model(const lm_model *m) {
    lm_tokenizer *tok = NULL;
    lm_status s = lm_tokenizer_init_for_model(&tok, m);
    if (s == LM_OK)
        fuzz_check_tokenizer(tok);
    else
        fuzz_check_failure(s);
    lm_tokenizer_free(tok);
    lm_session *sess = NULL;
    FUZZ_ASSERT(lm_session_init(&sess, m, fuzz_one_thread()) == LM_OK, "%s", lm_last_error());
    const int vocab = lm_model_config(m)->vocab_size;
    const int32_t ids[2] = {0, vocab - 1};
    float *logits = malloc((size_t)vocab * sizeof *logits);
    FUZZ_ASSERT(logits != NULL, "out of memory");
    FUZZ_ASSERT(lm_session_forward(sess, ids, 2, NULL, logits) == LM_OK, "%s", lm_last_error());
    free(logits);
    lm_session_free(sess);
}

/* The end of a model-loading harness: a failed load fails cleanly, a loaded model runs
 * (fuzz_run_model); m is freed either way. */
static inline void fuzz_finish_model(lm_model *m, lm_status s) {
    if (s == LM_OK) {
        fuzz_run_model(m);
        fuzz_accepted++;
    } else {
        fuzz_check_failure(s);
    }
    lm_model_free(m);
}

/* A tensor a reader accepted: numel x dtype-size bytes, converting to float32, which reads all of
 * them (ASan: the buffers behind it are exactly sized). Where it lies is the reader's to check. */
static inline void fuzz_check_tensor(const lm_st_tensor *t) {
    FUZZ_ASSERT(t->nbytes == t->numel * lm_dtype_size(t->dtype), "%s: %zu bytes for %zu elements", t->name, t->nbytes,
                t->numel);
    float *f = malloc(t->numel ? t->numel * sizeof *f : 1);
    FUZZ_ASSERT(f != NULL, "out of memory for %zu floats", t->numel);
    lm_st_tensor_to_f32(f, t);
    free(f);
}

/* The quantized model file and the state file (format/container.h) keep a CRC-32C of the whole
 * file at byte 24, computed with that field read as zero. Their harnesses set it right in a copy
 * of the input, so mutations reach the checks behind it (the checksum itself is tested by
 * test_quant_file, test_state and test_common_crc32c). The copy lives in one buffer kept from
 * call to call (fresh allocations showed as page faults in the profile); under ASan the bytes
 * past the input are poisoned, so reading beyond it is caught as in libFuzzer's own copy. */
static inline const uint8_t *fuzz_copy_with_crc(const uint8_t *data, size_t size) {
    static uint8_t *buf;
    static size_t cap;
    if (size > cap || !buf) {
        ASAN_UNPOISON_MEMORY_REGION(buf, cap);
        free(buf);
        cap = size > 4096 ? size : 4096;
        buf = malloc(cap);
        FUZZ_ASSERT(buf != NULL, "out of memory");
    }
    ASAN_UNPOISON_MEMORY_REGION(buf, cap);
    memcpy(buf, data, size);
    if (size >= 28) {
        memset(buf + 24, 0, 4);
        uint32_t crc = lm_crc32c(0, buf, size);
        memcpy(buf + 24, &crc, 4);
    }
    ASAN_POISON_MEMORY_REGION(buf + size, cap - size);
    return buf;
}

/* The repository (set at build time; $LM_ROOT wins, as in the test suite). */
static inline const char *fuzz_root(void) {
    const char *r = getenv("LM_ROOT");
    return r && *r ? r : LM_SOURCE_DIR;
}

/* The small synthetic model of the safetensors and index harnesses and their seeds: 1 layer,
 * d_model 16, vocab 32 (a few KB of weights). */
static inline void fuzz_small_model(synth_config *c) {
    synth_default(c);
    c->d_model = 16;
    c->n_layer = 1;
    c->d_state = 8;
    c->head_dim = 8;
    c->vocab_size = 32;
}

#endif
