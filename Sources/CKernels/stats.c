// One pass over a tensor's raw bytes collecting what the health checks need
// (NaN/Inf/zero counts, sum, sum of squares, min, max). The fast path converts
// 8 values at a time and keeps float partial sums for short blocks, flushed to
// double, so a full-checkpoint scan runs near memory bandwidth.
#include "CKernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

void lt_stats_init(lt_stats *s) {
    memset(s, 0, sizeof(*s));
    s->min = INFINITY;
    s->max = -INFINITY;
}

void lt_stats_merge(lt_stats *into, const lt_stats *other) {
    into->count += other->count;
    into->nan_count += other->nan_count;
    into->inf_count += other->inf_count;
    into->zero_count += other->zero_count;
    into->sum += other->sum;
    into->sum_squares += other->sum_squares;
    if (other->min < into->min) into->min = other->min;
    if (other->max > into->max) into->max = other->max;
}

static inline float load_value(const uint8_t *p, size_t i, int kind) {
    if (kind == 0) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    if (kind == 2) {
        uint32_t bits = (uint32_t)h << 16;
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }
    float f;
    lt_f16_to_f32_scalar(&h, &f, 1);
    return f;
}

static void accumulate_scalar(lt_stats *s, const uint8_t *p, size_t count, int kind) {
    for (size_t i = 0; i < count; i++) {
        float v = load_value(p, i, kind);
        if (isnan(v)) { s->nan_count++; continue; }
        if (isinf(v)) { s->inf_count++; continue; }
        if (v == 0.0f) s->zero_count++;
        s->sum += v;
        s->sum_squares += (double)v * v;
        if (v < s->min) s->min = v;
        if (v > s->max) s->max = v;
    }
    s->count += count;
}

#if defined(__x86_64__)
#define LT_AVX2 __attribute__((target("avx2,f16c,fma")))

LT_AVX2 static inline __m256 load8(const uint8_t *p, size_t i, int kind) {
    if (kind == 0) return _mm256_loadu_ps((const float *)(p + 4 * i));
    __m128i raw = _mm_loadu_si128((const __m128i *)(p + 2 * i));
    if (kind == 1) return _mm256_cvtph_ps(raw);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

LT_AVX2 static inline double hsum(__m256 v) {
    float lanes[8];
    _mm256_storeu_ps(lanes, v);
    double total = 0;
    for (int k = 0; k < 8; k++) total += lanes[k];
    return total;
}

LT_AVX2 static void accumulate_avx2(lt_stats *s, const uint8_t *p, size_t count, int kind) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 inf = _mm256_set1_ps(INFINITY);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    const __m256 zero = _mm256_setzero_ps();
    __m256 vmin = inf, vmax = ninf;
    uint64_t nans = 0, infs = 0, zeros = 0;
    size_t i = 0;
    const size_t block = 2048; // float partial sums stay accurate over short blocks
    while (i + 8 <= count) {
        size_t end = i + block;
        if (end > count) end = count;
        __m256 sum = zero, squares = zero;
        for (; i + 8 <= end; i += 8) {
            __m256 v = load8(p, i, kind);
            __m256 is_nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
            __m256 is_inf = _mm256_cmp_ps(_mm256_and_ps(v, abs_mask), inf, _CMP_EQ_OQ);
            __m256 is_zero = _mm256_cmp_ps(v, zero, _CMP_EQ_OQ);
            __m256 bad = _mm256_or_ps(is_nan, is_inf);
            nans += (uint64_t)__builtin_popcount(_mm256_movemask_ps(is_nan));
            infs += (uint64_t)__builtin_popcount(_mm256_movemask_ps(is_inf));
            zeros += (uint64_t)__builtin_popcount(_mm256_movemask_ps(is_zero));
            __m256 finite = _mm256_blendv_ps(v, zero, bad);
            sum = _mm256_add_ps(sum, finite);
            squares = _mm256_fmadd_ps(finite, finite, squares);
            vmin = _mm256_min_ps(vmin, _mm256_blendv_ps(v, inf, bad));
            vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(v, ninf, bad));
        }
        s->sum += hsum(sum);
        s->sum_squares += hsum(squares);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, vmin);
    for (int k = 0; k < 8; k++) if (lanes[k] < s->min) s->min = lanes[k];
    _mm256_storeu_ps(lanes, vmax);
    for (int k = 0; k < 8; k++) if (lanes[k] > s->max) s->max = lanes[k];
    s->nan_count += nans;
    s->inf_count += infs;
    s->zero_count += zeros;
    s->count += i;
    size_t width = kind == 0 ? 4 : 2;
    accumulate_scalar(s, p + width * i, count - i, kind);
}
#endif

void lt_stats_accumulate(lt_stats *s, const void *src, size_t count, int kind) {
#if defined(__x86_64__)
    if (lt_kernels_use_avx2()) { accumulate_avx2(s, (const uint8_t *)src, count, kind); return; }
#endif
    accumulate_scalar(s, (const uint8_t *)src, count, kind);
}
