// The vector vocabulary of attention_vector_avx512.h on AVX2 + FMA: eight lanes, register tiles of FR rows × 16 keys
// (two vectors a row), at most 12 accumulators (of 16 registers: two loads and a broadcast need the rest).
// attention_fused_avx2.c includes it before the kernels.
#ifndef LORA_TOOLS_ATTENTION_VECTOR_H
#define LORA_TOOLS_ATTENTION_VECTOR_H
#if defined(__x86_64__)
#include "nn_approx.h"

#define ISA AVX2
#define KERNELS_ENABLED lt_kernels_use_avx2    // the kernel path allows these kernels
#define KERNEL(name) name##_avx2
#define VL 8
#define NV 2
#define MAX_ACC 12

typedef __m256 vf;
typedef __m256 vmask;
#define v_load _mm256_load_ps
#define v_store _mm256_store_ps
#define v_set1 _mm256_set1_ps
#define v_zero _mm256_setzero_ps
#define v_fmadd _mm256_fmadd_ps
#define v_mul _mm256_mul_ps
#define v_add _mm256_add_ps
#define v_sub _mm256_sub_ps
#define v_max _mm256_max_ps
#define v_exp exp8
#define v_select(mask, x, fill) _mm256_blendv_ps(fill, x, mask)
#define v_any_greater(a, b) (_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ)) != 0)

AVX2 static inline float v_reduce_max(__m256 v) {
    __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    return _mm_cvtss_f32(_mm_max_ss(a, _mm_shuffle_ps(a, a, 1)));
}

AVX2 static inline float v_reduce_add(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    return _mm_cvtss_f32(_mm_add_ss(a, _mm_shuffle_ps(a, a, 1)));
}

AVX2 static inline vmask v_first(size_t remaining) {
    const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmp_ps(lane, _mm256_set1_ps(remaining >= 8 ? 8.0f : (float)remaining), _CMP_LT_OQ);
}

#endif
#endif
