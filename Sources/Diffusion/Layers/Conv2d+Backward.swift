import CEngineKernels
import LinearAlgebra
import LoRACore

extension Conv2d {
    /// Backward of out = W ⊛ x + b. x: [batch, in, h, w] (the forward's input),
    /// dy: [batch, out, oh, ow]. With cols(x) the im2col matrix [in·k·k, oh·ow]:
    ///   dx = col2im(Wᵀ·dy)                      [batch, in, h, w]
    ///   dW += dy·cols(x)ᵀ   per item            [out, in·k·k]
    ///   db += Σ_pixels dy                        [out]
    /// A 3×3, stride-1, pad-1 convolution's dx is itself such a convolution of
    /// dy (filters transposed and flipped), so where the forward would take
    /// Winograd's path it runs there, its filters transformed straight from W
    /// in W's own layout with the taps reversed and multiplied transposed (no
    /// flipped copy); a 1×1 convolution's columns are its input, so it skips
    /// im2col and col2im; other shapes (strided downsamplers, the small deep
    /// levels) take col2im.
    public func backward(input x: Tensor, outputGradient dy: Tensor, weightGradient: Gradient? = nil, biasGradient: Gradient? = nil) -> Tensor {
        let (oh, ow) = outputSize(height: x.shape[2], width: x.shape[3])
        let flops = 2 * Double(x.shape[0] * oh * ow) * Double(outChannels * inChannels * kernel * kernel) * (weightGradient == nil ? 1 : 2)
        return EngineProfile.measure(.convolutionBackward, flops: flops) {
            run(input: x, outputGradient: dy, weightGradient: weightGradient, biasGradient: biasGradient)
        }
    }

    private func run(input x: Tensor, outputGradient dy: Tensor, weightGradient: Gradient?, biasGradient: Gradient?) -> Tensor {
        let batch = x.shape[0], height = x.shape[2], width = x.shape[3]
        let (oh, ow) = outputSize(height: height, width: width)
        precondition(dy.shape == [batch, outChannels, oh, ow], "Conv2d.backward \(key): dy is \(dy.shape), expected \([batch, outChannels, oh, ow])")
        let pixels = oh * ow, k = inChannels * kernel * kernel
        let pointwise = kernel == 1 && stride == 1 && padding == .same(0)
        let w = store.floats()
        var dx: Tensor
        if kernel == 3 && stride == 1 && padding == .same(1)
            && Conv2d.usesWinograd(batch: batch, height: height, width: width, inChannels: outChannels, outChannels: inChannels) {
            let (inChannels, outChannels) = (self.inChannels, self.outChannels)
            dx = w.withUnsafeBufferPointer { wp in
                Conv2d.winogradTiles(dy, outChannels: inChannels, bias: nil, transposedFilters: true) { u in
                    let source = UncheckedSendable(wp.baseAddress!), target = UncheckedSendable(u)
                    Parallel.forRanges(outChannels, cost: inChannels * 64) { range in
                        lt_winograd_filter_flipped(source.value, outChannels, inChannels, range.lowerBound, range.upperBound, target.value)
                    }
                }
            }
        } else if pointwise {
            // 1×1: cols(x) is x itself, so dx = Wᵀ·dy lands in place (no columns, no col2im pass).
            dx = Tensor.uninitialized(x.shape)
            dy.withPointer { dyp in dx.withMutablePointer { dxp in w.withUnsafeBufferPointer { wp in
                for item in 0..<batch {
                    LinearAlgebra.gemm(transposeA: true, m: inChannels, n: pixels, k: outChannels, a: wp.baseAddress!, lda: inChannels,
                                       b: dyp + item * outChannels * pixels, ldb: pixels, c: dxp + item * inChannels * pixels, ldc: pixels)
                }
            } } }
        } else {
            dx = Tensor(zeros: x.shape)
            var cols = [Float](unsafeUninitializedCapacity: k * pixels) { _, n in n = k * pixels }
            dy.withPointer { dyp in dx.withMutablePointer { dxp in w.withUnsafeBufferPointer { wp in cols.withUnsafeMutableBufferPointer { cp in
                for item in 0..<batch {
                    LinearAlgebra.gemm(transposeA: true, m: k, n: pixels, k: outChannels, a: wp.baseAddress!, lda: k,
                                       b: dyp + item * outChannels * pixels, ldb: pixels, c: cp.baseAddress!, ldc: pixels)
                    col2im(cp.baseAddress!, height: height, width: width, outputSize: (oh, ow), into: dxp + item * inChannels * height * width)
                }
            } } } }
        }
        if weightGradient != nil || biasGradient != nil {
            let columns = pointwise ? 0 : k * pixels                                     // 1×1: x is its own columns
            var cols = [Float](unsafeUninitializedCapacity: columns) { _, n in n = columns }
            x.withPointer { xp in dy.withPointer { dyp in cols.withUnsafeMutableBufferPointer { cp in
                for item in 0..<batch {
                    let upstream = dyp + item * outChannels * pixels
                    weightGradient?.withPointer { g in
                        let input = xp + item * inChannels * height * width
                        if !pointwise {
                            im2col(input, height: height, width: width, outputRows: 0..<oh, outputWidth: ow, into: cp.baseAddress!)
                        }
                        LinearAlgebra.gemm(transposeB: true, m: outChannels, n: k, k: pixels, a: upstream, lda: pixels,
                                           b: pointwise ? input : UnsafePointer(cp.baseAddress!), ldb: pixels, beta: 1, c: g, ldc: k)
                    }
                    biasGradient?.withPointer { g in
                        for o in 0..<outChannels {
                            let row = upstream + o * pixels
                            var sum = 0.0
                            for i in 0..<pixels { sum += Double(row[i]) }
                            g[o] += Float(sum)
                        }
                    }
                }
            } } }
        }
        return dx
    }

    /// Adds columns [in·k·k, oh·ow] back onto the input planes they were
    /// read from (im2col's adjoint). Rows of one channel touch only that
    /// channel's plane, so channels run in parallel.
    func col2im(_ col: UnsafePointer<Float>, height: Int, width: Int, outputSize: (Int, Int), into dx: UnsafeMutablePointer<Float>) {
        let (oh, ow) = outputSize
        let taps = kernel * kernel, pixels = oh * ow
        let (kernel, stride, padding) = (self.kernel, self.stride, self.padding)
        let target = UncheckedSendable(dx)
        Parallel.forEach(inChannels, cost: taps * pixels) { c in
            let plane = target.value + c * height * width
            for tap in 0..<taps {
                let ky = tap / kernel, kx = tap % kernel
                let row = col + (c * taps + tap) * pixels
                for oy in 0..<oh {
                    let iy = oy * stride - padding.top + ky
                    guard iy >= 0 && iy < height else { continue }
                    for ox in 0..<ow {
                        let ix = ox * stride - padding.left + kx
                        if ix >= 0 && ix < width { plane[iy * width + ix] += row[oy * ow + ox] }
                    }
                }
            }
        }
    }
}
