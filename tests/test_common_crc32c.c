/* CRC-32C against known answers (RFC 3720 appendix B.4 and the catalogue's check value), and
 * the SSE4.2 instruction path against the portable tables on random buffers of every length
 * 0..4096 at every alignment 0..7, with random starting values and split (incremental) calls. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "common/crc32c.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

/* RFC 3720 B.4: the CRC of each 32-byte buffer and of an iSCSI read PDU header (48 bytes). */
static const unsigned char iscsi_read_pdu[48] = {
    0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
    0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static void check_known_answers(crc_fn crc, const char *name) {
    unsigned char zeros[32], ones[32], up[32], down[32];
    memset(zeros, 0, 32);
    memset(ones, 0xFF, 32);
    for (int i = 0; i < 32; i++) up[i] = (unsigned char)i, down[i] = (unsigned char)(31 - i);
    CHECK(crc(0, zeros, 32) == 0x8A9136AAu, "%s: 32 zeros -> %08x", name, crc(0, zeros, 32));
    CHECK(crc(0, ones, 32) == 0x62A8AB43u, "%s: 32 x 0xFF -> %08x", name, crc(0, ones, 32));
    CHECK(crc(0, up, 32) == 0x46DD794Eu, "%s: ascending -> %08x", name, crc(0, up, 32));
    CHECK(crc(0, down, 32) == 0x113FDB5Cu, "%s: descending -> %08x", name, crc(0, down, 32));
    CHECK(crc(0, iscsi_read_pdu, 48) == 0xD9963A56u, "%s: iSCSI read PDU -> %08x", name,
          crc(0, iscsi_read_pdu, 48));
    CHECK(crc(0, "123456789", 9) == 0xE3069283u, "%s: \"123456789\" -> %08x", name, crc(0, "123456789", 9));
    CHECK(crc(0, "", 0) == 0 && crc(0x12345678u, "", 0) == 0x12345678u, "%s: empty input changes the value", name);
    /* Incremental: the check string in two pieces at every split point. */
    for (int k = 0; k <= 9; k++)
        CHECK(crc(crc(0, "123456789", (size_t)k), "123456789" + k, (size_t)(9 - k)) == 0xE3069283u,
              "%s: split at %d", name, k);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) { /* xorshift64* */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545F4914F6CDD1Dull) >> 32);
}

/* Every length 0..4096 at every start offset 0..7: hardware == portable, and the dispatcher
 * gives the same value; a random split of each buffer gives it too. */
static void check_hw_against_portable(crc_fn hw) {
    enum { MAX_LEN = 4096, MAX_OFF = 8 };
    static unsigned char buf[MAX_LEN + MAX_OFF];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)next_u32();
    int bad = 0;
    for (size_t len = 0; len <= MAX_LEN; len++)
        for (size_t off = 0; off < MAX_OFF; off++) {
            uint32_t start = (len & 1) ? next_u32() : 0;
            const unsigned char *p = buf + off;
            uint32_t want = lm_crc32c_portable(start, p, len);
            size_t split = len ? next_u32() % (len + 1) : 0;
            uint32_t h = hw(start, p, len), d = lm_crc32c(start, p, len);
            uint32_t h2 = hw(hw(start, p, split), p + split, len - split);
            uint32_t p2 = lm_crc32c_portable(lm_crc32c_portable(start, p, split), p + split, len - split);
            if ((h != want || d != want || h2 != want || p2 != want) && bad++ < 5)
                CHECK(0, "len %zu off %zu start %08x split %zu: portable %08x sse4.2 %08x dispatch %08x split %08x/%08x",
                      len, off, start, split, want, h, d, h2, p2);
        }
    CHECK(bad == 0, "%d of %d buffers disagree", bad, (MAX_LEN + 1) * MAX_OFF);
}

int main(void) {
    check_known_answers(lm_crc32c, "lm_crc32c");
    check_known_answers(lm_crc32c_portable, "portable");
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) {
        check_known_answers(lm_crc32c_sse42, "sse4.2");
        check_hw_against_portable(lm_crc32c_sse42);
    } else {
        printf("note: no SSE4.2 on this CPU; only the portable path was checked\n");
    }
#endif
    return test_finish();
}
