/* Stream FIFOs between the kernels' units, as plain C.
 *
 *   HK_STREAM(name, T, CAP) declares the type `name` (a FIFO of T) with
 *   name_push(&s, v), name_pop(&s), name_empty(&s), name_size(&s).
 *
 * Mapping to Vitis HLS: the type stands for hls::stream<T> (an ap_fifo between two processes
 * of a dataflow region); each stream variable carries `#pragma HLS stream variable=s
 * depth=D` with its hardware depth D (HK_DEPTH_* in hk.h), and hk_top.c's dataflow functions
 * run the units concurrently, so D only needs to cover the producer's burst.
 * In this C simulation (as in Vitis C simulation, where hls::stream is unbounded) the
 * processes of a dataflow region run one after another, so the ring buffer's capacity CAP
 * must hold everything a producer writes in one invocation: CAP is the C-simulation bound,
 * never the hardware depth. A push to a full FIFO or a pop from an empty one is a design
 * error: it is counted in hk_stream_faults (tests assert 0) and the access is dropped (a pop
 * returns a zeroed T), never out of bounds.
 *
 * The element types are plain structs of fixed-size arrays (HLS packs them into one FIFO word). */
#ifndef HK_STREAM_H
#define HK_STREAM_H

#if defined(__SYNTHESIS__) && defined(__cplusplus)
/* Vitis HLS (C++ front end): the real FIFO. */
#include <hls_stream.h>
#define HK_STREAM(name, T, CAP)                                                            \
    typedef hls::stream<T> name;                                                           \
    static inline void name##_push(name *s, T v) { s->write(v); }                          \
    static inline T name##_pop(name *s) { return s->read(); }                              \
    static inline int name##_empty(name *s) { return s->empty(); }                         \
    static inline int name##_size(name *s) { return s->size(); }
#else
static int hk_stream_faults;   /* C simulation only: pushes to full / pops from empty FIFOs */

#define HK_STREAM(name, T, CAP)                                                            \
    typedef struct { T buf[CAP]; int head, count; } name;                                 \
    static inline void name##_push(name *s, T v) {                                         \
        if (s->count == (CAP)) { hk_stream_faults++; return; }                            \
        s->buf[(s->head + s->count) % (CAP)] = v;                                          \
        s->count++;                                                                        \
    }                                                                                      \
    static inline T name##_pop(name *s) {                                                  \
        T v = {0};                                                                         \
        if (s->count == 0) { hk_stream_faults++; return v; }                              \
        v = s->buf[s->head];                                                               \
        s->head = (s->head + 1) % (CAP);                                                   \
        s->count--;                                                                        \
        return v;                                                                          \
    }                                                                                      \
    static inline int name##_empty(const name *s) { return s->count == 0; }                \
    static inline int name##_size(const name *s) { return s->count; }
#endif
#endif
