/* The lightmamba command-line tool: one function per subcommand, each taking the
 * arguments after the subcommand name and returning the process exit status. */
#ifndef LM_CLI_H
#define LM_CLI_H
#include <stddef.h>
#include "lightmamba.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary; /* one line for "lightmamba help" */
    const char *usage;   /* full usage text for "lightmamba help NAME" */
} lm_command;

/* Prints "lightmamba: error: MESSAGE" on one line to stderr and returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The model at path, its tokenizer and a session of n_threads workers (0: all cores). On failure
 * the library's error on one line and 1; what was opened is left in *model, *tok and *session for
 * the caller to free. */
int cli_open_session(const char *path, int n_threads, lm_model **model, lm_tokenizer **tok, lm_session **session);

/* An lm_progress_fn drawing "[====    ] done/total UNIT" on stderr (a terminal), ctx the unit. */
void cli_progress_bar(void *unit, size_t done, size_t total);

#endif
