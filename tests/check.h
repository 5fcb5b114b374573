/* Minimal test helpers: CHECK records a failure and goes on; test_finish() reports.
 *   CHECK(cond, "fmt", ...)    CHECK_OK(lm_call(...))    return test_finish();
 * Tests needing ../shared call test_shared_dir() and exit 77 (ctest SKIP) when absent. */
#ifndef LM_TEST_CHECK_H
#define LM_TEST_CHECK_H
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include "lightmamba.h"

static int test_failures = 0;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            test_failures++;                                                      \
        }                                                                         \
    } while (0)

#define CHECK_OK(expr)                                                            \
    do {                                                                          \
        lm_status check_s_ = (expr);                                              \
        if (check_s_ != LM_OK) {                                                  \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, lm_last_error()); \
            test_failures++;                                                      \
        }                                                                         \
    } while (0)

static inline int test_finish(void) {
    if (test_failures) fprintf(stderr, "%d check(s) failed\n", test_failures);
    return test_failures ? 1 : 0;
}

/* A session of m with n_threads threads and the other settings at their defaults. */
static inline lm_status test_session(lm_session **s, const lm_model *m, int n_threads) {
    lm_session_params p = lm_session_default_params();
    p.n_threads = n_threads;
    return lm_session_init(s, m, &p);
}

/* A greedy sampler over n_candidates ids. */
static inline lm_status test_greedy(lm_sampler **s, int n_candidates) {
    lm_sampler_params p = lm_sampler_default_params();
    p.temperature = 0.0f;
    return lm_sampler_init(s, n_candidates, &p);
}

/* Directory of the repository (LM_ROOT, set by ctest). */
static inline const char *test_root(void) {
    const char *r = getenv("LM_ROOT");
    return r ? r : ".";
}

/* ../shared beside the checkout, or exit 77 with a SKIP line saying why. */
static inline const char *test_shared_dir(const char *what) {
    const char *s = getenv("LM_SHARED");
    struct stat st;
    if (!s || stat(s, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("SKIP: %s needs ../shared beside the checkout (not found)\n", what);
        exit(77);
    }
    return s;
}
#endif
