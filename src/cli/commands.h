/* The subcommand table: each cmd_NAME.c defines one lm_command; add it here, one line each. */
#ifndef LM_CLI_COMMANDS_H
#define LM_CLI_COMMANDS_H
#include "cli/cli.h"

extern const lm_command cmd_version;

#define LM_CLI_COMMANDS \
    &cmd_version,

#endif
