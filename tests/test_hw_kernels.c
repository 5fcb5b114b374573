/* The HLS kernels against the golden model, with the paper's VCK190 factors (the defaults of
 * hw/kernels/hk_config.h): CIP 8, COP 8, 8 SSMU lanes, 8 x 8 tiles. Body: hw_kernels_tb.h. */
#include "hw_kernels_tb.h"

int main(void) { return tb_main("VCK190 factors"); }
