import Diffusion
import Foundation
import LoRACore

/// torch.optim.AdamW as sd-scripts uses it (defaults β = (0.9, 0.999),
/// ε = 1e-8, weight decay 0.01), in the order of torch's single-tensor
/// implementation (torch/optim/adamw.py, `_single_tensor_adamw`; CPU tensors
/// take this path), so float32 results follow torch's roundings:
///   p ← p·(1 − lr·wd)
///   m ← lerp(m, g, 1 − β1)
///   v ← β2·v + (1 − β2)·g²
///   p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
///
/// Hyperparameters are doubles, as Python floats are: torch derives each
/// float32 scalar (1 − β1, 1 − lr·wd, …) in double precision first.
public struct AdamW: Optimizer {
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var epsilon = 1e-8
    public var weightDecay = 0.01
    public internal(set) var step = 0
    /// Per parameter key: the first and second moments (torch's exp_avg, exp_avg_sq).
    public internal(set) var moments: [String: (m: [Float], v: [Float])] = [:]

    public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0.01) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    public mutating func update(_ groups: [ParameterGroup]) {
        step += 1
        // torch computes the corrections in Python floats (double), then uses them as scalars.
        let correction1 = 1 - pow(beta1, Double(step)), correction2 = 1 - pow(beta2, Double(step))
        let correction2Root = Float(correction2.squareRoot())
        let mixM = Float(1 - beta1), keepV = Float(beta2), mixV = Float(1 - beta2), eps = Float(epsilon)
        for group in groups {   // at rate 0 too: see Optimizer.update
            let lr = group.learningRate
            let stepSize = Float(lr / correction1)
            let decay = Float(1 - lr * weightDecay)
            for parameter in group.parameters {
                // Taken out of the table while updated, so the arrays are not copied on write.
                var (m, v) = moments.removeValue(forKey: parameter.key)
                    ?? ([Float](repeating: 0, count: parameter.count), [Float](repeating: 0, count: parameter.count))
                // Through buffers: indexing a class's array property element by element pays an exclusivity
                // check per access (measured: a fifth of a tiny U-Net's training step), and an array's bounds
                // checks keep the loop from being vectorised (the gradient's too: 6% of that step).
                parameter.values.withUnsafeMutableBufferPointer { p in
                    m.withUnsafeMutableBufferPointer { m in
                        v.withUnsafeMutableBufferPointer { v in parameter.gradient.values.withUnsafeBufferPointer { g in
                            // Element by element, so splitting over the cores changes no result.
                            Parallel.forRanges(p.count, cost: 16) { range in
                                for i in range {
                                    p[i] *= decay
                                    // torch's vectorised lerp is a fused multiply-add; addcmul multiplies left to right.
                                    m[i] = m[i].addingProduct(mixM, g[i] - m[i])
                                    v[i] = v[i] * keepV + mixV * g[i] * g[i]
                                    let denominator = v[i].squareRoot() / correction2Root + eps
                                    p[i] += -stepSize * (m[i] / denominator)
                                }
                            }
                        } }
                    }
                }
                moments[parameter.key] = (m, v)
            }
        }
    }

    public var kohyaName: String { "torch.optim.adamw.AdamW" }

    public var state: OptimizerState {
        var s = OptimizerState(scalars: ["step": Double(step)])
        for (key, (m, v)) in moments {
            s.tensors[key + ".exp_avg"] = m
            s.tensors[key + ".exp_avg_sq"] = v
        }
        return s
    }

    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        step = Int(try state.scalar("step"))
        let m = ParameterBuffers.restore("exp_avg", from: state), v = ParameterBuffers.restore("exp_avg_sq", from: state)
        moments = [:]
        for (key, first) in m.values {
            guard let second = v.values[key] else { throw OptimizerError("\(key) has exp_avg without exp_avg_sq") }
            moments[key] = (first, second)
        }
    }
}
