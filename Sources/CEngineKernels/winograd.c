// Winograd F(2x2, 3x3) transforms for stride-1, pad-1 3x3 convolutions.
//
// A 3x3 convolution over 2x2 output tiles needs 36 multiplications per tile
// and channel pair directly and 16 after the transforms, so the sixteen GEMMs
// M[p] = U[p] (out x in) * V[p] (in x tiles) do 2.25x less work than im2col.
// The transforms (Lavin & Gray, 2015):
//   V = B^T d B   (4x4 input patch d, with the zero padding)
//   U = G g G^T   (3x3 filter g)
//   Y = A^T M A   (2x2 output tile)
// with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5;
// .5 -.5 .5; 0 0 1], A^T = [1 1 1 0; 0 1 -1 -1]. Layouts are [16][rows][cols]
// so each GEMM operand is a plain row-major matrix.
#include "CEngineKernels.h"
#include <string.h>

void lt_winograd_filter(const float *w, size_t out, size_t in, size_t o_begin, size_t o_end, float *u) {
    const size_t plane = out * in;
    for (size_t o = o_begin; o < o_end; o++) {
        for (size_t c = 0; c < in; c++) {
            const float *g = w + (o * in + c) * 9;
            float t[4][3];
            for (int j = 0; j < 3; j++) {
                float g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
                t[0][j] = g0;
                t[1][j] = 0.5f * (g0 + g1 + g2);
                t[2][j] = 0.5f * (g0 - g1 + g2);
                t[3][j] = g2;
            }
            for (int i = 0; i < 4; i++) {
                float a = t[i][0], b = t[i][1], d = t[i][2];
                float *dst = u + (size_t)(i * 4) * plane + o * in + c;
                dst[0] = a;
                dst[plane] = 0.5f * (a + b + d);
                dst[2 * plane] = 0.5f * (a - b + d);
                dst[3 * plane] = d;
            }
        }
    }
}

// Tiles are numbered over (item, tile row, tile column); `first` is the first
// tile of this chunk and `count` the chunk's size (the GEMMs' column count).
void lt_winograd_input(const float *x, size_t channels, size_t height, size_t width, size_t first, size_t count,
                       size_t c_begin, size_t c_end, float *v) {
    const size_t tiles_h = (height + 1) / 2, tiles_w = (width + 1) / 2, per_item = tiles_h * tiles_w;
    const size_t plane = channels * count;
    for (size_t c = c_begin; c < c_end; c++) {
        for (size_t n = 0; n < count; n++) {
            size_t tile = first + n;
            size_t item = tile / per_item, rest = tile % per_item;
            long ty = (long)(rest / tiles_w), tx = (long)(rest % tiles_w);
            const float *src = x + (item * channels + c) * height * width;
            float d[4][4];
            long y0 = 2 * ty - 1, x0 = 2 * tx - 1;
            for (int i = 0; i < 4; i++) {
                long yy = y0 + i;
                if (yy < 0 || yy >= (long)height) {
                    d[i][0] = d[i][1] = d[i][2] = d[i][3] = 0;
                    continue;
                }
                const float *row = src + yy * (long)width;
                for (int j = 0; j < 4; j++) {
                    long xx = x0 + j;
                    d[i][j] = (xx < 0 || xx >= (long)width) ? 0.0f : row[xx];
                }
            }
            float t[4][4];
            for (int j = 0; j < 4; j++) {
                t[0][j] = d[0][j] - d[2][j];
                t[1][j] = d[1][j] + d[2][j];
                t[2][j] = d[2][j] - d[1][j];
                t[3][j] = d[1][j] - d[3][j];
            }
            float *dst = v + c * count + n;
            for (int i = 0; i < 4; i++) {
                dst[(size_t)(i * 4 + 0) * plane] = t[i][0] - t[i][2];
                dst[(size_t)(i * 4 + 1) * plane] = t[i][1] + t[i][2];
                dst[(size_t)(i * 4 + 2) * plane] = t[i][2] - t[i][1];
                dst[(size_t)(i * 4 + 3) * plane] = t[i][1] - t[i][3];
            }
        }
    }
}

void lt_winograd_output(const float *m, size_t out, size_t height, size_t width, size_t first, size_t count,
                        size_t o_begin, size_t o_end, const float *bias, float *y) {
    const size_t tiles_h = (height + 1) / 2, tiles_w = (width + 1) / 2, per_item = tiles_h * tiles_w;
    const size_t plane = out * count;
    for (size_t o = o_begin; o < o_end; o++) {
        const float b = bias ? bias[o] : 0.0f;
        for (size_t n = 0; n < count; n++) {
            size_t tile = first + n;
            size_t item = tile / per_item, rest = tile % per_item;
            size_t ty = rest / tiles_w, tx = rest % tiles_w;
            const float *src = m + o * count + n;
            float s[4][4];
            for (int p = 0; p < 16; p++) s[p / 4][p % 4] = src[(size_t)p * plane];
            float t[2][4];
            for (int j = 0; j < 4; j++) {
                t[0][j] = s[0][j] + s[1][j] + s[2][j];
                t[1][j] = s[1][j] - s[2][j] - s[3][j];
            }
            float *dst = y + (item * out + o) * height * width;
            for (int i = 0; i < 2; i++) {
                size_t yy = 2 * ty + i;
                if (yy >= height) break;
                float r0 = t[i][0] + t[i][1] + t[i][2] + b;
                float r1 = t[i][1] - t[i][2] - t[i][3] + b;
                size_t xx = 2 * tx;
                dst[yy * width + xx] = r0;
                if (xx + 1 < width) dst[yy * width + xx + 1] = r1;
            }
        }
    }
}
