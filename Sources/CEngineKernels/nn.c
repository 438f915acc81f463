// Element-wise kernels of the diffusion engine: softmax, SiLU, GELU, GEGLU.
// A U-Net step at 512x512 evaluates about 1.4 billion exponentials in its
// softmaxes alone, so these run in AVX2+FMA when the CPU has it; the portable
// path computes the same formulas with scalar code.
//
// exp: Cody–Waite range reduction x = n*ln2 + r and a degree-6 polynomial for
// e^r on |r| <= ln2/2 (relative error about 2e-7).
// erf: Abramowitz & Stegun 7.1.26 (absolute error <= 1.5e-7), the formula
// PyTorch's vectorised CPU GELU uses, so both engines agree closely.
#include "CEngineKernels.h"
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

static inline float gelu_scalar(float x) { return 0.5f * x * (1.0f + erf_scalar(x * 0.70710678118654752f)); }
static inline float silu_scalar(float x) { return x / (1.0f + exp_scalar(-x)); }
static inline float quick_gelu_scalar(float x) { return x / (1.0f + exp_scalar(-1.702f * x)); }

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

AVX2 static inline __m256 gelu8(__m256 x) {
    __m256 e = erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

AVX2 static inline __m256 sigmoid_times8(__m256 x, __m256 k) {
    // x * sigmoid(k x)
    __m256 e = exp8(_mm256_mul_ps(_mm256_xor_ps(_mm256_set1_ps(-0.0f), k), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

AVX2 static void softmax_row_avx2(float *row, size_t n, float scale) {
    size_t i = 0;
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row + i));
    float m[8];
    _mm256_storeu_ps(m, vmax);
    float maximum = -INFINITY;
    for (int k = 0; k < 8; k++) maximum = m[k] > maximum ? m[k] : maximum;
    for (; i < n; i++) maximum = row[i] > maximum ? row[i] : maximum;
    if (maximum == -INFINITY) maximum = 0;
    __m256 vscale = _mm256_set1_ps(scale), vshift = _mm256_set1_ps(-maximum * scale);
    __m256 vsum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_fmadd_ps(_mm256_loadu_ps(row + i), vscale, vshift));
        _mm256_storeu_ps(row + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    float s[8];
    _mm256_storeu_ps(s, vsum);
    double sum = 0;
    for (int k = 0; k < 8; k++) sum += s[k];
    for (; i < n; i++) {
        row[i] = exp_scalar(row[i] * scale - maximum * scale);
        sum += row[i];
    }
    __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), inv));
    float invs = (float)(1.0 / sum);
    for (; i < n; i++) row[i] *= invs;
}

AVX2 static void map_avx2(const float *x, float *y, size_t n, int kind) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 r;
        switch (kind) {
        case 0: r = sigmoid_times8(v, _mm256_set1_ps(1.0f)); break;
        case 1: r = gelu8(v); break;
        default: r = sigmoid_times8(v, _mm256_set1_ps(1.702f)); break;
        }
        _mm256_storeu_ps(y + i, r);
    }
    for (; i < n; i++) {
        y[i] = kind == 0 ? silu_scalar(x[i]) : (kind == 1 ? gelu_scalar(x[i]) : quick_gelu_scalar(x[i]));
    }
}

AVX2 static void geglu_avx2(const float *proj, float *out, size_t rows, size_t hidden) {
    for (size_t r = 0; r < rows; r++) {
        const float *a = proj + r * 2 * hidden, *g = a + hidden;
        float *o = out + r * hidden;
        size_t i = 0;
        for (; i + 8 <= hidden; i += 8) {
            _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(a + i), gelu8(_mm256_loadu_ps(g + i))));
        }
        for (; i < hidden; i++) o[i] = a[i] * gelu_scalar(g[i]);
    }
}
#endif

static int use_avx2(void) { return lt_kernels_use_avx2(); }

static void map_scalar(const float *x, float *y, size_t n, int kind) {
    for (size_t i = 0; i < n; i++) {
        y[i] = kind == 0 ? silu_scalar(x[i]) : (kind == 1 ? gelu_scalar(x[i]) : quick_gelu_scalar(x[i]));
    }
}

static void softmax_row_scalar(float *row, size_t n, float scale) {
    float maximum = -INFINITY;
    for (size_t i = 0; i < n; i++) maximum = row[i] > maximum ? row[i] : maximum;
    if (maximum == -INFINITY) maximum = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        row[i] = exp_scalar(row[i] * scale - maximum * scale);
        sum += row[i];
    }
    float inv = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++) row[i] *= inv;
}

void lt_softmax_rows(float *x, size_t rows, size_t cols, size_t ld, float scale) {
#if defined(__x86_64__)
    if (use_avx2()) {
        for (size_t r = 0; r < rows; r++) softmax_row_avx2(x + r * ld, cols, scale);
        return;
    }
#endif
    for (size_t r = 0; r < rows; r++) softmax_row_scalar(x + r * ld, cols, scale);
}

static void map(const float *x, float *y, size_t n, int kind) {
#if defined(__x86_64__)
    if (use_avx2()) { map_avx2(x, y, n, kind); return; }
#endif
    map_scalar(x, y, n, kind);
}

void lt_silu(const float *x, float *y, size_t n) { map(x, y, n, 0); }
void lt_gelu(const float *x, float *y, size_t n) { map(x, y, n, 1); }
void lt_quick_gelu(const float *x, float *y, size_t n) { map(x, y, n, 2); }

void lt_geglu(const float *proj, float *out, size_t rows, size_t hidden) {
#if defined(__x86_64__)
    if (use_avx2()) { geglu_avx2(proj, out, rows, hidden); return; }
#endif
    for (size_t r = 0; r < rows; r++) {
        const float *a = proj + r * 2 * hidden, *g = a + hidden;
        for (size_t i = 0; i < hidden; i++) out[r * hidden + i] = a[i] * gelu_scalar(g[i]);
    }
}

float lt_exp(float x) { return exp_scalar(x); }
float lt_erf(float x) { return erf_scalar(x); }

