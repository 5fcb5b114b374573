/* The HLS kernels compiled for the authors' released datapath (HK_DATAPATH = HK_DP_RELEASE,
 * docs/release-datapath.md) against the golden model built with LM_DP_RELEASE, with the VCK190
 * factors: the same testbench (hw_kernels_tb.h) as the default datapath. */
#define HK_DATAPATH 63   /* HK_DP_RELEASE */
#include "hw_kernels_tb.h"

int main(void) { return tb_main("VCK190 factors, release datapath"); }
