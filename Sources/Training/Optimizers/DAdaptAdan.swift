import Diffusion
import Foundation

/// dadaptation's DAdaptAdan (kohya's `--optimizer_type DAdaptAdan`) and its experimental DAdaptAdanIP (`DAdaptAdanIP`,
/// `interpolation`). Defaults lr 1, β = (0.98, 0.92, 0.99), ε 1e-8, weight decay 0.02 (proximal unless no_prox), d0 1e-6.
/// The package runs every group at the first group's rate, so the groups' rates must be equal here. With dlr = d·lr
/// and Δ = g − g_prev (0 at the first step):
///   m ← β1·m + dlr(1 − β1)·g;  n ← β2·n + dlr(1 − β2)·Δ;  v ← β3·v + (1 − β3)·(g + β2·Δ)²;  δ = √v + ε
///   s ← β3·s + dlr(1 − β3)·g;  L = Σ|s|
///   Adan:   G ← β3·G + dlr²(1 − β3)·Σ g²/δ;  d̂ = (Σ s²/δ / (1 − β3) − G)/L
///   AdanIP: N ← β3·N + (1 − β3)·dlr·⟨g, s/δ⟩ (s and δ before this step's update);  d̂ = 2·β3/(1 − β3)·N/L
///   d ← max(d, min(d̂, d·growth));  p ← (p − (m + β2·n)/δ) / (1 + dlr·wd)  (no_prox: p·(1 − dlr·wd) − (m + β2·n)/δ)
public struct DAdaptAdan: Optimizer {
    public var interpolation = false
    public var beta1 = 0.98, beta2 = 0.92, beta3 = 0.99, epsilon = 1e-8, weightDecay = 0.02, noProx = false, growthRate = Double.infinity
    public var d0 = 1e-6 { didSet { d = d0 } }
    public private(set) var step = 0
    public private(set) var d = 1e-6
    /// Adan's G, or AdanIP's N.
    var weightedTotal = 0.0
    var buffers = (m: ParameterBuffers(), n: ParameterBuffers(), v: ParameterBuffers(), s: ParameterBuffers(), previous: ParameterBuffers())

    public init() {}

    var name: String { interpolation ? "DAdaptAdanIP" : "DAdaptAdan" }
    public var adaptiveScale: Double? { d }

    public mutating func update(_ groups: [ParameterGroup]) throws(OptimizerError) {
        let lr = try groups.firstGroupLearningRate(name)
        let dlr = d * lr
        let eps = Float(epsilon), b1 = Float(beta1), b2 = Float(beta2), b3 = Float(beta3)
        let mixM = Float(dlr * (1 - beta1)), mixN = Float(dlr * (1 - beta2)), mixV = Float(1 - beta3), mixS = Float(dlr * (1 - beta3))
        var squares = 0.0, weighted = 0.0, inner = 0.0, l1 = 0.0
        for group in groups {
            for p in group.parameters {
                let g = p.gradient.values
                let previous = buffers.previous.values[p.key] ?? g
                var m = buffers.m.take(p.key, count: p.count), n = buffers.n.take(p.key, count: p.count)
                var v = buffers.v.take(p.key, count: p.count), s = buffers.s.take(p.key, count: p.count)
                var gsq: Float = 0, ssq: Float = 0, dot: Float = 0, sum: Float = 0
                for i in 0..<p.count {
                    let difference = g[i] - previous[i], u = g[i] + b2 * difference
                    if interpolation { dot += g[i] * (s[i] / (v[i].squareRoot() + eps)) }
                    m[i] = m[i] * b1 + g[i] * mixM
                    n[i] = n[i] * b2 + difference * mixN
                    v[i] = v[i] * b3 + u * u * mixV
                    let denominator = v[i].squareRoot() + eps
                    gsq += g[i] * g[i] / denominator
                    s[i] = s[i] * b3 + g[i] * mixS
                    ssq += s[i] * s[i] / denominator
                    sum += abs(s[i])
                }
                (squares, weighted, inner, l1) = (squares + Double(gsq), weighted + Double(ssq), inner + dlr * Double(dot), l1 + Double(sum))
                (buffers.m.values[p.key], buffers.n.values[p.key], buffers.v.values[p.key], buffers.s.values[p.key]) = (m, n, v, s)
            }
        }
        let total = interpolation ? beta3 * weightedTotal + (1 - beta3) * inner : beta3 * weightedTotal + squares * dlr * dlr * (1 - beta3)
        // With every s zero the package returns before it keeps its total or d (and before the update).
        guard l1 != 0 else { return }
        weightedTotal = total
        if lr > 0 {
            let dHat = interpolation ? 2 * (beta3 / (1 - beta3)) * total / l1 : (weighted / (1 - beta3) - total) / l1
            d = max(d, min(dHat, d * growthRate))
        }
        let shrink = Float(1 - dlr * weightDecay), divisor = Float(1 + dlr * weightDecay)
        for group in groups {
            for p in group.parameters {
                let m = buffers.m.values[p.key]!, n = buffers.n.values[p.key]!, v = buffers.v.values[p.key]!
                p.values.withUnsafeMutableBufferPointer { w in
                    for i in 0..<w.count {
                        let update = (m[i] + b2 * n[i]) / (v[i].squareRoot() + eps)
                        w[i] = noProx ? w[i] * shrink - update : (w[i] - update) / divisor
                    }
                }
                buffers.previous.values[p.key] = p.gradient.values
            }
        }
        step += 1
    }

    public var kohyaName: String { interpolation ? "dadaptation.experimental.dadapt_adan_ip.DAdaptAdanIP" : "dadaptation.dadapt_adan.DAdaptAdan" }
    public var state: OptimizerState {
        OptimizerState(scalars: ["step": Double(step), "d": d, interpolation ? "numerator_weighted" : "gsq_weighted": weightedTotal], buffers: ["exp_avg": buffers.m, "exp_avg_diff": buffers.n, "exp_avg_sq": buffers.v, "s": buffers.s, "pre_grad": buffers.previous])
    }
    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        (step, d) = (Int(try state.scalar("step")), try state.scalar("d"))
        weightedTotal = try state.scalar(interpolation ? "numerator_weighted" : "gsq_weighted")
        buffers = (ParameterBuffers.restore("exp_avg", from: state), ParameterBuffers.restore("exp_avg_diff", from: state),
                   ParameterBuffers.restore("exp_avg_sq", from: state), ParameterBuffers.restore("s", from: state),
                   ParameterBuffers.restore("pre_grad", from: state))
    }
}
