import Diffusion
import Foundation

/// dadaptation's DAdaptSGD (kohya's `--optimizer_type DAdaptSGD`; defaults lr 1, momentum 0, weight decay 0
/// (coupled), d0 1e-6), one d for all groups, whose rates must equal the largest or be 0:
///   at the first step, ‖g₀‖ (the raw gradients of the groups with a rate) fixes the scale: dlr = d·lr/‖g₀‖
///   g ← g + wd·p;  num += dlr·⟨g, s⟩ (s before this step's update);  s ← s + dlr·g
///   d̂ = 2·num/‖s‖₂;  d ← max(d, min(d̂, d·growth))
///   z = x₀ − s;  p ← momentum·p + (1 − momentum)·z
/// The rate an SGD user would quote is dlr (kohya logs d·lr).
public struct DAdaptSGD: Optimizer {
    public var momentum = 0.0, weightDecay = 0.0, growthRate = Double.infinity
    public var d0 = 1e-6 { didSet { d = d0 } }
    public private(set) var step = 0
    public private(set) var d = 1e-6
    var numeratorWeighted = 0.0, firstGradientNorm = 0.0
    var buffers = (s: ParameterBuffers(), x0: ParameterBuffers())

    public init() {}

    public var adaptiveScale: Double? { d }

    public mutating func update(_ groups: [ParameterGroup]) throws(OptimizerError) {
        let lr = try groups.sharedLearningRate("DAdaptSGD")
        if step == 0 {
            var squares = 0.0
            for group in groups where group.learningRate > 0 {
                for p in group.parameters { squares += p.gradient.values.reduce(0.0) { $0 + Double($1) * Double($1) } }
            }
            firstGradientNorm = squares.squareRoot()
            // dadaptation divides by it (a ZeroDivisionError there).
            guard firstGradientNorm > 0 else {
                throw OptimizerError(groups.contains { $0.learningRate > 0 }
                    ? "DAdaptSGD: the first step's gradients are all zero, so it has no scale"
                    : "DAdaptSGD: the first step's rate is 0 (a warmup), so it has no scale (dadaptation divides by zero there); give it no warmup")
            }
        }
        let dlr = d * lr / firstGradientNorm
        var squares = 0.0, numerator = numeratorWeighted
        for group in groups {
            for p in group.parameters {
                var g = p.gradient.values
                let w = p.values
                if weightDecay != 0 { for i in 0..<p.count { g[i] += Float(weightDecay) * w[i] } }
                if buffers.x0.values[p.key] == nil { buffers.x0.values[p.key] = w }
                guard group.learningRate > 0 else { continue }
                var s = buffers.s.take(p.key, count: p.count)
                var dot: Float = 0, sum: Float = 0
                let scale = Float(dlr)
                for i in 0..<p.count {
                    dot += g[i] * s[i]
                    s[i] += g[i] * scale
                    sum += s[i] * s[i]
                }
                numerator += dlr * Double(dot)
                squares += Double(sum)
                buffers.s.values[p.key] = s
            }
        }
        // With every s zero the package returns before it keeps d and the numerator (and before the update).
        guard squares != 0 else { return }
        numeratorWeighted = numerator
        if lr > 0 { d = max(d, min(2 * numerator / squares.squareRoot(), d * growthRate)) }
        let keep = Float(momentum), mix = Float(1 - momentum)
        for group in groups {
            for p in group.parameters {
                let x0 = buffers.x0.values[p.key]!, s = buffers.s.values[p.key]
                p.values.withUnsafeMutableBufferPointer { w in
                    for i in 0..<w.count {
                        let z = x0[i] - (s?[i] ?? 0)
                        w[i] = w[i] * keep + z * mix
                    }
                }
            }
        }
        step += 1
    }

    public var kohyaName: String { "dadaptation.dadapt_sgd.DAdaptSGD" }
    public var state: OptimizerState {
        OptimizerState(scalars: ["step": Double(step), "d": d, "numerator_weighted": numeratorWeighted, "g0_norm": firstGradientNorm], buffers: ["s": buffers.s, "x0": buffers.x0])
    }
    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        (step, d, numeratorWeighted) = (Int(try state.scalar("step")), try state.scalar("d"), try state.scalar("numerator_weighted"))
        firstGradientNorm = try state.scalar("g0_norm")
        buffers = (ParameterBuffers.restore("s", from: state), ParameterBuffers.restore("x0", from: state))
    }
}
