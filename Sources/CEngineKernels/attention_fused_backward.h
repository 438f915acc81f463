// Fused attention backward for one head on register tiles (flash-attention's backward, Dao 2022, algorithm 4),
// written once in the vector vocabulary (attention_vector_*.h) and compiled per instruction set beside the forward
// (attention_fused_forward.h). With s = scale, lse and the output O kept by the forward, and δ_i = Σ_c dO_ic·O_ic,
//   P  = exp(s·q·kᵀ − lse)       [rows][keys]   rebuilt, never stored whole
//   dv = Pᵀ·dO                   [keys][d]
//   dP = dO·vᵀ                   [rows][keys]
//   dS = P ⊙ (dP − δ)·s          [rows][keys]
//   dq = dS·k                    [rows][d]
//   dk = dSᵀ·q                   [keys][d]
// Schedule. Keys go in spans of KEY_SPAN, whose dk and dv accumulate in L2 while every block of ROW_BLOCK query rows
// passes; for each panel of FB keys of the span and each block, register tiles of FR rows × FB keys compute S and
// then dP straight from the packed panels (attention_tiles.h), leaving P and dS [ROW_BLOCK][FB] in L1 for the three
// rank-ROW_BLOCK / rank-FB updates (dv and dk of the panel's keys, dq of the block's rows). The GEMM path
// (Attention+Backward.swift) writes 128 × 512 tiles of P and dP to L2 between five oneDNN calls and two
// element-wise passes.
#include "attention_tiles.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#define ROW_BLOCK 48    // query rows per block: P and dS [48][FB] (12 KB each on AVX-512) stay in L1 for the updates
#define KEY_SPAN 256    // keys whose dk and dv accumulators (2 × 256 × dv floats, 96 KB at d = 40) stay in L2

size_t KERNEL(lt_attention_fused_backward_workspace)(size_t queries, size_t keys, size_t d) {
    size_t dv = round_up(d, VL), pk = round_up(keys, FB), pq = round_up(queries, ROW_BLOCK);
    return 2 * pk * d + pk * dv          // k and v as panels, k as rows
         + 3 * pq * dv + 2 * pq          // q and dO as rows, the dq accumulator; lse and δ
         + 2 * ROW_BLOCK * FB            // P and dS of a block
         + 2 * KEY_SPAN * dv + 16;       // dk and dv accumulators of a span; alignment
}

// P and dS for FR query rows (q and dO rows dv floats apart) against one panel of `count` keys: P = exp(s·q·kᵀ − lse)
// (zero for padded keys, and for padded rows, whose lse is +∞), dS = P ⊙ (dO·vᵀ − δ)·s, each [FR][FB] into p and ds.
ISA static void probability_tile(const float *q, const float *dout, size_t dv, size_t d, const float *kpanel, const float *vpanel,
                                 size_t count, const float *lse, const float *delta, float scale, float *p, float *ds) {
    vf s[FR][NV];
    const vf factor = v_set1(scale);
    panel_products(q, dv, kpanel, d, s);
    for (int r = 0; r < FR; r++) {
        vf shift = v_set1(-lse[r]);
        for (int t = 0; t < NV; t++) {
            vf e = v_exp(v_fmadd(s[r][t], factor, shift));
            if (count < FB) e = v_select(panel_mask(count, t), e, v_zero());
            v_store(p + r * FB + VL * t, e);
        }
    }
    panel_products(dout, dv, vpanel, d, s);                                                   // dP
    for (int r = 0; r < FR; r++) {
        vf shift = v_set1(delta[r]);
        for (int t = 0; t < NV; t++) {
            vf probability = v_load(p + r * FB + VL * t);
            v_store(ds + r * FB + VL * t, v_mul(v_mul(probability, v_sub(s[r][t], shift)), factor));
        }
    }
}

ISA static void backward_fused(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                               const float *dout, size_t lddo, const float *out, size_t ldo, const float *lse_in,
                               float *dq, size_t lddq, float *dk, size_t lddk, float *dvalues, size_t lddv,
                               size_t queries, size_t keys, size_t d, float scale, float *work) {
    size_t dv = round_up(d, VL), pk = round_up(keys, FB), pq = round_up(queries, ROW_BLOCK), vectors = dv / VL;
    float *kt = (float *)(((uintptr_t)work + 63) & ~(uintptr_t)63);   // [pk / FB][d][FB]
    float *vt = kt + pk * d;                                            // [pk / FB][d][FB]
    float *krows = vt + pk * d;                                         // [pk][dv]
    float *qrows = krows + pk * dv, *dorows = qrows + pq * dv;          // [pq][dv] each
    float *dqacc = dorows + pq * dv;                                    // [pq][dv]
    float *p = dqacc + pq * dv, *ds = p + ROW_BLOCK * FB;               // [ROW_BLOCK][FB] each
    float *dkacc = ds + ROW_BLOCK * FB, *dvacc = dkacc + KEY_SPAN * dv; // [KEY_SPAN][dv] each
    float *lse = dvacc + KEY_SPAN * dv, *delta = lse + pq;              // [pq] each
    pack_panels(k, ldk, keys, d, kt);
    pack_panels(v, ldv, keys, d, vt);
    pack_rows(k, ldk, keys, pk, d, dv, krows);
    pack_rows(q, ldq, queries, pq, d, dv, qrows);
    pack_rows(dout, lddo, queries, pq, d, dv, dorows);
    memset(dqacc, 0, sizeof(float) * pq * dv);
    for (size_t i = 0; i < pq; i++) {
        float sum = 0;
        if (i < queries) for (size_t c = 0; c < d; c++) sum += dout[i * lddo + c] * out[i * ldo + c];
        delta[i] = sum;
        lse[i] = i < queries ? lse_in[i] : INFINITY;
    }
    for (size_t start = 0; start < keys; start += KEY_SPAN) {
        size_t end = keys - start < KEY_SPAN ? keys : start + KEY_SPAN;
        memset(dkacc, 0, sizeof(float) * KEY_SPAN * dv);
        memset(dvacc, 0, sizeof(float) * KEY_SPAN * dv);
        for (size_t row = 0; row < queries; row += ROW_BLOCK) {
            size_t rows = round_up(queries - row < ROW_BLOCK ? queries - row : ROW_BLOCK, FR);
            const float *qi = qrows + row * dv, *gi = dorows + row * dv;
            for (size_t key = start; key < end; key += FB) {
                size_t count = end - key < FB ? end - key : FB;
                const float *kpanel = kt + key / FB * d * FB, *vpanel = vt + key / FB * d * FB;
                for (size_t r = 0; r < rows; r += FR)
                    probability_tile(qi + r * dv, gi + r * dv, dv, d, kpanel, vpanel, count, lse + row + r, delta + row + r, scale,
                                     p + r * FB, ds + r * FB);
                keys_update(dvacc + (key - start) * dv, dv, p, FB, rows, gi, dv, vectors);     // dv += Pᵀ·dO
                keys_update(dkacc + (key - start) * dv, dv, ds, FB, rows, qi, dv, vectors);    // dk += dSᵀ·q
                for (size_t r = 0; r < rows; r += FR)                                          // dq += dS·k
                    rows_update(dqacc + (row + r) * dv, dv, NULL, ds + r * FB, FB, count, krows + key * dv, dv, vectors);
            }
        }
        for (size_t j = start; j < end; j++) {
            memcpy(dk + j * lddk, dkacc + (j - start) * dv, sizeof(float) * d);
            memcpy(dvalues + j * lddv, dvacc + (j - start) * dv, sizeof(float) * d);
        }
    }
    for (size_t i = 0; i < queries; i++) memcpy(dq + i * lddq, dqacc + i * dv, sizeof(float) * d);
}

int KERNEL(lt_attention_fused_backward_head)(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                                             const float *dout, size_t lddo, const float *out, size_t ldo, const float *lse,
                                             float *dq, size_t lddq, float *dk, size_t lddk, float *dv, size_t lddv,
                                             size_t queries, size_t keys, size_t d, float scale, float *workspace) {
    if (d == 0 || keys == 0 || queries == 0 || !KERNELS_ENABLED()) return 0;
    backward_fused(q, ldq, k, ldk, v, ldv, dout, lddo, out, ldo, lse, dq, lddq, dk, lddk, dv, lddv, queries, keys, d, scale, workspace);
    return 1;
}
