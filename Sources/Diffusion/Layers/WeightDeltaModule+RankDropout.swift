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

/// A module's ΔW with some of its rows dropped (mask 0; 1 keeps a row), for one pass.
struct RowDroppedDelta: WeightDeltaModule {
    let inner: any WeightDeltaModule
    let mask: [Float]

    init(_ inner: any WeightDeltaModule, mask: [Float]) {
        precondition(mask.count == inner.shape.outputs && mask.allSatisfy { $0 == 0 || $0 == 1 },
                     "\(inner.name): a row mask of \(mask.count) zeros and ones for \(inner.shape.outputs) rows")
        (self.inner, self.mask) = (inner, mask)
    }

    var name: String { inner.name }
    var shape: LoRAModule.Shape { inner.shape }
    var readsBase: Bool { inner.readsBase }
    var parameters: [Parameter] { inner.parameters }
    var fileScalars: [(suffix: String, value: Float)] { inner.fileScalars }
    var lycorisScalar: (scalar: ModuleScalar, savedInto: Parameter)? { inner.lycorisScalar }

    /// The whole ΔW added in place, then the dropped rows put back as they were: a copy of those rows, not of ΔW.
    func addDelta(into weight: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>) {
        let columns = shape.columns, dropped = mask.indices.filter { mask[$0] == 0 }
        var before = [Float](repeating: 0, count: dropped.count * columns)
        before.withUnsafeMutableBufferPointer { kept in
            for (i, o) in dropped.enumerated() { (kept.baseAddress! + i * columns).update(from: weight + o * columns, count: columns) }
        }
        inner.addDelta(into: weight, base: base)
        before.withUnsafeBufferPointer { kept in
            for (i, o) in dropped.enumerated() { (weight + o * columns).update(from: kept.baseAddress! + i * columns, count: columns) }
        }
    }

    func accumulateGradients(delta gradient: UnsafeBufferPointer<Float>, base: UnsafePointer<Float>) {
        let columns = shape.columns
        var kept = [Float](gradient)
        kept.withUnsafeMutableBufferPointer { k in
            for o in mask.indices where mask[o] == 0 { (k.baseAddress! + o * columns).update(repeating: 0, count: columns) }
        }
        kept.withUnsafeBufferPointer { inner.accumulateGradients(delta: $0, base: base) }
    }
}
