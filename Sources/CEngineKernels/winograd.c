// Winograd F(4x4, 3x3) transforms for stride-1, pad-1 3x3 convolutions.
//
// A 3x3 convolution over 4x4 output tiles needs 144 multiplications per tile
// and channel pair directly and 36 after the transforms, so the thirty-six
// GEMMs M[p] = U[p] (out x in) * V[p] (in x tiles) do 4x less work than
// im2col (F(2x2, 3x3), which this replaced, saves 2.25x). The transforms
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015,
// interpolation points 0, +-1, +-2 and infinity):
//   V = B^T d B   (6x6 input patch d, with the zero padding)
//   U = G g G^T   (3x3 filter g)
//   Y = A^T M A   (4x4 output tile)
//   B^T = [4  0 -5  0 1 0;  0 -4 -4  1 1 0;  0 4 -4 -1 1 0;
//          0 -2 -1  2 1 0;  0  2 -1 -2 1 0;  0 4  0 -5 0 1]
//   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//   A^T = [1 1 1 1 1 0;  0 1 -1 2 -2 0;  0 1 1 4 4 0;  0 1 -1 8 -8 1]
// Layouts are [36][rows][cols] so each GEMM operand is a plain row-major
// matrix. The larger points cost accuracy: float32 results differ from a
// direct convolution by ~1e-6 relative on SD-sized layers (tested).
#include "CEngineKernels.h"
#include <string.h>

// The transforms are written out (the zero entries of B^T and A^T are most
// of their work saved), once for scalars and once for eight lanes.
// Multiplications by the reciprocals, not divisions: the filter transform
// runs on every call (the transformed filters are 4x the weights, too big to
// keep), and scalar code with divisions cost more than the GEMMs on
// 1280-channel layers. Same constants in the vector blocks below, so every
// channel gets the same rounding whichever path transforms it.
static inline void filter_1d(const float g[3], float t[6]) {
    const float quarter = 0.25f, sixth = 1.0f / 6, twelfth = 1.0f / 12, twentyfourth = 1.0f / 24;
    t[0] = g[0] * quarter;
    t[1] = -(g[0] + g[1] + g[2]) * sixth;
    t[2] = -(g[0] - g[1] + g[2]) * sixth;
    t[3] = g[0] * twentyfourth + g[1] * twelfth + g[2] * sixth;
    t[4] = g[0] * twentyfourth - g[1] * twelfth + g[2] * sixth;
    t[5] = g[2];
}

// The filter transform for eight input channels at once (vector extensions:
// AVX2 registers where the CPU has them, two SSE registers otherwise). The
// eight 3x3 filters are transposed into lanes first: filters `stride` floats
// apart, tap k read from TAP(k) (k itself, or 8 - k for the flipped filters
// of the input gradient's convolution).
typedef float v8 __attribute__((vector_size(32)));
#define FILTER_BLOCK_BODY(TAP)                                                                         \
    const v8 quarter = (v8){0} + 0.25f, sixth = (v8){0} + 1.0f / 6, twelfth = (v8){0} + 1.0f / 12;   \
    const v8 twentyfourth = (v8){0} + 1.0f / 24;                                                      \
    v8 g[9];                                                                                          \
    for (int k = 0; k < 9; k++)                                                                       \
        for (int lane = 0; lane < 8; lane++) g[k][lane] = w[(size_t)lane * stride + (size_t)(TAP)];   \
    v8 t[6][3];                                                                                       \
    for (int j = 0; j < 3; j++) {                                                                     \
        v8 g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];                                                   \
        t[0][j] = g0 * quarter;                                                                       \
        t[1][j] = -(g0 + g1 + g2) * sixth;                                                            \
        t[2][j] = -(g0 - g1 + g2) * sixth;                                                            \
        t[3][j] = g0 * twentyfourth + g1 * twelfth + g2 * sixth;                                      \
        t[4][j] = g0 * twentyfourth - g1 * twelfth + g2 * sixth;                                      \
        t[5][j] = g2;                                                                                 \
    }                                                                                                 \
    for (int i = 0; i < 6; i++) {                                                                     \
        v8 g0 = t[i][0], g1 = t[i][1], g2 = t[i][2], r[6];                                            \
        r[0] = g0 * quarter;                                                                          \
        r[1] = -(g0 + g1 + g2) * sixth;                                                               \
        r[2] = -(g0 - g1 + g2) * sixth;                                                               \
        r[3] = g0 * twentyfourth + g1 * twelfth + g2 * sixth;                                         \
        r[4] = g0 * twentyfourth - g1 * twelfth + g2 * sixth;                                         \
        r[5] = g2;                                                                                    \
        for (int j = 0; j < 6; j++) __builtin_memcpy(u + (size_t)(i * 6 + j) * plane, &r[j], 32);     \
    }

static void filter_block_portable(const float *w, size_t stride, float *u, size_t plane) { FILTER_BLOCK_BODY(k) }
static void filter_block_flipped_portable(const float *w, size_t stride, float *u, size_t plane) { FILTER_BLOCK_BODY(8 - k) }
#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void filter_block_avx2(const float *w, size_t stride, float *u, size_t plane) { FILTER_BLOCK_BODY(k) }
__attribute__((target("avx2,fma"))) static void filter_block_flipped_avx2(const float *w, size_t stride, float *u, size_t plane) {
    FILTER_BLOCK_BODY(8 - k)
}
#endif

// One filter's transform (the channels left over from the blocks of eight), taps read as the blocks read them.
static void filter_single(const float *w, int flipped, float *u, size_t plane) {
    float g[9];
    for (int k = 0; k < 9; k++) g[k] = w[flipped ? 8 - k : k];
    float t[6][3];  // G g: 6 rows of 3
    for (int j = 0; j < 3; j++) {
        float column[3] = {g[j], g[3 + j], g[6 + j]}, r[6];
        filter_1d(column, r);
        for (int i = 0; i < 6; i++) t[i][j] = r[i];
    }
    for (int i = 0; i < 6; i++) {
        float r[6];
        filter_1d(t[i], r);  // (G g) G^T, row i
        for (int j = 0; j < 6; j++) u[(size_t)(i * 6 + j) * plane] = r[j];
    }
}

// Rows o_begin..<o_end of U [36][out][in], row o, column c the transform of filter W[o][c] (filters 9 floats apart
// along a row, read in order), its taps reversed when `flipped`: the input gradient's convolution uses W'[c][o] =
// W[o][c] flipped, whose U is the transpose of this one, and multiplies by it transposed. (Writing U' itself read W
// a whole row of filters apart for each filter and made the transform 2-4x slower than the forward's at the
// 1280-channel levels, where it costs more than the GEMMs; measured in a training step, Benchmarks/README.md.)
static void filter_rows(const float *w, size_t out, size_t in, size_t o_begin, size_t o_end, float *u, int flipped) {
    const size_t plane = out * in;
#if defined(__x86_64__)
    const int avx2 = lt_kernels_use_avx2();
#endif
    for (size_t o = o_begin; o < o_end; o++) {
        float *row = u + o * in;
        const float *first = w + o * in * 9;
        size_t c = 0;
        for (; c + 8 <= in; c += 8) {
            const float *g = first + c * 9;
#if defined(__x86_64__)
            if (avx2) {
                if (flipped) filter_block_flipped_avx2(g, 9, row + c, plane); else filter_block_avx2(g, 9, row + c, plane);
                continue;
            }
#endif
            if (flipped) filter_block_flipped_portable(g, 9, row + c, plane); else filter_block_portable(g, 9, row + c, plane);
        }
        for (; c < in; c++) filter_single(first + c * 9, flipped, row + c, plane);
    }
}

void lt_winograd_filter(const float *w, size_t out, size_t in, size_t o_begin, size_t o_end, float *u) {
    filter_rows(w, out, in, o_begin, o_end, u, 0);
}

void lt_winograd_filter_flipped(const float *w, size_t out, size_t in, size_t o_begin, size_t o_end, float *u) {
    filter_rows(w, out, in, o_begin, o_end, u, 1);
}

// Tiles are numbered over (item, tile row, tile column); `first` is the first
// tile of this chunk and `count` the chunk's size (the GEMMs' column count).
// Eight consecutive tiles are transformed at once, one per vector lane: their
// patches are gathered into lanes, transformed, and stored as contiguous runs
// of V's rows.
//
// `shift` 1 reads x as its nearest-neighbour 2x upsampling (height and width
// are then the upsampled sizes, x's own are half): the convolution after the
// VAE decoder's and the U-Net's upsamplers runs without the upsampled copy,
// which at 768^2 is the decoder's largest tensor. The values gathered are the
// copy's, so the result is the same bit for bit.
static inline void gather_patch(const float *x, size_t channels, size_t c, size_t height, size_t width, size_t tile,
                                unsigned shift, float d[6][6]) {
    const size_t tiles_h = (height + 3) / 4, tiles_w = (width + 3) / 4, per_item = tiles_h * tiles_w;
    size_t item = tile / per_item, rest = tile % per_item;
    long y0 = 4 * (long)(rest / tiles_w) - 1, x0 = 4 * (long)(rest % tiles_w) - 1;
    const long source_width = (long)width >> shift;
    const float *src = x + (item * channels + c) * (height >> shift) * (width >> shift);
    int inside = y0 >= 0 && x0 >= 0 && y0 + 6 <= (long)height && x0 + 6 <= (long)width;
    for (int i = 0; i < 6; i++) {
        long yy = y0 + i;
        if (inside && shift == 0) {
            memcpy(d[i], src + yy * (long)width + x0, sizeof d[i]);
            continue;
        }
        if (inside) {
            const float *row = src + (yy >> 1) * source_width;
            for (int j = 0; j < 6; j++) d[i][j] = row[(x0 + j) >> 1];
            continue;
        }
        for (int j = 0; j < 6; j++) {
            long xx = x0 + j;
            d[i][j] = (yy < 0 || yy >= (long)height || xx < 0 || xx >= (long)width)
                          ? 0.0f : src[(yy >> shift) * source_width + (xx >> shift)];
        }
    }
}

// B^T d B on whatever element type T is (float or v8).
#define INPUT_TRANSFORM(T, d, STORE)                                             \
    do {                                                                         \
        T t_[6][6];                                                              \
        for (int j = 0; j < 6; j++) {                                            \
            T d0 = d[0][j], d1 = d[1][j], d2 = d[2][j], d3 = d[3][j], d4 = d[4][j], d5 = d[5][j]; \
            t_[0][j] = 4 * d0 - 5 * d2 + d4;                                     \
            t_[1][j] = -4 * (d1 + d2) + d3 + d4;                                 \
            t_[2][j] = 4 * (d1 - d2) - d3 + d4;                                  \
            t_[3][j] = 2 * (d3 - d1) - d2 + d4;                                  \
            t_[4][j] = 2 * (d1 - d3) - d2 + d4;                                  \
            t_[5][j] = 4 * d1 - 5 * d3 + d5;                                     \
        }                                                                        \
        for (int i = 0; i < 6; i++) {                                            \
            T e0 = t_[i][0], e1 = t_[i][1], e2 = t_[i][2], e3 = t_[i][3], e4 = t_[i][4], e5 = t_[i][5]; \
            T r_[6] = {4 * e0 - 5 * e2 + e4, -4 * (e1 + e2) + e3 + e4, 4 * (e1 - e2) - e3 + e4, \
                       2 * (e3 - e1) - e2 + e4, 2 * (e1 - e3) - e2 + e4, 4 * e1 - 5 * e3 + e5}; \
            for (int j = 0; j < 6; j++) STORE(i * 6 + j, r_[j]);                 \
        }                                                                        \
    } while (0)

#define INPUT_BLOCK_BODY                                                                            \
    v8 d[6][6];                                                                                     \
    for (int lane = 0; lane < 8; lane++) {                                                          \
        float p[6][6];                                                                              \
        gather_patch(x, channels, c, height, width, tile + (size_t)lane, shift, p);                       \
        for (int i = 0; i < 6; i++)                                                                 \
            for (int j = 0; j < 6; j++) d[i][j][lane] = p[i][j];                                    \
    }                                                                                               \
    _Pragma("clang diagnostic push") _Pragma("clang diagnostic ignored \"-Wshadow\"")             \
    INPUT_TRANSFORM(v8, d, STORE_V8);                                                               \
    _Pragma("clang diagnostic pop")

#define STORE_V8(point, value) __builtin_memcpy(dst + (size_t)(point) * plane, &(value), 32)
static void input_block_portable(const float *x, size_t channels, size_t c, size_t height, size_t width, size_t tile,
                                 unsigned shift, float *dst, size_t plane) { INPUT_BLOCK_BODY }
#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void input_block_avx2(const float *x, size_t channels, size_t c, size_t height,
                                                                 size_t width, size_t tile, unsigned shift, float *dst,
                                                                 size_t plane) { INPUT_BLOCK_BODY }
#endif
#undef STORE_V8

void lt_winograd_input(const float *x, size_t channels, size_t height, size_t width, int upsampled, size_t first,
                       size_t count, size_t c_begin, size_t c_end, float *v) {
    const unsigned shift = upsampled ? 1 : 0;
    const size_t plane = channels * count;
#if defined(__x86_64__)
    const int avx2 = lt_kernels_use_avx2();
#endif
    for (size_t c = c_begin; c < c_end; c++) {
        size_t n = 0;
        for (; n + 8 <= count; n += 8) {
            float *dst = v + c * count + n;
#if defined(__x86_64__)
            if (avx2) { input_block_avx2(x, channels, c, height, width, first + n, shift, dst, plane); continue; }
#endif
            input_block_portable(x, channels, c, height, width, first + n, shift, dst, plane);
        }
        for (; n < count; n++) {
            float d[6][6];
            gather_patch(x, channels, c, height, width, first + n, shift, d);
            float *dst = v + c * count + n;
#define STORE_FLOAT(point, value) dst[(size_t)(point) * plane] = (value)
            INPUT_TRANSFORM(float, d, STORE_FLOAT);
#undef STORE_FLOAT
        }
    }
}

// A^T M A for eight tiles at once, then each lane's 4x4 tile written out.
#define OUTPUT_TRANSFORM(T, column_of, RESULT)                                   \
    do {                                                                         \
        T t_[4][6];                                                              \
        for (int j = 0; j < 6; j++) {                                            \
            T m0 = column_of(0, j), m1 = column_of(1, j), m2 = column_of(2, j);  \
            T m3 = column_of(3, j), m4 = column_of(4, j), m5 = column_of(5, j);  \
            T s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;        \
            t_[0][j] = m0 + s12 + s34;                                           \
            t_[1][j] = d12 + 2 * d34;                                            \
            t_[2][j] = s12 + 4 * s34;                                            \
            t_[3][j] = d12 + 8 * d34 + m5;                                       \
        }                                                                        \
        for (int i = 0; i < 4; i++) {                                            \
            T m0 = t_[i][0], m1 = t_[i][1], m2 = t_[i][2], m3 = t_[i][3], m4 = t_[i][4], m5 = t_[i][5]; \
            T s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;        \
            RESULT(i, 0, m0 + s12 + s34);                                        \
            RESULT(i, 1, d12 + 2 * d34);                                         \
            RESULT(i, 2, s12 + 4 * s34);                                         \
            RESULT(i, 3, d12 + 8 * d34 + m5);                                    \
        }                                                                        \
    } while (0)

static inline void scatter_tile(float *y, size_t out, size_t o, size_t height, size_t width, size_t tile, float r[4][4], float b) {
    const size_t tiles_h = (height + 3) / 4, tiles_w = (width + 3) / 4, per_item = tiles_h * tiles_w;
    size_t item = tile / per_item, rest = tile % per_item;
    size_t yy0 = 4 * (rest / tiles_w), xx = 4 * (rest % tiles_w);
    float *dst = y + (item * out + o) * height * width;
    for (int i = 0; i < 4 && yy0 + (size_t)i < height; i++) {
        for (int j = 0; j < 4 && xx + (size_t)j < width; j++) dst[(yy0 + (size_t)i) * width + xx + (size_t)j] = r[i][j] + b;
    }
}

#define OUTPUT_BLOCK_BODY                                                                           \
    v8 r[4][4];                                                                                     \
    OUTPUT_TRANSFORM(v8, COLUMN_V8, RESULT_V8);                                                     \
    for (int lane = 0; lane < 8; lane++) {                                                          \
        float tile4[4][4];                                                                          \
        for (int i = 0; i < 4; i++)                                                                 \
            for (int j = 0; j < 4; j++) tile4[i][j] = r[i][j][lane];                                \
        scatter_tile(y, out, o, height, width, tile + (size_t)lane, tile4, b);                     \
    }

#define COLUMN_V8(i, j) ({ v8 v_; __builtin_memcpy(&v_, src + (size_t)((i) * 6 + (j)) * plane, 32); v_; })
#define RESULT_V8(i, j, value) r[i][j] = (value)
static void output_block_portable(const float *src, size_t plane, float *y, size_t out, size_t o, size_t height, size_t width,
                                  size_t tile, float b) { OUTPUT_BLOCK_BODY }
#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void output_block_avx2(const float *src, size_t plane, float *y, size_t out, size_t o,
                                                                  size_t height, size_t width, size_t tile, float b) { OUTPUT_BLOCK_BODY }
#endif
#undef COLUMN_V8
#undef RESULT_V8

void lt_winograd_output(const float *m, size_t out, size_t height, size_t width, size_t first, size_t count,
                        size_t o_begin, size_t o_end, const float *bias, float *y) {
    const size_t plane = out * count;
#if defined(__x86_64__)
    const int avx2 = lt_kernels_use_avx2();
#endif
    for (size_t o = o_begin; o < o_end; o++) {
        const float b = bias ? bias[o] : 0.0f;
        size_t n = 0;
        for (; n + 8 <= count; n += 8) {
            const float *src = m + o * count + n;
#if defined(__x86_64__)
            if (avx2) { output_block_avx2(src, plane, y, out, o, height, width, first + n, b); continue; }
#endif
            output_block_portable(src, plane, y, out, o, height, width, first + n, b);
        }
        for (; n < count; n++) {
            const float *src = m + o * count + n;
            float r[4][4];
#define COLUMN_FLOAT(i, j) src[(size_t)((i) * 6 + (j)) * plane]
#define RESULT_FLOAT(i, j, value) r[i][j] = (value)
            OUTPUT_TRANSFORM(float, COLUMN_FLOAT, RESULT_FLOAT);
#undef COLUMN_FLOAT
#undef RESULT_FLOAT
            scatter_tile(y, out, o, height, width, first + n, r, b);
        }
    }
}
