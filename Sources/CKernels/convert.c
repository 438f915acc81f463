// Bulk dtype conversion. These loops run over whole checkpoints (gigabytes),
// so they matter: Swift's own Float16 conversion is done in software unless the
// compiler targets F16C, which a portable build does not. Here the AVX2/F16C
// path is compiled for that target only and chosen at run time.
#include "CKernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// ---- portable scalar conversions -------------------------------------------

static inline float half_bits_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {
            // Subnormal half: mantissa * 2^-24 is exact in float.
            float f = (float)mantissa * 5.9604644775390625e-8f;
            memcpy(&bits, &f, 4);
            bits |= sign;
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

// Round-to-nearest-even float -> half. Normal values are rounded by adding the
// half-ulp bias (plus the odd bit for ties) before truncating; values below the
// smallest normal half are rounded by letting the FPU align them against a
// magic constant whose exponent puts the half's subnormal ulp at bit 0.
static inline uint16_t float_to_half_bits(float value) {
    uint32_t x;
    memcpy(&x, &value, 4);
    uint32_t sign = x & 0x80000000u;
    x ^= sign;
    uint16_t out;
    const uint32_t infinity_bits = 255u << 23;
    const uint32_t first_overflow = (127u + 16u) << 23; // 65536.0
    if (x >= first_overflow) {
        out = (x > infinity_bits) ? (uint16_t)(0x7e00u | ((x >> 13) & 0x1ffu)) : 0x7c00u;
    } else if (x < (113u << 23)) { // below 2^-14, the smallest normal half
        const uint32_t magic_bits = ((127u - 15u) + (23u - 10u) + 1u) << 23;
        float magic, f;
        memcpy(&magic, &magic_bits, 4);
        memcpy(&f, &x, 4);
        f += magic;
        uint32_t u;
        memcpy(&u, &f, 4);
        out = (uint16_t)(u - magic_bits);
    } else {
        uint32_t odd = (x >> 13) & 1u;
        x += ((15u - 127u) << 23) + 0xfffu + odd;
        out = (uint16_t)(x >> 13); // an overflow here correctly lands on infinity
    }
    return out | (uint16_t)(sign >> 16);
}

static inline uint16_t float_to_bf16_bits(float value) {
    uint32_t x;
    memcpy(&x, &value, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((x >> 16) | 0x40u); // keep NaN a (quiet) NaN
    }
    uint32_t odd = (x >> 16) & 1u;
    x += 0x7fffu + odd;
    return (uint16_t)(x >> 16);
}

void lt_f16_to_f32_scalar(const void *src, float *dst, size_t count) {
    const uint8_t *p = (const uint8_t *)src;
    for (size_t i = 0; i < count; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = half_bits_to_float(h);
    }
}

static void f32_to_f16_scalar(const float *src, void *dst, size_t count) {
    uint8_t *p = (uint8_t *)dst;
    for (size_t i = 0; i < count; i++) {
        uint16_t h = float_to_half_bits(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

static void bf16_to_f32_scalar(const void *src, float *dst, size_t count) {
    const uint8_t *p = (const uint8_t *)src;
    for (size_t i = 0; i < count; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        uint32_t bits = (uint32_t)h << 16;
        memcpy(dst + i, &bits, 4);
    }
}

static void f32_to_bf16_scalar(const float *src, void *dst, size_t count) {
    uint8_t *p = (uint8_t *)dst;
    for (size_t i = 0; i < count; i++) {
        uint16_t h = float_to_bf16_bits(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

// ---- AVX2 + F16C -------------------------------------------------------------
#if defined(__x86_64__)
#define LT_AVX2 __attribute__((target("avx2,f16c,fma")))

LT_AVX2 static void f16_to_f32_avx2(const void *src, float *dst, size_t count) {
    const uint8_t *p = (const uint8_t *)src;
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i)));
        __m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i + 16)));
        __m256 c = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i + 32)));
        __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i + 48)));
        _mm256_storeu_ps(dst + i, a);
        _mm256_storeu_ps(dst + i + 8, b);
        _mm256_storeu_ps(dst + i + 16, c);
        _mm256_storeu_ps(dst + i + 24, d);
    }
    for (; i + 8 <= count; i += 8) {
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
    }
    lt_f16_to_f32_scalar(p + 2 * i, dst + i, count - i);
}

LT_AVX2 static void f32_to_f16_avx2(const float *src, void *dst, size_t count) {
    uint8_t *p = (uint8_t *)dst;
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m128i a = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        __m128i b = _mm256_cvtps_ph(_mm256_loadu_ps(src + i + 8), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(p + 2 * i), a);
        _mm_storeu_si128((__m128i *)(p + 2 * i + 16), b);
    }
    for (; i + 8 <= count; i += 8) {
        _mm_storeu_si128((__m128i *)(p + 2 * i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    }
    f32_to_f16_scalar(src + i, p + 2 * i, count - i);
}

LT_AVX2 static void bf16_to_f32_avx2(const void *src, float *dst, size_t count) {
    const uint8_t *p = (const uint8_t *)src;
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 2 * i)));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_slli_epi32(wide, 16));
    }
    bf16_to_f32_scalar(p + 2 * i, dst + i, count - i);
}

LT_AVX2 static void f32_to_bf16_avx2(const float *src, void *dst, size_t count) {
    uint8_t *p = (uint8_t *)dst;
    const __m256i bias = _mm256_set1_epi32(0x7fff);
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i quiet = _mm256_set1_epi32(0x40);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256i halves[2];
        for (int k = 0; k < 2; k++) {
            __m256 v = _mm256_loadu_ps(src + i + 8 * k);
            __m256i u = _mm256_castps_si256(v);
            __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
            __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, bias), odd), 16);
            __m256i nan_bits = _mm256_or_si256(_mm256_srli_epi32(u, 16), quiet);
            __m256 is_nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
            halves[k] = _mm256_blendv_epi8(rounded, nan_bits, _mm256_castps_si256(is_nan));
        }
        // packus works per 128-bit lane; the permute restores element order.
        __m256i packed = _mm256_packus_epi32(halves[0], halves[1]);
        packed = _mm256_permute4x64_epi64(packed, 0xd8);
        _mm256_storeu_si256((__m256i *)(p + 2 * i), packed);
    }
    f32_to_bf16_scalar(src + i, p + 2 * i, count - i);
}
#endif

// ---- dispatch ------------------------------------------------------------------

void lt_f16_to_f32(const void *src, float *dst, size_t count) {
#if defined(__x86_64__)
    if (lt_kernels_use_avx2()) { f16_to_f32_avx2(src, dst, count); return; }
#endif
    lt_f16_to_f32_scalar(src, dst, count);
}

void lt_f32_to_f16(const float *src, void *dst, size_t count) {
#if defined(__x86_64__)
    if (lt_kernels_use_avx2()) { f32_to_f16_avx2(src, dst, count); return; }
#endif
    f32_to_f16_scalar(src, dst, count);
}

void lt_bf16_to_f32(const void *src, float *dst, size_t count) {
#if defined(__x86_64__)
    if (lt_kernels_use_avx2()) { bf16_to_f32_avx2(src, dst, count); return; }
#endif
    bf16_to_f32_scalar(src, dst, count);
}

void lt_f32_to_bf16(const float *src, void *dst, size_t count) {
#if defined(__x86_64__)
    if (lt_kernels_use_avx2()) { f32_to_bf16_avx2(src, dst, count); return; }
#endif
    f32_to_bf16_scalar(src, dst, count);
}

// ---- float8 (scalar: fp8 files are small or written once) ------------------
// torch 2.x's `.to(torch.float8_e4m3fn)` / `.to(torch.float8_e5m2)` on the CPU, value for value
// (checked against Fixtures/golden/float8/, made by make_float8_golden.py): round to nearest even;
// e4m3fn has no infinity and saturates (|x| > 448 and ±inf give ±448), e5m2 overflows to ±inf
// like a half. NaN stays NaN with its sign. The normal path adds half an ulp (plus the odd bit
// for ties) and truncates, as float_to_half_bits does; subnormals are scaled onto the integer
// grid of the smallest subnormal and rounded by nearbyintf (the default rounding mode is RNE).

static inline uint8_t float_to_f8e4m3_bits(float value) {
    uint32_t x;
    memcpy(&x, &value, 4);
    uint8_t sign = (uint8_t)((x >> 24) & 0x80u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return sign | 0x7f;              // NaN
    if (x > 0x43e00000u) return sign | 0x7e;              // beyond 448 (and inf): saturate
    if (x < (121u << 23)) {                               // below 2^-6, the smallest normal
        float magnitude;
        memcpy(&magnitude, &x, 4);
        return sign | (uint8_t)nearbyintf(magnitude * 512.0f); // in units of 2^-9; 8 lands on 2^-6
    }
    uint32_t odd = (x >> 20) & 1u;
    x += ((7u - 127u) << 23) + 0x7ffffu + odd;
    return sign | (uint8_t)(x >> 20);                     // ≤ 448 never rounds into the NaN pattern
}

static inline uint8_t float_to_f8e5m2_bits(float value) {
    uint32_t x;
    memcpy(&x, &value, 4);
    uint8_t sign = (uint8_t)((x >> 24) & 0x80u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return sign | 0x7f;              // NaN
    if (x >= (143u << 23)) return sign | 0x7c;            // 65536 and beyond: inf
    if (x < (113u << 23)) {                               // below 2^-14
        float magnitude;
        memcpy(&magnitude, &x, 4);
        return sign | (uint8_t)nearbyintf(magnitude * 65536.0f); // units of 2^-16
    }
    uint32_t odd = (x >> 21) & 1u;
    x += ((15u - 127u) << 23) + 0xfffffu + odd;
    return sign | (uint8_t)(x >> 21);                     // 61440 and above round onto inf, as torch
}

void lt_f32_to_f8e4m3(const float *src, void *dst, size_t count) {
    uint8_t *p = (uint8_t *)dst;
    for (size_t i = 0; i < count; i++) p[i] = float_to_f8e4m3_bits(src[i]);
}

void lt_f32_to_f8e5m2(const float *src, void *dst, size_t count) {
    uint8_t *p = (uint8_t *)dst;
    for (size_t i = 0; i < count; i++) p[i] = float_to_f8e5m2_bits(src[i]);
}
