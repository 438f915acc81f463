// Fused attention for one head on AVX-512: softmax(q·kᵀ·scale)·v and each query row's log-sum-exp, with the scores
// never leaving registers (flash-attention's forward, Dao 2022, on register tiles rather than GEMM tiles). The GEMM
// path (Attention.swift) writes each 128 × 1,024 tile of scores to L2, reads it back for the online softmax, and again
// as the left operand of p·v; its k = 40 and n = 40 GEMMs ran at ~95 GFLOP/s a thread inside a training step, and its
// exponentials took a quarter of its time (Benchmarks/README.md).
//
// Schedule. q rows go in groups of GROUP; a group walks the keys span by span (a span's packed k and v, ~256 KB, stay
// in L2 while the group's tiles reuse them), and within a span each register tile of FR rows × FB keys
//   s    = (q·scale)·kᵀ             [FR][FB]   24 accumulators: four 16-key vectors per row
//   m'   = rowmax(s) if it exceeds m by more than RESCALE_MARGIN, else m   (padded keys masked to −∞; score_tile)
//   p    = exp(s − m')              [FR][FB]   exp16, the AVX-512 path's exponential of the attention tiles
//   l    = l·exp(m − m') + Σ p      per row
//   acc  = acc·exp(m − m') + p·v    [FR][dv]   up to 4 vectors of dv at a time (6 × 4 accumulators)
// and once a group has seen every key, o = acc / l and lse = m + log l.
// k is packed per head as transposed panels [FB keys][d] → [d][FB] (one aligned load per 16 keys and column), v as
// rows of dv = d rounded up to 16 floats, zero-padded so the padded keys and columns contribute exact zeros.
#include "CEngineKernels.h"
#include "attention_tiles.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#define GROUP 96    // query rows that share one pass over a span of keys (16 register tiles)
#define SPAN_FLOATS 65536  // packed k and v floats of one span (256 KB, L2)

// Keys per span for head width d: as many whole register tiles as fit SPAN_FLOATS, at least one.
static size_t span_keys(size_t d) {
    size_t keys = SPAN_FLOATS / (d + round_up(d, 16)) / FB * FB;
    return keys < FB ? FB : keys;
}

size_t lt_attention_workspace_avx512(size_t keys, size_t d) {
    size_t dv = round_up(d, 16), padded = round_up(keys, FB);
    return padded * d + padded * dv + GROUP * dv + GROUP * d + FR * FB + 16 * GROUP + GROUP + FR + 16;
}

#if defined(__x86_64__)
// One register tile's scores, online-softmax statistics and probabilities: rows qs [FR][d] (already scaled) against
// the `count` (≤ FB) keys of one panel [d][FB]. Writes the probabilities exp(s − m) to p [FR][FB] (zero for padded
// keys) and adds them to each row's lane sums l [FR][16]. A row's reference maximum m moves only when a score exceeds
// it by more than RESCALE_MARGIN (and on the row's first tile): then l and the row's output are rescaled by
// exp(m_old − m_new), written to corr, and the function returns 1; otherwise corr is untouched and it returns 0.
// Any m ≤ the true maximum gives the same softmax (exp(s − m) ≤ e^8 keeps every sum finite); skipping the horizontal
// maximum, the scalar exponential and the rescaling on most tiles is what this buys.
#define RESCALE_MARGIN 8.0f
AVX512 static int score_tile(const float *qs, size_t d, const float *panel, size_t count, float *m, float *l, float *corr, float *p) {
    __m512 s[FR][4];
    panel_products(qs, d, panel, d, s);
    if (count < FB) {
        const __m512 minus_infinity = _mm512_set1_ps(-INFINITY);
        for (int t = 0; t < 4; t++) {
            __mmask16 valid = panel_mask(count, t);
            for (int r = 0; r < FR; r++) s[r][t] = _mm512_mask_mov_ps(minus_infinity, valid, s[r][t]);
        }
    }
    int rescaled = 0;
    for (int r = 0; r < FR; r++) {
        __m512 row_max = _mm512_max_ps(_mm512_max_ps(s[r][0], s[r][1]), _mm512_max_ps(s[r][2], s[r][3]));
        if (_mm512_cmp_ps_mask(row_max, _mm512_set1_ps(m[r] + RESCALE_MARGIN), _CMP_GT_OQ)) {
            float maximum = _mm512_reduce_max_ps(row_max);
            if (!rescaled) for (int i = 0; i < FR; i++) corr[i] = 1.0f;
            rescaled = 1;
            corr[r] = m[r] == -INFINITY ? 0.0f : exp_scalar(m[r] - maximum);
            _mm512_store_ps(l + 16 * r, _mm512_mul_ps(_mm512_load_ps(l + 16 * r), _mm512_set1_ps(corr[r])));
            m[r] = maximum;
        }
        __m512 shift = _mm512_set1_ps(-m[r]), sum = _mm512_load_ps(l + 16 * r);
        for (int t = 0; t < 4; t++) {
            __m512 e = exp16(_mm512_add_ps(s[r][t], shift));
            _mm512_store_ps(p + r * FB + 16 * t, e);
            sum = _mm512_add_ps(sum, e);
        }
        _mm512_store_ps(l + 16 * r, sum);
    }
    return rescaled;
}

AVX512 static void attention_avx512(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                                    float *o, size_t ldo, size_t queries, size_t keys, size_t d, float scale, float *lse,
                                    float *work) {
    size_t dv = round_up(d, 16), padded = round_up(keys, FB), span = span_keys(d);
    float *kt = (float *)(((uintptr_t)work + 63) & ~(uintptr_t)63);    // [padded / FB][d][FB]
    float *vp = kt + padded * d;                                         // [padded][dv]
    float *acc = vp + padded * dv;                                       // [GROUP][dv]
    float *qs = acc + GROUP * dv;                                        // [GROUP][d], q·scale
    float *p = qs + GROUP * d;                                           // [FR][FB]
    float *l = p + FR * FB;                                              // [GROUP][16] lane sums
    float *m = l + 16 * GROUP, *corr = m + GROUP;                        // [GROUP], [FR]
    pack_panels(k, ldk, keys, d, kt);
    pack_rows(v, ldv, keys, padded, d, dv, vp);
    for (size_t first = 0; first < queries; first += GROUP) {
        size_t rows = queries - first < GROUP ? queries - first : GROUP, tiles = (rows + FR - 1) / FR;
        for (size_t r = 0; r < tiles * FR; r++) {
            const float *source = q + (first + (r < rows ? r : rows - 1)) * ldq;   // padding rows repeat the last
            for (size_t c = 0; c < d; c++) qs[r * d + c] = source[c] * scale;
            memset(acc + r * dv, 0, sizeof(float) * dv);
            m[r] = -INFINITY;
            memset(l + 16 * r, 0, sizeof(float) * 16);
        }
        for (size_t start = 0; start < keys; start += span) {
            size_t end = keys - start < span ? keys : start + span;
            for (size_t t = 0; t < tiles; t++) {
                for (size_t key = start; key < end; key += FB) {
                    size_t count = end - key < FB ? end - key : FB;
                    int rescaled = score_tile(qs + t * FR * d, d, kt + key / FB * d * FB, count, m + t * FR, l + 16 * t * FR, corr, p);
                    rows_update(acc + t * FR * dv, dv, rescaled ? corr : NULL, p, FB, count, vp + key * dv, dv, dv / 16);
                }
            }
        }
        for (size_t r = 0; r < rows; r++) {
            float total = _mm512_reduce_add_ps(_mm512_load_ps(l + 16 * r)), inverse = 1.0f / total;
            for (size_t c = 0; c < d; c++) o[(first + r) * ldo + c] = acc[r * dv + c] * inverse;
            if (lse) lse[first + r] = m[r] + logf(total);
        }
    }
}
#endif

int lt_attention_head_avx512(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv, float *o,
                             size_t ldo, size_t queries, size_t keys, size_t d, float scale, float *lse, float *workspace) {
#if defined(__x86_64__)
    if (d > 0 && keys > 0 && lt_kernels_use_avx512()) {
        attention_avx512(q, ldq, k, ldk, v, ldv, o, ldo, queries, keys, d, scale, lse, workspace);
        return 1;
    }
#endif
    (void)q; (void)ldq; (void)k; (void)ldk; (void)v; (void)ldv; (void)o; (void)ldo; (void)queries; (void)keys; (void)d;
    (void)scale; (void)lse; (void)workspace;
    return 0;
}
