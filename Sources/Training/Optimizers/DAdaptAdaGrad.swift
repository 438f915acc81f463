import Diffusion
import Foundation

/// dadaptation's DAdaptAdaGrad (kohya's `--optimizer_type DAdaptAdaGrad`; defaults lr 1, momentum 0, weight decay 0
/// (coupled), ε 1e-6, d0 1e-6). The package runs every group at the first group's rate, so the groups' rates must be
/// equal here. With dlr = d·lr:
///   g ← g + wd·p;  α ← α + g² (α starts at 1e-6);  Σ g²/(√α + ε) into gsq
///   s ← s + dlr·g;  S = Σ s²/(√α + ε) and L = Σ|s| kept as running totals of their changes
///   G ← G + dlr²·gsq;  d̂ = (S − G)/L;  d ← max(d, min(d̂, d·growth))
///   z = x₀ − s/(√α + ε);  p ← momentum·p + (1 − momentum)·z
public struct DAdaptAdaGrad: Optimizer {
    public var momentum = 0.0, weightDecay = 0.0, epsilon = 1e-6, growthRate = Double.infinity
    public var d0 = 1e-6 { didSet { d = d0 } }
    public private(set) var step = 0
    public private(set) var d = 1e-6
    var gradientSquaresWeighted = 0.0, sumSquaresWeighted = 0.0, sumL1 = 0.0
    var buffers = (alpha: ParameterBuffers(), s: ParameterBuffers(), x0: ParameterBuffers())

    public init() {}

    public var adaptiveScale: Double? { d }

    public mutating func update(_ groups: [ParameterGroup]) throws(OptimizerError) {
        let lr = try groups.firstGroupLearningRate("DAdaptAdaGrad")
        let dlr = d * lr
        let eps = Float(epsilon), scale = Float(dlr)
        var squares = 0.0, weightedChange = 0.0, l1Change = 0.0
        for group in groups {
            for p in group.parameters {
                var g = p.gradient.values
                let w = p.values
                if buffers.x0.values[p.key] == nil {
                    buffers.x0.values[p.key] = w
                    buffers.alpha.values[p.key] = [Float](repeating: 1e-6, count: p.count)
                }
                if weightDecay != 0 { for i in 0..<p.count { g[i] += Float(weightDecay) * w[i] } }
                var alpha = buffers.alpha.take(p.key, count: p.count), s = buffers.s.take(p.key, count: p.count)
                var oldWeighted: Float = 0, oldL1: Float = 0, gsq: Float = 0, newWeighted: Float = 0, newL1: Float = 0
                for i in 0..<p.count {
                    oldWeighted += s[i] * s[i] / (alpha[i].squareRoot() + eps)
                    oldL1 += abs(s[i])
                    alpha[i] += g[i] * g[i]
                    let root = alpha[i].squareRoot() + eps
                    gsq += g[i] * g[i] / root
                    s[i] += g[i] * scale
                    newWeighted += s[i] * s[i] / root
                    newL1 += abs(s[i])
                }
                squares += Double(gsq)
                weightedChange += Double(newWeighted) - Double(oldWeighted)
                l1Change += Double(newL1) - Double(oldL1)
                buffers.alpha.values[p.key] = alpha
                buffers.s.values[p.key] = s
            }
        }
        let weighted = sumSquaresWeighted + weightedChange, l1 = sumL1 + l1Change
        // With every s zero the package returns before it keeps its totals or d (and before the update).
        guard l1 != 0 else { return }
        (sumSquaresWeighted, sumL1) = (weighted, l1)
        gradientSquaresWeighted += dlr * dlr * squares
        if lr > 0 { d = max(d, min((weighted - gradientSquaresWeighted) / l1, d * growthRate)) }
        let keep = Float(momentum), mix = Float(1 - momentum)
        for group in groups {
            for p in group.parameters {
                let x0 = buffers.x0.values[p.key]!, s = buffers.s.values[p.key]!, alpha = buffers.alpha.values[p.key]!
                p.values.withUnsafeMutableBufferPointer { w in
                    for i in 0..<w.count {
                        let z = x0[i] - s[i] / (alpha[i].squareRoot() + eps)
                        w[i] = momentum != 0 ? w[i] * keep + z * mix : z
                    }
                }
            }
        }
        step += 1
    }

    public var kohyaName: String { "dadaptation.dadapt_adagrad.DAdaptAdaGrad" }
    public var state: OptimizerState {
        OptimizerState(scalars: ["step": Double(step), "d": d, "gsq_weighted": gradientSquaresWeighted,
                                         "sksq_weighted": sumSquaresWeighted, "skl1": sumL1], buffers: ["alphak": buffers.alpha, "sk": buffers.s, "x0": buffers.x0])
    }
    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        (step, d) = (Int(try state.scalar("step")), try state.scalar("d"))
        (gradientSquaresWeighted, sumSquaresWeighted, sumL1) = (try state.scalar("gsq_weighted"), try state.scalar("sksq_weighted"), try state.scalar("skl1"))
        buffers = (ParameterBuffers.restore("alphak", from: state), ParameterBuffers.restore("sk", from: state), ParameterBuffers.restore("x0", from: state))
    }
}
