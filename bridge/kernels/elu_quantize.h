/* ELU (alpha 1) then QuantizeLinear to uint8, in one pass on AVX2 (see elu_quantize.c). */
#ifndef MRT_ELU_QUANTIZE_H
#define MRT_ELU_QUANTIZE_H
#include <stddef.h>
#include <stdint.h>

/* y[i] = clamp(round-half-even(max(x, exp(min(x, 0)) - 1) / scale) + zero_point, 0, 255), as
 * the graph ops Min, Exp, Sub, Max and QuantizeLinear compute it, but for exp's last bit. */
void elu_quantize(const float* x, size_t n, float scale, uint8_t zero_point, uint8_t* y);

#endif
