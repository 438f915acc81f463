#include "CKernels.h"

// __builtin_cpu_supports reads CPUID once (libgcc / compiler-rt initialise it
// before main), so these are cheap enough to call from every kernel.
int lt_cpu_has_avx2_f16c(void) {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") &&
           __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int lt_cpu_has_avx512f(void) {
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

int lt_cpu_has_sha_ni(void) {
#if defined(__x86_64__)
    // SHA-NI needs SSE4.1 for the byte shuffles as well.
    unsigned int eax, ebx, ecx, edx;
    __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(7), "c"(0));
    int sha = (ebx >> 29) & 1;
    return sha && __builtin_cpu_supports("sse4.1");
#else
    return 0;
#endif
}

const char *lt_cpu_kernels_description(void) {
    int avx2 = lt_cpu_has_avx2_f16c();
    int sha = lt_cpu_has_sha_ni();
    if (avx2 && sha) return "avx2+f16c, sha-ni";
    if (avx2) return "avx2+f16c, portable sha256";
    if (sha) return "portable conversion, sha-ni";
    return "portable conversion, portable sha256";
}
