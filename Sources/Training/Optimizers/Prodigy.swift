import Diffusion
import Foundation

/// prodigyopt's Prodigy (kohya's `--optimizer_type Prodigy`; defaults lr 1,
/// β = (0.9, 0.999), β3 = √β2, ε 1e-8, decoupled weight decay 0, d0 1e-6,
/// d_coef 1, no bias correction, no safeguard warmup), one d shared by all
/// groups, whose rates must equal the largest or be 0 (as prodigyopt):
///   dlr = d·lr·bc
///   D ← β3·D + Σ (d/d0)·dlr·⟨g, p0 − p⟩     (p0: the initial weights; 0 for all-zero ones)
///   m ← β1·m + d(1 − β1)·g;  v ← β2·v + d²(1 − β2)·g²
///   s ← β3·s + (d/d0)·(safeguard ? d : dlr)·g;   d̂ = d_coef·D / Σ‖s‖₁
///   d ← max(d, d̂) while d = d0;  d_max ← max(d_max, d̂);  d ← min(d_max, d·growth)
///   p ← p − wd·dlr·p (decoupled);  p ← p − dlr·m / (√v + d·ε)
/// The Adam-equivalent rate is d·lr·bc (kohya logs it as lr/d*lr).
public struct Prodigy: Optimizer {
    public var beta1 = 0.9, beta2 = 0.999, beta3: Double?
    public var epsilon = 1e-8, weightDecay = 0.0, decouple = true
    public var useBiasCorrection = false, safeguardWarmup = false
    public var d0 = 1e-6 { didSet { (d, dMax) = (d0, d0) } }
    public var dCoefficient = 1.0, growthRate = Double.infinity
    public private(set) var step = 0
    public private(set) var d = 1e-6
    var dMax = 1e-6, numerator = 0.0
    var buffers = (m: ParameterBuffers(), v: ParameterBuffers(), s: ParameterBuffers(), p0: ParameterBuffers())

    public init() {}

    public var adaptiveScale: Double? { d }

    public mutating func update(_ groups: [ParameterGroup]) throws(OptimizerError) {
        let lr = try groups.sharedLearningRate("Prodigy", hint: "use --text-encoder-lr equal to --unet-lr, or d_coef")
        let b3 = beta3 ?? beta2.squareRoot()
        let bc = useBiasCorrection ? (1 - pow(beta2, Double(step + 1))).squareRoot() / (1 - pow(beta1, Double(step + 1))) : 1
        let dlr = d * lr * bc
        // Stored only past the early return below, as prodigyopt keeps it in a local until then.
        var numerator = self.numerator * b3
        var delta = 0.0, denominator = 0.0
        for group in groups where group.learningRate > 0 {
            for p in group.parameters {
                var g = p.gradient.values
                let w = p.values   // read through a local copy of the reference: see AdamW.update
                if weightDecay != 0 && !decouple { for i in 0..<p.count { g[i] += Float(weightDecay) * w[i] } }
                if buffers.p0.values[p.key] == nil {
                    buffers.p0.values[p.key] = p.values.contains { $0 != 0 } ? p.values : []
                }
                let p0 = buffers.p0.values[p.key]!
                var dot: Float = 0
                for i in 0..<p.count { dot += g[i] * ((p0.isEmpty ? 0 : p0[i]) - w[i]) }
                delta += (d / d0) * dlr * Double(dot)
                var m = buffers.m.take(p.key, count: p.count), v = buffers.v.take(p.key, count: p.count), s = buffers.s.take(p.key, count: p.count)
                let mixM = Float(d * (1 - beta1)), mixV = Float(d * d * (1 - beta2)), mixS = Float((d / d0) * (safeguardWarmup ? d : dlr))
                let keep1 = Float(beta1), keep2 = Float(beta2), keep3 = Float(b3)
                var sum: Float = 0
                for i in 0..<p.count {
                    m[i] = m[i] * keep1 + g[i] * mixM
                    v[i] = v[i] * keep2 + g[i] * g[i] * mixV
                    s[i] = s[i] * keep3 + g[i] * mixS
                    sum += abs(s[i])
                }
                denominator += Double(sum)
                buffers.m.values[p.key] = m
                buffers.v.values[p.key] = v
                buffers.s.values[p.key] = s
            }
        }
        // prodigyopt returns before touching the weights (or k) when every gradient is zero.
        guard denominator != 0 else { return }
        if lr > 0 {
            numerator += delta
            self.numerator = numerator
            let dHat = dCoefficient * numerator / denominator
            if d == d0 { d = max(d, dHat) }
            dMax = max(dMax, dHat)
            d = min(dMax, d * growthRate)
        }
        for group in groups where group.learningRate > 0 {
            for p in group.parameters {
                let m = buffers.m.values[p.key]!, v = buffers.v.values[p.key]!
                let dEps = Float(d * epsilon)
                p.values.withUnsafeMutableBufferPointer { w in
                    for i in 0..<w.count {
                        if weightDecay != 0 && decouple { w[i] += w[i] * Float(-weightDecay * dlr) }
                        w[i] += Float(-dlr) * (m[i] / (v[i].squareRoot() + dEps))
                    }
                }
            }
        }
        step += 1
    }

    public var kohyaName: String { "prodigyopt.prodigy.Prodigy" }
    public var state: OptimizerState {
        OptimizerState(scalars: ["step": Double(step), "d": d, "d_max": dMax, "d_numerator": numerator], buffers: ["exp_avg": buffers.m, "exp_avg_sq": buffers.v, "s": buffers.s, "p0": buffers.p0])
    }
    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        (step, d, dMax, numerator) = (Int(try state.scalar("step")), try state.scalar("d"), try state.scalar("d_max"), try state.scalar("d_numerator"))
        buffers = (ParameterBuffers.restore("exp_avg", from: state), ParameterBuffers.restore("exp_avg_sq", from: state),
                   ParameterBuffers.restore("s", from: state), ParameterBuffers.restore("p0", from: state))
    }
}
