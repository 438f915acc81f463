// Backward kernels of nn.c's activations and softmax (training), on the same
// exp/erf approximations, with the same AVX2 / portable dispatch (and AVX-512
// for the attention tiles, as nn.c's online softmax).
//   silu'(x)  = s (1 + x (1 - s)),            s = sigmoid(x)
//   gelu'(x)  = Phi(x) + x phi(x)             (erf form)
//   quick'(x) = s + 1.702 x s (1 - s),        s = sigmoid(1.702 x)
//   attention: dS = P (dP - delta) scale, delta = sum_j P dP = sum_c dO O  (scores were multiplied by scale)
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

// ---- Attention backward, one tile of (query rows × keys) --------------------------------------
// The tiled backward (Attention+Backward.swift) rebuilds probabilities from the forward's per-row
// log-sum-exp instead of a softmax over all keys, as flash-attention's backward does (Dao 2022, alg. 4).

#if defined(__x86_64__)
AVX2 static void attention_probabilities_row_avx2(float *s, size_t n, float scale, float lse) {
    __m256 vs = _mm256_set1_ps(scale), shift = _mm256_set1_ps(-lse);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(s + i, exp8(_mm256_fmadd_ps(_mm256_loadu_ps(s + i), vs, shift)));
    for (; i < n; i++) s[i] = exp_scalar(s[i] * scale - lse);
}

AVX2 static void attention_score_gradient_row_avx2(const float *p, float *dp, size_t n, float delta, float scale) {
    __m256 d = _mm256_set1_ps(delta), vs = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 pv = _mm256_loadu_ps(p + i);
        _mm256_storeu_ps(dp + i, _mm256_mul_ps(_mm256_mul_ps(pv, _mm256_sub_ps(_mm256_loadu_ps(dp + i), d)), vs));
    }
    for (; i < n; i++) dp[i] = p[i] * (dp[i] - delta) * scale;
}

// The same two rows on sixteen lanes (exp16: each value bit-identical to the AVX2 path's), tails under a mask.
AVX512 static void attention_probabilities_row_avx512(float *s, size_t n, float scale, float lse) {
    __m512 vs = _mm512_set1_ps(scale), shift = _mm512_set1_ps(-lse);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(s + i, exp16(_mm512_fmadd_ps(_mm512_loadu_ps(s + i), vs, shift)));
    __mmask16 tail = tail_mask16(n - i);
    _mm512_mask_storeu_ps(s + i, tail, exp16(_mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, s + i), vs, shift)));
}

AVX512 static void attention_score_gradient_row_avx512(const float *p, float *dp, size_t n, float delta, float scale) {
    __m512 d = _mm512_set1_ps(delta), vs = _mm512_set1_ps(scale);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 pv = _mm512_loadu_ps(p + i);
        _mm512_storeu_ps(dp + i, _mm512_mul_ps(_mm512_mul_ps(pv, _mm512_sub_ps(_mm512_loadu_ps(dp + i), d)), vs));
    }
    __mmask16 tail = tail_mask16(n - i);
    __m512 pv = _mm512_maskz_loadu_ps(tail, p + i);
    _mm512_mask_storeu_ps(dp + i, tail, _mm512_mul_ps(_mm512_mul_ps(pv, _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, dp + i), d)), vs));
}
#endif

void lt_attention_probabilities(float *s, size_t rows, size_t cols, size_t ld, float scale, const float *lse, int causal,
                                ptrdiff_t diagonal) {
    for (size_t r = 0; r < rows; r++) {
        float *row = s + r * ld;
        size_t visible = attention_visible_keys(causal, diagonal, r, cols);
#if defined(__x86_64__)
        if (lt_kernels_use_avx512()) attention_probabilities_row_avx512(row, visible, scale, lse[r]);
        else if (lt_kernels_use_avx2()) attention_probabilities_row_avx2(row, visible, scale, lse[r]);
        else
#endif
        for (size_t j = 0; j < visible; j++) row[j] = exp_scalar(row[j] * scale - lse[r]);
        for (size_t j = visible; j < cols; j++) row[j] = 0;
    }
}

void lt_attention_score_gradient(const float *p, float *dp, size_t rows, size_t cols, size_t ld, const float *delta, float scale) {
    for (size_t r = 0; r < rows; r++) {
#if defined(__x86_64__)
        if (lt_kernels_use_avx512()) { attention_score_gradient_row_avx512(p + r * ld, dp + r * ld, cols, delta[r], scale); continue; }
        if (lt_kernels_use_avx2()) { attention_score_gradient_row_avx2(p + r * ld, dp + r * ld, cols, delta[r], scale); continue; }
#endif
        for (size_t j = 0; j < cols; j++) dp[r * ld + j] = p[r * ld + j] * (dp[r * ld + j] - delta[r]) * scale;
    }
}

// ---- GroupNorm backward (one item's group) -------------------------------------------------
// y = norm(x)·γ + β (then SiLU when fused); xhat = (x − mean)·rstd. With dz the gradient at the
// affine output (through SiLU's derivative, on nn.c's exp), per channel c:
//   dγ_c = Σ dz·xhat,  dβ_c = Σ dz,
//   dx   = rstd · (dz·γ_c − mean_i(dz·γ) − xhat · mean_i(dz·γ·xhat)),
// where the group means are Σ_c γ_c·dβ_c / n and Σ_c γ_c·dγ_c / n. dz is kept in dx between the
// two passes. Sums run in float lanes per channel and are reduced in double.
// dz (kept in dz), and channel sums dγ += dz·xhat, dβ += dz, over values [from, spatial) of one channel.
static inline void group_norm_dz_values(const float *x, const float *dy, float *dz, size_t from, size_t spatial, float mean,
                                        float rstd, int silu, float gamma, float beta, double *dgamma, double *dbeta) {
    for (size_t i = from; i < spatial; i++) {
        float xhat = (x[i] - mean) * rstd, d = dy[i];
        if (silu) d *= derivative_scalar(xhat * gamma + beta, 0);
        dz[i] = d;
        *dgamma += (double)d * xhat;
        *dbeta += d;
    }
}

// dx = rstd · ((dz·γ − a) − xhat·k) in place of dz, over values [from, spatial) of one channel.
static inline void group_norm_dx_values(const float *x, float *dx, size_t from, size_t spatial, float mean, float rstd, float gamma,
                                        float a, float k) {
    for (size_t i = from; i < spatial; i++) {
        float xhat = (x[i] - mean) * rstd;
        dx[i] = rstd * ((dx[i] * gamma - a) - xhat * k);
    }
}

#if defined(__x86_64__)
AVX2 static void group_norm_backward_avx2(const float *x, const float *dy, float *dx, size_t channels, size_t spatial,
                                          const float *gamma, const float *beta, float mean, float rstd, int silu,
                                          double *dgamma, double *dbeta) {
    const __m256 m = _mm256_set1_ps(mean), r = _mm256_set1_ps(rstd);
    for (size_t c = 0; c < channels; c++) {
        const float *xc = x + c * spatial, *dyc = dy + c * spatial;
        float *dzc = dx + c * spatial;
        const __m256 g = _mm256_set1_ps(gamma[c]), b = _mm256_set1_ps(beta[c]);
        __m256 sg = _mm256_setzero_ps(), sb = _mm256_setzero_ps();
        size_t i = 0;
        for (; i + 8 <= spatial; i += 8) {
            __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xc + i), m), r);
            __m256 d = _mm256_loadu_ps(dyc + i);
            if (silu) d = _mm256_mul_ps(d, derivative8(_mm256_fmadd_ps(xhat, g, b), 0));
            _mm256_storeu_ps(dzc + i, d);
            sg = _mm256_fmadd_ps(d, xhat, sg);
            sb = _mm256_add_ps(sb, d);
        }
        float lg[8], lb[8];
        _mm256_storeu_ps(lg, sg);
        _mm256_storeu_ps(lb, sb);
        double tg = 0, tb = 0;
        for (int l = 0; l < 8; l++) { tg += lg[l]; tb += lb[l]; }
        group_norm_dz_values(xc, dyc, dzc, i, spatial, mean, rstd, silu, gamma[c], beta[c], &tg, &tb);
        dgamma[c] = tg;
        dbeta[c] = tb;
    }
}

AVX2 static void group_norm_dx_avx2(const float *x, float *dx, size_t channels, size_t spatial, const float *gamma,
                                    float mean, float rstd, float meanDxHat, float meanDxHatXHat) {
    const __m256 m = _mm256_set1_ps(mean), r = _mm256_set1_ps(rstd);
    const __m256 a = _mm256_set1_ps(meanDxHat), k = _mm256_set1_ps(meanDxHatXHat);
    for (size_t c = 0; c < channels; c++) {
        const float *xc = x + c * spatial;
        float *dc = dx + c * spatial;
        const __m256 g = _mm256_set1_ps(gamma[c]);
        size_t i = 0;
        for (; i + 8 <= spatial; i += 8) {
            __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xc + i), m), r);
            __m256 inner = _mm256_sub_ps(_mm256_fmsub_ps(_mm256_loadu_ps(dc + i), g, a), _mm256_mul_ps(xhat, k));
            _mm256_storeu_ps(dc + i, _mm256_mul_ps(r, inner));
        }
        group_norm_dx_values(xc, dc, i, spatial, mean, rstd, gamma[c], meanDxHat, meanDxHatXHat);
    }
}
#endif

void lt_group_norm_backward(const float *x, const float *dy, float *dx, size_t channels, size_t spatial,
                            const float *gamma, const float *beta, double mean, double rstd, int silu,
                            double *dgamma, double *dbeta) {
    const float fm = (float)mean, fr = (float)rstd;
#if defined(__x86_64__)
    const int vector = lt_kernels_use_avx2();
    if (vector) group_norm_backward_avx2(x, dy, dx, channels, spatial, gamma, beta, fm, fr, silu, dgamma, dbeta);
#else
    const int vector = 0;
#endif
    if (!vector) {
        for (size_t c = 0; c < channels; c++) {
            double tg = 0, tb = 0;
            group_norm_dz_values(x + c * spatial, dy + c * spatial, dx + c * spatial, 0, spatial, fm, fr, silu, gamma[c], beta[c], &tg, &tb);
            dgamma[c] = tg;
            dbeta[c] = tb;
        }
    }
    double sumDxHat = 0, sumDxHatXHat = 0;
    for (size_t c = 0; c < channels; c++) {
        sumDxHat += gamma[c] * dbeta[c];
        sumDxHatXHat += gamma[c] * dgamma[c];
    }
    const double n = (double)(channels * spatial);
    const float a = (float)(sumDxHat / n), k = (float)(sumDxHatXHat / n);
#if defined(__x86_64__)
    if (vector) { group_norm_dx_avx2(x, dx, channels, spatial, gamma, fm, fr, a, k); return; }
#endif
    for (size_t c = 0; c < channels; c++) group_norm_dx_values(x + c * spatial, dx + c * spatial, 0, spatial, fm, fr, gamma[c], a, k);
}
