/* lightmamba: a thin command-line front end over the library (include/lightmamba.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "lightmamba.h"

static const lm_command *commands[] = {
    LM_CLI_COMMANDS
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("lightmamba: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_open_session(const char *path, int n_threads, lm_model **model, lm_tokenizer **tok, lm_session **session) {
    lm_session_params sp = lm_session_default_params();
    sp.n_threads = n_threads;
    if (lm_model_init(model, path) != LM_OK || lm_tokenizer_init_for_model(tok, *model) != LM_OK ||
        lm_session_init(session, *model, &sp) != LM_OK)
        return cli_error("%s", lm_last_error());
    return 0;
}

void cli_progress_bar(void *unit, size_t done, size_t total) {
    const int width = 40;
    int filled = (int)((double)width * (double)done / (double)total);
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu %s", filled, "========================================", width - filled, "",
            done, total, (const char *)unit);
    if (done == total) fputc('\n', stderr);
    fflush(stderr);
}

static void print_overview(FILE *f) {
    fprintf(f, "usage: lightmamba COMMAND [options]\n\ncommands:\n");
    for (int i = 0; i < n_commands; i++) fprintf(f, "  %-12s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f, "  %-12s %s\n", "help", "this overview, or 'help COMMAND' for one command's options");
}

static const lm_command *find_command(const char *name) {
    for (int i = 0; i < n_commands; i++)
        if (strcmp(commands[i]->name, name) == 0) return commands[i];
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_overview(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        if (argc > 2) {
            const lm_command *c = find_command(argv[2]);
            if (!c) return cli_error("unknown command '%s' (see 'lightmamba help')", argv[2]);
            fputs(c->usage, stdout);
            return 0;
        }
        print_overview(stdout);
        return 0;
    }
    if (!strcmp(name, "--version")) name = "version";
    const lm_command *c = find_command(name);
    if (!c) return cli_error("unknown command '%s' (see 'lightmamba help')", name);
    /* the environment is the command line's business: the library takes the setting as an argument */
    if (lm_set_kernels(getenv("LM_KERNELS")) != LM_OK) return cli_error("LM_KERNELS: %s", lm_last_error());
    return c->run(argc - 1, argv + 1);
}
