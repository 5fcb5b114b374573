#include <stdio.h>
#include "cli/cli.h"

static int run_version(int argc, char **argv) {
    puts("lightmamba 0.1.0");
    return 0;
}

const lm_command cmd_version = {"version", run_version, "print the version", "usage: lightmamba version\n"};
