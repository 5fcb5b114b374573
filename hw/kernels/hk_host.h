/* Host side of the kernels (not synthesized): the offline in_proj row reordering and the
 * layer parameters of hk.h from the golden model's lm_int_layer. Needs the lightmamba library. */
#ifndef HK_HOST_H
#define HK_HOST_H
#include "hk.h"
#include "integer/integer.h"

/* The reordered in_proj: emitted row i is original row src[i]. Original [z | x | B | C | dt]
 * (di, di, GN, GN, H rows); emitted [dt | B | C | x_0 z_0 | x_1 z_1 | ...] (x_h, z_h: P rows). */
void hk_inproj_order(int *src, int di, int H, int P, int G, int N);

/* A weight matrix in DRAM layout (kernels.h packing), owned. */
typedef struct {
    int rows, cols, wbits;
    uint8_t *q, *scale;
    int8_t *e0;
} hk_weights;
/* out row i = W row src[i] (packed weights, scale bytes and e0 move together). */
lm_status hk_weights_permute(hk_weights *out, const lm_qweight *W, const int *src);
void hk_weights_free(hk_weights *w);

/* Fills K from the golden layer (weight bits from its in_proj; its online Hadamard, rot_m > 0 in
 * rotated models, becomes the HTU's base matrix and output shift F_rot - gnorm.F_out).
 * LM_ERR_UNSUPPORTED naming the size when the layer does not fit the compiled HK_MAX_* bounds, the
 * tile factors or the HTU. */
lm_status hk_layer_from_int(hk_layer *K, const lm_int_layer *L);
#endif
