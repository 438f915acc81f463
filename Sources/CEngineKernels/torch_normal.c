// torch.randn's Box–Muller on blocks of 16 float uniforms, bit for bit.
//
// torch has two CPU kernels for it (aten/src/ATen/native/cpu/DistributionTemplates.h):
// `normal_fill_AVX2` evaluates log, sin and cos with the Cephes polynomials of
// avx_mathfun.h, and GCC fuses some of the multiply-adds into FMAs; the scalar
// `normal_fill` calls libm. torch runs the AVX2 one on every x86-64 CPU with
// AVX2 and FMA, including AVX-512 ones (DistributionKernels.cpp registers
// normal_stub with REGISTER_NO_AVX512_DISPATCH, so the AVX-512 slot falls back
// to the AVX2 kernel); the scalar one on older x86 CPUs and on ARM. Which fusions
// happen was established by comparing a million outputs with torch's own (see
// Tests/DiffusionTests/RandomTests); the explicit fmaf calls below reproduce them,
// so this file gives the same bits whatever CPU runs it (fmaf is exact in software).
#include "CEngineKernels.h"
#include <math.h>
#include <string.h>

// Every fused operation is spelled out with fmaf; nothing else may be fused.
#pragma STDC FP_CONTRACT OFF
#ifdef __clang__
#pragma clang fp contract(off)
#endif

static float cephes_logf(float x) {
    uint32_t bits;
    memcpy(&bits, &x, 4);
    int exponent = (int)(bits >> 23) - 0x7f;
    bits = (bits & 0x807fffffu) | 0x3f000000u; // mantissa scaled to [0.5, 1)
    memcpy(&x, &bits, 4);
    float e = (float)exponent + 1.0f;
    int below = x < 0.707106781186547524f;
    float keep = below ? x : 0.0f;
    x = x - 1.0f;
    e = e - (below ? 1.0f : 0.0f);
    x = x + keep;
    float z = x * x;
    float y = 7.0376836292E-2f;
    y = fmaf(y, x, -1.1514610310E-1f);
    y = fmaf(y, x, 1.1676998740E-1f);
    y = fmaf(y, x, -1.2420140846E-1f);
    y = fmaf(y, x, 1.4249322787E-1f);
    y = fmaf(y, x, -1.6668057665E-1f);
    y = fmaf(y, x, 2.0000714765E-1f);
    y = fmaf(y, x, -2.4999993993E-1f);
    y = fmaf(y, x, 3.3333331174E-1f);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = y - z * 0.5f;
    x = x + y;
    x = x + e * 0.693359375f;
    return x;
}

static void cephes_sincosf(float x, float *sine, float *cosine) {
    uint32_t bits;
    memcpy(&bits, &x, 4);
    uint32_t sign_sin = bits & 0x80000000u;
    bits &= 0x7fffffffu;
    memcpy(&x, &bits, 4);
    float y = x * 1.27323954473516f; // 4/π
    int j = (int)y;
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap = (uint32_t)(j & 4) << 29;
    int use_sin_poly = (j & 2) == 0;
    x = y * -0.78515625f + x;
    x = y * -2.4187564849853515625e-4f + x;
    x = y * -3.77489497744594108e-8f + x;
    uint32_t sign_cos = (uint32_t)((~(j - 2)) & 4) << 29;
    sign_sin ^= swap;
    float z = x * x;
    float c = 2.443315711809948E-005f;
    c = fmaf(c, z, -1.388731625493765E-003f);
    c = fmaf(c, z, 4.166664568298827E-002f);
    c = c * z;
    c = fmaf(c, z, -(z * 0.5f));
    c = c + 1.0f;
    float s = -1.9515295891E-4f;
    s = fmaf(s, z, 8.3321608736E-3f);
    s = fmaf(s, z, -1.6666654611E-1f);
    s = s * z;
    s = fmaf(s, x, x);
    float sv = use_sin_poly ? s : c, cv = use_sin_poly ? c : s;
    uint32_t a, b;
    memcpy(&a, &sv, 4);
    memcpy(&b, &cv, 4);
    a ^= sign_sin;
    b ^= sign_cos;
    memcpy(sine, &a, 4);
    memcpy(cosine, &b, 4);
}

void lt_torch_normal16(float *data, int variant) {
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - data[j];
        float u2 = data[j + 8];
        float radius, sine, cosine;
        if (variant == LT_TORCH_NORMAL_AVX2) {
            radius = sqrtf(-2.0f * cephes_logf(u1));
            cephes_sincosf((float)(2.0 * 3.14159265358979323846) * u2, &sine, &cosine);
        } else {
            radius = sqrtf(-2.0f * logf(u1));
            float theta = (float)(2.0 * 3.14159265358979323846 * (double)u2);
            sine = sinf(theta);
            cosine = cosf(theta);
        }
        data[j] = radius * cosine;
        data[j + 8] = radius * sine;
    }
}
