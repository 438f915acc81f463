// Backward kernels of nn.c's activations and softmax (training), on the same
// exp/erf approximations, with the same AVX2 / portable dispatch.
//   silu'(x)  = s (1 + x (1 - s)),            s = sigmoid(x)
//   gelu'(x)  = Phi(x) + x phi(x)             (erf form)
//   quick'(x) = s + 1.702 x s (1 - s),        s = sigmoid(1.702 x)
//   softmax:  dS = P (dP - sum_j P dP) scale  (scores were multiplied by scale)
#include "CEngineKernels.h"
#include "nn_approx.h"

static inline float derivative_scalar(float x, int kind) {
    if (kind == 1) {
        float cdf = 0.5f * (1.0f + erf_scalar(x * 0.70710678118654752f));
        return cdf + x * 0.39894228040143268f * exp_scalar(-0.5f * x * x);
    }
    float k = kind == 0 ? 1.0f : 1.702f;
    float s = 1.0f / (1.0f + exp_scalar(-k * x));
    return kind == 0 ? s * (1.0f + x * (1.0f - s)) : s + k * x * s * (1.0f - s);
}

#if defined(__x86_64__)
AVX2 static inline __m256 derivative8(__m256 x, int kind) {
    const __m256 one = _mm256_set1_ps(1.0f);
    if (kind == 1) {
        __m256 cdf = _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(one, erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)))));
        __m256 pdf = _mm256_mul_ps(_mm256_set1_ps(0.39894228040143268f), exp8(_mm256_mul_ps(_mm256_set1_ps(-0.5f), _mm256_mul_ps(x, x))));
        return _mm256_fmadd_ps(x, pdf, cdf);
    }
    __m256 k = _mm256_set1_ps(kind == 0 ? 1.0f : 1.702f);
    __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_mul_ps(_mm256_xor_ps(_mm256_set1_ps(-0.0f), k), x))));
    __m256 oneMinus = _mm256_sub_ps(one, s);
    if (kind == 0) return _mm256_mul_ps(s, _mm256_fmadd_ps(x, oneMinus, one));
    return _mm256_fmadd_ps(_mm256_mul_ps(k, x), _mm256_mul_ps(s, oneMinus), s);
}

AVX2 static void activation_backward_avx2(const float *x, const float *dy, float *dx, size_t n, int kind) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), derivative8(_mm256_loadu_ps(x + i), kind)));
    }
    for (; i < n; i++) dx[i] = dy[i] * derivative_scalar(x[i], kind);
}

AVX2 static void geglu_backward_avx2(const float *proj, const float *dy, float *dproj, size_t rows, size_t hidden) {
    for (size_t r = 0; r < rows; r++) {
        const float *a = proj + r * 2 * hidden, *g = a + hidden, *d = dy + r * hidden;
        float *da = dproj + r * 2 * hidden, *dg = da + hidden;
        size_t i = 0;
        for (; i + 8 <= hidden; i += 8) {
            __m256 gv = _mm256_loadu_ps(g + i), dv = _mm256_loadu_ps(d + i);
            __m256 gate = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), gv),
                                        _mm256_add_ps(_mm256_set1_ps(1.0f), erf8(_mm256_mul_ps(gv, _mm256_set1_ps(0.70710678118654752f)))));
            _mm256_storeu_ps(da + i, _mm256_mul_ps(dv, gate));
            _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(dv, _mm256_loadu_ps(a + i)), derivative8(gv, 1)));
        }
        for (; i < hidden; i++) {
            da[i] = d[i] * 0.5f * g[i] * (1.0f + erf_scalar(g[i] * 0.70710678118654752f));
            dg[i] = d[i] * a[i] * derivative_scalar(g[i], 1);
        }
    }
}

AVX2 static void softmax_backward_row_avx2(const float *p, float *dp, size_t n, float scale) {
    __m256 acc = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(p + i), _mm256_loadu_ps(dp + i), acc);
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    double dot = 0;
    for (int l = 0; l < 8; l++) dot += lanes[l];
    for (; i < n; i++) dot += (double)p[i] * dp[i];
    __m256 d = _mm256_set1_ps((float)dot), s = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 pv = _mm256_loadu_ps(p + i);
        _mm256_storeu_ps(dp + i, _mm256_mul_ps(_mm256_mul_ps(pv, _mm256_sub_ps(_mm256_loadu_ps(dp + i), d)), s));
    }
    for (; i < n; i++) dp[i] = p[i] * (dp[i] - (float)dot) * scale;
}
#endif

void lt_activation_backward(const float *x, const float *dy, float *dx, size_t n, int kind) {
#if defined(__x86_64__)
    if (lt_kernels_use_avx2()) { activation_backward_avx2(x, dy, dx, n, kind); return; }
#endif
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * derivative_scalar(x[i], kind);
}

void lt_geglu_backward(const float *proj, const float *dy, float *dproj, size_t rows, size_t hidden) {
#if defined(__x86_64__)
    if (lt_kernels_use_avx2()) { geglu_backward_avx2(proj, dy, dproj, rows, hidden); return; }
#endif
    for (size_t r = 0; r < rows; r++) {
        const float *a = proj + r * 2 * hidden, *g = a + hidden, *d = dy + r * hidden;
        float *da = dproj + r * 2 * hidden, *dg = da + hidden;
        for (size_t i = 0; i < hidden; i++) {
            da[i] = d[i] * 0.5f * g[i] * (1.0f + erf_scalar(g[i] * 0.70710678118654752f));
            dg[i] = d[i] * a[i] * derivative_scalar(g[i], 1);
        }
    }
}

void lt_softmax_backward_rows(const float *p, float *dp, size_t rows, size_t cols, size_t ld, float scale) {
    for (size_t r = 0; r < rows; r++) {
        const float *pr = p + r * ld;
        float *dr = dp + r * ld;
#if defined(__x86_64__)
        if (lt_kernels_use_avx2()) { softmax_backward_row_avx2(pr, dr, cols, scale); continue; }
#endif
        double dot = 0;
        for (size_t j = 0; j < cols; j++) dot += (double)pr[j] * dr[j];
        for (size_t j = 0; j < cols; j++) dr[j] = pr[j] * (dr[j] - (float)dot) * scale;
    }
}
