// Allocator settings for the diffusion engine (see EngineAllocator in Swift):
// large activations are allocated and freed at every layer, and glibc would
// otherwise map and unmap (and page-fault in) each of them every time.
#include "CEngineKernels.h"
#if defined(__GLIBC__)
#include <malloc.h>
#endif

void lt_keep_freed_memory(size_t mmap_threshold, size_t trim_threshold) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold);
    mallopt(M_TRIM_THRESHOLD, (int)trim_threshold);
#else
    (void)mmap_threshold;
    (void)trim_threshold;
#endif
}

void lt_return_freed_memory(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}
