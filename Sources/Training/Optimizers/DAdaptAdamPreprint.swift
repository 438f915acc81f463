import Diffusion
import Foundation

/// dadaptation's experimental DAdaptAdamPreprint: kohya's `--optimizer_type DAdaptation` (the name older guides use)
/// and `DAdaptAdamPreprint`. Defaults lr 1, β = (0.9, 0.999), ε 1e-8, weight decay 0 (coupled unless decouple), d0 1e-6;
/// one d for all groups, whose rates must equal the largest or be 0. With dlr = d·lr, for the groups with a rate:
///   m ← β1·m + dlr(1 − β1)·g;  v ← β2·v + (1 − β2)·g²;  δ = √v + ε
///   gsq = Σ g²/δ;  s ← β2·s + dlr(1 − β2)·g;  S = Σ s²/δ;  L = Σ|s|
///   G ← β2·G + dlr²(1 − β2)·gsq;  d̂ = (S/(1 − β2) − G)/L;  d ← max(d, min(d̂, d·growth))
///   p ← p − wd·dlr·p (decoupled);  p ← p − m/δ
/// It differs from DAdaptAdam (the paper's final form) in d's estimate: squares weighted by 1/δ rather than ⟨g, s/δ⟩.
public struct DAdaptAdamPreprint: Optimizer {
    public var beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, weightDecay = 0.0, decouple = false, growthRate = Double.infinity
    public var d0 = 1e-6 { didSet { d = d0 } }
    public private(set) var step = 0
    public private(set) var d = 1e-6
    var gradientSquaresWeighted = 0.0
    var buffers = (m: ParameterBuffers(), v: ParameterBuffers(), s: ParameterBuffers())

    public init() {}

    public var adaptiveScale: Double? { d }

    public mutating func update(_ groups: [ParameterGroup]) throws(OptimizerError) {
        let lr = try groups.sharedLearningRate("DAdaptation (DAdaptAdamPreprint)")
        let dlr = d * lr
        let eps = Float(epsilon), keep1 = Float(beta1), mixM = Float(dlr * (1 - beta1)), keep2 = Float(beta2), mixV = Float(1 - beta2)
        let mixS = Float(dlr * (1 - beta2))
        var squares = 0.0, weighted = 0.0, l1 = 0.0
        for group in groups where group.learningRate > 0 {
            for p in group.parameters {
                var g = p.gradient.values
                let w = p.values
                if weightDecay != 0 && !decouple { for i in 0..<p.count { g[i] += Float(weightDecay) * w[i] } }
                var m = buffers.m.take(p.key, count: p.count), v = buffers.v.take(p.key, count: p.count), s = buffers.s.take(p.key, count: p.count)
                var gsq: Float = 0, ssq: Float = 0, sum: Float = 0
                for i in 0..<p.count {
                    m[i] = m[i] * keep1 + g[i] * mixM
                    v[i] = v[i] * keep2 + g[i] * g[i] * mixV
                    let denominator = v[i].squareRoot() + eps
                    gsq += g[i] * g[i] / denominator
                    s[i] = s[i] * keep2 + g[i] * mixS
                    ssq += s[i] * s[i] / denominator
                    sum += abs(s[i])
                }
                (squares, weighted, l1) = (squares + Double(gsq), weighted + Double(ssq), l1 + Double(sum))
                buffers.m.values[p.key] = m
                buffers.v.values[p.key] = v
                buffers.s.values[p.key] = s
            }
        }
        let gradientWeighted = beta2 * gradientSquaresWeighted + squares * dlr * dlr * (1 - beta2)
        // With every s zero the package returns before it keeps G or d (and before the update).
        guard l1 != 0 else { return }
        gradientSquaresWeighted = gradientWeighted
        if lr > 0 { d = max(d, min((weighted / (1 - beta2) - gradientWeighted) / l1, d * growthRate)) }
        DAdaptAdam.applyStep(groups, m: buffers.m, v: buffers.v, epsilon: epsilon, decoupledDecay: decouple ? weightDecay * dlr : 0)
        step += 1
    }

    public var kohyaName: String { "dadaptation.experimental.dadapt_adam_preprint.DAdaptAdamPreprint" }
    public var state: OptimizerState {
        OptimizerState(scalars: ["step": Double(step), "d": d, "gsq_weighted": gradientSquaresWeighted], buffers: ["exp_avg": buffers.m, "exp_avg_sq": buffers.v, "s": buffers.s])
    }
    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        (step, d, gradientSquaresWeighted) = (Int(try state.scalar("step")), try state.scalar("d"), try state.scalar("gsq_weighted"))
        buffers = (ParameterBuffers.restore("exp_avg", from: state), ParameterBuffers.restore("exp_avg_sq", from: state),
                   ParameterBuffers.restore("s", from: state))
    }
}
