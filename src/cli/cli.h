/* The lightmamba command-line tool: one function per subcommand, each taking the
 * arguments after the subcommand name and returning the process exit status. */
#ifndef LM_CLI_H
#define LM_CLI_H

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary; /* one line for "lightmamba help" */
    const char *usage;   /* full usage text for "lightmamba help NAME" */
} lm_command;

/* Prints "lightmamba: error: MESSAGE" on one line to stderr and returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Seconds on a monotonic clock, for timing. */
double cli_now_seconds(void);

#endif
