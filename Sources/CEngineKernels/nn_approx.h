// The exp and erf approximations nn.c documents, shared with nn_backward.c and the fused attention kernels
// (private to this target), and the causal mask of nn.c's and nn_backward.c's attention tiles.
#ifndef LORA_TOOLS_NN_APPROX_H
#define LORA_TOOLS_NN_APPROX_H

#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define EXP_HI 88.3762626647949f
#define EXP_LO -87.3365478515625f
#define LN2_HI 0.693359375f
#define LN2_LO -2.12194440e-4f
#define LOG2E 1.44269504088896341f

#include <stddef.h>

// Keys of row r of an attention tile that a causal mask leaves visible: key column j is visible when
// j <= diagonal + r, diagonal = the tile's first query − its first key. Not causal: all of them.
static inline size_t attention_visible_keys(int causal, ptrdiff_t diagonal, size_t r, size_t cols) {
    if (!causal) return cols;
    ptrdiff_t v = diagonal + (ptrdiff_t)r + 1;
    return v <= 0 ? 0 : ((size_t)v < cols ? (size_t)v : cols);
}

static const float exp_poly[6] = {
    1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
    4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f,
};

static inline float exp_scalar(float x) {
    if (x > EXP_HI) x = EXP_HI;
    if (x < EXP_LO) return 0.0f;
    float n = floorf(x * LOG2E + 0.5f);
    float r = x - n * LN2_HI;
    r = r - n * LN2_LO;
    float p = exp_poly[0];
    for (int i = 1; i < 6; i++) p = p * r + exp_poly[i];
    float y = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return y * scale;
}

static inline float erf_scalar(float x) {
    float a = fabsf(x);
    float t = 1.0f / (0.3275911f * a + 1.0f);
    float r = 1.061405429f;
    r = r * t - 1.453152027f;
    r = r * t + 1.421413741f;
    r = r * t - 0.284496736f;
    r = r * t + 0.254829592f;
    float e = exp_scalar(-a * a);
    float y = 1.0f - r * t * e;
    return x < 0 ? -y : y;
}

#if defined(__x86_64__)
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(x, _mm256_set1_ps(EXP_HI));
    __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_LO), _CMP_LT_OQ);
    x = _mm256_max_ps(x, _mm256_set1_ps(EXP_LO));
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(LOG2E), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_set1_ps(exp_poly[0]);
    for (int i = 1; i < 6; i++) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(exp_poly[i]));
    __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
    return _mm256_andnot_ps(underflow, y);
}

// exp8's operations on sixteen lanes, in the same order with the same constants, so each lane's result is
// bit-identical to exp8's (tested): only the attention tiles take it, where an exponential per score costs as
// much as either product (Benchmarks/README.md), and sums over its lanes differ from exp8's in order only.
#define AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))

// The lanes of a 16-wide tail of `remaining` (< 16) values, for masked loads and stores.
static inline __mmask16 tail_mask16(size_t remaining) { return (__mmask16)((1u << remaining) - 1); }

AVX512 static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(x, _mm512_set1_ps(EXP_HI));
    __mmask16 kept = _mm512_cmp_ps_mask(x, _mm512_set1_ps(EXP_LO), _CMP_NLT_UQ);
    x = _mm512_max_ps(x, _mm512_set1_ps(EXP_LO));
    __m512 n = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(LOG2E), _mm512_set1_ps(0.5f)), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    __m512 p = _mm512_set1_ps(exp_poly[0]);
    for (int i = 1; i < 6; i++) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(exp_poly[i]));
    __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(kept, y, _mm512_castsi512_ps(bits));
}

AVX2 static inline __m256 erf8(__m256 x) {
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    __m256 sign = _mm256_and_ps(sign_bit, x);
    __m256 a = _mm256_andnot_ps(sign_bit, x);
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), a, _mm256_set1_ps(1.0f)));
    __m256 r = _mm256_set1_ps(1.061405429f);
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-1.453152027f));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(1.421413741f));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-0.284496736f));
    r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(0.254829592f));
    __m256 e = exp8(_mm256_xor_ps(sign_bit, _mm256_mul_ps(a, a)));
    __m256 y = _mm256_fnmadd_ps(_mm256_mul_ps(r, t), e, _mm256_set1_ps(1.0f));
    return _mm256_xor_ps(y, sign);
}

#endif

#endif
