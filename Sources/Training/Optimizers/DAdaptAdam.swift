import Diffusion
import Foundation

/// dadaptation's DAdaptAdam (kohya's `--optimizer_type DAdaptAdam`; defaults
/// lr 1, β = (0.9, 0.999), ε 1e-8, weight decay 0 (coupled unless decouple),
/// d0 1e-6, no bias correction, layer_scale 1), one d for all groups, whose
/// rates must equal the largest or be 0 (as dadaptation):
///   dlr = d·lr·bc
///   num += dlr·⟨g, s/(√v + ε)⟩  (v before this step's update)
///   m ← β1·m + dlr(1 − β1)·g;  v ← β2·v + (1 − β2)·g²;  s ← √β2·s + dlr(1 − √β2)·g
///   N ← √β2·N + (1 − √β2)·num;  d̂ = N / ((1 − √β2)·Σ‖s‖₁);  d ← max(d, min(d̂, d·growth))
///   p ← p − wd·dlr·p (decoupled);  p ← p − m/(√v + ε)
/// The Adam-equivalent rate is d·lr (kohya logs it as lr/d*lr).
public struct DAdaptAdam: Optimizer {
    public var beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, weightDecay = 0.0, decouple = false
    public var useBiasCorrection = false, growthRate = Double.infinity
    public var d0 = 1e-6 { didSet { d = d0 } }
    public private(set) var step = 0
    public private(set) var d = 1e-6
    var numeratorWeighted = 0.0
    var buffers = (m: ParameterBuffers(), v: ParameterBuffers(), s: ParameterBuffers())

    public init() {}

    public var adaptiveScale: Double? { d }

    public mutating func update(_ groups: [ParameterGroup]) throws(OptimizerError) {
        let lr = try groups.sharedLearningRate("DAdaptAdam")
        let bc = useBiasCorrection ? (1 - pow(beta2, Double(step + 1))).squareRoot() / (1 - pow(beta1, Double(step + 1))) : 1
        let dlr = d * lr * bc
        let sqrtBeta2 = beta2.squareRoot()
        var accumulated = 0.0, l1 = 0.0
        for group in groups where group.learningRate > 0 {
            for p in group.parameters {
                var g = p.gradient.values
                let w = p.values   // read through a local copy of the reference: see AdamW.update
                if weightDecay != 0 && !decouple { for i in 0..<p.count { g[i] += Float(weightDecay) * w[i] } }
                var m = buffers.m.take(p.key, count: p.count), v = buffers.v.take(p.key, count: p.count), s = buffers.s.take(p.key, count: p.count)
                let eps = Float(epsilon), keep1 = Float(beta1), mixM = Float(dlr * (1 - beta1)), keep2 = Float(beta2), mixV = Float(1 - beta2)
                let keepS = Float(sqrtBeta2), mixS = Float(dlr * (1 - sqrtBeta2))
                var dot: Float = 0, sum: Float = 0
                for i in 0..<p.count {
                    dot += g[i] * (s[i] / (v[i].squareRoot() + eps))
                    m[i] = m[i] * keep1 + g[i] * mixM
                    v[i] = v[i] * keep2 + g[i] * g[i] * mixV
                    s[i] = s[i] * keepS + g[i] * mixS
                    sum += abs(s[i])
                }
                accumulated += dlr * Double(dot)
                l1 += Double(sum)
                buffers.m.values[p.key] = m
                buffers.v.values[p.key] = v
                buffers.s.values[p.key] = s
            }
        }
        numeratorWeighted = sqrtBeta2 * numeratorWeighted + (1 - sqrtBeta2) * accumulated
        guard l1 != 0 else { return }
        if lr > 0 {
            let dHat = numeratorWeighted / ((1 - sqrtBeta2) * l1)
            d = max(d, min(dHat, d * growthRate))
        }
        Self.applyStep(groups, m: buffers.m, v: buffers.v, epsilon: epsilon, decoupledDecay: decouple ? weightDecay * dlr : 0)
        step += 1
    }

    /// The parameter step of dadaptation's Adam forms (DAdaptAdam, DAdaptAdamPreprint), for the groups with a rate:
    /// p ← p − wd·dlr·p when the decay is decoupled (`decoupledDecay` = wd·dlr, else 0), then p ← p − m/(√v + ε).
    static func applyStep(_ groups: [ParameterGroup], m: ParameterBuffers, v: ParameterBuffers, epsilon: Double, decoupledDecay: Double) {
        let eps = Float(epsilon), decay = Float(-decoupledDecay)
        for group in groups where group.learningRate > 0 {
            for p in group.parameters {
                let m = m.values[p.key]!, v = v.values[p.key]!
                p.values.withUnsafeMutableBufferPointer { w in
                    for i in 0..<w.count {
                        if decoupledDecay != 0 { w[i] += w[i] * decay }
                        w[i] += -(m[i] / (v[i].squareRoot() + eps))
                    }
                }
            }
        }
    }

    public var kohyaName: String { "dadaptation.dadapt_adam.DAdaptAdam" }
    public var state: OptimizerState {
        OptimizerState(scalars: ["step": Double(step), "d": d, "numerator_weighted": numeratorWeighted], buffers: ["exp_avg": buffers.m, "exp_avg_sq": buffers.v, "s": buffers.s])
    }
    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        (step, d, numeratorWeighted) = (Int(try state.scalar("step")), try state.scalar("d"), try state.scalar("numerator_weighted"))
        buffers = (ParameterBuffers.restore("exp_avg", from: state), ParameterBuffers.restore("exp_avg_sq", from: state),
                   ParameterBuffers.restore("s", from: state))
    }
}
