#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char lm_error_message[512];

lm_status lm_fail(lm_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lm_error_message, sizeof lm_error_message, fmt, ap);
    va_end(ap);
    /* One line, always: the CLI prints this verbatim after "error: ". */
    for (char *p = lm_error_message; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return status;
}

const char *lm_last_error(void) { return lm_error_message; }

const char *lm_status_name(lm_status s) {
    switch (s) {
    case LM_OK: return "ok";
    case LM_ERR_IO: return "io error";
    case LM_ERR_FORMAT: return "format error";
    case LM_ERR_ARG: return "invalid argument";
    case LM_ERR_NOMEM: return "out of memory";
    case LM_ERR_UNSUPPORTED: return "unsupported";
    case LM_ERR_ABORTED: return "aborted";
    }
    return "unknown error";
}
