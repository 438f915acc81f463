// Engine kernels: the diffusion engine's hot loops that want CPU-specific
// instructions (softmax and activations, Winograd transforms, fused
// attention), torch-identical normal noise, and the allocator setting for
// large activations. They dispatch on the CPU detection of CKernels
// (lt_kernels_use_avx2), so forcing the portable path covers them too.
#ifndef LORA_TOOLS_CENGINEKERNELS_H
#define LORA_TOOLS_CENGINEKERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "CKernels.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- torch-identical normal samples ------------------------------------------
#define LT_TORCH_NORMAL_AVX2 0
#define LT_TORCH_NORMAL_LIBM 1
/// Box–Muller on 16 uniforms in place (8 pairs), as torch's CPU kernel does:
/// LT_TORCH_NORMAL_AVX2 is torch's `normal_fill_AVX2` (Cephes polynomials, the
/// kernel torch runs on every x86-64 CPU with AVX2 and FMA, AVX-512 or not),
/// LT_TORCH_NORMAL_LIBM its scalar `normal_fill` (libm; non-AVX2 CPUs, ARM).
/// Which one torch uses is decided in Swift (Diffusion's NoiseKernel), not here:
/// the result must not depend on the CPU that runs this code.
void lt_torch_normal16(float *data, int variant);

// ---- neural-network element-wise kernels (AVX2+FMA or portable) -------------
/// Row-wise softmax of `scale * x` in place; rows are `ld` floats apart.
void lt_softmax_rows(float *x, size_t rows, size_t cols, size_t ld, float scale);
/// One key tile of attention's online softmax (flash-attention's forward on GEMM tiles): scores s [rows][cols]
/// (ld apart) become exp(s·scale − m) with each row's running maximum m (scaled, start −inf) and sum l updated,
/// and the row's output so far (out, out_stride apart, d wide) rescaled to the new maximum (zeroed on the row's
/// first visible tile) before the caller adds p·v. causal: as lt_attention_probabilities.
void lt_attention_online_tile(float *s, size_t rows, size_t cols, size_t ld, float scale, float *row_max, float *row_sum,
                              float *out, size_t out_stride, size_t d, int causal, ptrdiff_t diagonal);
/// The online softmax's end: out /= l per row, and lse = m + log l (lse may be NULL).
void lt_attention_online_finish(float *out, size_t rows, size_t out_stride, size_t d, const float *row_max, const float *row_sum,
                                float *lse);
/// y = x * sigmoid(x); x and y may be the same buffer.
void lt_silu(const float *x, float *y, size_t n);
/// y = gelu(x) with erf (A&S 7.1.26, as PyTorch's vectorised CPU kernel).
void lt_gelu(const float *x, float *y, size_t n);
/// y = x * sigmoid(1.702 x) (OpenAI CLIP's activation).
void lt_quick_gelu(const float *x, float *y, size_t n);
/// GEGLU: each row of `proj` is [a | g] (2*hidden); out = a * gelu(g).
void lt_geglu(const float *proj, float *out, size_t rows, size_t hidden);
float lt_exp(float x);
float lt_erf(float x);

// ---- backward (nn_backward.c) -----------------------------------------------
/// dx = dy * f'(x) for kind 0 SiLU, 1 GELU (erf), 2 quick-GELU.
void lt_activation_backward(const float *x, const float *dy, float *dx, size_t n, int kind);
/// GEGLU backward: proj rows [a | g] (2*hidden), dy rows (hidden) -> dproj rows.
void lt_geglu_backward(const float *proj, const float *dy, float *dproj, size_t rows, size_t hidden);
/// One tile of attention probabilities rebuilt in place from its scores: s <- exp(s·scale − lse[r]) per row r
/// (rows `ld` floats apart). causal: key column j of row r is visible only when j <= diagonal + r (diagonal =
/// the tile's first query − its first key); the others become 0.
void lt_attention_probabilities(float *s, size_t rows, size_t cols, size_t ld, float scale, const float *lse, int causal,
                                ptrdiff_t diagonal);
/// The scores' gradient of one tile in place: dp <- p·(dp − delta[r])·scale, where delta[r] = Σ_j p·dp over the
/// row's keys (all tiles), which equals Σ_c dO·O of the row.
void lt_attention_score_gradient(const float *p, float *dp, size_t rows, size_t cols, size_t ld, const float *delta, float scale);
/// GroupNorm backward for one item's group of `channels` channels × `spatial` values (channel-major): dx, and
/// each channel's dgamma, dbeta (double). silu: the forward applied SiLU after the affine.
void lt_group_norm_backward(const float *x, const float *dy, float *dx, size_t channels, size_t spatial,
                            const float *gamma, const float *beta, double mean, double rstd, int silu,
                            double *dgamma, double *dbeta);

// ---- Winograd F(4x4, 3x3) for stride-1, pad-1 3x3 convolutions -------------
/// Filters [out][in][3][3] -> U [36][out][in], for output channels [o_begin, o_end).
void lt_winograd_filter(const float *w, size_t out, size_t in, size_t o_begin, size_t o_end, float *u);
/// lt_winograd_filter of the filters with their taps reversed: U [36][out][in] whose transposes U[p]ᵀ are the
/// transformed filters of the convolution that is W's input gradient (W' [in][out], flipped).
void lt_winograd_filter_flipped(const float *w, size_t out, size_t in, size_t o_begin, size_t o_end, float *u);
/// Input [items][channels][h][w] -> V [36][channels][count] for tiles first..first+count
/// (tiles numbered over items, tile rows, tile columns), channels [c_begin, c_end). upsampled: x is
/// [items][channels][h/2][w/2] and is read as its nearest-neighbour 2x upsampling (h and w even).
void lt_winograd_input(const float *x, size_t channels, size_t height, size_t width, int upsampled, size_t first,
                       size_t count, size_t c_begin, size_t c_end, float *v);
/// M [36][out][count] -> output [items][out][h][w] (+ bias), channels [o_begin, o_end).
void lt_winograd_output(const float *m, size_t out, size_t height, size_t width, size_t first, size_t count,
                        size_t o_begin, size_t o_end, const float *bias, float *y);

// ---- fused attention ---------------------------------------------------------------
/// Floats of workspace lt_attention_fused_head needs (0 below the AVX2 path).
size_t lt_attention_fused_workspace(size_t keys, size_t d);
/// softmax(q k^T scale) v for one head on register tiles, without materialising the scores (rows of q, k, v, o are
/// ld* floats apart; attention_fused_forward.h, AVX-512 or AVX2 by the kernel path), for any head width, also writing
/// each query row's log-sum-exp of its scaled scores to lse when it is not null. Returns 0, doing nothing, below the
/// AVX2 path.
int lt_attention_fused_head(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv, float *o,
                            size_t ldo, size_t queries, size_t keys, size_t d, float scale, float *lse, float *workspace);
/// Floats of workspace lt_attention_fused_backward_head needs (0 below the AVX2 path).
size_t lt_attention_fused_backward_workspace(size_t queries, size_t keys, size_t d);
/// Gradients of one head of O = softmax(q k^T scale) v (not causal) on register tiles, from the forward's output and
/// per-row log-sum-exp: writes dq, dk and dv (the first d floats of each row; rows ld* floats apart)
/// (attention_fused_backward.h). Returns 0, doing nothing, below the AVX2 path.
int lt_attention_fused_backward_head(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                                     const float *dout, size_t lddo, const float *out, size_t ldo, const float *lse,
                                     float *dq, size_t lddq, float *dk, size_t lddk, float *dv, size_t lddv,
                                     size_t queries, size_t keys, size_t d, float scale, float *workspace);

// ---- allocator ------------------------------------------------------------------
/// Serve allocations below `mmap_threshold` bytes from the heap and keep up to
/// `trim_threshold` bytes of freed memory (glibc's mallopt; no-op elsewhere).
void lt_keep_freed_memory(size_t mmap_threshold, size_t trim_threshold);
/// Give the free memory glibc keeps in its heaps back to the system (malloc_trim; no-op elsewhere).
void lt_return_freed_memory(void);

#ifdef __cplusplus
}
#endif
#endif
