import Diffusion
import Foundation

/// `--scale_weight_norms M`, after every optimizer step, by the rule of the network's code:
/// - kohya's networks.lora (`apply_max_norm_regularization`): for each module ΔW = (alpha/rank)·up·down (a 3×3
///   LoCon kernel composes the same way); when ‖ΔW‖_F > M both factors are multiplied by √(M/‖ΔW‖), so ΔW's
///   norm becomes M.
/// - LyCORIS's (lycoris/kohya.py `apply_max_norm_regularization` over each module's `apply_max_norm`, lycoris_lora
///   3.2.0.post2): the same test and ratio M/‖ΔW‖ (a LoCon with a Tucker core: ΔW = scale·up·(mid ∘ down); DoRA's
///   decomposition left out), applied to LoCon's and LoHa's `scalar` (the factors keep their values; `ModuleScalar`),
///   to LoKr's factor tensors by ratio^(1/n) each (n of them), and not at all to (IA)^3, which it leaves out of the
///   report too. Its report is 0, 0, 0 when no module was scaled.
/// A low-rank product's norm comes from the rank×rank Gram matrices (‖U·D‖² = Σ (UᵀU) ⊙ (D·Dᵀ)), a Kronecker
/// product's from its factors' (‖A ⊗ B‖ = ‖A‖·‖B‖); only LoHa's Hadamard product and a Tucker product are formed.
extension LoRANetwork {
    public enum MaxNormRule: Sendable {
        case kohya
        case lycoris
    }

    public struct MaxNormReport: Sendable, Equatable {
        /// kohya's `max_norm/keys_scaled`, `norm/avg_key_norm`, `max_norm/max_key_norm` (after scaling).
        public var keysScaled: Int
        public var averageNorm: Double
        public var maximumNorm: Double
    }

    @discardableResult
    public func applyMaxNorm(_ maximum: Double) -> MaxNormReport {
        switch maxNormRule {
        case .kohya: return LoRANetwork.applyMaxNorm(maximum, to: loraModules)
        case .lycoris: return LoRANetwork.applyLyCORISMaxNorm(maximum, to: modules)
        }
    }

    /// kohya's rule.
    @discardableResult
    public static func applyMaxNorm(_ maximum: Double, to modules: [LoRAModule]) -> MaxNormReport {
        var scaled = 0, norms: [Double] = []
        for module in modules {
            let norm = Double(module.effectiveScale) * productNorm(module.up.values, module.down.values, rank: module.rank)
            let ratio = maxNormRatio(norm, maximum)
            if ratio != 1 {
                scaled += 1
                let factor = Float(ratio.squareRoot())
                for p in [module.up, module.down] { for i in p.values.indices { p.values[i] *= factor } }
            }
            norms.append(norm * ratio)
        }
        return MaxNormReport(keysScaled: scaled, averageNorm: norms.isEmpty ? 0 : norms.reduce(0, +) / Double(norms.count),
                             maximumNorm: norms.max() ?? 0)
    }

    /// LyCORIS's rule.
    @discardableResult
    public static func applyLyCORISMaxNorm(_ maximum: Double, to modules: [any TrainedModule]) -> MaxNormReport {
        var scaled = 0, norms: [Double] = []
        for module in modules {
            // DoRA leaves the rule alone: LyCORIS measures and scales ΔW before the decomposition.
            let module = (module as? DoRAModule)?.decomposed ?? module
            let norm: Double
            let scale: (Double) -> Void
            if let lora = module as? LoRAModule {
                norm = Double(lora.effectiveScale) * productNorm(lora.up.values, lora.composedDown, rank: lora.rank)
                scale = { lora.scalar.value = Float(Double(lora.scalar.value) * $0) }
            } else if let loha = module as? LoHaModule {
                norm = (loha.delta().reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
                scale = { loha.scalar.value = Float(Double(loha.scalar.value) * $0) }
            } else if let lokr = module as? LoKrModule {
                let tensors = lokr.w1.parameters + lokr.w2.parameters   // not a trained scalar: LyCORIS scales the factors
                norm = Double(lokr.scale) * factorNorm(lokr.w1) * factorNorm(lokr.w2)
                scale = { ratio in
                    let factor = Float(pow(ratio, 1 / Double(tensors.count)))
                    for p in tensors { for i in p.values.indices { p.values[i] *= factor } }
                }
            } else {
                continue   // (IA)^3: LycorisBaseModule.apply_max_norm returns None, None
            }
            let ratio = maxNormRatio(norm, maximum)
            if ratio != 1 {
                scaled += 1
                scale(ratio)
            }
            norms.append(norm * ratio)
        }
        guard scaled > 0 else { return MaxNormReport(keysScaled: 0, averageNorm: 0, maximumNorm: 0) }
        return MaxNormReport(keysScaled: scaled, averageNorm: norms.reduce(0, +) / Double(norms.count), maximumNorm: norms.max() ?? 0)
    }

    /// Both codes: ratio = clamp(norm, max = M) / clamp(norm, min = M/2), so only norms above M change.
    private static func maxNormRatio(_ norm: Double, _ maximum: Double) -> Double { norm > maximum ? maximum / norm : 1 }

    /// ‖A·B‖_F for A [m, rank] and B [rank, n] (row-major), without forming the product.
    private static func productNorm(_ a: [Float], _ b: [Float], rank r: Int) -> Double {
        let rows = a.count / r, columns = b.count / r
        var gramA = [Double](repeating: 0, count: r * r), gramB = gramA
        for i in 0..<r {
            for j in i..<r {
                var u = 0.0, d = 0.0
                for o in 0..<rows { u += Double(a[o * r + i]) * Double(a[o * r + j]) }
                for c in 0..<columns { d += Double(b[i * columns + c]) * Double(b[j * columns + c]) }
                (gramA[i * r + j], gramA[j * r + i], gramB[i * r + j], gramB[j * r + i]) = (u, u, d, d)
            }
        }
        return max(0, zip(gramA, gramB).reduce(0.0) { $0 + $1.0 * $1.1 }).squareRoot()
    }

    private static func factorNorm(_ factor: WeightFactor) -> Double {
        func norm(_ values: [Float]) -> Double { (values.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot() }
        switch factor {
        case .full(let w): return norm(w.values)
        case let .lowRank(a, b): return productNorm(a.values, b.values, rank: a.shape[1])
        case .tucker: return norm(factor.product)
        }
    }
}
