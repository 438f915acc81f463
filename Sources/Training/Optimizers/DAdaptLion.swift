import Diffusion
import Foundation

/// dadaptation's DAdaptLion (kohya's `--optimizer_type DAdaptLion`; defaults lr 1, β = (0.9, 0.99),
/// weight decay 0, d0 1e-6), one d for all groups, whose rates must equal the largest or be 0; every
/// group steps with dlr = d·lr, d as it was before this step:
///   p ← p·(1 − dlr·wd);  u = sign(β1·m + (1 − β1)·g);  p ← p − dlr·u
///   m ← β2·m + dlr(1 − β2)·g;  num += dlr·⟨u, s⟩ (s before its update);  s ← √β2·s + dlr(1 − √β2)·u
///   N ← √β2·N + (1 − √β2)·num;  d̂ = N / ((1 − √β2)·Σ‖s‖₁);  d ← max(d, d̂)
/// As in dadaptation, a step whose Σ‖s‖₁ is 0 leaves N, d and the step count where they were.
/// The Lion-equivalent rate is d·lr (kohya logs it as lr/d*lr).
public struct DAdaptLion: Optimizer {
    public var beta1 = 0.9, beta2 = 0.99, weightDecay = 0.0
    public var d0 = 1e-6 { didSet { d = d0 } }
    public private(set) var step = 0
    public private(set) var d = 1e-6
    var numeratorWeighted = 0.0
    var buffers = (m: ParameterBuffers(), s: ParameterBuffers())

    public init() {}

    public var adaptiveScale: Double? { d }

    public mutating func update(_ groups: [ParameterGroup]) throws(OptimizerError) {
        let lr = try groups.sharedLearningRate("DAdaptLion")
        let dlr = d * lr, sqrtBeta2 = beta2.squareRoot()
        let decay = Float(1 - dlr * weightDecay), keep1 = Float(beta1), mix1 = Float(1 - beta1)
        let keepM = Float(beta2), mixM = Float((1 - beta2) * dlr), keepS = Float(sqrtBeta2), mixS = Float((1 - sqrtBeta2) * dlr)
        let stepSize = Float(dlr)
        var accumulated = 0.0, l1 = 0.0
        for group in groups {
            for p in group.parameters {
                var m = buffers.m.take(p.key, count: p.count), s = buffers.s.take(p.key, count: p.count)
                let g = p.gradient.values
                var dot: Float = 0, sum: Float = 0
                p.values.withUnsafeMutableBufferPointer { w in   // buffers: see AdamW.update
                    for i in 0..<w.count {
                        w[i] *= decay
                        let c = m[i] * keep1 + g[i] * mix1
                        let u: Float = c > 0 ? 1 : c < 0 ? -1 : 0
                        w[i] += -stepSize * u
                        m[i] = m[i] * keepM + g[i] * mixM
                        dot += u * s[i]
                        s[i] = s[i] * keepS + u * mixS
                        sum += abs(s[i])
                    }
                }
                accumulated += dlr * Double(dot)
                l1 += Double(sum)
                buffers.m.values[p.key] = m
                buffers.s.values[p.key] = s
            }
        }
        let numerator = sqrtBeta2 * numeratorWeighted + (1 - sqrtBeta2) * accumulated
        guard l1 != 0 else { return }
        numeratorWeighted = numerator
        if lr > 0 { d = max(d, numerator / ((1 - sqrtBeta2) * l1)) }
        step += 1
    }

    public var kohyaName: String { "dadaptation.dadapt_lion.DAdaptLion" }
    public var state: OptimizerState {
        OptimizerState(scalars: ["step": Double(step), "d": d, "numerator_weighted": numeratorWeighted], buffers: ["exp_avg": buffers.m, "s": buffers.s])
    }
    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        (step, d, numeratorWeighted) = (Int(try state.scalar("step")), try state.scalar("d"), try state.scalar("numerator_weighted"))
        buffers = (ParameterBuffers.restore("exp_avg", from: state), ParameterBuffers.restore("s", from: state))
    }
}
