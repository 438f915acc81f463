// Element-wise kernels of the diffusion engine: softmax, SiLU, GELU, GEGLU.
// A U-Net step at 512x512 evaluates about 1.4 billion exponentials in its
// softmaxes alone, so these run in AVX2+FMA when the CPU has it, and the
// softmaxes (attention's online tile, the VAE's rows) on AVX-512 where the CPU
// has that (exp16: exp8's values bit for bit); the portable path computes the
// same formulas with scalar code.
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

#include "nn_approx.h"

static inline float gelu_scalar(float x) { return 0.5f * x * (1.0f + erf_scalar(x * 0.70710678118654752f)); }
static inline float silu_scalar(float x) { return x / (1.0f + exp_scalar(-x)); }
static inline float quick_gelu_scalar(float x) { return x / (1.0f + exp_scalar(-1.702f * x)); }

#if defined(__x86_64__)
AVX2 static inline __m256 gelu8(__m256 x) {
    __m256 e = erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

AVX2 static inline __m256 sigmoid_times8(__m256 x, __m256 k) {
    // x * sigmoid(k x)
    __m256 e = exp8(_mm256_mul_ps(_mm256_xor_ps(_mm256_set1_ps(-0.0f), k), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

// The largest of n floats (-inf for none): softmax's and the online softmax's first pass.
AVX2 static float row_max_avx2(const float *row, size_t n) {
    size_t i = 0;
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row + i));
    float m[8];
    _mm256_storeu_ps(m, vmax);
    float maximum = -INFINITY;
    for (int k = 0; k < 8; k++) maximum = m[k] > maximum ? m[k] : maximum;
    for (; i < n; i++) maximum = row[i] > maximum ? row[i] : maximum;
    return maximum;
}

AVX2 static void softmax_row_avx2(float *row, size_t n, float scale) {
    size_t i = 0;
    float maximum = row_max_avx2(row, n);
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

// The same passes on sixteen lanes, the tail under a mask.
AVX512 static float row_max_avx512(const float *row, size_t n) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(row + i));
    __mmask16 tail = tail_mask16(n - i);
    vmax = _mm512_mask_max_ps(vmax, tail, vmax, _mm512_maskz_loadu_ps(tail, row + i));
    return _mm512_reduce_max_ps(vmax);
}

// row[i] = exp(row[i]·scale + shift) for n values; returns their sum (lanes reduced in double, as the AVX2 path).
AVX512 static double exp_row_avx512(float *row, size_t n, float scale, float shift) {
    __m512 vs = _mm512_set1_ps(scale), vshift = _mm512_set1_ps(shift), vsum = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_fmadd_ps(_mm512_loadu_ps(row + i), vs, vshift));
        _mm512_storeu_ps(row + i, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    if (i < n) {
        __mmask16 tail = tail_mask16(n - i);
        __m512 e = _mm512_maskz_mov_ps(tail, exp16(_mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, row + i), vs, vshift)));
        _mm512_mask_storeu_ps(row + i, tail, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    float lanes[16];
    _mm512_storeu_ps(lanes, vsum);
    double sum = 0;
    for (int k = 0; k < 16; k++) sum += lanes[k];
    return sum;
}

AVX512 static void softmax_row_avx512(float *row, size_t n, float scale) {
    float maximum = row_max_avx512(row, n);
    if (maximum == -INFINITY) maximum = 0;
    double sum = exp_row_avx512(row, n, scale, -maximum * scale);
    __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(row + i, _mm512_mul_ps(_mm512_loadu_ps(row + i), inv));
    __mmask16 tail = tail_mask16(n - i);
    _mm512_mask_storeu_ps(row + i, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, row + i), inv));
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
    if (lt_kernels_use_avx512()) {
        for (size_t r = 0; r < rows; r++) softmax_row_avx512(x + r * ld, cols, scale);
        return;
    }
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

// ---- Attention forward, one tile of keys at a time (the GEMM-based online softmax) ------------
// Flash-attention's forward (Dao 2022, alg. 1) with the two products left to GEMMs on tiles that stay
// in cache: per key tile the caller computes s = q·kᵀ, this turns s into exp(s·scale − m_new) while
// each row's running maximum m (of scaled scores) and sum l are updated, and rescales the row's output
// so far by exp(m_old − m_new) (writing zeros on a row's first visible tile) before the caller adds p·v.

// A row's running statistics moved to its new maximum, with this tile's sum of exponentials added; the
// row's output so far rescaled to match (zeroed when the row had seen no key yet).
static void online_update(float *m, float *l, float maximum, double sum, float *out, size_t d) {
    if (*m == -INFINITY) { memset(out, 0, d * sizeof(float)); *l = (float)sum; }
    else {
        float factor = exp_scalar(*m - maximum);
        for (size_t c = 0; c < d; c++) out[c] *= factor;
        *l = *l * factor + (float)sum;
    }
    *m = maximum;
}

static void online_row_scalar(float *row, size_t visible, float scale, float *m, float *l, float *out, size_t d) {
    float maximum = *m;
    for (size_t j = 0; j < visible; j++) maximum = row[j] * scale > maximum ? row[j] * scale : maximum;
    double sum = 0;
    for (size_t j = 0; j < visible; j++) { row[j] = exp_scalar(row[j] * scale - maximum); sum += row[j]; }
    online_update(m, l, maximum, sum, out, d);
}

#if defined(__x86_64__)
AVX2 static void online_row_avx2(float *row, size_t visible, float scale, float *m, float *l, float *out, size_t d) {
    __m256 vs = _mm256_set1_ps(scale);
    size_t j;
    float lanes[8], raw = row_max_avx2(row, visible);
    float maximum = raw * scale > *m ? raw * scale : *m;
    __m256 shift = _mm256_set1_ps(-maximum), vsum = _mm256_setzero_ps();
    for (j = 0; j + 8 <= visible; j += 8) {
        __m256 e = exp8(_mm256_fmadd_ps(_mm256_loadu_ps(row + j), vs, shift));
        _mm256_storeu_ps(row + j, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    _mm256_storeu_ps(lanes, vsum);
    double sum = 0;
    for (int k = 0; k < 8; k++) sum += lanes[k];
    for (; j < visible; j++) { row[j] = exp_scalar(row[j] * scale - maximum); sum += row[j]; }
    online_update(m, l, maximum, sum, out, d);
}

AVX512 static void online_row_avx512(float *row, size_t visible, float scale, float *m, float *l, float *out, size_t d) {
    float raw = row_max_avx512(row, visible);
    float maximum = raw * scale > *m ? raw * scale : *m;
    online_update(m, l, maximum, exp_row_avx512(row, visible, scale, -maximum), out, d);
}
#endif

void lt_attention_online_tile(float *s, size_t rows, size_t cols, size_t ld, float scale, float *row_max, float *row_sum,
                              float *out, size_t out_stride, size_t d, int causal, ptrdiff_t diagonal) {
    for (size_t r = 0; r < rows; r++) {
        float *row = s + r * ld;
        size_t visible = attention_visible_keys(causal, diagonal, r, cols);
        if (visible > 0) {
#if defined(__x86_64__)
            if (lt_kernels_use_avx512()) online_row_avx512(row, visible, scale, row_max + r, row_sum + r, out + r * out_stride, d);
            else if (use_avx2()) online_row_avx2(row, visible, scale, row_max + r, row_sum + r, out + r * out_stride, d);
            else
#endif
            online_row_scalar(row, visible, scale, row_max + r, row_sum + r, out + r * out_stride, d);
        }
        for (size_t j = visible; j < cols; j++) row[j] = 0;
    }
}

void lt_attention_online_finish(float *out, size_t rows, size_t out_stride, size_t d, const float *row_max, const float *row_sum,
                                float *lse) {
    for (size_t r = 0; r < rows; r++) {
        float inv = 1.0f / row_sum[r];
        for (size_t c = 0; c < d; c++) out[r * out_stride + c] *= inv;
        if (lse) lse[r] = row_max[r] + logf(row_sum[r]);
    }
}
