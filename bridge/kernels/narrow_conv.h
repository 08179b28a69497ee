/* A float 2-D convolution with few output channels (narrow_conv.c): the codec decoder's output
 * conv (256 channels in, 8 out, 7x3 taps), where ORT's blocked convolution fills 16-channel
 * blocks half with zeros and reorders the input into them first. */
#ifndef MRT_NARROW_CONV_H
#define MRT_NARROW_CONV_H
#include <stdint.h>

#define NARROW_CONV_GROUP 8    /* output channels per pass (one ymm); O must be a multiple */
#define NARROW_CONV_MAX_KW 64  /* widest kernel (an edge window's row is copied on the stack) */

typedef struct {
  int64_t o, c, kh, kw;     /* weight [o][c][kh][kw] */
  int64_t pads[4];          /* ONNX order: top, left, bottom, right */
  float* weights;           /* packed [c][kh][kw][o] */
  float* bias;              /* [o] */
} NarrowConv;

/* Pack weight w [o][c][kh][kw] and bias [o] (NULL: zeros). Returns 0, or -1 when memory runs out,
 * o is not a multiple of NARROW_CONV_GROUP or kw is above NARROW_CONV_MAX_KW. */
int narrow_conv_init(NarrowConv* conv, const float* w, const float* bias, int64_t o, int64_t c, int64_t kh, int64_t kw,
                     const int64_t pads[4]);
void narrow_conv_free(NarrowConv* conv);

/* Output rows [first, end) of y [n][o][ho][wo] from x [n][c][h][w], where row r is image
 * r / ho, output row r % ho (stride 1, no dilation, zeros outside x). ho and wo are
 * h + top + bottom - kh + 1 and w + left + right - kw + 1. */
void narrow_conv_rows(const NarrowConv* conv, const float* x, int64_t h, int64_t w, float* y, int64_t first, int64_t end);

/* Whether the CPU has what narrow_conv_rows uses (AVX2 and FMA). */
int narrow_conv_supported(void);

#endif
