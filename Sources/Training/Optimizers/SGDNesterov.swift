import Diffusion
import Foundation

/// torch.optim.SGD with Nesterov momentum (kohya's `SGDNesterov`; kohya sets
/// momentum 0.9 when not given; no dampening), in torch's order:
///   g ← g + wd·p;  b ← μ·b + g (b = g on the first step);  p ← p − lr·(g + μ·b)
public struct SGDNesterov: Optimizer {
    public var momentum = 0.9, weightDecay = 0.0
    public private(set) var step = 0
    var buffers = ParameterBuffers()

    public init(momentum: Double = 0.9, weightDecay: Double = 0) {
        (self.momentum, self.weightDecay) = (momentum, weightDecay)
    }

    public mutating func update(_ groups: [ParameterGroup]) {
        let first = step == 0
        step += 1
        let mu = Float(momentum), wd = Float(weightDecay)
        for group in groups {   // at rate 0 too: see Optimizer.update
            let lr = Float(group.learningRate)
            for p in group.parameters {
                var b = buffers.take(p.key, count: p.count)
                let g = p.gradient.values
                p.values.withUnsafeMutableBufferPointer { w in   // buffers: see AdamW.update
                    for i in 0..<w.count {
                        let d = wd != 0 ? g[i] + wd * w[i] : g[i]
                        b[i] = first ? d : b[i] * mu + d
                        w[i] += -lr * (d + mu * b[i])
                    }
                }
                buffers.values[p.key] = b
            }
        }
    }

    public var kohyaName: String { "torch.optim.sgd.SGD" }
    public var state: OptimizerState {
        OptimizerState(scalars: ["step": Double(step)], buffers: ["momentum_buffer": buffers])
    }
    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        step = Int(try state.scalar("step"))
        buffers = ParameterBuffers.restore("momentum_buffer", from: state)
    }
}
