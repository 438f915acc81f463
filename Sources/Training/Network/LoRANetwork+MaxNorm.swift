import Diffusion
import Foundation

/// `--scale_weight_norms M` (sd-scripts networks/lora.py
/// `apply_max_norm_regularization`), after every optimizer step: for each
/// module ΔW = (alpha/rank)·up·down (a 3×3 LoCon kernel composes the same
/// way); when ‖ΔW‖_F > M both factors are multiplied by √(M/‖ΔW‖), so ΔW's
/// norm becomes M. The norm comes from the rank×rank Gram matrices
/// (‖U·D‖² = Σ (UᵀU) ⊙ (D·Dᵀ)), never forming ΔW.
extension LoRANetwork {
    public struct MaxNormReport: Sendable, Equatable {
        /// kohya's `max_norm/keys_scaled`, `norm/avg_key_norm`, `max_norm/max_key_norm` (after scaling).
        public var keysScaled: Int
        public var averageNorm: Double
        public var maximumNorm: Double
    }

    @discardableResult
    /// (kohya's networks.lora only: lora-train refuses --scale-weight-norms with LyCORIS, whose LoHa and LoKr scale by another rule.)
    public func applyMaxNorm(_ maximum: Double) -> MaxNormReport { LoRANetwork.applyMaxNorm(maximum, to: loraModules) }

    @discardableResult
    public static func applyMaxNorm(_ maximum: Double, to modules: [LoRAModule]) -> MaxNormReport {
        var scaled = 0, norms: [Double] = []
        for module in modules {
            let r = module.rank, up = module.up.values, down = module.down.values
            let outputs = up.count / r, inputs = down.count / r
            var gramUp = [Double](repeating: 0, count: r * r), gramDown = gramUp
            for a in 0..<r {
                for b in a..<r {
                    var u = 0.0, d = 0.0
                    for o in 0..<outputs { u += Double(up[o * r + a]) * Double(up[o * r + b]) }
                    for i in 0..<inputs { d += Double(down[a * inputs + i]) * Double(down[b * inputs + i]) }
                    (gramUp[a * r + b], gramUp[b * r + a], gramDown[a * r + b], gramDown[b * r + a]) = (u, u, d, d)
                }
            }
            let norm = Double(module.scale) * max(0, zip(gramUp, gramDown).reduce(0.0) { $0 + $1.0 * $1.1 }).squareRoot()
            // kohya: ratio = clamp(norm, max = M) / clamp(norm, min = M/2), so only norms above M change.
            let ratio = norm > maximum ? maximum / norm : 1
            if ratio != 1 {
                scaled += 1
                let factor = Float(ratio.squareRoot())
                for i in module.up.values.indices { module.up.values[i] *= factor }
                for i in module.down.values.indices { module.down.values[i] *= factor }
            }
            norms.append(norm * ratio)
        }
        return MaxNormReport(keysScaled: scaled, averageNorm: norms.isEmpty ? 0 : norms.reduce(0, +) / Double(norms.count),
                             maximumNorm: norms.max() ?? 0)
    }
}
