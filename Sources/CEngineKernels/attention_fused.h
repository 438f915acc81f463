// The fused attention kernels per instruction set (attention_fused_avx512.c, attention_fused_avx2.c), private to this
// target: attention_fused.c picks one by the kernel path, and the callers see only lt_attention_fused_*.
#ifndef LORA_TOOLS_ATTENTION_FUSED_H
#define LORA_TOOLS_ATTENTION_FUSED_H
#include <stddef.h>

#define ATTENTION_FUSED_DECLARATIONS(SUFFIX)                                                                              \
    size_t lt_attention_fused_workspace_##SUFFIX(size_t keys, size_t d);                                                 \
    int lt_attention_fused_head_##SUFFIX(const float *q, size_t ldq, const float *k, size_t ldk, const float *v,          \
                                         size_t ldv, float *o, size_t ldo, size_t queries, size_t keys, size_t d,         \
                                         float scale, float *lse, float *workspace);                                     \
    size_t lt_attention_fused_backward_workspace_##SUFFIX(size_t queries, size_t keys, size_t d);                        \
    int lt_attention_fused_backward_head_##SUFFIX(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, \
                                                  size_t ldv, const float *dout, size_t lddo, const float *out,          \
                                                  size_t ldo, const float *lse, float *dq, size_t lddq, float *dk,       \
                                                  size_t lddk, float *dv, size_t lddv, size_t queries, size_t keys,      \
                                                  size_t d, float scale, float *workspace);
ATTENTION_FUSED_DECLARATIONS(avx512)
ATTENTION_FUSED_DECLARATIONS(avx2)
#undef ATTENTION_FUSED_DECLARATIONS

#endif
