// The vector vocabulary attention_tiles.h and the fused attention kernels are written in, for AVX-512: sixteen
// lanes, register tiles of FR rows × 64 keys (four vectors a row), at most 24 accumulators (of 32 registers).
// attention_fused_avx512.c includes it before the kernels; attention_vector_avx2.h is the same vocabulary on AVX2.
#ifndef LORA_TOOLS_ATTENTION_VECTOR_H
#define LORA_TOOLS_ATTENTION_VECTOR_H
#if defined(__x86_64__)
#include "nn_approx.h"

#define ISA AVX512
#define KERNELS_ENABLED lt_kernels_use_avx512    // the kernel path allows these kernels
#define KERNEL(name) name##_avx512
#define VL 16           // lanes of a vector
#define NV 4            // vectors of a register tile's row: FB = VL · NV keys
#define MAX_ACC 24      // accumulators a register tile may hold

typedef __m512 vf;
typedef __mmask16 vmask;
#define v_load _mm512_load_ps
#define v_store _mm512_store_ps
#define v_set1 _mm512_set1_ps
#define v_zero _mm512_setzero_ps
#define v_fmadd _mm512_fmadd_ps
#define v_mul _mm512_mul_ps
#define v_add _mm512_add_ps
#define v_sub _mm512_sub_ps
#define v_max _mm512_max_ps
#define v_exp exp16
#define v_reduce_max _mm512_reduce_max_ps
#define v_reduce_add _mm512_reduce_add_ps
// x where the mask is set, fill elsewhere.
#define v_select(mask, x, fill) _mm512_mask_mov_ps(fill, mask, x)
// Whether any lane of a exceeds b's.
#define v_any_greater(a, b) (_mm512_cmp_ps_mask(a, b, _CMP_GT_OQ) != 0)
// The lanes holding the first `remaining` values of a vector (all when remaining ≥ VL).
static inline vmask v_first(size_t remaining) { return remaining >= 16 ? (vmask)0xFFFF : tail_mask16(remaining); }

#endif
#endif
