/* Internal error reporting: record a one-line message and return the status,
 *   if (bad) return lm_fail(LM_ERR_FORMAT, "%s: tensor %s has %zu bytes, expected %zu", ...);
 * The message is thread-local so concurrent sessions do not clobber each other. */
#ifndef LM_COMMON_ERROR_H
#define LM_COMMON_ERROR_H
#include "lightmamba.h"

lm_status lm_fail(lm_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Propagate a failure unchanged: LM_TRY(lm_something(...)); */
#define LM_TRY(expr) do { lm_status lm_try_s_ = (expr); if (lm_try_s_ != LM_OK) return lm_try_s_; } while (0)

#endif
