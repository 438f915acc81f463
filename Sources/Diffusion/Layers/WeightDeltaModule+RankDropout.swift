import LoRACore

/// LyCORIS's rank dropout on the modules folded into their layer's weight (lycoris/modules/loha.py and lokr.py
/// `get_weight`, locon.py `make_weight`, lycoris_lora 3.2.0.post2): in a training forward, rows of ΔW are zeroed,
///   ΔW' = diag(mask)·ΔW        ∂L/∂ΔW = diag(mask)·∂L/∂ΔW'
/// with the mask drawn per pass (`LoRADropout.rowMask`) and recorded, so the backward and a checkpointed block's
/// recomputation fold in the same ΔW'. With dora_wd the rows are dropped inside the decomposition (V = W + ΔW'), as
/// LyCORIS drops them before apply_weight_decompose; (IA)^3 has no rank dropout in LyCORIS.
extension WeightDeltaModule {
    public func droppingRows(_ mask: [Float]) -> any WeightDeltaModule { RowDroppedDelta(self, mask: mask) }
}

extension IA3Module {
    public func droppingRows(_ mask: [Float]) -> any WeightDeltaModule { self }
}

extension DoRAModule {
    public func droppingRows(_ mask: [Float]) -> any WeightDeltaModule { DoRAModule(inner.droppingRows(mask), magnitude: magnitude) }
}

/// A module's ΔW with some of its rows dropped, for one pass.
struct RowDroppedDelta: WeightDeltaModule {
    let inner: any WeightDeltaModule
    let mask: [Float]

    init(_ inner: any WeightDeltaModule, mask: [Float]) {
        precondition(mask.count == inner.shape.outputs, "\(inner.name): a row mask of \(mask.count) for \(inner.shape.outputs) rows")
        (self.inner, self.mask) = (inner, mask)
    }

    var name: String { inner.name }
    var shape: LoRAModule.Shape { inner.shape }
    var readsBase: Bool { inner.readsBase }
    var parameters: [Parameter] { inner.parameters }
    var fileScalars: [(suffix: String, value: Float)] { inner.fileScalars }
    var lycorisScalar: (scalar: ModuleScalar, savedInto: Parameter)? { inner.lycorisScalar }

    func addDelta(into weight: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>) {
        let columns = shape.columns
        var delta = [Float](repeating: 0, count: shape.weightCount)
        delta.withUnsafeMutableBufferPointer { inner.addDelta(into: $0.baseAddress!, base: base) }
        for o in mask.indices where mask[o] != 0 {
            let row = weight + o * columns, m = mask[o]
            for c in 0..<columns { row[c] += m * delta[o * columns + c] }
        }
    }

    func accumulateGradients(delta gradient: UnsafeBufferPointer<Float>, base: UnsafePointer<Float>) {
        let columns = shape.columns
        var kept = [Float](gradient)
        for o in mask.indices where mask[o] != 1 {
            for c in 0..<columns { kept[o * columns + c] *= mask[o] }
        }
        kept.withUnsafeBufferPointer { inner.accumulateGradients(delta: $0, base: base) }
    }
}
