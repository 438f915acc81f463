import Diffusion
import Foundation

/// lion-pytorch's Lion (what kohya's `--optimizer_type Lion` loads; defaults
/// β = (0.9, 0.99), weight decay 0), in its order:
///   p ← p·(1 − lr·wd)
///   p ← p − lr·sign(β1·m + (1 − β1)·g)
///   m ← β2·m + (1 − β2)·g
/// Wants a learning rate 3–10× below AdamW's.
public struct Lion: Optimizer {
    public var beta1 = 0.9, beta2 = 0.99, weightDecay = 0.0
    public private(set) var step = 0
    var momentum = ParameterBuffers()

    public init(beta1: Double = 0.9, beta2: Double = 0.99, weightDecay: Double = 0) {
        (self.beta1, self.beta2, self.weightDecay) = (beta1, beta2, weightDecay)
    }

    public mutating func update(_ groups: [ParameterGroup]) {
        step += 1
        let keep1 = Float(beta1), mix1 = Float(1 - beta1), keep2 = Float(beta2), mix2 = Float(1 - beta2)
        for group in groups {   // at rate 0 too: see Optimizer.update
            let lr = Float(group.learningRate), decay = Float(1 - group.learningRate * weightDecay)
            for p in group.parameters {
                var m = momentum.take(p.key, count: p.count)
                let g = p.gradient.values
                p.values.withUnsafeMutableBufferPointer { w in   // buffers: see AdamW.update
                    for i in 0..<w.count {
                        w[i] *= decay
                        let c = m[i] * keep1 + g[i] * mix1
                        w[i] += -lr * (c > 0 ? 1 : c < 0 ? -1 : 0)
                        m[i] = m[i] * keep2 + g[i] * mix2
                    }
                }
                momentum.values[p.key] = m
            }
        }
    }

    public var kohyaName: String { "lion_pytorch.lion_pytorch.Lion" }
    public var state: OptimizerState {
        OptimizerState(scalars: ["step": Double(step)], buffers: ["exp_avg": momentum])
    }
    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        step = Int(try state.scalar("step"))
        momentum = ParameterBuffers.restore("exp_avg", from: state)
    }
}
