/* The subcommand table: each cmd_NAME.c defines one lm_command; add it here, one line each. */
#ifndef LM_CLI_COMMANDS_H
#define LM_CLI_COMMANDS_H
#include "cli/cli.h"

extern const lm_command cmd_tokenize;
extern const lm_command cmd_version;
extern const lm_command cmd_info;
extern const lm_command cmd_convert;
extern const lm_command cmd_generate;
extern const lm_command cmd_perplexity;
extern const lm_command cmd_eval;
extern const lm_command cmd_sim;
extern const lm_command cmd_quantize;
extern const lm_command cmd_synth;
extern const lm_command cmd_bench;
extern const lm_command cmd_vectors;

#define LM_CLI_COMMANDS \
    &cmd_info, \
    &cmd_generate, \
    &cmd_perplexity, \
    &cmd_eval, \
    &cmd_sim, \
    &cmd_quantize, \
    &cmd_convert, \
    &cmd_synth, \
    &cmd_bench, \
    &cmd_vectors, \
    &cmd_tokenize, \
    &cmd_version,

#endif
