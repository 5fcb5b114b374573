/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the quantized model
 * file and of the session state file. Incremental: crc = lm_crc32c(0, a, n);
 * crc = lm_crc32c(crc, b, m) equals one call over a then b. Uses the SSE4.2 crc32 instruction
 * when the CPU has it (chosen at run time), else slicing-by-8 tables; both give the same value. */
#ifndef LM_COMMON_CRC32C_H
#define LM_COMMON_CRC32C_H
#include <stddef.h>
#include <stdint.h>

uint32_t lm_crc32c(uint32_t crc, const void *data, size_t n);
/* The two implementations behind lm_crc32c, for tests that hold one against the other:
 * the portable tables, and (x86-64 only; call it only when __builtin_cpu_supports("sse4.2"))
 * the crc32 instruction. */
uint32_t lm_crc32c_portable(uint32_t crc, const void *data, size_t n);
#if defined(__x86_64__)
uint32_t lm_crc32c_sse42(uint32_t crc, const void *data, size_t n);
#endif

#endif
