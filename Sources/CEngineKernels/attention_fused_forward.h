// Fused attention for one head on register tiles: softmax(q·kᵀ·scale)·v and each query row's log-sum-exp, with the
// scores never leaving registers (flash-attention's forward, Dao 2022, on register tiles rather than GEMM tiles).
// Written once in the vector vocabulary (attention_vector_*.h) and compiled per instruction set by
// attention_fused_avx512.c and attention_fused_avx2.c. The GEMM path (Attention.swift) writes each 128 × 1,024 tile of
// scores to L2, reads it back for the online softmax, and again as the left operand of p·v; its k = 40 and n = 40
// GEMMs ran at ~95 GFLOP/s a thread inside a training step, and its exponentials took a quarter of its time
// (Benchmarks/README.md).
//
// Schedule. q rows go in groups of GROUP; a group walks the keys span by span (a span's packed k and v, ~256 KB, stay
// in L2 while the group's tiles reuse them), and within a span each register tile of FR rows × FB keys
//   s    = (q·scale)·kᵀ             [FR][FB]   FR · NV accumulators: NV vectors of VL keys per row
//   m'   = rowmax(s) if it exceeds m by more than RESCALE_MARGIN, else m   (padded keys masked to −∞; score_tile)
//   p    = exp(s − m')              [FR][FB]   exp16 / exp8, the attention tiles' exponential
//   l    = l·exp(m − m') + Σ p      per row, kept as VL lane sums
//   acc  = acc·exp(m − m') + p·v    [FR][dv]   up to NV vectors of dv at a time
// and once a group has seen every key, o = acc / l and lse = m + log l.
// k is packed per head as transposed panels [FB keys][d] → [d][FB] (one aligned load per VL keys and column), v as
// rows of dv = d rounded up to VL floats, zero-padded so the padded keys and columns contribute exact zeros.
#include "attention_tiles.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#define GROUP 96    // query rows that share one pass over a span of keys (16 register tiles)
#define SPAN_FLOATS 65536  // packed k and v floats of one span (256 KB, L2)

// Keys per span for head width d: as many whole register tiles as fit SPAN_FLOATS, at least one.
static size_t span_keys(size_t d) {
    size_t keys = SPAN_FLOATS / (d + round_up(d, VL)) / FB * FB;
    return keys < FB ? FB : keys;
}

size_t KERNEL(lt_attention_fused_workspace)(size_t keys, size_t d) {
    size_t dv = round_up(d, VL), padded = round_up(keys, FB);
    return padded * d + padded * dv + GROUP * dv + GROUP * d + FR * FB + VL * GROUP + GROUP + FR + 16;
}

// One register tile's scores, online-softmax statistics and probabilities: rows qs [FR][d] (already scaled) against
// the `count` (≤ FB) keys of one panel [d][FB]. Writes the probabilities exp(s − m) to p [FR][FB] (zero for padded
// keys) and adds them to each row's lane sums l [FR][VL]. A row's reference maximum m moves only when a score exceeds
// it by more than RESCALE_MARGIN (and on the row's first tile): then l and the row's output are rescaled by
// exp(m_old − m_new), written to corr, and the function returns 1; otherwise corr is untouched and it returns 0.
// Any m ≤ the true maximum gives the same softmax (exp(s − m) ≤ e^8 keeps every sum finite); skipping the horizontal
// maximum, the scalar exponential and the rescaling on most tiles is what this buys.
#define RESCALE_MARGIN 8.0f
ISA static int score_tile(const float *qs, size_t d, const float *panel, size_t count, float *m, float *l, float *corr, float *p) {
    vf s[FR][NV];
    panel_products(qs, d, panel, d, s);
    if (count < FB) {
        const vf minus_infinity = v_set1(-INFINITY);
        for (int t = 0; t < NV; t++) {
            vmask valid = panel_mask(count, t);
            for (int r = 0; r < FR; r++) s[r][t] = v_select(valid, s[r][t], minus_infinity);
        }
    }
    int rescaled = 0;
    for (int r = 0; r < FR; r++) {
        vf row_max = s[r][0];
        for (int t = 1; t < NV; t++) row_max = v_max(row_max, s[r][t]);
        if (v_any_greater(row_max, v_set1(m[r] + RESCALE_MARGIN))) {
            float maximum = v_reduce_max(row_max);
            if (!rescaled) for (int i = 0; i < FR; i++) corr[i] = 1.0f;
            rescaled = 1;
            corr[r] = m[r] == -INFINITY ? 0.0f : exp_scalar(m[r] - maximum);
            v_store(l + VL * r, v_mul(v_load(l + VL * r), v_set1(corr[r])));
            m[r] = maximum;
        }
        vf shift = v_set1(-m[r]), sum = v_load(l + VL * r);
        for (int t = 0; t < NV; t++) {
            vf e = v_exp(v_add(s[r][t], shift));
            v_store(p + r * FB + VL * t, e);
            sum = v_add(sum, e);
        }
        v_store(l + VL * r, sum);
    }
    return rescaled;
}

ISA static void attention_fused(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                                float *o, size_t ldo, size_t queries, size_t keys, size_t d, float scale, float *lse, float *work) {
    size_t dv = round_up(d, VL), padded = round_up(keys, FB), span = span_keys(d);
    float *kt = (float *)(((uintptr_t)work + 63) & ~(uintptr_t)63);    // [padded / FB][d][FB]
    float *vp = kt + padded * d;                                         // [padded][dv]
    float *acc = vp + padded * dv;                                       // [GROUP][dv]
    float *qs = acc + GROUP * dv;                                        // [GROUP][d], q·scale
    float *p = qs + GROUP * d;                                           // [FR][FB]
    float *l = p + FR * FB;                                              // [GROUP][VL] lane sums
    float *m = l + VL * GROUP, *corr = m + GROUP;                        // [GROUP], [FR]
    pack_panels(k, ldk, keys, d, kt);
    pack_rows(v, ldv, keys, padded, d, dv, vp);
    for (size_t first = 0; first < queries; first += GROUP) {
        size_t rows = queries - first < GROUP ? queries - first : GROUP, tiles = (rows + FR - 1) / FR;
        for (size_t r = 0; r < tiles * FR; r++) {
            const float *source = q + (first + (r < rows ? r : rows - 1)) * ldq;   // padding rows repeat the last
            for (size_t c = 0; c < d; c++) qs[r * d + c] = source[c] * scale;
            memset(acc + r * dv, 0, sizeof(float) * dv);
            m[r] = -INFINITY;
            memset(l + VL * r, 0, sizeof(float) * VL);
        }
        for (size_t start = 0; start < keys; start += span) {
            size_t end = keys - start < span ? keys : start + span;
            for (size_t t = 0; t < tiles; t++) {
                for (size_t key = start; key < end; key += FB) {
                    size_t count = end - key < FB ? end - key : FB;
                    int rescaled = score_tile(qs + t * FR * d, d, kt + key / FB * d * FB, count, m + t * FR, l + VL * t * FR, corr, p);
                    rows_update(acc + t * FR * dv, dv, rescaled ? corr : NULL, p, FB, count, vp + key * dv, dv, dv / VL);
                }
            }
        }
        for (size_t r = 0; r < rows; r++) {
            float total = v_reduce_add(v_load(l + VL * r)), inverse = 1.0f / total;
            for (size_t c = 0; c < d; c++) o[(first + r) * ldo + c] = acc[r * dv + c] * inverse;
            if (lse) lse[first + r] = m[r] + logf(total);
        }
    }
}

int KERNEL(lt_attention_fused_head)(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv, float *o,
                                    size_t ldo, size_t queries, size_t keys, size_t d, float scale, float *lse, float *workspace) {
    if (d == 0 || keys == 0 || !KERNELS_ENABLED()) return 0;
    attention_fused(q, ldq, k, ldk, v, ldv, o, ldo, queries, keys, d, scale, lse, workspace);
    return 1;
}
