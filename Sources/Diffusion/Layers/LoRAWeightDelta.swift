import LinearAlgebra
import LoRACore

/// A LoRA module (LyCORIS's LoCon) as the weight change it makes, ΔW = scale·scalar·up·(mid ∘ down), for a
/// `DoRAModule`: LyCORIS folds LoCon into the weight, which DoRA's norm needs whole. The tensors are the module's own
/// (the same `Parameter`s); the multiplier is not applied (LyCORIS's DoRA forward adds ΔW unscaled). Gradients from ∂L/∂ΔW:
///   ∂up = s·G·Dᵀ        ∂D = s·upᵀ·G        D = composedDown (through the core, `WeightFactor`, with a Tucker core)
public struct LoRAWeightDelta: WeightDeltaModule {
    public let lora: LoRAModule

    public init(_ lora: LoRAModule) { self.lora = lora }

    public var name: String { lora.name }
    public var shape: LoRAModule.Shape { lora.shape }
    public var parameters: [Parameter] { lora.parameters }
    public var fileScalars: [(suffix: String, value: Float)] { lora.fileScalars }
    public var lycorisScalar: (scalar: ModuleScalar, savedInto: Parameter)? { lora.lycorisScalar }

    private var factors: (up: Matrix, down: Matrix) {
        (Matrix(rows: shape.outputs, cols: lora.rank, values: lora.up.values), Matrix(rows: lora.rank, cols: shape.columns, values: lora.composedDown))
    }

    public func addDelta(into weight: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>) {
        let (up, down) = factors, s = lora.effectiveScale
        let delta = LinearAlgebra.multiply(up, down)
        for i in delta.values.indices { weight[i] += s * delta.values[i] }
    }

    public func accumulateGradients(delta gradient: UnsafeBufferPointer<Float>, base: UnsafePointer<Float>) {
        let (up, down) = factors, s = lora.effectiveScale
        let g = Matrix(rows: shape.outputs, cols: shape.columns, values: gradient.map { $0 * s })
        lora.up.gradient.add(LinearAlgebra.multiply(g, down, transposeB: true))
        let dDown = LinearAlgebra.multiply(up, g, transposeA: true)
        if let mid = lora.mid { WeightFactor.accumulateCore(dDown, core: mid, b: lora.down) } else { lora.down.gradient.add(dDown) }
    }
}
