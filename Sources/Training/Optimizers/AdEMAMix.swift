import Diffusion
import Foundation
import LoRACore

/// bitsandbytes' AdEMAMix (Pagliardini et al. 2024), as kohya loads it by module path from the kohya_ss GUI's list
/// (`bitsandbytes.optim.AdEMAMix8bit`, `PagedAdEMAMix8bit`; defaults lr 1e-3, β = (0.9, 0.999, 0.9999), α = 5,
/// ε = 1e-8, weight decay 0.01): Adam's fast moment plus a slow one (β3) weighted by α, in the order of its 32-bit
/// CPU kernel (backends/cpu/ops.py), which the 8-bit forms train as here (their state quantisation saves GPU memory):
///   t_alpha: αt = min(t·α/t_alpha, α);  t_beta3: β3t = min(exp(ln β1·ln β3 / ((1 − s)·ln β3 + s·ln β1)), β3), s = t/t_beta3
///   m1 ← β1·m1 + (1 − β1)·g;  m2 ← β3t·m2 + (1 − β3t)·g;  ν ← β2·ν + (1 − β2)·g²
///   p ← p·(1 − lr·wd);  p ← p − lr·(m1/(1 − β1ᵗ) + αt·m2) / (√ν/√(1 − β2ᵗ) + ε)
public struct AdEMAMix: Optimizer {
    public var beta1 = 0.9, beta2 = 0.999, beta3 = 0.9999, alpha = 5.0, epsilon = 1e-8, weightDecay = 0.01
    /// Steps over which α rises to its value and β3 to its (bitsandbytes' schedulers; nil: none).
    public var alphaWarmup: Int?, beta3Warmup: Int?
    public private(set) var step = 0
    var fast = ParameterBuffers(), slow = ParameterBuffers(), second = ParameterBuffers()

    public init() {}

    public mutating func update(_ groups: [ParameterGroup]) {
        step += 1
        let t = Double(step)
        let alphaT = alphaWarmup.map { min(t * alpha / Double($0), alpha) } ?? alpha
        var beta3T = beta3
        if let warmup = beta3Warmup {
            let s = t / Double(warmup), ln1 = log(beta1), ln3 = log(beta3)
            beta3T = min(exp(ln1 * ln3 / ((1 - s) * ln3 + s * ln1)), beta3)
        }
        let correction1 = Float(1 - pow(beta1, t)), correction2 = Float((1 - pow(beta2, t)).squareRoot())
        let (keep1, mix1, keep2, mix2) = (Float(beta1), Float(1 - beta1), Float(beta2), Float(1 - beta2))
        let (keep3, mix3, a, eps) = (Float(beta3T), Float(1 - beta3T), Float(alphaT), Float(epsilon))
        for group in groups {   // at rate 0 too: see Optimizer.update
            let stepSize = Float(-group.learningRate), decay = Float(1 - group.learningRate * weightDecay)
            for p in group.parameters {
                var m1 = fast.take(p.key, count: p.count), m2 = slow.take(p.key, count: p.count), v = second.take(p.key, count: p.count)
                let decays = weightDecay > 0
                // Buffers and an element-wise split over the cores: see AdamW.update.
                p.values.withUnsafeMutableBufferPointer { w in
                    m1.withUnsafeMutableBufferPointer { m1 in m2.withUnsafeMutableBufferPointer { m2 in v.withUnsafeMutableBufferPointer { v in
                        p.gradient.values.withUnsafeBufferPointer { g in
                            Parallel.forRanges(w.count, cost: 24) { range in
                                for i in range {
                                    m1[i] = m1[i] * keep1 + g[i] * mix1
                                    m2[i] = m2[i] * keep3 + g[i] * mix3
                                    v[i] = v[i] * keep2 + mix2 * g[i] * g[i]
                                    if decays { w[i] *= decay }
                                    w[i] += stepSize * ((m1[i] / correction1 + a * m2[i]) / (v[i].squareRoot() / correction2 + eps))
                                }
                            }
                        }
                    } } }
                }
                (fast.values[p.key], slow.values[p.key], second.values[p.key]) = (m1, m2, v)
            }
        }
    }

    public var kohyaName: String { "bitsandbytes.optim.ademamix.AdEMAMix" }
    public var state: OptimizerState {
        OptimizerState(scalars: ["step": Double(step)], buffers: ["m1": fast, "m2": slow, "nu": second])
    }
    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        step = Int(try state.scalar("step"))
        (fast, slow, second) = (.restore("m1", from: state), .restore("m2", from: state), .restore("nu", from: state))
    }
}
