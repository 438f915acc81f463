import LoRACore

/// LyCORIS's (IA)^3 (lycoris/modules/ia3.py, lycoris_lora 3.2.0.post2) on its output side (`on_input` 0, the only side
/// lycoris.kohya's create_network gives it outside its own `ia3` preset): the layer runs with W ⊙ (1 + w) scaled along
/// its output rows, the bias unchanged, so
///   ΔW[o, c] = W[o, c] · w[o]                 w [out] (a conv's stored [1, out, 1, 1])
///   dw[o]   = Σ_c dΔW[o, c] · W[o, c]
/// Keys: `<name>.weight` and `<name>.on_input` (no alpha; lora-merge's IA3Delta reads them).
public struct IA3Module: WeightDeltaModule {
    public let name: String
    public let shape: LoRAModule.Shape
    public let weight: Parameter

    public var parameters: [Parameter] { [weight] }
    public var fileScalars: [(suffix: String, value: Float)] { [("on_input", 0)] }
    public var readsBase: Bool { true }

    /// LyCORIS starts w at 0 (the layer unchanged).
    public init(name: String, shape: LoRAModule.Shape, values: [Float]? = nil) {
        (self.name, self.shape) = (name, shape)
        let stored: [Int] = { if case .conv = shape { return [1, shape.outputs, 1, 1] } else { return [shape.outputs] } }()
        weight = Parameter(key: name + ".weight", shape: stored, values: values ?? [Float](repeating: 0, count: shape.outputs))
    }

    public func addDelta(into target: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>) {
        let columns = shape.columns
        weight.values.withUnsafeBufferPointer { w in
            let (w, t) = (w.baseAddress!, UncheckedSendable(target))
            Parallel.forRanges(shape.outputs, cost: columns) { rows in
                for o in rows {
                    let scale = w[o], row = t.value + o * columns, source = base + o * columns
                    for c in 0..<columns { row[c] += source[c] * scale }
                }
            }
        }
    }

    public func accumulateGradients(delta gradient: UnsafeBufferPointer<Float>, base: UnsafePointer<Float>) {
        let columns = shape.columns
        weight.gradient.withPointer { d in
            let (g, d) = (gradient.baseAddress!, UncheckedSendable(d))
            Parallel.forRanges(shape.outputs, cost: columns) { rows in
                for o in rows {
                    var sum: Float = 0
                    for c in 0..<columns { sum += g[o * columns + c] * base[o * columns + c] }
                    d.value[o] += sum
                }
            }
        }
    }
}
