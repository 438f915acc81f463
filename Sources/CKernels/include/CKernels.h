// Format kernels: what the file tools need at C speed (dtype conversion,
// SHA-256, value statistics, in-kernel file copies, clean-up of interrupted
// outputs) and the CPU detection every kernel dispatches on. The engine's own
// kernels (nn, Winograd, attention, torch noise, allocator) are CEngineKernels.
// Every entry point checks the CPU at run time (lt_kernels_use_*) and falls
// back to portable code, so one binary runs on every x86-64 CPU and uses the
// fast paths where they exist; tests force each path on any host.
#ifndef LORA_TOOLS_CKERNELS_H
#define LORA_TOOLS_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- CPU features and kernel paths -----------------------------------------
/// Feature bits of lt_cpu_features().
#define LT_CPU_AVX2 (1u << 0)
#define LT_CPU_FMA (1u << 1)
#define LT_CPU_F16C (1u << 2)
#define LT_CPU_AVX512F (1u << 3)
#define LT_CPU_AVX512_BF16 (1u << 4)
#define LT_CPU_AMX_BF16 (1u << 5)
#define LT_CPU_SHA (1u << 6)
#define LT_CPU_SSE41 (1u << 7)
/// What this CPU reports (CPUID, read once).
unsigned lt_cpu_features(void);
int lt_cpu_has_avx2_f16c(void);
int lt_cpu_has_avx512f(void);
int lt_cpu_has_sha_ni(void);
/// Kernel paths, each a superset of the one before: portable C, AVX2+FMA+F16C,
/// and AVX-512F (only where a kernel has such a path: the attention tiles'
/// exponentials; every other kernel stays on AVX2 under this ceiling).
#define LT_KERNELS_PORTABLE 0
#define LT_KERNELS_AVX2 1
#define LT_KERNELS_AVX512 2
/// Every dispatched kernel below asks lt_kernels_use_*: the CPU's fastest path
/// at or under the ceiling, which is AVX-512 unless lowered for the whole
/// process by lt_kernels_set_ceiling (tests run each kernel on every path the
/// host has) or by LORA_TOOLS_KERNELS=portable or =avx2 in the environment (to
/// trace a host problem). Paths give bit-identical results except where a
/// kernel's comment says otherwise (softmax/activations/attention: last-bit
/// differences from summation order).
int lt_kernels_use_avx2(void);
int lt_kernels_use_avx512(void);
int lt_kernels_use_sha_ni(void);
int lt_kernels_ceiling(void);
void lt_kernels_set_ceiling(int path);
/// A short description of the paths in use, e.g. "avx2+f16c+fma, sha-ni".
const char *lt_cpu_kernels_description(void);

// ---- per-thread scheduling -------------------------------------------------
/// Whether the calling thread runs LoRACore's Parallel loops itself, in order
/// (1) instead of splitting them over the cores (0, the default): a thread
/// that is already one of several workers (a shard of a batch) must not split
/// again. Per thread (C11 thread-local): Swift has no thread-local storage.
int lt_serial_here(void);
void lt_set_serial_here(int serial);

// ---- dtype conversion (little-endian raw bytes, unaligned input allowed) --
void lt_f16_to_f32(const void *src, float *dst, size_t count);
void lt_bf16_to_f32(const void *src, float *dst, size_t count);
/// Round to nearest even, as torch's `.half()` does; overflow gives +-inf.
void lt_f32_to_f16(const float *src, void *dst, size_t count);
/// Round to nearest even, as torch's `.bfloat16()` does; NaN stays NaN.
void lt_f32_to_bf16(const float *src, void *dst, size_t count);
/// As torch's `.to(torch.float8_e4m3fn)`: round to nearest even, saturating at +-448 (inf too).
void lt_f32_to_f8e4m3(const float *src, void *dst, size_t count);
/// As torch's `.to(torch.float8_e5m2)`: round to nearest even, overflow gives +-inf.
void lt_f32_to_f8e5m2(const float *src, void *dst, size_t count);
/// The portable path of one value (for callers converting a single scalar).
void lt_f16_to_f32_scalar(const void *src, float *dst, size_t count);

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

// ---- file copies ------------------------------------------------------------
/// Copy `length` bytes between files at the given offsets inside the kernel.
/// Returns the bytes copied, -2 when the kernel cannot do it for these files
/// (the caller falls back to read/write), -1 on an I/O error (see errno).
long long lt_copy_file_range(int in_fd, long long in_offset, int out_fd, long long out_offset, long long length);

// ---- console -------------------------------------------------------------------
/// Line-buffer standard output, so a log that also takes standard error (`> log 2>&1`) keeps the order of events.
void lt_line_buffer_stdout(void);

// ---- interrupted runs ---------------------------------------------------------
/// Remember a temporary file to delete if the process is interrupted, and the
/// output it stands for (named in the message); returns a slot.
int lt_cleanup_register(const char *path, const char *destination);
/// What an interrupted run keeps, said after the removals (e.g. "rendered cells are kept in …"); NULL for nothing.
void lt_cleanup_set_interrupt_note(const char *note);
void lt_cleanup_unregister(int slot);
/// SIGINT/SIGTERM/SIGHUP delete the registered files, then terminate as usual. Call it before any other
/// thread starts: the signals are then handled on a thread of their own (see cleanup.c for why).
void lt_cleanup_install_signal_handlers(void);
// While on, the first SIGINT sets a flag (lt_interrupt_requested) instead of interrupting.
void lt_cleanup_defer_interrupt(int on);
int lt_interrupt_requested(void);

#ifdef __cplusplus
}
#endif
#endif
