/* Run-time choice of the SIMD level: the best the CPU supports, capped by the
 * environment variable LM_KERNELS (scalar | avx2 | avx512) or by lm_simd_level_set. */
#include "kernels/kernels.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static _Atomic int lm_simd_current = -1;

lm_simd_level lm_simd_detect(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vnni"))
        return LM_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return LM_SIMD_AVX2;
    return LM_SIMD_SCALAR;
}

const char *lm_simd_level_name(lm_simd_level level) {
    switch (level) {
    case LM_SIMD_SCALAR: return "scalar";
    case LM_SIMD_AVX2: return "avx2";
    case LM_SIMD_AVX512: return "avx512";
    }
    return "unknown";
}

lm_simd_level lm_simd_level_get(void) {
    int level = atomic_load_explicit(&lm_simd_current, memory_order_relaxed);
    if (level >= 0) return (lm_simd_level)level;
    level = lm_simd_detect();
    const char *env = getenv("LM_KERNELS");
    if (env && *env) {
        for (int l = LM_SIMD_SCALAR; l <= LM_SIMD_AVX512; l++)
            if (strcmp(env, lm_simd_level_name((lm_simd_level)l)) == 0 && l < level) level = l;
    }
    atomic_store(&lm_simd_current, level);
    return (lm_simd_level)level;
}

lm_status lm_simd_level_set(lm_simd_level level) {
    if (level < LM_SIMD_SCALAR || level > LM_SIMD_AVX512)
        return lm_fail(LM_ERR_ARG, "SIMD level %d is not a level", (int)level);
    if (level > lm_simd_detect())
        return lm_fail(LM_ERR_UNSUPPORTED, "SIMD level %s is not supported by this CPU", lm_simd_level_name(level));
    atomic_store(&lm_simd_current, (int)level);
    return LM_OK;
}
