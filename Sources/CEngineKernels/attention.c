// Fused attention for one head: softmax(q k^T * scale) v without writing the
// score matrix to memory (the "flash attention" schedule with an online
// softmax). Four query rows at a time: their scores against a block of 64
// keys are computed into registers-sized tiles from a transposed copy of k,
// exponentiated against the running row maxima, and accumulated into the
// output with v; earlier sums are rescaled when a row's maximum grows.
// AVX2+FMA only, for head widths that are multiples of 8; callers fall back
// to GEMM + softmax otherwise.
#include "CEngineKernels.h"
#include "nn_approx.h" // exp8: the same exp as nn.c's softmax
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define ROWS 4
#define BLOCK 64

AVX2 static inline float hmax8(__m256 v) {
    __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_max_ps(a, _mm_movehl_ps(a, a));
    a = _mm_max_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

AVX2 static inline float hsum8(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    a = _mm_add_ss(a, _mm_shuffle_ps(a, a, 1));
    return _mm_cvtss_f32(a);
}

// s[r][0..BLOCK) = scale * q[r] . k for the keys of one panel: `panel` holds
// the block's keys transposed, [d][BLOCK], so consecutive c are 256 bytes
// apart (rows of the full transpose would be a power of two apart and evict
// each other from the cache).
AVX2 static void scores_block(const float *const q[ROWS], const float *panel, size_t d, float scale, float s[ROWS][BLOCK]) {
    for (size_t j = 0; j < BLOCK; j += 16) {
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        const float *k = panel + j;
        for (size_t c = 0; c < d; c++) {
            __m256 k0 = _mm256_load_ps(k + c * BLOCK), k1 = _mm256_load_ps(k + c * BLOCK + 8);
            __m256 b0 = _mm256_broadcast_ss(q[0] + c), b1 = _mm256_broadcast_ss(q[1] + c);
            __m256 b2 = _mm256_broadcast_ss(q[2] + c), b3 = _mm256_broadcast_ss(q[3] + c);
            a00 = _mm256_fmadd_ps(b0, k0, a00); a01 = _mm256_fmadd_ps(b0, k1, a01);
            a10 = _mm256_fmadd_ps(b1, k0, a10); a11 = _mm256_fmadd_ps(b1, k1, a11);
            a20 = _mm256_fmadd_ps(b2, k0, a20); a21 = _mm256_fmadd_ps(b2, k1, a21);
            a30 = _mm256_fmadd_ps(b3, k0, a30); a31 = _mm256_fmadd_ps(b3, k1, a31);
        }
        __m256 sc = _mm256_set1_ps(scale);
        _mm256_storeu_ps(s[0] + j, _mm256_mul_ps(a00, sc)); _mm256_storeu_ps(s[0] + j + 8, _mm256_mul_ps(a01, sc));
        _mm256_storeu_ps(s[1] + j, _mm256_mul_ps(a10, sc)); _mm256_storeu_ps(s[1] + j + 8, _mm256_mul_ps(a11, sc));
        _mm256_storeu_ps(s[2] + j, _mm256_mul_ps(a20, sc)); _mm256_storeu_ps(s[2] + j + 8, _mm256_mul_ps(a21, sc));
        _mm256_storeu_ps(s[3] + j, _mm256_mul_ps(a30, sc)); _mm256_storeu_ps(s[3] + j + 8, _mm256_mul_ps(a31, sc));
    }
}

// acc[r][0..d) += sum_j p[r][j] * v[j][0..d) over `count` keys.
AVX2 static void accumulate_block(float p[ROWS][BLOCK], size_t count, const float *v, size_t ldv, size_t d, float *acc) {
    size_t c = 0;
    for (; c + 24 <= d; c += 24) {
        __m256 x[ROWS][3];
        for (int r = 0; r < ROWS; r++) for (int t = 0; t < 3; t++) x[r][t] = _mm256_loadu_ps(acc + r * d + c + 8 * t);
        for (size_t j = 0; j < count; j++) {
            const float *row = v + j * ldv + c;
            __m256 v0 = _mm256_loadu_ps(row), v1 = _mm256_loadu_ps(row + 8), v2 = _mm256_loadu_ps(row + 16);
            for (int r = 0; r < ROWS; r++) {
                __m256 b = _mm256_broadcast_ss(&p[r][j]);
                x[r][0] = _mm256_fmadd_ps(b, v0, x[r][0]);
                x[r][1] = _mm256_fmadd_ps(b, v1, x[r][1]);
                x[r][2] = _mm256_fmadd_ps(b, v2, x[r][2]);
            }
        }
        for (int r = 0; r < ROWS; r++) for (int t = 0; t < 3; t++) _mm256_storeu_ps(acc + r * d + c + 8 * t, x[r][t]);
    }
    for (; c + 16 <= d; c += 16) {
        __m256 x[ROWS][2];
        for (int r = 0; r < ROWS; r++) for (int t = 0; t < 2; t++) x[r][t] = _mm256_loadu_ps(acc + r * d + c + 8 * t);
        for (size_t j = 0; j < count; j++) {
            const float *row = v + j * ldv + c;
            __m256 v0 = _mm256_loadu_ps(row), v1 = _mm256_loadu_ps(row + 8);
            for (int r = 0; r < ROWS; r++) {
                __m256 b = _mm256_broadcast_ss(&p[r][j]);
                x[r][0] = _mm256_fmadd_ps(b, v0, x[r][0]);
                x[r][1] = _mm256_fmadd_ps(b, v1, x[r][1]);
            }
        }
        for (int r = 0; r < ROWS; r++) for (int t = 0; t < 2; t++) _mm256_storeu_ps(acc + r * d + c + 8 * t, x[r][t]);
    }
    for (; c < d; c += 8) {
        // Two sets of accumulators (even and odd keys) so the FMA chains overlap.
        __m256 x[ROWS], y[ROWS];
        for (int r = 0; r < ROWS; r++) { x[r] = _mm256_loadu_ps(acc + r * d + c); y[r] = _mm256_setzero_ps(); }
        size_t j = 0;
        for (; j + 2 <= count; j += 2) {
            __m256 v0 = _mm256_loadu_ps(v + j * ldv + c), v1 = _mm256_loadu_ps(v + (j + 1) * ldv + c);
            for (int r = 0; r < ROWS; r++) {
                x[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&p[r][j]), v0, x[r]);
                y[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&p[r][j + 1]), v1, y[r]);
            }
        }
        for (; j < count; j++) {
            __m256 v0 = _mm256_loadu_ps(v + j * ldv + c);
            for (int r = 0; r < ROWS; r++) x[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(&p[r][j]), v0, x[r]);
        }
        for (int r = 0; r < ROWS; r++) _mm256_storeu_ps(acc + r * d + c, _mm256_add_ps(x[r], y[r]));
    }
}

#define QUERY_BLOCK 64

AVX2 static void attention_avx2(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                                float *o, size_t ldo, size_t queries, size_t keys, size_t d, float scale, float *work) {
    // Keys as transposed panels of BLOCK keys, padded with zeros (those scores
    // are masked below); values packed densely, [keys][d].
    size_t padded = (keys + BLOCK - 1) / BLOCK * BLOCK;
    float *kt = (float *)(((uintptr_t)work + 31) & ~(uintptr_t)31);
    for (size_t j = 0; j < padded; j++) {
        float *panel = kt + (j / BLOCK) * d * BLOCK + j % BLOCK;
        for (size_t c = 0; c < d; c++) panel[c * BLOCK] = j < keys ? k[j * ldk + c] : 0.0f;
    }
    float *vp = kt + d * padded;
    for (size_t j = 0; j < keys; j++) memcpy(vp + j * d, v + j * ldv, sizeof(float) * d);
    float *acc = vp + d * keys;  // QUERY_BLOCK x d
    static __thread float s[QUERY_BLOCK][BLOCK] __attribute__((aligned(32)));
    float maximum[QUERY_BLOCK], total[QUERY_BLOCK];
    for (size_t row0 = 0; row0 < queries; row0 += QUERY_BLOCK) {
        size_t rows = queries - row0 < QUERY_BLOCK ? queries - row0 : QUERY_BLOCK;
        size_t groups = (rows + ROWS - 1) / ROWS;
        for (size_t r = 0; r < QUERY_BLOCK; r++) { maximum[r] = -INFINITY; total[r] = 0; }
        memset(acc, 0, sizeof(float) * QUERY_BLOCK * d);
        for (size_t key0 = 0; key0 < keys; key0 += BLOCK) {
            size_t count = keys - key0 < BLOCK ? keys - key0 : BLOCK;
            for (size_t g = 0; g < groups; g++) {
                const float *qr[ROWS];
                for (int r = 0; r < ROWS; r++) {
                    size_t row = g * ROWS + r;
                    qr[r] = q + (row0 + (row < rows ? row : 0)) * ldq;
                }
                scores_block(qr, kt + (key0 / BLOCK) * d * BLOCK, d, scale, (float (*)[BLOCK])s[g * ROWS]);
            }
            for (size_t r = 0; r < groups * ROWS; r++) {
                for (size_t j = count; j < BLOCK; j++) s[r][j] = -INFINITY;
                __m256 mx = _mm256_set1_ps(-INFINITY);
                for (size_t j = 0; j < BLOCK; j += 8) mx = _mm256_max_ps(mx, _mm256_load_ps(s[r] + j));
                float block_max = hmax8(mx);
                float new_max = block_max > maximum[r] ? block_max : maximum[r];
                float correction = maximum[r] == -INFINITY ? 0.0f : expf(maximum[r] - new_max);
                __m256 shift = _mm256_set1_ps(-new_max), sum = _mm256_setzero_ps();
                for (size_t j = 0; j < BLOCK; j += 8) {
                    __m256 e = exp8(_mm256_add_ps(_mm256_load_ps(s[r] + j), shift));
                    _mm256_store_ps(s[r] + j, e);
                    sum = _mm256_add_ps(sum, e);
                }
                total[r] = total[r] * correction + hsum8(sum);
                maximum[r] = new_max;
                if (correction != 1.0f) {
                    __m256 cv = _mm256_set1_ps(correction);
                    for (size_t c = 0; c < d; c += 8) _mm256_storeu_ps(acc + r * d + c, _mm256_mul_ps(_mm256_loadu_ps(acc + r * d + c), cv));
                }
            }
            for (size_t g = 0; g < groups; g++) {
                accumulate_block((float (*)[BLOCK])s[g * ROWS], count, vp + key0 * d, d, d, acc + g * ROWS * d);
            }
        }
        for (size_t r = 0; r < rows; r++) {
            __m256 inv = _mm256_set1_ps(1.0f / total[r]);
            for (size_t c = 0; c < d; c += 8) _mm256_storeu_ps(o + (row0 + r) * ldo + c, _mm256_mul_ps(_mm256_loadu_ps(acc + r * d + c), inv));
        }
    }
}
#endif

size_t lt_attention_workspace(size_t keys, size_t d) {
    return d * ((keys + 63) / 64 * 64) + d * keys + 64 * d + 8;
}

int lt_attention_head(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv, float *o, size_t ldo,
                      size_t queries, size_t keys, size_t d, float scale, float *workspace) {
#if defined(__x86_64__)
    if (d % 8 == 0 && d > 0 && keys > 0 && lt_kernels_use_avx2()) {
        attention_avx2(q, ldq, k, ldk, v, ldv, o, ldo, queries, keys, d, scale, workspace);
        return 1;
    }
#endif
    (void)q; (void)ldq; (void)k; (void)ldk; (void)v; (void)ldv; (void)o; (void)ldo; (void)queries; (void)keys; (void)d;
    (void)scale; (void)workspace;
    return 0;
}
