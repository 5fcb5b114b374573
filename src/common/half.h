/* IEEE half (float16) and bfloat16 to float32, exact (every half and bfloat16 value is a float). */
#ifndef LM_COMMON_HALF_H
#define LM_COMMON_HALF_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline float lm_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float lm_f16_to_f32(uint16_t h);
/* Round-to-nearest-even float32 -> float16 (for writing checkpoints and tests). */
uint16_t lm_f32_to_f16(float f);

#endif
