// C kernels that need CPU-specific instructions (F16C, AVX2, SHA-NI).
// Every entry point checks the CPU once at run time and falls back to portable
// code, so the binaries stay portable while using the fast paths where they exist.
#ifndef LORA_TOOLS_CKERNELS_H
#define LORA_TOOLS_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- CPU features -------------------------------------------------------
int lt_cpu_has_avx2_f16c(void);
int lt_cpu_has_avx512f(void);
int lt_cpu_has_sha_ni(void);
/// A short description of the fast paths in use, e.g. "avx2+f16c sha-ni".
const char *lt_cpu_kernels_description(void);

// ---- dtype conversion (little-endian raw bytes, unaligned input allowed) --
void lt_f16_to_f32(const void *src, float *dst, size_t count);
void lt_bf16_to_f32(const void *src, float *dst, size_t count);
/// Round to nearest even, as torch's `.half()` does; overflow gives +-inf.
void lt_f32_to_f16(const float *src, void *dst, size_t count);
/// Round to nearest even, as torch's `.bfloat16()` does; NaN stays NaN.
void lt_f32_to_bf16(const float *src, void *dst, size_t count);
/// The portable paths, exposed so tests can compare them with the fast ones.
void lt_f16_to_f32_scalar(const void *src, float *dst, size_t count);
void lt_f32_to_f16_scalar(const float *src, void *dst, size_t count);

// ---- value statistics for health checks -----------------------------------
typedef struct {
    uint64_t count;      // elements seen
    uint64_t nan_count;
    uint64_t inf_count;
    uint64_t zero_count; // exact zeros (+0 and -0)
    double sum;          // over finite values
    double sum_squares;  // over finite values
    float min;           // over finite values; +inf when there are none
    float max;           // over finite values; -inf when there are none
} lt_stats;

void lt_stats_init(lt_stats *s);
/// Accumulate `count` elements of the given kind into `s`.
/// kind: 0 = f32, 1 = f16, 2 = bf16.
void lt_stats_accumulate(lt_stats *s, const void *src, size_t count, int kind);
void lt_stats_merge(lt_stats *into, const lt_stats *other);

// ---- SHA-256 ----------------------------------------------------------------
typedef struct {
    uint32_t state[8];
    uint64_t total_bytes;
    uint8_t buffer[64];
    size_t buffered;
} lt_sha256_ctx;

void lt_sha256_init(lt_sha256_ctx *ctx);
void lt_sha256_update(lt_sha256_ctx *ctx, const void *data, size_t length);
void lt_sha256_final(lt_sha256_ctx *ctx, uint8_t digest[32]);
/// Force the portable implementation (for tests of the SHA-NI path).
void lt_sha256_set_force_portable(int force);

// ---- file copies ------------------------------------------------------------
/// Copy `length` bytes between files at the given offsets inside the kernel.
/// Returns the bytes copied, -2 when the kernel cannot do it for these files
/// (the caller falls back to read/write), -1 on an I/O error (see errno).
long long lt_copy_file_range(int in_fd, long long in_offset, int out_fd, long long out_offset, long long length);

// ---- torch-identical normal samples ------------------------------------------
#define LT_TORCH_NORMAL_AVX2 0
#define LT_TORCH_NORMAL_LIBM 1
/// Box–Muller on 16 uniforms in place (8 pairs), as torch's CPU kernel does:
/// AVX2 builds use Cephes polynomials, AVX-512/ARM builds use libm.
void lt_torch_normal16(float *data, int variant);
/// The variant torch itself would use on this CPU.
int lt_torch_normal_default_variant(void);

// ---- interrupted runs ---------------------------------------------------------
/// Remember a temporary file to delete if the process is interrupted; returns a slot.
int lt_cleanup_register(const char *path);
void lt_cleanup_unregister(int slot);
/// SIGINT/SIGTERM/SIGHUP delete the registered files, then terminate as usual.
void lt_cleanup_install_signal_handlers(void);

// ---- neural-network element-wise kernels (AVX2+FMA or portable) -------------
/// Row-wise softmax of `scale * x` in place; rows are `ld` floats apart.
void lt_softmax_rows(float *x, size_t rows, size_t cols, size_t ld, float scale);
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
/// Use the portable paths (tests compare them with the vector ones).
void lt_nn_force_portable(int force);

// ---- Winograd F(2x2, 3x3) for stride-1, pad-1 3x3 convolutions -------------
/// Filters [out][in][3][3] -> U [16][out][in], for output channels [o_begin, o_end).
void lt_winograd_filter(const float *w, size_t out, size_t in, size_t o_begin, size_t o_end, float *u);
/// Input [items][channels][h][w] -> V [16][channels][count] for tiles first..first+count
/// (tiles numbered over items, tile rows, tile columns), channels [c_begin, c_end).
void lt_winograd_input(const float *x, size_t channels, size_t height, size_t width, size_t first, size_t count,
                       size_t c_begin, size_t c_end, float *v);
/// M [16][out][count] -> output [items][out][h][w] (+ bias), channels [o_begin, o_end).
void lt_winograd_output(const float *m, size_t out, size_t height, size_t width, size_t first, size_t count,
                        size_t o_begin, size_t o_end, const float *bias, float *y);

// ---- fused attention ---------------------------------------------------------------
/// Floats of workspace lt_attention_head needs.
size_t lt_attention_workspace(size_t keys, size_t d);
/// softmax(q k^T scale) v for one head without materialising the scores
/// (rows of q, k, v, o are ld* floats apart). Returns 0, doing nothing, when
/// the CPU or the head width (not a multiple of 8) is not supported.
int lt_attention_head(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv, float *o, size_t ldo,
                      size_t queries, size_t keys, size_t d, float scale, float *workspace);

// ---- allocator ------------------------------------------------------------------
/// Serve allocations below `mmap_threshold` bytes from the heap and keep up to
/// `trim_threshold` bytes of freed memory (glibc's mallopt; no-op elsewhere).
void lt_keep_freed_memory(size_t mmap_threshold, size_t trim_threshold);

#ifdef __cplusplus
}
#endif
#endif
