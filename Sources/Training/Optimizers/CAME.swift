import Diffusion
import Foundation

/// CAME (confidence-guided adaptive memory-efficient optimisation), as kohya loads it by module path from the
/// kohya_ss GUI's list: `pytorch_optimizer.CAME` (pytorch-optimizer 3.10.0, the version kohya_ss pins; defaults
/// lr 2e-4, β = (0.9, 0.999, 0.9999), ε1 = 1e-30, ε2 = 1e-16, clip 1, weight decay 0, decoupled) or the paper
/// authors' `came_pytorch.CAME` (the same update; eps=(ε1, ε2), decay always decoupled). Per parameter:
///   u = g² + ε1;  ≥ 2-D: factored (`FactoredMoment`, β2) u ← rsqrt(v̂)·g;  else v ← β2·v + (1 − β2)·u, u ← g/√v
///   ams_bound: v̂max ← max(v̂max, 1/u²…) (pytorch-optimizer's form: max with 1/u, then u ← rsqrt(v̂max/β2))
///   u ← u / max(1, RMS(u)/clip);  m ← β1·m + (1 − β1)·u
///   ≥ 2-D: r = (u − m)² + ε2, factored (β3): Δ = rsqrt(r̂)·m;  else Δ = m
///   p ← p·(1 − wd·lr) (fixed_decay: 1 − wd);  p ← p − lr·Δ
/// No bias correction. Every LoRA weight has two or more dimensions; for a vector pytorch-optimizer 3.10.0 scales
/// its m by lr in place (Δ is m itself there), which this reproduces, and came_pytorch does not.
public struct CAME: Optimizer {
    public enum Package: Sendable { case pytorchOptimizer, camePytorch }
    public var package = Package.pytorchOptimizer
    public var beta1 = 0.9, beta2 = 0.999, beta3 = 0.9999
    public var eps1 = 1e-30, eps2 = 1e-16, clipThreshold = 1.0, weightDecay = 0.0
    /// pytorch-optimizer's weight_decouple=False adds the decay to the gradient after 3.10.0 has used it: no decay.
    public var weightDecouple = true, fixedDecay = false, amsBound = false
    public private(set) var step = 0
    var first = ParameterBuffers(), second = ParameterBuffers(), secondMax = ParameterBuffers()
    var rows = ParameterBuffers(), columns = ParameterBuffers(), residualRows = ParameterBuffers(), residualColumns = ParameterBuffers()

    public init(package: Package = .pytorchOptimizer) { self.package = package }

    public mutating func update(_ groups: [ParameterGroup]) {
        step += 1
        let keep1 = Float(beta1), mix1 = Float(1 - beta1), keep2 = Float(beta2), mix2 = Float(1 - beta2)
        for group in groups {   // at rate 0 too: see Optimizer.update
            let lr = Float(group.learningRate)
            for p in group.parameters {
                let g = p.gradient.values
                var u = g.map { $0 * $0 + Float(eps1) }
                let factored = FactoredMoment(shape: p.shape)
                if let factored {
                    u.withUnsafeMutableBufferPointer { u in
                        let (row, column) = factored.accumulate(UnsafeBufferPointer(u), key: p.key, rows: &rows, columns: &columns, keep: keep2, mix: mix2)
                        let ones = [Float](repeating: 1, count: u.count)
                        ones.withUnsafeBufferPointer { factored.inverseRoot(row: row, column: column, times: $0, into: u) }
                    }
                } else {
                    var v = second.take(p.key, count: p.count)
                    for i in 0..<p.count {
                        v[i] = v[i] * keep2 + u[i] * mix2
                        u[i] = 1 / v[i].squareRoot()
                    }
                    second.values[p.key] = v
                }
                if amsBound {
                    var vMax = secondMax.take(p.key, count: p.count)
                    for i in 0..<p.count {
                        vMax[i] = max(vMax[i], 1 / u[i])
                        u[i] = 1 / (vMax[i] / keep2).squareRoot()
                    }
                    secondMax.values[p.key] = vMax
                }
                for i in 0..<p.count { u[i] *= g[i] }
                let divisor = max(1, Float(u.rootMeanSquare) / Float(clipThreshold))
                for i in 0..<p.count { u[i] /= divisor }
                var m = first.take(p.key, count: p.count)
                for i in 0..<p.count { m[i] = m[i] * keep1 + u[i] * mix1 }
                if let factored {
                    var residual = [Float](repeating: 0, count: p.count)
                    for i in 0..<p.count { residual[i] = (u[i] - m[i]) * (u[i] - m[i]) + Float(eps2) }
                    let (row, column) = residual.withUnsafeBufferPointer {
                        factored.accumulate($0, key: p.key, rows: &residualRows, columns: &residualColumns, keep: Float(beta3), mix: Float(1 - beta3))
                    }
                    u.withUnsafeMutableBufferPointer { u in m.withUnsafeBufferPointer { factored.inverseRoot(row: row, column: column, times: $0, into: u) } }
                } else {
                    u = m
                    if package == .pytorchOptimizer { for i in 0..<p.count { m[i] *= lr } }   // 3.10.0's in-place mul_ of m itself
                }
                first.values[p.key] = m
                let decays = weightDecouple && weightDecay != 0, rate = weightDecay * (fixedDecay ? 1 : group.learningRate)
                // pytorch-optimizer multiplies by (1 − wd·lr); came_pytorch adds p·(−wd·lr).
                let factor = Float(package == .pytorchOptimizer ? 1 - rate : -rate)
                p.values.withUnsafeMutableBufferPointer { w in   // buffers: see AdamW.update
                    for i in 0..<w.count {
                        if decays { w[i] = package == .pytorchOptimizer ? w[i] * factor : w[i] + w[i] * factor }
                        w[i] += -(u[i] * lr)
                    }
                }
            }
        }
    }

    public var kohyaName: String { package == .pytorchOptimizer ? "pytorch_optimizer.optimizer.came.CAME" : "came_pytorch.CAME.CAME" }
    public var state: OptimizerState {
        OptimizerState(scalars: ["step": Double(step)], buffers: ["exp_avg": first, "exp_avg_sq": second, "exp_avg_sq_hat": secondMax,
                                                                 "exp_avg_sq_row": rows, "exp_avg_sq_col": columns, "exp_avg_res_row": residualRows,
                                                                 "exp_avg_res_col": residualColumns])
    }
    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        step = Int(try state.scalar("step"))
        (first, second, secondMax) = (.restore("exp_avg", from: state), .restore("exp_avg_sq", from: state), .restore("exp_avg_sq_hat", from: state))
        (rows, columns) = (.restore("exp_avg_sq_row", from: state), .restore("exp_avg_sq_col", from: state))
        (residualRows, residualColumns) = (.restore("exp_avg_res_row", from: state), .restore("exp_avg_res_col", from: state))
    }
}
