/* The part of ONNX Runtime's C ABI (custom operators) this library uses, declared here.
 *
 * ORT's OrtApi is a table of function pointers that only ever grows at the end (ORT keeps the
 * positions stable across releases), so a function is found by its position. Positions and the
 * OrtCustomOp layout below were read from ORT's public C API (1.15 through 1.29) and hold for
 * every later version (KernelContext_ParallelFor, position 274, from a recent header). The library
 * asks ORT for table version ORT_TABLE_VERSION: the struct version of its operators (16, for
 * the V2 kernel functions) needs ORT 1.16, whose table has every other entry used here. */
#ifndef MRT_ORT_ABI_H
#define MRT_ORT_ABI_H
#include <stddef.h>
#include <stdint.h>

#define ORT_TABLE_VERSION 16u

typedef struct OrtStatus OrtStatus;
typedef struct OrtValue OrtValue;
typedef struct OrtKernelInfo OrtKernelInfo;
typedef struct OrtKernelContext OrtKernelContext;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtCustomOpDomain OrtCustomOpDomain;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef void OrtApi;  /* used only as a table: see ort_fn */

typedef struct {
  const OrtApi* (*GetApi)(uint32_t version);
  const char* (*GetVersionString)(void);
} OrtApiBase;

enum { ORT_OK = 0, ORT_FAIL = 1, ORT_INVALID_ARGUMENT = 2 };
enum { ORT_TYPE_UNDEFINED = 0, ORT_TYPE_FLOAT = 1, ORT_TYPE_UINT8 = 2, ORT_TYPE_INT8 = 3, ORT_TYPE_INT64 = 7 };
enum { ORT_IO_REQUIRED = 0 };
enum { ORT_MEM_DEFAULT = 0 };

/* Positions in the OrtApi table. */
enum {
  ORT_CreateStatus = 0,
  ORT_CreateCustomOpDomain = 26,
  ORT_CustomOpDomain_Add = 27,
  ORT_AddCustomOpDomain = 28,
  ORT_GetTensorMutableData = 51,
  ORT_GetDimensionsCount = 61,
  ORT_GetDimensions = 62,
  ORT_GetTensorShapeElementCount = 64,
  ORT_GetTensorTypeAndShape = 65,
  ORT_KernelContext_GetInput = 90,
  ORT_KernelContext_GetOutput = 91,
  ORT_ReleaseTensorTypeAndShapeInfo = 99,
  ORT_KernelInfoGetConstantInput_tensor = 249,
  ORT_KernelContext_ParallelFor = 274, /* used only where GetApi(18) answers (ORT 1.18+) */
};

typedef OrtStatus* (*OrtCreateStatusFn)(int code, const char* msg);
typedef OrtStatus* (*OrtCreateCustomOpDomainFn)(const char* domain, OrtCustomOpDomain** out);
typedef OrtStatus* (*OrtCustomOpDomainAddFn)(OrtCustomOpDomain* domain, const void* op);
typedef OrtStatus* (*OrtAddCustomOpDomainFn)(OrtSessionOptions* options, OrtCustomOpDomain* domain);
typedef OrtStatus* (*OrtGetTensorMutableDataFn)(OrtValue* value, void** out);
typedef OrtStatus* (*OrtGetDimensionsCountFn)(const OrtTensorTypeAndShapeInfo* info, size_t* out);
typedef OrtStatus* (*OrtGetDimensionsFn)(const OrtTensorTypeAndShapeInfo* info, int64_t* dims, size_t len);
typedef OrtStatus* (*OrtGetTensorShapeElementCountFn)(const OrtTensorTypeAndShapeInfo* info, size_t* out);
typedef OrtStatus* (*OrtGetTensorTypeAndShapeFn)(const OrtValue* value, OrtTensorTypeAndShapeInfo** out);
typedef OrtStatus* (*OrtKernelContextGetInputFn)(const OrtKernelContext* ctx, size_t index, const OrtValue** out);
typedef OrtStatus* (*OrtKernelContextGetOutputFn)(OrtKernelContext* ctx, size_t index, const int64_t* dims, size_t n,
                                                  OrtValue** out);
typedef void (*OrtReleaseTensorTypeAndShapeInfoFn)(OrtTensorTypeAndShapeInfo* info);
typedef OrtStatus* (*OrtKernelInfoGetConstantInputFn)(const OrtKernelInfo* info, size_t index, int* is_constant,
                                                      const OrtValue** out);
/* fn(usr_data, i) for i in [0, total), over the session's intra-op threads; num_batch 0: ORT's choice. */
typedef OrtStatus* (*OrtKernelContextParallelForFn)(const OrtKernelContext* ctx, void (*fn)(void*, size_t), size_t total,
                                                    size_t num_batch, void* usr_data);

/* The function at position ``index`` of ``api``, as type ``type``. */
#define ort_fn(api, index, type) ((type)((void* const*)(api))[index])

/* A custom operator as ORT reads it, up to the fields of struct version 16 (the V2 kernel
 * functions, which return a status). Fields of later versions are not declared: ORT reads a
 * field only when ``version`` is at least the version that added it. */
typedef struct OrtCustomOp {
  uint32_t version;
  void* (*CreateKernel)(const struct OrtCustomOp* op, const OrtApi* api, const OrtKernelInfo* info);
  const char* (*GetName)(const struct OrtCustomOp* op);
  const char* (*GetExecutionProviderType)(const struct OrtCustomOp* op);
  int (*GetInputType)(const struct OrtCustomOp* op, size_t index);
  size_t (*GetInputTypeCount)(const struct OrtCustomOp* op);
  int (*GetOutputType)(const struct OrtCustomOp* op, size_t index);
  size_t (*GetOutputTypeCount)(const struct OrtCustomOp* op);
  void (*KernelCompute)(void* kernel, OrtKernelContext* ctx);
  void (*KernelDestroy)(void* kernel);
  int (*GetInputCharacteristic)(const struct OrtCustomOp* op, size_t index);   /* version 8 */
  int (*GetOutputCharacteristic)(const struct OrtCustomOp* op, size_t index);  /* version 8 */
  int (*GetInputMemoryType)(const struct OrtCustomOp* op, size_t index);       /* version 13 */
  int (*GetVariadicInputMinArity)(const struct OrtCustomOp* op);                /* version 14 */
  int (*GetVariadicInputHomogeneity)(const struct OrtCustomOp* op);
  int (*GetVariadicOutputMinArity)(const struct OrtCustomOp* op);
  int (*GetVariadicOutputHomogeneity)(const struct OrtCustomOp* op);
  OrtStatus* (*CreateKernelV2)(const struct OrtCustomOp* op, const OrtApi* api, const OrtKernelInfo* info,
                               void** kernel);                                  /* version 16 */
  OrtStatus* (*KernelComputeV2)(void* kernel, OrtKernelContext* ctx);          /* version 16 */
} OrtCustomOp;

#define ORT_CUSTOM_OP_VERSION 16u

#endif
