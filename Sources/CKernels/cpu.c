#include "CKernels.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// CPUID is read once (libgcc / compiler-rt initialise __builtin_cpu_supports
// before main; the leaf-7 bits below are read on first use and kept).
#if defined(__x86_64__)
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
#endif

static unsigned detect_features(void) {
    unsigned f = 0;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) f |= LT_CPU_AVX2;
    if (__builtin_cpu_supports("fma")) f |= LT_CPU_FMA;
    if (__builtin_cpu_supports("f16c")) f |= LT_CPU_F16C;
    if (__builtin_cpu_supports("avx512f")) f |= LT_CPU_AVX512F;
    if (__builtin_cpu_supports("sse4.1")) f |= LT_CPU_SSE41;
    unsigned r[4];
    cpuid(0, 0, r);
    if (r[0] >= 7) {
        cpuid(7, 0, r);
        unsigned max_sub = r[0];
        if ((r[1] >> 29) & 1) f |= LT_CPU_SHA;
        if ((r[3] >> 22) & 1) f |= LT_CPU_AMX_BF16;
        if (max_sub >= 1) {
            cpuid(7, 1, r);
            if ((r[0] >> 5) & 1) f |= LT_CPU_AVX512_BF16;
        }
    }
#endif
    return f;
}

static __thread int serial_here;
int lt_serial_here(void) { return serial_here; }
void lt_set_serial_here(int serial) { serial_here = serial != 0; }

unsigned lt_cpu_features(void) {
    static int cached = -1;
    if (cached < 0) cached = (int)detect_features();
    return (unsigned)cached;
}

int lt_cpu_has_avx2_f16c(void) {
    unsigned need = LT_CPU_AVX2 | LT_CPU_F16C | LT_CPU_FMA;
    return (lt_cpu_features() & need) == need;
}

int lt_cpu_has_avx512f(void) { return (lt_cpu_features() & LT_CPU_AVX512F) != 0; }

int lt_cpu_has_sha_ni(void) {
    // SHA-NI needs SSE4.1 for the byte shuffles as well.
    unsigned need = LT_CPU_SHA | LT_CPU_SSE41;
    return (lt_cpu_features() & need) == need;
}

// -1: not decided yet (the environment is read on first use, by whichever thread comes first: atomic, as
// ThreadSanitizer asks, though every thread would store the same value).
static _Atomic int ceiling = -1;

int lt_kernels_ceiling(void) {
    int value = atomic_load_explicit(&ceiling, memory_order_relaxed);
    if (value < 0) {
        const char *setting = getenv("LORA_TOOLS_KERNELS");
        value = LT_KERNELS_AVX512;
        if (setting != NULL && strcmp(setting, "portable") == 0) value = LT_KERNELS_PORTABLE;
        if (setting != NULL && strcmp(setting, "avx2") == 0) value = LT_KERNELS_AVX2;
        atomic_store_explicit(&ceiling, value, memory_order_relaxed);
    }
    return value;
}

void lt_kernels_set_ceiling(int path) {
    int value = path < LT_KERNELS_PORTABLE ? LT_KERNELS_PORTABLE : (path > LT_KERNELS_AVX512 ? LT_KERNELS_AVX512 : path);
    atomic_store_explicit(&ceiling, value, memory_order_relaxed);
}

int lt_kernels_use_avx2(void) { return lt_cpu_has_avx2_f16c() && lt_kernels_ceiling() >= LT_KERNELS_AVX2; }

// AVX-512 kernels also use AVX2 instructions (their tails, shared helpers), so they need both.
int lt_kernels_use_avx512(void) { return lt_cpu_has_avx512f() && lt_kernels_use_avx2() && lt_kernels_ceiling() >= LT_KERNELS_AVX512; }

int lt_kernels_use_sha_ni(void) { return lt_cpu_has_sha_ni() && lt_kernels_ceiling() > LT_KERNELS_PORTABLE; }

const char *lt_cpu_kernels_description(void) {
    int avx512 = lt_kernels_use_avx512(), avx2 = lt_kernels_use_avx2(), sha = lt_kernels_use_sha_ni();
    if (avx512) return sha ? "avx512f+avx2+f16c+fma, sha-ni" : "avx512f+avx2+f16c+fma, portable sha256";
    if (avx2) return sha ? "avx2+f16c+fma, sha-ni" : "avx2+f16c+fma, portable sha256";
    return sha ? "portable vector kernels, sha-ni" : "portable vector kernels, portable sha256";
}
