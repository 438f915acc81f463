import LinearAlgebra
import LoRACore

/// A trained tensor: its values, the gradient its backward passes add into
/// (the rule in Diffusion/Layers/Gradient.swift), and the key it is saved under.
public final class Parameter: @unchecked Sendable {
    public let key: String
    public let shape: [Int]
    public var values: [Float]
    public let gradient: Gradient
    /// Saved with the module but not trained (LoRA-FA's lora_down): no optimizer group holds it and the backward
    /// computes no gradient for it.
    public var isFrozen = false

    public init(key: String, shape: [Int], values: [Float]) {
        precondition(values.count == shape.reduce(1, *), "\(key): \(values.count) values for shape \(shape)")
        self.key = key
        self.shape = shape
        self.values = values
        gradient = Gradient(count: values.count)
    }

    public var count: Int { values.count }
}

extension Parameter {
    /// The values as a matrix of `shape[0]` rows (a conv kernel's other axes flattened into columns).
    var matrix: Matrix { Matrix(rows: shape[0], cols: count / shape[0], values: values) }
}

extension Gradient {
    /// Adds a matrix of the parameter's count, element by element.
    func add(_ m: Matrix) {
        precondition(m.values.count == values.count)
        withPointer { g in for i in m.values.indices { g[i] += m.values[i] } }
    }
}
