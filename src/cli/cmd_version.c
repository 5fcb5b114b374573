#include <stdio.h>
#include "cli/cli.h"
#include "lightmamba.h"

static int run_version(int argc, char **argv) {
    printf("lightmamba %s\n", lm_version());
    return 0;
}

const lm_command cmd_version = {"version", run_version, "print the version (also: lightmamba --version)",
                                "usage: lightmamba version\n       lightmamba --version\n"};
