/* ORT custom operators (domain mrt_bridge): the rows schemes' int8 MatMuls
 * (onnx_export/precision.py) on the exact GEMV of rows_gemv.c (AVX2 or AVX-512 VNNI), the int8 codec's
 * ELU + QuantizeLinear on elu_quantize.c, and the codec's float output conv on narrow_conv.c.
 *
 * RowsMatMulS8 / RowsMatMulU8: MatMulIntegerToFloat as the rows schemes use it.
 *   A  uint8 [..., K], zero point 128 (input 4)     one quantized activation row per leading index
 *   B  int8 [K, N] (S8) or uint8 around 128 (U8, zero point input 5), a constant initializer
 *   a_scale float, one per row or one;  b_scale float [N] or one
 *   Y  float [..., N] = (sum_k (A - 128)[row][k] * (B - zp)[k][n]) * b_scale[n] * a_scale[row]
 *
 * RowsQuantMatMulS8 / RowsQuantMatMulU8: the same with the activation's quantization in it.
 *   X  float [..., K], quantized per row as the rows schemes' graph ops do (quantize_rows)
 *   B, b_scale (inputs 1, 2) and, for U8, B's zero point 128 (input 3) as above
 *   Y  float [..., N], bit for bit what the graph's quantization ops + RowsMatMul compute
 *
 * EluQuantizeLinear: QuantizeLinear(Elu(X), y_scale, y_zero_point) to uint8, per tensor.
 *   X  float, any shape;  y_scale float, one;  y_zero_point uint8, one;  Y  uint8, X's shape
 *
 * B is packed when ORT creates the kernel, once per initializer: the depth decoder's twelve
 * levels share their layers' weights, and one packed copy keeps them in cache between levels.
 *
 * NarrowConv: Conv (group 1, stride 1, no dilation) with 8 output channels, on narrow_conv.c.
 *   X  float [N, C, H, W];  W  float [O, C, KH, KW] and B float [O], constant initializers;
 *   pads  int64 [4] (top, left, bottom, right), a constant initializer;  Y  float [N, O, HO, WO] */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "elu_quantize.h"
#include "narrow_conv.h"
#include "ort_abi.h"
#include "rows_gemv.h"

#define EXPORT __attribute__((visibility("default")))

static const OrtApi* api;

/* Packed weights shared by the kernels of one initializer (same data, shape and type). */
typedef struct Shared {
  const void* source;
  int64_t k, n;
  int is_unsigned, users;
  PackedWeights w;
  struct Shared* next;
} Shared;

static Shared* shared_list;
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;

/* The packed copy of ``source`` (packing it on first use), or NULL if it cannot be packed. */
static Shared* acquire(const void* source, int64_t k, int64_t n, int is_unsigned) {
  pthread_mutex_lock(&shared_lock);
  Shared* s = shared_list;
  while (s && !(s->source == source && s->k == k && s->n == n && s->is_unsigned == is_unsigned)) s = s->next;
  if (!s && (s = calloc(1, sizeof(Shared)))) {
    *s = (Shared){.source = source, .k = k, .n = n, .is_unsigned = is_unsigned, .next = shared_list};
    if (pack_weights(source, k, n, is_unsigned, &s->w)) {
      free(s);
      s = NULL;
    } else {
      shared_list = s;
    }
  }
  if (s) s->users++;
  pthread_mutex_unlock(&shared_lock);
  return s;
}

static void release(Shared* s) {
  pthread_mutex_lock(&shared_lock);
  if (--s->users == 0) {
    Shared** p = &shared_list;
    while (*p != s) p = &(*p)->next;
    *p = s->next;
    free_weights(&s->w);
    free(s);
  }
  pthread_mutex_unlock(&shared_lock);
}

typedef struct {
  Shared* weights;
  GemvBlock* gemv;  /* this CPU's variant, chosen when the operators were registered */
} Kernel;

static GemvBlock* gemv;
static OrtKernelContextParallelForFn parallel_for;  /* NULL on an ORT without it (before 1.18) */
#define BLOCKS_PER_TASK 4  /* 128 columns: smaller parts cost more to hand out than they save */
#define MAX_TASKS 8        /* ORT groups the tasks into one batch per thread */

static OrtStatus* fail(const char* msg) { return ort_fn(api, ORT_CreateStatus, OrtCreateStatusFn)(ORT_INVALID_ARGUMENT, msg); }

#define CHECK(call)                     \
  do {                                  \
    OrtStatus* status_ = (call);        \
    if (status_) return status_;        \
  } while (0)

/* Dimensions (up to 8) and element count of a tensor. */
typedef struct {
  int64_t dims[8];
  size_t rank, count;
} Shape;

static OrtStatus* shape_of(const OrtValue* v, Shape* s) {
  OrtTensorTypeAndShapeInfo* info;
  CHECK(ort_fn(api, ORT_GetTensorTypeAndShape, OrtGetTensorTypeAndShapeFn)(v, &info));
  OrtStatus* st = ort_fn(api, ORT_GetDimensionsCount, OrtGetDimensionsCountFn)(info, &s->rank);
  if (!st && s->rank > 8) st = fail("mrt_bridge: a tensor of rank above 8");
  if (!st) st = ort_fn(api, ORT_GetDimensions, OrtGetDimensionsFn)(info, s->dims, s->rank);
  if (!st) st = ort_fn(api, ORT_GetTensorShapeElementCount, OrtGetTensorShapeElementCountFn)(info, &s->count);
  ort_fn(api, ORT_ReleaseTensorTypeAndShapeInfo, OrtReleaseTensorTypeAndShapeInfoFn)(info);
  return st;
}

static OrtStatus* data_of(const OrtValue* v, void** out) {
  return ort_fn(api, ORT_GetTensorMutableData, OrtGetTensorMutableDataFn)((OrtValue*)v, out);
}

static int is_unsigned(const OrtCustomOp* op);

static OrtStatus* create_kernel(const OrtCustomOp* op, const OrtApi* unused, const OrtKernelInfo* info, void** out) {
  (void)unused;
  int constant = 0;
  const OrtValue* b;
  CHECK(ort_fn(api, ORT_KernelInfoGetConstantInput_tensor, OrtKernelInfoGetConstantInputFn)(info, 1, &constant, &b));
  if (!constant) return fail("RowsMatMul: the weight (input 1) must be a constant initializer");
  Shape s;
  void* data;
  CHECK(shape_of(b, &s));
  if (s.rank != 2) return fail("RowsMatMul: the weight must be 2-D");
  CHECK(data_of(b, &data));
  Kernel* k = calloc(1, sizeof(Kernel));
  if (!k) return fail("RowsMatMul: out of memory");
  if (!(k->weights = acquire(data, s.dims[0], s.dims[1], is_unsigned(op)))) {
    free(k);
    return fail("RowsMatMul: cannot pack the weight (a weight of -128, or out of memory)");
  }
  k->gemv = gemv;
  *out = k;
  return NULL;
}

static OrtStatus* input(OrtKernelContext* ctx, size_t i, const OrtValue** v, Shape* s, void** data) {
  CHECK(ort_fn(api, ORT_KernelContext_GetInput, OrtKernelContextGetInputFn)(ctx, i, v));
  CHECK(shape_of(*v, s));
  return data_of(*v, data);
}

/* Rows of the activation ``sa`` (last dimension K) and Y, shaped as it with N columns. */
static OrtStatus* output_rows(OrtKernelContext* ctx, const PackedWeights* w, const Shape* sa, const Shape* sbs,
                              int64_t* rows, float** y) {
  if (sa->rank < 1 || sa->dims[sa->rank - 1] != w->k) return fail("RowsMatMul: A's last dimension is not the weight's K");
  if (sbs->count != 1 && (int64_t)sbs->count != w->n) return fail("RowsMatMul: b_scale is neither one nor one per column");
  *rows = sa->count / (size_t)w->k;
  int64_t dims[8];
  memcpy(dims, sa->dims, sizeof(int64_t) * sa->rank);
  dims[sa->rank - 1] = w->n;
  OrtValue* out;
  CHECK(ort_fn(api, ORT_KernelContext_GetOutput, OrtKernelContextGetOutputFn)(ctx, 0, dims, sa->rank, &out));
  return data_of(out, (void**)y);
}

/* One GEMV split into column ranges for the session's intra-op threads (ORT's ParallelFor:
 * sequential on a one-thread session). The depth decoder's session on both cores then runs
 * its matmuls on both, not only its other ops. */
typedef struct {
  const Kernel* kernel;
  const int8_t* q;
  int64_t rows;
  const float *a_scale, *b_scale;
  int a_per_row, b_per_column;
  float* y;
  int64_t blocks, tasks;
} GemvTask;

static void gemv_part(void* data, size_t i) {
  const GemvTask* t = data;
  const int64_t first = t->blocks * (int64_t)i / t->tasks, end = t->blocks * ((int64_t)i + 1) / t->tasks;
  rows_gemv(t->kernel->gemv, t->q, t->rows, &t->kernel->weights->w, t->a_scale, t->a_per_row, t->b_scale,
            t->b_per_column, t->y, first, end);
}

static OrtStatus* run_gemv(OrtKernelContext* ctx, const Kernel* kernel, const int8_t* q, int64_t rows,
                           const float* a_scale, int a_per_row, const float* b_scale, int b_per_column, float* y) {
  GemvTask t = {kernel, q, rows, a_scale, b_scale, a_per_row, b_per_column, y, kernel->weights->w.n32 / 32, 1};
  if (parallel_for && t.blocks >= 2 * BLOCKS_PER_TASK)
    t.tasks = t.blocks / BLOCKS_PER_TASK < MAX_TASKS ? t.blocks / BLOCKS_PER_TASK : MAX_TASKS;
  if (t.tasks == 1) {
    gemv_part(&t, 0);
    return NULL;
  }
  return parallel_for(ctx, gemv_part, (size_t)t.tasks, 0, &t);
}

static OrtStatus* compute(void* kernel, OrtKernelContext* ctx) {
  const Kernel* self = kernel;
  const Shared* k = self->weights;
  const OrtValue *a, *as, *bs, *azp;
  Shape sa, sas, sbs, szp;
  uint8_t *xa, *zp;
  float *fas, *fbs, *y;
  int64_t rows;
  CHECK(input(ctx, 0, &a, &sa, (void**)&xa));
  CHECK(input(ctx, 2, &as, &sas, (void**)&fas));
  CHECK(input(ctx, 3, &bs, &sbs, (void**)&fbs));
  CHECK(input(ctx, 4, &azp, &szp, (void**)&zp));
  if (szp.count != 1 || zp[0] != 128) return fail("RowsMatMul: the activation zero point must be 128");
  CHECK(output_rows(ctx, &k->w, &sa, &sbs, &rows, &y));
  if (sas.count != 1 && (int64_t)sas.count != rows) return fail("RowsMatMul: a_scale is neither one nor one per row");
  if (rows == 0) return NULL;
  /* Activations as signed int8 (A - 128), each row zero-padded to k4. */
  int8_t* q = malloc((size_t)rows * (size_t)k->w.k4);
  if (!q) return fail("RowsMatMul: out of memory");
  for (int64_t r = 0; r < rows; r++) {
    int8_t* dst = q + r * k->w.k4;
    const uint8_t* src = xa + r * k->w.k;
    for (int64_t i = 0; i < k->w.k; i++) dst[i] = (int8_t)(src[i] ^ 0x80);
    for (int64_t i = k->w.k; i < k->w.k4; i++) dst[i] = 0;
  }
  OrtStatus* st = run_gemv(ctx, self, q, rows, fas, sas.count != 1, fbs, sbs.count != 1, y);
  free(q);
  return st;
}

static OrtStatus* compute_quant(void* kernel, OrtKernelContext* ctx) {
  const Kernel* self = kernel;
  const Shared* k = self->weights;
  const OrtValue *x, *bs;
  Shape sx, sbs;
  float *fx, *fbs, *y;
  int64_t rows;
  CHECK(input(ctx, 0, &x, &sx, (void**)&fx));
  CHECK(input(ctx, 2, &bs, &sbs, (void**)&fbs));
  CHECK(output_rows(ctx, &k->w, &sx, &sbs, &rows, &y));
  if (rows == 0) return NULL;
  float* scales = malloc((size_t)rows * (sizeof(float) + (size_t)k->w.k4));  /* rows scales, then rows x k4 int8 */
  if (!scales) return fail("RowsMatMul: out of memory");
  int8_t* q = (int8_t*)(scales + rows);
  quantize_rows(fx, rows, k->w.k, k->w.k4, q, scales);
  OrtStatus* st = run_gemv(ctx, self, q, rows, scales, 1, fbs, sbs.count != 1, y);
  free(scales);
  return st;
}

static OrtStatus* compute_elu(void* kernel, OrtKernelContext* ctx) {
  (void)kernel;
  const OrtValue *x, *scale, *zp;
  Shape sx, ss, sz;
  float *fx, *fs;
  uint8_t *z, *y;
  CHECK(input(ctx, 0, &x, &sx, (void**)&fx));
  CHECK(input(ctx, 1, &scale, &ss, (void**)&fs));
  CHECK(input(ctx, 2, &zp, &sz, (void**)&z));
  if (ss.count != 1 || sz.count != 1) return fail("EluQuantizeLinear: the scale and zero point must be one value each");
  if (!(fs[0] > 0.0f)) return fail("EluQuantizeLinear: the scale must be positive");
  OrtValue* out;
  CHECK(ort_fn(api, ORT_KernelContext_GetOutput, OrtKernelContextGetOutputFn)(ctx, 0, sx.dims, sx.rank, &out));
  CHECK(data_of(out, (void**)&y));
  elu_quantize(fx, sx.count, fs[0], z[0], y);
  return NULL;
}

/* Input i of a kernel being created, which must be a constant initializer. */
static OrtStatus* constant_input(const OrtKernelInfo* info, size_t i, Shape* s, void** data) {
  int constant = 0;
  const OrtValue* v;
  CHECK(ort_fn(api, ORT_KernelInfoGetConstantInput_tensor, OrtKernelInfoGetConstantInputFn)(info, i, &constant, &v));
  if (!constant) return fail("NarrowConv: the weight, bias and pads (inputs 1-3) must be constant initializers");
  CHECK(shape_of(v, s));
  return data_of(v, data);
}

/* NarrowConv's kernel is its NarrowConv: the packed weights, bias and pads. */
static OrtStatus* create_conv(const OrtCustomOp* op, const OrtApi* unused, const OrtKernelInfo* info, void** out) {
  (void)op, (void)unused;
  if (!narrow_conv_supported()) return fail("NarrowConv: this CPU has no AVX2 with FMA");
  Shape sw, sb, sp;
  float *w, *b;
  int64_t* pads;
  CHECK(constant_input(info, 1, &sw, (void**)&w));
  CHECK(constant_input(info, 2, &sb, (void**)&b));
  CHECK(constant_input(info, 3, &sp, (void**)&pads));
  if (sw.rank != 4 || sb.count != (size_t)sw.dims[0] || sp.count != 4)
    return fail("NarrowConv: W must be 4-D, B one per output channel, pads 4 values");
  for (int i = 0; i < 4; i++)
    if (pads[i] < 0) return fail("NarrowConv: negative pads");
  NarrowConv* conv = malloc(sizeof(NarrowConv));
  if (!conv || narrow_conv_init(conv, w, b, sw.dims[0], sw.dims[1], sw.dims[2], sw.dims[3], pads)) {
    free(conv);
    return fail("NarrowConv: out of memory, output channels not a multiple of 8 or a kernel over 64 wide");
  }
  *out = conv;
  return NULL;
}

/* Output rows split into tasks for the session's intra-op threads. */
typedef struct {
  const NarrowConv* conv;
  const float* x;
  int64_t h, w, rows, tasks;
  float* y;
} ConvTask;

static void conv_part(void* data, size_t i) {
  const ConvTask* t = data;
  narrow_conv_rows(t->conv, t->x, t->h, t->w, t->y, t->rows * (int64_t)i / t->tasks, t->rows * ((int64_t)i + 1) / t->tasks);
}

static OrtStatus* compute_conv(void* kernel, OrtKernelContext* ctx) {
  const NarrowConv* k = kernel;
  const OrtValue* x;
  Shape sx;
  float* fx;
  CHECK(input(ctx, 0, &x, &sx, (void**)&fx));
  if (sx.rank != 4 || sx.dims[1] != k->c) return fail("NarrowConv: X must be [N, C, H, W] with the weight's C");
  int64_t dims[4] = {sx.dims[0], k->o, sx.dims[2] + k->pads[0] + k->pads[2] - k->kh + 1,
                     sx.dims[3] + k->pads[1] + k->pads[3] - k->kw + 1};
  if (dims[2] < 1 || dims[3] < 1) return fail("NarrowConv: X is smaller than the kernel");
  OrtValue* out;
  ConvTask t = {k, fx, sx.dims[2], sx.dims[3], dims[0] * dims[2], 1, NULL};
  CHECK(ort_fn(api, ORT_KernelContext_GetOutput, OrtKernelContextGetOutputFn)(ctx, 0, dims, 4, &out));
  CHECK(data_of(out, (void**)&t.y));
  if (parallel_for && t.rows >= 2) t.tasks = t.rows < MAX_TASKS ? t.rows : MAX_TASKS;
  if (t.tasks == 1) {
    conv_part(&t, 0);
    return NULL;
  }
  return parallel_for(ctx, conv_part, (size_t)t.tasks, 0, &t);
}

static void* create_conv_v1(const OrtCustomOp* op, const OrtApi* a, const OrtKernelInfo* info) {
  void* k = NULL;
  return create_conv(op, a, info, &k) ? NULL : k;
}
static void compute_conv_v1(void* kernel, OrtKernelContext* ctx) { (void)compute_conv(kernel, ctx); }
static void destroy_conv(void* kernel) {
  narrow_conv_free(kernel);
  free(kernel);
}

/* The ELU operator keeps nothing between runs: its kernel is a placeholder. */
static OrtStatus* create_elu(const OrtCustomOp* op, const OrtApi* unused, const OrtKernelInfo* info, void** out) {
  (void)op, (void)unused, (void)info;
  static int placeholder;
  *out = &placeholder;
  return NULL;
}
static void* create_elu_v1(const OrtCustomOp* op, const OrtApi* a, const OrtKernelInfo* info) {
  void* k = NULL;
  return create_elu(op, a, info, &k) ? NULL : k;
}
static void compute_elu_v1(void* kernel, OrtKernelContext* ctx) { (void)compute_elu(kernel, ctx); }
static void destroy_elu(void* kernel) { (void)kernel; }

static void destroy(void* kernel) {
  Kernel* k = kernel;
  release(k->weights);
  free(k);
}

/* The version-1 entry points: ORT wants them present, and calls the V2 ones when those are set. */
static void* create_kernel_v1(const OrtCustomOp* op, const OrtApi* a, const OrtKernelInfo* info) {
  void* k = NULL;
  return create_kernel(op, a, info, &k) ? NULL : k;
}
static void compute_v1(void* kernel, OrtKernelContext* ctx) { (void)compute(kernel, ctx); }
static void compute_quant_v1(void* kernel, OrtKernelContext* ctx) { (void)compute_quant(kernel, ctx); }

static const char* name_s8(const OrtCustomOp* op) { (void)op; return "RowsMatMulS8"; }
static const char* name_u8(const OrtCustomOp* op) { (void)op; return "RowsMatMulU8"; }
static const char* name_quant_s8(const OrtCustomOp* op) { (void)op; return "RowsQuantMatMulS8"; }
static const char* name_quant_u8(const OrtCustomOp* op) { (void)op; return "RowsQuantMatMulU8"; }
static const char* name_elu(const OrtCustomOp* op) { (void)op; return "EluQuantizeLinear"; }
static const char* name_conv(const OrtCustomOp* op) { (void)op; return "NarrowConv"; }
static const char* provider(const OrtCustomOp* op) { (void)op; return "CPUExecutionProvider"; }
static size_t inputs_s8(const OrtCustomOp* op) { (void)op; return 5; }
static size_t inputs_u8(const OrtCustomOp* op) { (void)op; return 6; }
static size_t inputs_quant_s8(const OrtCustomOp* op) { (void)op; return 3; }
static size_t inputs_quant_u8(const OrtCustomOp* op) { (void)op; return 4; }
static size_t inputs_elu(const OrtCustomOp* op) { (void)op; return 3; }
static size_t inputs_conv(const OrtCustomOp* op) { (void)op; return 4; }
static size_t outputs(const OrtCustomOp* op) { (void)op; return 1; }
static int output_type(const OrtCustomOp* op, size_t i) { (void)op; (void)i; return ORT_TYPE_FLOAT; }
static int output_type_elu(const OrtCustomOp* op, size_t i) { (void)op; (void)i; return ORT_TYPE_UINT8; }
static int input_type_elu(const OrtCustomOp* op, size_t i) { (void)op; return i == 2 ? ORT_TYPE_UINT8 : ORT_TYPE_FLOAT; }
static int input_type_conv(const OrtCustomOp* op, size_t i) { (void)op; return i == 3 ? ORT_TYPE_INT64 : ORT_TYPE_FLOAT; }
static int required(const OrtCustomOp* op, size_t i) { (void)op; (void)i; return ORT_IO_REQUIRED; }
static int memory(const OrtCustomOp* op, size_t i) { (void)op; (void)i; return ORT_MEM_DEFAULT; }

static int input_type(const OrtCustomOp* op, size_t i) {
  switch (i) {
    case 1: return is_unsigned(op) ? ORT_TYPE_UINT8 : ORT_TYPE_INT8;
    case 2: case 3: return ORT_TYPE_FLOAT;
    default: return ORT_TYPE_UINT8;  /* A and the zero points */
  }
}

static int input_type_quant(const OrtCustomOp* op, size_t i) {
  switch (i) {
    case 1: return is_unsigned(op) ? ORT_TYPE_UINT8 : ORT_TYPE_INT8;
    case 3: return ORT_TYPE_UINT8;  /* B's zero point */
    default: return ORT_TYPE_FLOAT;  /* X and b_scale */
  }
}

#define OP(name_fn, inputs_fn, type_fn, out_type_fn, create_fn, create_v1_fn, compute_fn, compute_v1_fn, destroy_fn) \
  {                                                                                      \
    .version = ORT_CUSTOM_OP_VERSION, .CreateKernel = create_v1_fn, .GetName = name_fn,  \
    .GetExecutionProviderType = provider, .GetInputType = type_fn,                       \
    .GetInputTypeCount = inputs_fn, .GetOutputType = out_type_fn,                        \
    .GetOutputTypeCount = outputs, .KernelCompute = compute_v1_fn, .KernelDestroy = destroy_fn, \
    .GetInputCharacteristic = required, .GetOutputCharacteristic = required,             \
    .GetInputMemoryType = memory, .CreateKernelV2 = create_fn,                           \
    .KernelComputeV2 = compute_fn,                                                       \
  }
#define ROWS_OP(name_fn, inputs_fn, type_fn, compute_fn, compute_v1_fn) \
  OP(name_fn, inputs_fn, type_fn, output_type, create_kernel, create_kernel_v1, compute_fn, compute_v1_fn, destroy)

#define OP_COUNT 6
static const OrtCustomOp ops[OP_COUNT] = {
    ROWS_OP(name_s8, inputs_s8, input_type, compute, compute_v1),
    ROWS_OP(name_u8, inputs_u8, input_type, compute, compute_v1),
    ROWS_OP(name_quant_s8, inputs_quant_s8, input_type_quant, compute_quant, compute_quant_v1),
    ROWS_OP(name_quant_u8, inputs_quant_u8, input_type_quant, compute_quant, compute_quant_v1),
    OP(name_elu, inputs_elu, input_type_elu, output_type_elu, create_elu, create_elu_v1, compute_elu, compute_elu_v1,
       destroy_elu),
    OP(name_conv, inputs_conv, input_type_conv, output_type, create_conv, create_conv_v1, compute_conv, compute_conv_v1,
       destroy_conv),
};

static int is_unsigned(const OrtCustomOp* op) { return op == &ops[1] || op == &ops[3]; }

/* Which GEMV the operators registered now run ("avx2" or "avx512-vnni"), for the logs. */
EXPORT const char* mrt_gemv_variant(void) { return gemv_variant(); }

EXPORT OrtStatus* RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* base) {
  api = base->GetApi(ORT_TABLE_VERSION);
  if (!api) {  /* an ONNX Runtime older than 1.16: say so with its own (version 1) table */
    const OrtApi* old = base->GetApi(1);
    return ort_fn(old, ORT_CreateStatus, OrtCreateStatusFn)(ORT_FAIL, "mrt_bridge kernels need ONNX Runtime 1.16 or later");
  }
  gemv = gemv_for(gemv_variant());
  const OrtApi* api18 = base->GetApi(18);
  parallel_for = api18 ? ort_fn(api18, ORT_KernelContext_ParallelFor, OrtKernelContextParallelForFn) : NULL;
  OrtCustomOpDomain* domain;
  CHECK(ort_fn(api, ORT_CreateCustomOpDomain, OrtCreateCustomOpDomainFn)("mrt_bridge", &domain));
  for (int i = 0; i < OP_COUNT; i++) CHECK(ort_fn(api, ORT_CustomOpDomain_Add, OrtCustomOpDomainAddFn)(domain, &ops[i]));
  return ort_fn(api, ORT_AddCustomOpDomain, OrtAddCustomOpDomainFn)(options, domain);
}
