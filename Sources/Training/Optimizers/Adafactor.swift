import Diffusion
import Foundation

/// transformers' Adafactor as kohya runs it (`--optimizer_type Adafactor`;
/// kohya turns relative_step on unless told otherwise, and then the given
/// rates only seed the log: every step size comes from the optimizer):
///   ρ = min(1e-2, 1/√t) (warmup_init: min(1e-6·t, 1/√t)), or the group's rate without relative_step
///   lr = max(ε2, RMS(p))·ρ with scale_parameter, else ρ
///   β2t = 1 − t^decay_rate;  u = g² + ε1
///   ≥ 2-D: row/column means of u as moving averages, v̂ = (row/mean(row))·col;  else v ← β2t·v + (1 − β2t)·u
///   Δ = g/√v̂;  Δ ← Δ / max(1, RMS(Δ)/clip);  Δ ← lr·Δ;  with β1: m ← β1·m + (1 − β1)·Δ, Δ = m
///   p ← p − wd·lr·p − Δ
/// Tensors of more than two dimensions factor their last two.
public struct Adafactor: Optimizer {
    public var eps1 = 1e-30, eps2 = 1e-3, clipThreshold = 1.0, decayRate = -0.8
    public var beta1: Double?
    public var weightDecay = 0.0, scaleParameter = true, relativeStep = true, warmupInit = false
    public private(set) var step = 0
    var rows = ParameterBuffers(), columns = ParameterBuffers(), second = ParameterBuffers(), first = ParameterBuffers()

    public init() {}

    public mutating func update(_ groups: [ParameterGroup]) {
        step += 1
        let t = Double(step)
        let beta2t = 1 - pow(t, decayRate)
        for group in groups {   // at rate 0 too: see Optimizer.update
            for p in group.parameters {
                let g = p.gradient.values
                var rate = relativeStep ? min(warmupInit ? 1e-6 * t : 1e-2, 1 / t.squareRoot()) : group.learningRate
                if scaleParameter { rate *= max(eps2, Double(Float(p.values.rootMeanSquare))) }
                let keep = Float(beta2t), mix = Float(1 - beta2t)
                var u = g.map { $0 * $0 + Float(eps1) }
                if let factored = FactoredMoment(shape: p.shape) {
                    u.withUnsafeMutableBufferPointer { u in
                        let (row, column) = factored.accumulate(UnsafeBufferPointer(u), key: p.key, rows: &rows, columns: &columns, keep: keep, mix: mix)
                        g.withUnsafeBufferPointer { factored.inverseRoot(row: row, column: column, times: $0, into: u) }
                    }
                } else {
                    var v = second.take(p.key, count: p.count)
                    for i in 0..<p.count {
                        v[i] = v[i] * keep + u[i] * mix
                        u[i] = (1 / v[i].squareRoot()) * g[i]
                    }
                    second.values[p.key] = v
                }
                let divisor = Float(max(1, Float(u.rootMeanSquare) / Float(clipThreshold))), lr = Float(rate)
                for i in 0..<p.count { u[i] = u[i] / divisor * lr }
                if let b1 = beta1 {
                    var m = first.take(p.key, count: p.count)
                    for i in 0..<p.count { m[i] = m[i] * Float(b1) + u[i] * Float(1 - b1) }
                    first.values[p.key] = m
                    u = m
                }
                p.values.withUnsafeMutableBufferPointer { w in   // buffers: see AdamW.update
                    for i in 0..<w.count {
                        if weightDecay != 0 { w[i] += w[i] * Float(-weightDecay * rate) }
                        w[i] += -u[i]
                    }
                }
            }
        }
    }

    public var kohyaName: String { "transformers.optimization.Adafactor" }
    public var state: OptimizerState {
        OptimizerState(scalars: ["step": Double(step)], buffers: ["exp_avg_sq_row": rows, "exp_avg_sq_col": columns, "exp_avg_sq": second, "exp_avg": first])
    }
    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        step = Int(try state.scalar("step"))
        (rows, columns) = (ParameterBuffers.restore("exp_avg_sq_row", from: state), ParameterBuffers.restore("exp_avg_sq_col", from: state))
        (second, first) = (ParameterBuffers.restore("exp_avg_sq", from: state), ParameterBuffers.restore("exp_avg", from: state))
    }
}
