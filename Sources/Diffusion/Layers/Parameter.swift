import LoRACore

/// A trained tensor: its values, the gradient its backward passes add into
/// (the rule in Diffusion/Layers/Gradient.swift), and the key it is saved under.
public final class Parameter: @unchecked Sendable {
    public let key: String
    public let shape: [Int]
    public var values: [Float]
    public let gradient: Gradient

    public init(key: String, shape: [Int], values: [Float]) {
        precondition(values.count == shape.reduce(1, *), "\(key): \(values.count) values for shape \(shape)")
        self.key = key
        self.shape = shape
        self.values = values
        gradient = Gradient(count: values.count)
    }

    public var count: Int { values.count }
}
