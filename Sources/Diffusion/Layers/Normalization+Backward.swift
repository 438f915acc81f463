import CEngineKernels
import Foundation
import LoRACore

// Both norms: x̂ = (x − μ)·rstd over a set of n values, y = γ·x̂ + β. With
// dx̂ = dy·γ:
//   dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂·x̂))
//   dγ += Σ dy·x̂,  dβ += Σ dy   (per channel / per column)
// Statistics are recomputed from the input, in double as the forward does.

extension GroupNorm {
    /// x: [batch, channels, …] (the forward's input); `silu` as in the forward
    /// (y = silu(norm(x)): its derivative is applied to dy first).
    public func backward(input x: Tensor, outputGradient dy: Tensor, silu: Bool = false,
                         weightGradient: Gradient? = nil, biasGradient: Gradient? = nil) -> Tensor {
        EngineProfile.measure(.normalizationBackward) {
            run(input: x, outputGradient: dy, silu: silu, weightGradient: weightGradient, biasGradient: biasGradient)
        }
    }

    private func run(input x: Tensor, outputGradient dy: Tensor, silu: Bool, weightGradient: Gradient?, biasGradient: Gradient?) -> Tensor {
        precondition(x.count == dy.count)
        let batch = x.shape[0]
        let spatial = x.count / (batch * channels)
        let perGroup = channels / groups
        let gamma = weight, beta = bias, epsilon = Double(self.epsilon), channels = self.channels, groups = self.groups
        var dx = Tensor.uninitialized(x.shape)
        // Per (item, channel) partial sums of dγ and dβ, reduced over items after.
        var partialGamma = [Double](repeating: 0, count: batch * channels), partialBeta = partialGamma
        x.withPointer { xp in dy.withPointer { dyp in dx.withMutablePointer { dxp in
        partialGamma.withUnsafeMutableBufferPointer { pg in partialBeta.withUnsafeMutableBufferPointer { pb in
            let sumsGamma = UncheckedSendable(pg.baseAddress!), sumsBeta = UncheckedSendable(pb.baseAddress!)
            Parallel.forEach(batch * groups, cost: perGroup * spatial * 8) { index in
                let b = index / groups, g = index % groups
                let offset = (b * channels + g * perGroup) * spatial
                let n = perGroup * spatial
                let source = xp + offset, upstream = dyp + offset, target = dxp + offset
                let (mean, rstd) = normalizationStatistics(source, count: n, epsilon: epsilon)
                // dz (through SiLU when fused), the per-channel dγ and dβ, and dx, in one C kernel per group.
                gamma.withUnsafeBufferPointer { gp in beta.withUnsafeBufferPointer { bp in
                    let first = g * perGroup
                    lt_group_norm_backward(source, upstream, target, perGroup, spatial, gp.baseAddress! + first, bp.baseAddress! + first,
                                           mean, rstd, silu ? 1 : 0, sumsGamma.value + b * channels + first, sumsBeta.value + b * channels + first)
                } }
            }
        } } } } }
        for (gradient, partial) in [(weightGradient, partialGamma), (biasGradient, partialBeta)] {
            guard let gradient else { continue }
            gradient.withPointer { p in
                for c in 0..<channels { p[c] += Float((0..<batch).reduce(0.0) { $0 + partial[$1 * channels + c] }) }
            }
        }
        return dx
    }
}

extension LayerNorm {
    /// x: [tokens, width] (the forward's input).
    public func backward(input x: Tensor, outputGradient dy: Tensor, weightGradient: Gradient? = nil, biasGradient: Gradient? = nil) -> Tensor {
        EngineProfile.measure(.normalizationBackward) { run(input: x, outputGradient: dy, weightGradient: weightGradient, biasGradient: biasGradient) }
    }

    private func run(input x: Tensor, outputGradient dy: Tensor, weightGradient: Gradient?, biasGradient: Gradient?) -> Tensor {
        precondition(x.count == dy.count)
        let rows = x.count / width, width = self.width, epsilon = Double(self.epsilon), gamma = weight
        var dx = Tensor.uninitialized(x.shape)
        var statistics = [Double](repeating: 0, count: 2 * rows)  // mean, rstd per row
        x.withPointer { xp in dy.withPointer { dyp in dx.withMutablePointer { dxp in statistics.withUnsafeMutableBufferPointer { sp in
            let stats = UncheckedSendable(sp.baseAddress!)
            Parallel.forEach(rows, cost: width * 8) { r in
                let s = xp + r * width, d = dyp + r * width, t = dxp + r * width
                let (mean, rstd) = normalizationStatistics(s, count: width, epsilon: epsilon)
                stats.value[2 * r] = mean
                stats.value[2 * r + 1] = rstd
                var sumDxHat = 0.0, sumDxHatXHat = 0.0
                for i in 0..<width {
                    let dxHat = Double(d[i]) * Double(gamma[i]), xHat = (Double(s[i]) - mean) * rstd
                    sumDxHat += dxHat
                    sumDxHatXHat += dxHat * xHat
                }
                let m1 = sumDxHat / Double(width), m2 = sumDxHatXHat / Double(width)
                for i in 0..<width {
                    let xHat = (Double(s[i]) - mean) * rstd
                    t[i] = Float(rstd * (Double(d[i]) * Double(gamma[i]) - m1 - xHat * m2))
                }
            }
            guard weightGradient != nil || biasGradient != nil else { return }
            // Parameter gradients by column blocks: each column is one task's alone.
            var dGamma = [Double](repeating: 0, count: width), dBeta = dGamma
            dGamma.withUnsafeMutableBufferPointer { gp in dBeta.withUnsafeMutableBufferPointer { bp in
                let outGamma = UncheckedSendable(gp.baseAddress!), outBeta = UncheckedSendable(bp.baseAddress!)
                Parallel.forRanges(width, cost: rows * 4) { columns in
                    for r in 0..<rows {
                        let s = xp + r * width, d = dyp + r * width
                        let mean = stats.value[2 * r], rstd = stats.value[2 * r + 1]
                        for i in columns {
                            outGamma.value[i] += Double(d[i]) * (Double(s[i]) - mean) * rstd
                            outBeta.value[i] += Double(d[i])
                        }
                    }
                }
            } }
            weightGradient?.withPointer { p in for i in 0..<width { p[i] += Float(dGamma[i]) } }
            biasGradient?.withPointer { p in for i in 0..<width { p[i] += Float(dBeta[i]) } }
        } } } }
        return dx
    }
}
