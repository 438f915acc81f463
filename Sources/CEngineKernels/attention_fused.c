// The fused attention kernels' entry points: the AVX-512 instance where the kernel path is AVX-512, the AVX2 one
// where it is AVX2, nothing below (the callers then take the GEMM tiles). A workspace size and the call that uses it
// must see the same kernel path; tests change it only between calls.
#include "CEngineKernels.h"
#include "attention_fused.h"

size_t lt_attention_fused_workspace(size_t keys, size_t d) {
#if defined(__x86_64__)
    if (lt_kernels_use_avx512()) return lt_attention_fused_workspace_avx512(keys, d);
    if (lt_kernels_use_avx2()) return lt_attention_fused_workspace_avx2(keys, d);
#endif
    (void)keys; (void)d;
    return 0;
}

int lt_attention_fused_head(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv, float *o, size_t ldo,
                            size_t queries, size_t keys, size_t d, float scale, float *lse, float *workspace) {
#if defined(__x86_64__)
    if (lt_kernels_use_avx512())
        return lt_attention_fused_head_avx512(q, ldq, k, ldk, v, ldv, o, ldo, queries, keys, d, scale, lse, workspace);
    if (lt_kernels_use_avx2())
        return lt_attention_fused_head_avx2(q, ldq, k, ldk, v, ldv, o, ldo, queries, keys, d, scale, lse, workspace);
#endif
    (void)q; (void)ldq; (void)k; (void)ldk; (void)v; (void)ldv; (void)o; (void)ldo; (void)queries; (void)keys; (void)d;
    (void)scale; (void)lse; (void)workspace;
    return 0;
}

size_t lt_attention_fused_backward_workspace(size_t queries, size_t keys, size_t d) {
#if defined(__x86_64__)
    if (lt_kernels_use_avx512()) return lt_attention_fused_backward_workspace_avx512(queries, keys, d);
    if (lt_kernels_use_avx2()) return lt_attention_fused_backward_workspace_avx2(queries, keys, d);
#endif
    (void)queries; (void)keys; (void)d;
    return 0;
}

int lt_attention_fused_backward_head(const float *q, size_t ldq, const float *k, size_t ldk, const float *v, size_t ldv,
                                     const float *dout, size_t lddo, const float *out, size_t ldo, const float *lse,
                                     float *dq, size_t lddq, float *dk, size_t lddk, float *dv, size_t lddv,
                                     size_t queries, size_t keys, size_t d, float scale, float *workspace) {
#if defined(__x86_64__)
    if (lt_kernels_use_avx512())
        return lt_attention_fused_backward_head_avx512(q, ldq, k, ldk, v, ldv, dout, lddo, out, ldo, lse, dq, lddq, dk, lddk, dv,
                                                       lddv, queries, keys, d, scale, workspace);
    if (lt_kernels_use_avx2())
        return lt_attention_fused_backward_head_avx2(q, ldq, k, ldk, v, ldv, dout, lddo, out, ldo, lse, dq, lddq, dk, lddk, dv,
                                                     lddv, queries, keys, d, scale, workspace);
#endif
    (void)q; (void)ldq; (void)k; (void)ldk; (void)v; (void)ldv; (void)dout; (void)lddo; (void)out; (void)ldo; (void)lse;
    (void)dq; (void)lddq; (void)dk; (void)lddk; (void)dv; (void)lddv; (void)queries; (void)keys; (void)d; (void)scale;
    (void)workspace;
    return 0;
}
