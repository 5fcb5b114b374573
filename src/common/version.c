/* The library's version (include/lightmamba.h), from the project() line of CMakeLists.txt. */
#include "lightmamba.h"

const char *lm_version(void) { return LM_VERSION; }
