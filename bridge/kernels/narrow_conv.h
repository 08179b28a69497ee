/* A float 2-D convolution with few output channels (narrow_conv.c): the codec decoder's output
 * conv (256 channels in, 8 out, 7x3 taps), where ORT's blocked convolution fills 16-channel
 * blocks half with zeros and reorders the input into them first. */
#ifndef MRT_NARROW_CONV_H
#define MRT_NARROW_CONV_H
#include <stddef.h>
#include <stdint.h>

#define NARROW_CONV_GROUP 8  /* output channels per pass (one ymm); O must be a multiple */

typedef struct {
  int64_t o, c, kh, kw;     /* weight [o][c][kh][kw] */
  int64_t pads[4];          /* ONNX order: top, left, bottom, right */
  float* weights;           /* packed [c][kh][kw][o] */
  float* bias;              /* [o] */
} NarrowConv;

/* Pack weight w [o][c][kh][kw] and bias [o] (NULL: zeros). Returns 0, or -1 when memory runs out
 * or o is not a multiple of NARROW_CONV_GROUP. */
int narrow_conv_init(NarrowConv* conv, const float* w, const float* bias, int64_t o, int64_t c, int64_t kh, int64_t kw,
                     const int64_t pads[4]);
void narrow_conv_free(NarrowConv* conv);

/* Floats of scratch one narrow_conv_rows call needs (a window that crosses x's edge is copied
 * there with zeros around it). */
size_t narrow_conv_scratch(const NarrowConv* conv);

/* Output rows [first, end) of y [n][o][ho][wo] from x [n][c][h][w], where row r is image
 * r / ho, output row r % ho (stride 1, no dilation, zeros outside x). ho and wo are
 * h + top + bottom - kh + 1 and w + left + right - kw + 1. */
void narrow_conv_rows(const NarrowConv* conv, const float* x, int64_t h, int64_t w, float* y, int64_t first, int64_t end,
                      float* scratch);

/* Whether the CPU has what narrow_conv_rows uses (AVX2 and FMA). */
int narrow_conv_supported(void);

#endif
