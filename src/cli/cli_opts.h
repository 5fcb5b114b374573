/* Option parsing shared by the subcommands: a table of options, one call.
 *
 *   const char *model = NULL; int n = 64; float temp = 0.8f; int json = 0;
 *   const cli_opt opts[] = {
 *       {"-m", "--model", CLI_STRING, &model, 0, 0},
 *       {"-n", NULL, CLI_INT, &n, 1, 1 << 20},
 *       {NULL, "--temp", CLI_FLOAT, &temp, 0, 100},
 *       {NULL, "--json", CLI_FLAG, &json, 0, 0},
 *   };
 *   if (cli_parse("generate", argc, argv, opts, CLI_COUNT(opts))) return 1;
 *
 * (Write all six fields: -Wextra warns about missing initializers.) argv[0] is the subcommand name. Values follow their option ("-n 5", "--temp 0.5") or,
 * for long options, come after '=' ("--temp=0.5"). Numbers must parse completely and lie
 * in [lo, hi]; an unknown option, a stray argument or a missing value is an error. Each
 * error is printed on one line (cli_error) and cli_parse returns 1. */
#ifndef LM_CLI_OPTS_H
#define LM_CLI_OPTS_H
#include <stddef.h>
#include <stdint.h>
#include "lightmamba.h"

typedef enum {
    CLI_STRING, /* const char ** */
    CLI_INT,    /* int *, range [lo, hi] */
    CLI_FLOAT,  /* float *, finite, range [lo, hi] */
    CLI_U64,    /* uint64_t * (e.g. a seed), no range */
    CLI_FLAG    /* int *, set to 1; takes no value */
} cli_kind;

typedef struct {
    const char *short_name; /* "-m" or NULL */
    const char *long_name;  /* "--model" or NULL */
    cli_kind kind;
    void *out;
    double lo, hi;
} cli_opt;

#define CLI_COUNT(opts) ((int)(sizeof(opts) / sizeof((opts)[0])))

int cli_parse(const char *command, int argc, char **argv, const cli_opt *opts, int n_opts);

/* The activation format options of quantize: --act-group 8|16|32|64|128|token and
 * --act-scale pow2|real into q; a one-line error and 1 for anything else. */
int cli_parse_act_format(const char *group, const char *scale, lm_quant_settings *q);
/* A format of the embedding or lm_head (--head, --embedding of quantize and synth: command and
 * option name the caller), f16|8|4, into *bits (0, 8, 4); a one-line error and 1 for anything else.
 * cli_bits_name: "f16", "8-bit", "4-bit". */
int cli_parse_bits(const char *command, const char *option, const char *value, int *bits);
const char *cli_bits_name(int bits);
/* "8 channels, power of two", "per token, real", ... into buf. */
const char *cli_act_format_name(const lm_quant_settings *q, char *buf, size_t n);

#endif
