import LinearAlgebra
import CEngineKernels
import LoRACore

/// The autoencoder's residual block (GroupNorm eps 1e-6, SiLU, 3×3 convs, no
/// time embedding; a 1×1 `nin_shortcut` when the width changes).
struct VAEResBlock: Sendable {
    let norm1: GroupNorm
    let conv1: Conv2d
    let norm2: GroupNorm
    let conv2: Conv2d
    let shortcut: Conv2d?

    init(_ weights: Weights, _ prefix: String, in inChannels: Int, out outChannels: Int) throws(ModelError) {
        norm1 = try GroupNorm(weights, prefix + ".norm1", channels: inChannels, epsilon: 1e-6)
        conv1 = try Conv2d(weights, prefix + ".conv1", in: inChannels, out: outChannels, kernel: 3)
        norm2 = try GroupNorm(weights, prefix + ".norm2", channels: outChannels, epsilon: 1e-6)
        conv2 = try Conv2d(weights, prefix + ".conv2", in: outChannels, out: outChannels, kernel: 3)
        shortcut = inChannels == outChannels ? nil : try Conv2d(weights, prefix + ".nin_shortcut", in: inChannels, out: outChannels, kernel: 1)
    }

    /// Normalisations run in place where their input is not needed again, and a block with a shortcut runs it first,
    /// so that x too can be normalised in place and freed once conv1 has read it (when the caller passes it with
    /// `consume`). At the decoder's full-size level (256 → 128 channels, 604 MB and 302 MB tensors at 768²) the block
    /// held x, its normalised copy and conv1's output at once: the largest step of a training run's sample images
    /// (Benchmarks/README.md). The sums are those of before: floating-point addition commutes.
    func forward(_ x: consuming Tensor) -> Tensor {
        guard let shortcut else {
            var h = conv1.forward(norm1.forward(x, silu: true))       // [b, out, h, w]
            norm2.forwardInPlace(&h, silu: true)
            var out = conv2.forward(consume h)
            addInPlace(&out, x)
            return out
        }
        var out = shortcut.forward(x)                                 // [b, out, h, w]
        norm1.forwardInPlace(&x, silu: true)                          // [b, in, h, w]
        var h = conv1.forward(consume x)
        norm2.forwardInPlace(&h, silu: true)
        addInPlace(&out, conv2.forward(consume h))
        return out
    }
}

/// The autoencoder's single-head self-attention over all pixels (q, k, v and
/// the output projection as 1×1 convs), computed on [C, pixels] directly.
struct VAEAttention: Sendable {
    let norm: GroupNorm
    let q: Conv2d
    let k: Conv2d
    let v: Conv2d
    let out: Conv2d

    init(_ weights: Weights, _ prefix: String, channels c: Int) throws(ModelError) {
        norm = try GroupNorm(weights, prefix + ".norm", channels: c, epsilon: 1e-6)
        q = try Conv2d(weights, prefix + ".q", in: c, out: c, kernel: 1)
        k = try Conv2d(weights, prefix + ".k", in: c, out: c, kernel: 1)
        v = try Conv2d(weights, prefix + ".v", in: c, out: c, kernel: 1)
        out = try Conv2d(weights, prefix + ".proj_out", in: c, out: c, kernel: 1)
    }

    func forward(_ x: Tensor) -> Tensor {
        let batch = x.shape[0], c = x.shape[1], pixels = x.shape[2] * x.shape[3]
        let h = norm.forward(x)
        let qs = q.forward(h), ks = k.forward(h), vs = v.forward(h)
        var attended = Tensor.uninitialized(x.shape)
        let chunk = max(1, min(pixels, Attention.scoreBudget / pixels))
        let scale = 1 / Float(c).squareRoot()
        var scores = [Float](unsafeUninitializedCapacity: chunk * pixels) { _, n in n = chunk * pixels }
        EngineProfile.measure(.attention, flops: 4 * Double(batch * c) * Double(pixels * pixels)) {
        qs.withPointer { qp in ks.withPointer { kp in vs.withPointer { vp in attended.withMutablePointer { op in
            scores.withUnsafeMutableBufferPointer { sp in
                let s = sp.baseAddress!
                for b in 0..<batch {
                    let offset = b * c * pixels
                    var row = 0
                    while row < pixels {
                        let rows = min(chunk, pixels - row)
                        // scores[i, j] = Σ_c q[c, row+i]·k[c, j]
                        LinearAlgebra.gemm(transposeA: true, m: rows, n: pixels, k: c, a: qp + offset + row, lda: pixels,
                             b: kp + offset, ldb: pixels, c: s, ldc: pixels)
                        Parallel.forRanges(rows, cost: pixels * 8) { range in
                            lt_softmax_rows(s + range.lowerBound * pixels, range.count, pixels, pixels, scale)
                        }
                        // out[c, row+i] = Σ_j v[c, j]·scores[i, j]
                        LinearAlgebra.gemm(transposeB: true, m: c, n: rows, k: pixels, a: vp + offset, lda: pixels, b: s, ldb: pixels,
                             c: op + offset + row, ldc: pixels)
                        row += rows
                    }
                }
            }
        } } } }
        }
        var result = out.forward(attended)
        addInPlace(&result, x)
        return result
    }
}
