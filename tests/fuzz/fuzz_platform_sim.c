/* fuzz_platform with every design that fits simulated: a harness of its own because a simulation
 * costs about a thousand parses, and the parser's harness should keep its speed. */
#define FUZZ_PLATFORM_SIMULATE 1
#include "fuzz_platform.c"
