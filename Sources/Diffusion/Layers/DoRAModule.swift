import LinearAlgebra
import LoRACore

/// LyCORIS's weight decomposition (`dora_wd=True`; `apply_weight_decompose` in lycoris/modules/locon.py, loha.py,
/// lokr.py, lycoris_lora 3.2.0.post2, with kohya.py's default wd_on_output=True) around a module's ΔW:
///   W' = m ⊙ V / (‖V‖ + ε)       V = W + ΔW, norms over each output row, m = `dora_scale` [out, 1(, 1, 1)]
/// with m initialised to the frozen weight's row norms and ε float32's machine epsilon. As in LyCORIS the norm is not
/// detached (the DoRA paper detaches it). The layer runs W', so this module's "ΔW" is W' − W (`readsBase`). Per row,
/// with d = ‖V‖ + ε and G = ∂L/∂W':
///   ∂L/∂m = G·V / d          ∂L/∂V = (m / d)·G − m·(G·V) / (d²·‖V‖) · V          ∂L/∂ΔW = ∂L/∂V
/// and the wrapped module takes ∂L/∂ΔW. Files hold `<name>.dora_scale` beside the wrapped module's tensors; lora-merge
/// and lora-xyz apply it as A1111 does.
public struct DoRAModule: WeightDeltaModule {
    public let inner: any WeightDeltaModule
    public let magnitude: Parameter

    public var name: String { inner.name }
    public var shape: LoRAModule.Shape { inner.shape }
    public var readsBase: Bool { true }
    /// torch's named_parameters order: a module's own Parameters (dora_scale, then use_scalar's scalar) before its
    /// submodules', so LoCon's come before lora_down/lora_up (nn.Conv2d/nn.Linear submodules), LoHa's and LoKr's after
    /// their factors.
    public var parameters: [Parameter] {
        if inner is LoRAWeightDelta { return [magnitude] + inner.parameters }
        guard let trained = inner.lycorisScalar?.scalar.parameter else { return inner.parameters + [magnitude] }
        return inner.parameters.filter { $0 !== trained } + [magnitude, trained]
    }
    public var fileScalars: [(suffix: String, value: Float)] { inner.fileScalars }
    public var lycorisScalar: (scalar: ModuleScalar, savedInto: Parameter)? { inner.lycorisScalar }
    /// The module LyCORIS's max norm reads (it measures ΔW alone): the wrapped LoRA for LoCon, else the wrapped module.
    public var decomposed: any TrainedModule { (inner as? LoRAWeightDelta)?.lora ?? inner }

    /// `magnitude`: m, one value per output row (LyCORIS starts it at the frozen weight's row norms, `rowNorms`).
    public init(_ inner: any WeightDeltaModule, magnitude: [Float]) {
        self.inner = inner
        let stored: [Int] = { if case .conv = inner.shape { return [inner.shape.outputs, 1, 1, 1] } else { return [inner.shape.outputs, 1] } }()
        self.magnitude = Parameter(key: inner.name + ".dora_scale", shape: stored, values: magnitude)
    }

    /// `inner` decomposed with an existing magnitude (the same Parameter: a pass's copy with rank dropout's rows).
    init(_ inner: any WeightDeltaModule, magnitude: Parameter) {
        precondition(magnitude.count == inner.shape.outputs, "\(inner.name): \(magnitude.count) magnitudes for \(inner.shape.outputs) rows")
        (self.inner, self.magnitude) = (inner, magnitude)
    }

    /// ‖W‖ of each row of a weight [rows, columns].
    public static func rowNorms(_ weight: [Float], rows: Int) -> [Float] {
        let columns = weight.count / rows
        return weight.withUnsafeBufferPointer { w in (0..<rows).map { norm(w.baseAddress! + $0 * columns, columns) } }
    }

    /// V = W + ΔW [out, columns].
    private func combined(_ base: UnsafePointer<Float>) -> [Float] {
        var v = [Float](UnsafeBufferPointer(start: base, count: shape.weightCount))
        v.withUnsafeMutableBufferPointer { inner.addDelta(into: $0.baseAddress!, base: base) }
        return v
    }

    public func addDelta(into weight: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>) {
        let v = combined(base), columns = shape.columns
        v.withUnsafeBufferPointer { v in magnitude.values.withUnsafeBufferPointer { m in
            let (v, m, w) = (v.baseAddress!, m.baseAddress!, UncheckedSendable(weight))
            Parallel.forRanges(shape.outputs, cost: 3 * columns) { rows in
                for o in rows {
                    let row = v + o * columns, target = w.value + o * columns, source = base + o * columns
                    let factor = m[o] / (Self.norm(row, columns) + Float.ulpOfOne)
                    for c in 0..<columns { target[c] += row[c] * factor - source[c] }
                }
            }
        } }
    }

    public func accumulateGradients(delta gradient: UnsafeBufferPointer<Float>, base: UnsafePointer<Float>) {
        var v = combined(base)
        let columns = shape.columns
        var dm = [Float](repeating: 0, count: shape.outputs)
        // v becomes ∂L/∂V row by row (each row read before it is overwritten).
        v.withUnsafeMutableBufferPointer { v in magnitude.values.withUnsafeBufferPointer { m in dm.withUnsafeMutableBufferPointer { dm in
            let (v, m, dm, g) = (UncheckedSendable(v.baseAddress!), m.baseAddress!, UncheckedSendable(dm.baseAddress!), gradient.baseAddress!)
            Parallel.forRanges(shape.outputs, cost: 4 * columns) { rows in
                for o in rows {
                    // In double: the two terms of ∂L/∂V nearly cancel along V.
                    let row = v.value + o * columns, grad = g + o * columns
                    var squares = 0.0, dot = 0.0
                    for c in 0..<columns { squares += Double(row[c]) * Double(row[c]); dot += Double(grad[c]) * Double(row[c]) }
                    let n = squares.squareRoot(), d = n + Double(Float.ulpOfOne), mo = Double(m[o])
                    dm.value[o] = Float(dot / d)
                    let a = mo / d, b = n > 0 ? mo * dot / (d * d * n) : 0
                    for c in 0..<columns { row[c] = Float(a * Double(grad[c]) - b * Double(row[c])) }
                }
            }
        } } }
        magnitude.gradient.withPointer { p in for o in dm.indices { p[o] += dm[o] } }
        v.withUnsafeBufferPointer { inner.accumulateGradients(delta: $0, base: base) }
    }

    /// ‖row‖, summed in double.
    private static func norm(_ row: UnsafePointer<Float>, _ count: Int) -> Float {
        Float(LinearAlgebra.sumOfSquares(UnsafeBufferPointer(start: row, count: count)).squareRoot())
    }
}
