// AVX-512 register tiles shared by the fused attention forward (attention_avx512.c) and backward
// (attention_backward_avx512.c): one head's keys packed as transposed panels, rows padded to whole vectors, the
// FR × FB block of dot products against a panel, and rank-k updates of a few rows held in registers.
#ifndef LORA_TOOLS_ATTENTION_TILES_H
#define LORA_TOOLS_ATTENTION_TILES_H

#include "nn_approx.h"
#include <stddef.h>
#include <string.h>

#define FR 6        // query rows of a register tile
#define FB 64       // keys of a register tile, and of a panel: four vectors

static inline size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

// x [rows][ld] (first d columns) → panels [round_up(rows, FB) / FB][d][FB], zero-padded: panel b holds rows
// b·FB … b·FB + FB − 1 transposed, so one aligned load reads a column of 16 rows (the full transpose would put
// consecutive columns a power of two apart, where they evict each other from the cache).
static inline void pack_panels(const float *x, size_t ld, size_t rows, size_t d, float *panels) {
    for (size_t j = 0, padded = round_up(rows, FB); j < padded; j++) {
        float *panel = panels + (j / FB) * d * FB + j % FB;
        for (size_t c = 0; c < d; c++) panel[c * FB] = j < rows ? x[j * ld + c] : 0.0f;
    }
}

// x [rows][ld] (first d columns) → out [padded_rows][dv], zeros past d and past rows (so padding contributes exact
// zeros to the products it enters, never 0 · garbage).
static inline void pack_rows(const float *x, size_t ld, size_t rows, size_t padded_rows, size_t d, size_t dv, float *out) {
    for (size_t j = 0; j < padded_rows; j++) {
        if (j < rows) {
            memcpy(out + j * dv, x + j * ld, sizeof(float) * d);
            memset(out + j * dv + d, 0, sizeof(float) * (dv - d));
        } else {
            memset(out + j * dv, 0, sizeof(float) * dv);
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define ALWAYS_INLINE __attribute__((always_inline)) inline

// s[r][t] = a_r · panel keys 16t … 16t + 15 for FR rows a_r = a + r·lda (d columns) against one panel [d][FB]:
// 24 accumulators, one broadcast per row and column, four aligned loads per column.
AVX512 static ALWAYS_INLINE void panel_products(const float *a, size_t lda, const float *panel, size_t d, __m512 s[FR][4]) {
    for (int r = 0; r < FR; r++) for (int t = 0; t < 4; t++) s[r][t] = _mm512_setzero_ps();
    for (size_t c = 0; c < d; c++) {
        const float *k = panel + c * FB;
        __m512 k0 = _mm512_load_ps(k), k1 = _mm512_load_ps(k + 16), k2 = _mm512_load_ps(k + 32), k3 = _mm512_load_ps(k + 48);
        for (int r = 0; r < FR; r++) {
            __m512 b = _mm512_set1_ps(a[r * lda + c]);
            s[r][0] = _mm512_fmadd_ps(b, k0, s[r][0]);
            s[r][1] = _mm512_fmadd_ps(b, k1, s[r][1]);
            s[r][2] = _mm512_fmadd_ps(b, k2, s[r][2]);
            s[r][3] = _mm512_fmadd_ps(b, k3, s[r][3]);
        }
    }
}

// The lanes of key vector t (keys 16t … 16t + 15 of a panel) that are among its first `count` keys.
static inline __mmask16 panel_mask(size_t count, int t) {
    size_t first = 16 * (size_t)t;
    return count >= first + 16 ? (__mmask16)0xFFFF : count > first ? tail_mask16(count - first) : 0;
}

// acc [rows][ldacc], columns [0, 16·nv): acc·corr[row] (corr null: acc) + Σ_k p(row, k)·b[k][…] over `count` k, where
// p(row, k) = p[row·prs + k·pks] and b's rows are ldb floats apart (aligned). rows and nv are constants at each call
// (rank_pass), so the rows·nv ≤ 24 accumulators stay in registers.
AVX512 static ALWAYS_INLINE void rank_tile(float *acc, size_t ldacc, const int rows, const float *corr, const float *p, size_t prs,
                                           size_t pks, size_t count, const float *b, size_t ldb, const int nv) {
    __m512 x[8][4];
    for (int r = 0; r < rows; r++) for (int t = 0; t < nv; t++) x[r][t] = _mm512_load_ps(acc + r * ldacc + 16 * t);
    if (corr) for (int r = 0; r < rows; r++) for (int t = 0; t < nv; t++) x[r][t] = _mm512_mul_ps(x[r][t], _mm512_set1_ps(corr[r]));
    for (size_t k = 0; k < count; k++) {
        __m512 w[4];
        for (int t = 0; t < nv; t++) w[t] = _mm512_load_ps(b + k * ldb + 16 * t);
        for (int r = 0; r < rows; r++) {
            __m512 s = _mm512_set1_ps(p[r * prs + k * pks]);
            for (int t = 0; t < nv; t++) x[r][t] = _mm512_fmadd_ps(s, w[t], x[r][t]);
        }
    }
    for (int r = 0; r < rows; r++) for (int t = 0; t < nv; t++) _mm512_store_ps(acc + r * ldacc + 16 * t, x[r][t]);
}

// The instances of rank_tile: FR rows (the forward's p·v, the backward's dS·k) with 1–4 vectors, and the backward's
// transposed updates (dv += pᵀ·dO, dk += dSᵀ·q) of 8 keys with 1–3 vectors or 4 keys with 4.
AVX512 static inline void rank_pass(float *acc, size_t ldacc, int rows, const float *corr, const float *p, size_t prs, size_t pks,
                             size_t count, const float *b, size_t ldb, size_t nv) {
#define RANK_CASE(R, V) if (rows == R && nv == V) { rank_tile(acc, ldacc, R, corr, p, prs, pks, count, b, ldb, V); return; }
    RANK_CASE(FR, 1) RANK_CASE(FR, 2) RANK_CASE(FR, 3) RANK_CASE(FR, 4)
    RANK_CASE(8, 1) RANK_CASE(8, 2) RANK_CASE(8, 3) RANK_CASE(4, 4)
#undef RANK_CASE
}

// Column passes over `vectors` vectors of 16 floats, at most four at a time and as even as possible
// (5 → 3 + 2, 10 → 4 + 3 + 3): the first column and the width of pass `pass` of `passes`.
static inline size_t pass_count(size_t vectors) { return (vectors + 3) / 4; }
static inline size_t pass_width(size_t vectors, size_t pass) {
    size_t passes = pass_count(vectors);
    return vectors / passes + (pass < vectors % passes ? 1 : 0);
}

// acc [FR][ldacc] (·corr) += p [FR][pld] · b [count][ldb] over all `vectors` columns.
AVX512 static inline void rows_update(float *acc, size_t ldacc, const float *corr, const float *p, size_t pld, size_t count,
                               const float *b, size_t ldb, size_t vectors) {
    size_t column = 0;
    for (size_t pass = 0; pass < pass_count(vectors); pass++) {
        size_t nv = pass_width(vectors, pass);
        rank_pass(acc + column, ldacc, FR, corr, p, pld, 1, count, b + column, ldb, nv);
        column += 16 * nv;
    }
}

// acc [FB][ldacc] += pᵀ · b: p [count][pld] (a panel's FB keys per row), b [count][ldb], over all `vectors` columns.
AVX512 static inline void keys_update(float *acc, size_t ldacc, const float *p, size_t pld, size_t count, const float *b, size_t ldb,
                               size_t vectors) {
    size_t column = 0;
    for (size_t pass = 0; pass < pass_count(vectors); pass++) {
        size_t nv = pass_width(vectors, pass);
        int rows = nv == 4 ? 4 : 8;
        for (size_t key = 0; key < FB; key += (size_t)rows)
            rank_pass(acc + key * ldacc + column, ldacc, rows, NULL, p + key, 1, pld, count, b + column, ldb, nv);
        column += 16 * nv;
    }
}
#endif

#endif
