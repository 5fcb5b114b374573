/* The off-chip bytes of one decode step: weights with their scales, the SSM and conv state, the
 * lm_head; and the bandwidth a design gets (sim.h). The schedule's memory jobs use the same sizes. */
#include <math.h>

#include "sim/engine.h"

double hw_scale_bytes(double rows, double k) { return rows * ceil(k / 128.0) * 6.0 / 8.0; } /* 2^s1+2^s2: two 3-bit exponents per 128 inputs */
double hw_state_head_bytes(const lm_config *c) {
    double elems = (double)c->head_dim * c->d_state;
    return elems + elems / 8.0 * 4.0 / 8.0; /* INT8 + a 4-bit PoT exponent per 8 head_dim channels */
}
int hw_conv_channels(const lm_config *c) { return c->d_inner + 2 * c->n_groups * c->d_state; }
int hw_in_rows(const lm_config *c) { return 2 * c->d_inner + 2 * c->n_groups * c->d_state + c->n_heads; }
double hw_conv_state_bytes(const lm_config *c) { double n = (double)(c->d_conv - 1) * hw_conv_channels(c); return n + n / 16.0; }

double lm_hw_bytes_layer_weights(const lm_config *c, int wbits) {
    double rin = hw_in_rows(c), din = c->d_model, e = c->d_inner;
    return rin * din * wbits / 8.0 + hw_scale_bytes(rin, din) + din * e * wbits / 8.0 + hw_scale_bytes(din, e);
}
double lm_hw_bytes_layer_state(const lm_config *c) {
    return 2.0 * (c->n_heads * hw_state_head_bytes(c) + hw_conv_state_bytes(c));
}
double lm_hw_bytes_lm_head(const lm_config *c, int wbits) {
    return (double)c->vocab_size * c->d_model * wbits / 8.0 + hw_scale_bytes(c->vocab_size, c->d_model) +
           4.0 * c->vocab_size + 2.0 * c->d_model; /* int32 logits out, fp16 embedding row in */
}
double lm_hw_bandwidth(const lm_hw_platform *p, const lm_hw_design *d) {
    double dram = d->mem_channels * p->mem_channel_bits / 8.0 * p->mem_mtps * 1e6 * p->mem_efficiency;
    double ports = d->mem_channels * d->port_bits / 8.0 * p->clock_mhz * 1e6;
    return dram < ports ? dram : ports;
}
