import LoRACore

/// LyCORIS's modules whose change to a layer is a dense weight ΔW built from
/// their factors (LoHa: a Hadamard product of two low-rank products; LoKr: a
/// Kronecker product). LyCORIS's default forward (not `bypass_mode`) runs the
/// layer with W + multiplier·ΔW; here the frozen layer runs W and the module
/// adds the same operation with ΔW (the same sum, rounded in another order).
///
///   forward:  y_Δ = op(x, ΔW)                      (op: the layer's linear map or convolution)
///   backward: dx  = op's input gradient through ΔW
///             dΔW = op's weight gradient, dyᵀ·x    [out, in·kh·kw]
///             the factors' gradients from dΔW      (`accumulateGradients`)
/// ΔW is rebuilt in the backward instead of stored: it is the size of the
/// layer's weight, and cheap next to the two GEMMs each pass already makes.
public protocol WeightDeltaModule: TrainedModule where Saved == WeightDeltaActivations {
    /// The wrapped layer's shape (kernel, stride and padding included).
    var shape: LoRAModule.Shape { get }
    /// Adds ΔW with its scale into a buffer in the layer's weight layout, [out, in·kh·kw] (the layer's weight,
    /// to run the layer with W + ΔW).
    func addDelta(into weight: UnsafeMutablePointer<Float>)
    /// Adds each factor's gradient, given the gradient of the loss with respect to ΔW ([out, in·kh·kw]).
    func accumulateGradients(delta gradient: UnsafeBufferPointer<Float>)
}

public struct WeightDeltaActivations: Sendable {
    public let input: Tensor
    /// module_dropout skipped the module in this pass: no output, no gradients.
    public let skipped: Bool
}

extension WeightDeltaModule {
    /// ΔW with its scale, [out, in·kh·kw].
    public func delta() -> [Float] {
        var out = [Float](repeating: 0, count: shape.weightCount)
        out.withUnsafeMutableBufferPointer { addDelta(into: $0.baseAddress!) }
        return out
    }

    /// LyCORIS's module_dropout (a draw per forward, the whole module skipped) through the run's dropout source;
    /// its rank dropout is not built (lora-train refuses it before training).
    public func forward(_ x: Tensor, dropout: LoRADropout?) -> (output: Tensor, saved: WeightDeltaActivations) {
        if let dropout, dropout.skipsModule(name) {
            return (Tensor(zeros: shape.outputShape(for: x)), WeightDeltaActivations(input: x, skipped: true))
        }
        let layer = ModuleLayer(shape, key: name, weight: delta())
        return (layer.forward(x), WeightDeltaActivations(input: x, skipped: false))
    }

    public func backward(_ saved: WeightDeltaActivations, outputGradient dy: Tensor) -> Tensor {
        if saved.skipped { return Tensor(zeros: saved.input.shape) }
        let layer = ModuleLayer(shape, key: name, weight: delta())
        let deltaGradient = Gradient(count: shape.weightCount)
        let dx = layer.backward(input: saved.input, outputGradient: dy, weightGradient: deltaGradient)
        deltaGradient.values.withUnsafeBufferPointer { accumulateGradients(delta: $0) }
        return dx
    }
}
