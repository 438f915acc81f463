// Register tiles shared by the fused attention forward (attention_fused_forward.h) and backward
// (attention_fused_backward.h), written once in the vector vocabulary of attention_vector_avx512.h or
// attention_vector_avx2.h (included first): one head's keys packed as transposed panels, rows padded to whole
// vectors, the FR × FB block of dot products against a panel, and rank-k updates of a few rows held in registers.
#ifndef LORA_TOOLS_ATTENTION_TILES_H
#define LORA_TOOLS_ATTENTION_TILES_H

#include <stddef.h>
#include <string.h>

#define FR 6            // query rows of a register tile
#define FB (VL * NV)    // keys of a register tile, and of a panel: 64 on AVX-512, 16 on AVX2

static inline size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

// x [rows][ld] (first d columns) → panels [round_up(rows, FB) / FB][d][FB], zero-padded: panel b holds rows
// b·FB … b·FB + FB − 1 transposed, so one aligned load reads a column of VL rows (the full transpose would put
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
#define ALWAYS_INLINE __attribute__((always_inline)) inline

// s[r][t] = a_r · panel keys VL·t … VL·t + VL − 1 for FR rows a_r = a + r·lda (d columns) against one panel [d][FB]:
// FR · NV accumulators (24 on AVX-512, 12 on AVX2), one broadcast per row and column, NV aligned loads per column.
ISA static ALWAYS_INLINE void panel_products(const float *a, size_t lda, const float *panel, size_t d, vf s[FR][NV]) {
    for (int r = 0; r < FR; r++) for (int t = 0; t < NV; t++) s[r][t] = v_zero();
    for (size_t c = 0; c < d; c++) {
        const float *k = panel + c * FB;
        vf kv[NV];
        for (int t = 0; t < NV; t++) kv[t] = v_load(k + VL * t);
        for (int r = 0; r < FR; r++) {
            vf b = v_set1(a[r * lda + c]);
            for (int t = 0; t < NV; t++) s[r][t] = v_fmadd(b, kv[t], s[r][t]);
        }
    }
}

// The lanes of key vector t (keys VL·t … VL·t + VL − 1 of a panel) that are among its first `count` keys.
ISA static inline vmask panel_mask(size_t count, int t) {
    size_t first = VL * (size_t)t;
    return v_first(count > first ? count - first : 0);
}

// acc [rows][ldacc], columns [0, VL·nv): acc·corr[row] (corr null: acc) + Σ_k p(row, k)·b[k][…] over `count` k, where
// p(row, k) = p[row·prs + k·pks] and b's rows are ldb floats apart (aligned). rows and nv are constants at each call
// (rank_pass), so the rows·nv ≤ MAX_ACC accumulators stay in registers.
ISA static ALWAYS_INLINE void rank_tile(float *acc, size_t ldacc, const int rows, const float *corr, const float *p, size_t prs,
                                        size_t pks, size_t count, const float *b, size_t ldb, const int nv) {
    vf x[8][NV];
    for (int r = 0; r < rows; r++) for (int t = 0; t < nv; t++) x[r][t] = v_load(acc + r * ldacc + VL * t);
    if (corr) for (int r = 0; r < rows; r++) for (int t = 0; t < nv; t++) x[r][t] = v_mul(x[r][t], v_set1(corr[r]));
    for (size_t k = 0; k < count; k++) {
        vf w[NV];
        for (int t = 0; t < nv; t++) w[t] = v_load(b + k * ldb + VL * t);
        for (int r = 0; r < rows; r++) {
            vf s = v_set1(p[r * prs + k * pks]);
            for (int t = 0; t < nv; t++) x[r][t] = v_fmadd(s, w[t], x[r][t]);
        }
    }
    for (int r = 0; r < rows; r++) for (int t = 0; t < nv; t++) v_store(acc + r * ldacc + VL * t, x[r][t]);
}

// Rows of a transposed update (keys_update) with nv vectors: 8 while 8·nv accumulators fit, else 4 (both divide FB).
#define KEY_ROWS(nv) (8 * (nv) <= MAX_ACC ? 8 : 4)

// The instances of rank_tile: FR rows (the forward's p·v, the backward's dS·k) with 1–NV vectors, and the backward's
// transposed updates (dv += pᵀ·dO, dk += dSᵀ·q) of KEY_ROWS(nv) keys.
ISA static inline void rank_pass(float *acc, size_t ldacc, int rows, const float *corr, const float *p, size_t prs, size_t pks,
                                 size_t count, const float *b, size_t ldb, size_t nv) {
#define RANK_CASE(R, V) if (rows == R && nv == V) { rank_tile(acc, ldacc, R, corr, p, prs, pks, count, b, ldb, V); return; }
    RANK_CASE(FR, 1) RANK_CASE(FR, 2) RANK_CASE(KEY_ROWS(1), 1) RANK_CASE(KEY_ROWS(2), 2)
#if NV == 4
    RANK_CASE(FR, 3) RANK_CASE(FR, 4) RANK_CASE(KEY_ROWS(3), 3) RANK_CASE(KEY_ROWS(4), 4)
#endif
#undef RANK_CASE
}

// Column passes over `vectors` vectors of VL floats, at most NV at a time and as even as possible
// (NV = 4: 5 → 3 + 2, 10 → 4 + 3 + 3): the first column and the width of pass `pass` of `passes`.
static inline size_t pass_count(size_t vectors) { return (vectors + NV - 1) / NV; }
static inline size_t pass_width(size_t vectors, size_t pass) {
    size_t passes = pass_count(vectors);
    return vectors / passes + (pass < vectors % passes ? 1 : 0);
}

// acc [FR][ldacc] (·corr) += p [FR][pld] · b [count][ldb] over all `vectors` columns.
ISA static inline void rows_update(float *acc, size_t ldacc, const float *corr, const float *p, size_t pld, size_t count,
                                   const float *b, size_t ldb, size_t vectors) {
    size_t column = 0;
    for (size_t pass = 0; pass < pass_count(vectors); pass++) {
        size_t nv = pass_width(vectors, pass);
        rank_pass(acc + column, ldacc, FR, corr, p, pld, 1, count, b + column, ldb, nv);
        column += VL * nv;
    }
}

// acc [FB][ldacc] += pᵀ · b: p [count][pld] (a panel's FB keys per row), b [count][ldb], over all `vectors` columns.
ISA static inline void keys_update(float *acc, size_t ldacc, const float *p, size_t pld, size_t count, const float *b, size_t ldb,
                                   size_t vectors) {
    size_t column = 0;
    for (size_t pass = 0; pass < pass_count(vectors); pass++) {
        size_t nv = pass_width(vectors, pass);
        int rows = KEY_ROWS(nv);
        for (size_t key = 0; key < FB; key += (size_t)rows)
            rank_pass(acc + key * ldacc + column, ldacc, rows, NULL, p + key, 1, pld, count, b + column, ldb, nv);
        column += VL * nv;
    }
}
#endif

#endif
