import LoRACore

/// Nearest-neighbour ×2 upsampling of an NCHW tensor (before the 3×3 conv of
/// the U-Net's and the VAE decoder's upsamplers).
func upsampleNearest2x(_ x: Tensor) -> Tensor {
    EngineProfile.measure(.elementwise) { upsampleRun(x) }
}

private func upsampleRun(_ x: Tensor) -> Tensor {
    let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    var y = Tensor.uninitialized([x.shape[0], x.shape[1], 2 * h, 2 * w])
    x.withPointer { xp in
        y.withMutablePointer { yp in
            Parallel.forEach(planes, cost: 4 * h * w) { p in
                let source = xp + p * h * w, target = yp + p * 4 * h * w
                for row in 0..<h {
                    let out = target + 2 * row * 2 * w
                    for col in 0..<w {
                        let v = source[row * w + col]
                        out[2 * col] = v
                        out[2 * col + 1] = v
                    }
                    (out + 2 * w).update(from: out, count: 2 * w)
                }
            }
        }
    }
    return y
}

/// Channel-wise concatenation of two NCHW tensors with the same batch. When
/// their sizes differ (an image side that is a multiple of 8 but not of 64:
/// the decoder path comes back one row or column larger than the skip), `a`
/// is first resized to `b`'s size by nearest neighbour, as A1111's U-Net
/// hijack does (modules/sd_hijack_unet.py, TorchHijackForUnet.cat).
func concatenateChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
    let a = a.shape[2] == b.shape[2] && a.shape[3] == b.shape[3] ? a : resizeNearest(a, height: b.shape[2], width: b.shape[3])
    return EngineProfile.measure(.elementwise) { concatenateRun(a, b) }
}

/// torch's `F.interpolate(x, size, mode="nearest")`: source index
/// floor(i · (in/out)) with the scale in single precision, as torch computes it.
func resizeNearest(_ x: Tensor, height: Int, width: Int) -> Tensor {
    let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
    let scaleY = Float(h) / Float(height), scaleX = Float(w) / Float(width)
    let rows = (0..<height).map { min(h - 1, Int((Float($0) * scaleY).rounded(.down))) }
    let cols = (0..<width).map { min(w - 1, Int((Float($0) * scaleX).rounded(.down))) }
    var y = Tensor.uninitialized([x.shape[0], x.shape[1], height, width])
    x.withPointer { xp in
        y.withMutablePointer { yp in
            for p in 0..<planes {
                let source = xp + p * h * w, target = yp + p * height * width
                for (r, sr) in rows.enumerated() {
                    for (c, sc) in cols.enumerated() { target[r * width + c] = source[sr * w + sc] }
                }
            }
        }
    }
    return y
}

private func concatenateRun(_ a: Tensor, _ b: Tensor) -> Tensor {
    let batch = a.shape[0], spatial = a.shape[2] * a.shape[3]
    let ca = a.shape[1], cb = b.shape[1]
    var y = Tensor.uninitialized([batch, ca + cb, a.shape[2], a.shape[3]])
    y.withMutablePointer { yp in
        a.withPointer { ap in
            b.withPointer { bp in
                for item in 0..<batch {
                    (yp + item * (ca + cb) * spatial).update(from: ap + item * ca * spatial, count: ca * spatial)
                    (yp + (item * (ca + cb) + ca) * spatial).update(from: bp + item * cb * spatial, count: cb * spatial)
                }
            }
        }
    }
    return y
}

/// [B, C, S] ↔ [B, S, C] for every batch item.
func transposeLastTwo(_ x: Tensor, rows: Int, cols: Int) -> Tensor {
    EngineProfile.measure(.elementwise) { transposeRun(x, rows: rows, cols: cols) }
}

private func transposeRun(_ x: Tensor, rows: Int, cols: Int) -> Tensor {
    let batch = x.count / (rows * cols)
    var y = Tensor.uninitialized([batch, cols, rows])
    x.withPointer { xp in
        y.withMutablePointer { yp in
            for item in 0..<batch { transpose(xp + item * rows * cols, rows: rows, cols: cols, into: yp + item * rows * cols) }
        }
    }
    return y
}
