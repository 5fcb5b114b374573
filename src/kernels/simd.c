/* Run-time choice of the SIMD level: the best the CPU supports, capped by lm_set_kernels
 * (public, by name) or set by lm_simd_level_set (tests). */
#include "kernels/kernels.h"

#include <stdatomic.h>
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
    atomic_store(&lm_simd_current, level);
    return (lm_simd_level)level;
}

lm_status lm_set_kernels(const char *name) {
    lm_simd_level level = lm_simd_detect();
    if (name && *name) {
        int l = LM_SIMD_SCALAR;
        while (l <= LM_SIMD_AVX512 && strcmp(name, lm_simd_level_name((lm_simd_level)l)) != 0) l++;
        if (l > LM_SIMD_AVX512)
            return lm_fail(LM_ERR_ARG, "kernel level '%s' is not one of scalar, avx2, avx512", name);
        if ((lm_simd_level)l < level) level = (lm_simd_level)l;
    }
    atomic_store(&lm_simd_current, (int)level);
    return LM_OK;
}

const char *lm_kernels(void) { return lm_simd_level_name(lm_simd_level_get()); }

lm_status lm_simd_level_set(lm_simd_level level) {
    if (level < LM_SIMD_SCALAR || level > LM_SIMD_AVX512)
        return lm_fail(LM_ERR_ARG, "SIMD level %d is not a level", (int)level);
    if (level > lm_simd_detect())
        return lm_fail(LM_ERR_UNSUPPORTED, "SIMD level %s is not supported by this CPU", lm_simd_level_name(level));
    atomic_store(&lm_simd_current, (int)level);
    return LM_OK;
}
