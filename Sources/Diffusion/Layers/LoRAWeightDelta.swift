import LinearAlgebra
import LoRACore

/// A LoRA module (LyCORIS's LoCon) as the weight change it makes, ΔW = scale·scalar·up·(mid ∘ down), for a
/// `DoRAModule`: LyCORIS folds LoCon into the weight, which DoRA's norm needs whole. The tensors are the module's own
/// (the same `Parameter`s); the multiplier is not applied (LyCORIS's DoRA forward adds ΔW unscaled). Gradients from ∂L/∂ΔW:
///   ∂up = s·G·Dᵀ        ∂D = s·upᵀ·G        D = composedDown (through the core, `WeightFactor`, with a Tucker core)
/// with s = scale·scalar, and for use_scalar's trained scalar ∂scalar = Σ up ⊙ (scale·G·Dᵀ).
public struct LoRAWeightDelta: WeightDeltaModule {
    public let lora: LoRAModule

    public init(_ lora: LoRAModule) { self.lora = lora }

    public var name: String { lora.name }
    public var shape: LoRAModule.Shape { lora.shape }
    public var parameters: [Parameter] { lora.parameters }
    public var fileScalars: [(suffix: String, value: Float)] { lora.fileScalars }
    public var lycorisScalar: (scalar: ModuleScalar, savedInto: Parameter)? { lora.lycorisScalar }

    public func addDelta(into weight: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>) {
        let (out, rank, columns) = (shape.outputs, lora.rank, shape.columns), down = lora.composedDown
        // W += s·up·D in one GEMM (beta 1), up [out, rank], D [rank, columns].
        lora.up.values.withUnsafeBufferPointer { up in down.withUnsafeBufferPointer { d in
            LinearAlgebra.gemmAccumulate(m: out, n: columns, k: rank, alpha: lora.effectiveScale, a: up.baseAddress!, lda: rank, transposeA: false,
                                         b: d.baseAddress!, ldb: columns, transposeB: false, c: weight, ldc: columns)
        } }
    }

    public func accumulateGradients(delta gradient: UnsafeBufferPointer<Float>, base: UnsafePointer<Float>) {
        let (out, rank, columns) = (shape.outputs, lora.rank, shape.columns), s = lora.effectiveScale, down = lora.composedDown
        let g = gradient.baseAddress!
        // ∂up += s·G·Dᵀ [out, rank]; ∂D = s·upᵀ·G [rank, columns], into down's gradient or through the core.
        if let trained = lora.scalar.parameter {
            // G·Dᵀ·scale once, for ∂scalar (against up) and, times the scalar, for ∂up.
            var product = [Float](repeating: 0, count: out * rank)
            down.withUnsafeBufferPointer { d in product.withUnsafeMutableBufferPointer { p in
                LinearAlgebra.gemmAccumulate(m: out, n: rank, k: columns, alpha: lora.scale, a: g, lda: columns, transposeA: false,
                                             b: d.baseAddress!, ldb: columns, transposeB: true, c: p.baseAddress!, ldc: rank)
            } }
            let sum = zip(product, lora.up.values).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            trained.gradient.withPointer { $0[0] += Float(sum) }
            let k = lora.scalar.value
            lora.up.gradient.withPointer { dUp in for i in product.indices { dUp[i] += k * product[i] } }
        } else {
            down.withUnsafeBufferPointer { d in lora.up.gradient.withPointer { dUp in
                LinearAlgebra.gemmAccumulate(m: out, n: rank, k: columns, alpha: s, a: g, lda: columns, transposeA: false,
                                             b: d.baseAddress!, ldb: columns, transposeB: true, c: dUp, ldc: rank)
            } }
        }
        func downGradient(into target: UnsafeMutablePointer<Float>) {
            lora.up.values.withUnsafeBufferPointer { up in
                LinearAlgebra.gemmAccumulate(m: rank, n: columns, k: out, alpha: s, a: up.baseAddress!, lda: rank, transposeA: true,
                                             b: g, ldb: columns, transposeB: false, c: target, ldc: columns)
            }
        }
        guard let mid = lora.mid else {
            lora.down.gradient.withPointer { downGradient(into: $0) }
            return
        }
        var dComposed = Matrix(zeros: rank, columns)
        dComposed.values.withUnsafeMutableBufferPointer { downGradient(into: $0.baseAddress!) }
        WeightFactor.accumulateCore(dComposed, core: mid, b: lora.down)
    }
}
