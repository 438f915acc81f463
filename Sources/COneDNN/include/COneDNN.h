// oneDNN (Debian's libdnnl, the library behind torch's CPU convolutions and
// matmuls) behind a BLAS-like interface: row-major C = alpha·op(A)·op(B) + beta·C.
// LinearAlgebra.gemm routes each call here or to OpenBLAS (see GEMMRouting).
#ifndef LORA_TOOLS_CONEDNN_H
#define LORA_TOOLS_CONEDNN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Operand types of lt_onednn_matmul.
enum { LT_ONEDNN_F32 = 0, LT_ONEDNN_BF16 = 1 };

/// Status codes: 0 done, 1 this CPU has no kernel for the type (oneDNN
/// "unimplemented": bf16 needs AVX512-BF16 or AMX), 2 another oneDNN error.
enum { LT_ONEDNN_OK = 0, LT_ONEDNN_UNIMPLEMENTED = 1, LT_ONEDNN_FAILED = 2 };

/// dnnl_sgemm on `threads` OpenMP threads (1 inside the engine's own parallel loops).
int lt_onednn_sgemm(int transa, int transb, long m, long n, long k, float alpha, const float *a, long lda, const float *b, long ldb,
                    float beta, float *c, long ldc, int threads);

/// The matmul primitive with operands of `type`: A and B are given as float32
/// and packed (rounded to nearest-even bf16 for LT_ONEDNN_BF16) before the
/// product, which accumulates and is stored in float32. Primitives are cached
/// per shape (the engine repeats the same shapes every step).
int lt_onednn_matmul(int type, int transa, int transb, long m, long n, long k, float alpha, const float *a, long lda, const float *b,
                     long ldb, float beta, float *c, long ldc, int threads);

/// 1 if oneDNN has a bf16 matmul kernel on this CPU (tried once, cached).
int lt_onednn_bf16_available(void);

/// The calling thread's GEMM thread count set by a scope (0: none set), and its setter.
int lt_gemm_threads_here(void);
void lt_set_gemm_threads_here(int threads);

/// oneDNN's name for the kernel family it would use for an f32 (type 0) or
/// bf16 (type 1) matmul here, e.g. "brg:avx512_core_amx", "gemm:jit"; "" if none.
const char *lt_onednn_matmul_kernel(int type);

/// The instruction set oneDNN's kernels use here ("avx2", "avx512_core_amx", …),
/// after any ONEDNN_MAX_CPU_ISA cap (tests run child processes capped at AVX2).
const char *lt_onednn_isa(void);

/// Round floats to the nearest bf16 value, kept as float (the bf16 mode's
/// portable emulation: products of bf16 values are exact in float32, so
/// rounded operands + sgemm equal a bf16 GEMM up to summation order).
void lt_round_to_bf16(const float *src, float *dst, size_t count);

#ifdef __cplusplus
}
#endif
#endif
