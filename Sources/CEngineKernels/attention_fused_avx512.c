// The fused attention kernels (attention_fused_forward.h, attention_fused_backward.h) compiled for AVX-512:
// lt_attention_fused_*_avx512, which attention_fused.c dispatches to.
#include "CEngineKernels.h"
#include "attention_fused.h"
#if defined(__x86_64__)
#include "attention_vector_avx512.h"
#include "attention_fused_forward.h"
#include "attention_fused_backward.h"
#endif
