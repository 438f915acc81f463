import LoRACore

/// LyCORIS's modules whose change to a layer is a dense weight ΔW built from
/// their factors (LoHa: a Hadamard product of two low-rank products; LoKr: a
/// Kronecker product; (IA)^3: the frozen weight scaled per output row). LyCORIS's forward (not `bypass_mode`) runs the layer
/// with W + multiplier·ΔW, and so does the tape (TrainingTape.swift): the
/// layer's forward and its input gradient use W + ΣΔW, and the layer's weight
/// gradient dyᵀ·x [out, in·kh·kw] is each module's dΔW (its rows of it), from
/// which `accumulateGradients` gives its parameters' gradients. ΔW is rebuilt in
/// the backward rather than stored: it is the size of the layer's weight, and
/// cheap next to the GEMMs each pass makes.
public protocol WeightDeltaModule: TrainedModule {
    /// The wrapped layer's shape (kernel, stride and padding included).
    var shape: LoRAModule.Shape { get }
    /// Whether ΔW depends on the frozen weight ((IA)^3: ΔW = W ⊙ w); LoHa's and LoKr's do not.
    var readsBase: Bool { get }
    /// Adds ΔW with its scale into a buffer in the layer's weight layout, [out, in·kh·kw] (the layer's weight,
    /// to run the layer with W + ΔW). `base`: the frozen weight's rows the module changes, same layout.
    func addDelta(into weight: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>)
    /// Adds each parameter's gradient, given the gradient of the loss with respect to ΔW ([out, in·kh·kw]).
    func accumulateGradients(delta gradient: UnsafeBufferPointer<Float>, base: UnsafePointer<Float>)
    /// This module for one pass under LyCORIS's rank dropout: ΔW's rows times `mask` (1 kept, 0 dropped; one value
    /// per output row), see WeightDeltaModule+RankDropout.swift.
    func droppingRows(_ mask: [Float]) -> any WeightDeltaModule
}

extension WeightDeltaModule {
    public var readsBase: Bool { false }

    /// ΔW with its scale, [out, in·kh·kw], for the frozen weight `base` (its rows the module changes).
    public func delta(base: [Float]) -> [Float] {
        precondition(base.count == shape.weightCount, "\(name): a base of \(base.count) values for ΔW of \(shape.weightCount)")
        var out = [Float](repeating: 0, count: shape.weightCount)
        base.withUnsafeBufferPointer { b in out.withUnsafeMutableBufferPointer { addDelta(into: $0.baseAddress!, base: b.baseAddress!) } }
        return out
    }

    /// ΔW of a module whose ΔW does not depend on the frozen weight (LoHa, LoKr).
    public func delta() -> [Float] {
        precondition(!readsBase, "\(name): ΔW needs the frozen weight")
        return delta(base: [Float](repeating: 0, count: shape.weightCount))
    }
}
