/* Timing for measurements and reports. */
#ifndef LM_COMMON_CLOCK_H
#define LM_COMMON_CLOCK_H
#include <time.h>

/* Seconds on a monotonic clock (only differences mean anything). */
static inline double lm_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
