/// A dense float32 tensor in row-major order (NCHW for images, [tokens, width]
/// for sequences): the engine's activations. Weights are plain `[Float]`.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        self.shape = shape
        self.values = values
    }

    public init(zeros shape: [Int]) {
        self.shape = shape
        values = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    /// A tensor whose values the caller overwrites completely (no zero fill:
    /// activations are written once, and filling gigabytes costs time).
    public static func uninitialized(_ shape: [Int]) -> Tensor {
        let count = shape.reduce(1, *)
        let values = [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
        return Tensor(shape: shape, values: values)
    }

    public var count: Int { values.count }

    /// The same values with another shape of the same size.
    public func reshaped(_ shape: [Int]) -> Tensor { Tensor(shape: shape, values: values) }

    /// Item `index` along the first axis.
    public func item(_ index: Int) -> Tensor {
        let size = count / shape[0]
        return Tensor(shape: [1] + shape.dropFirst(), values: Array(values[(index * size)..<((index + 1) * size)]))
    }

    /// Items `range` along the first axis.
    public func items(_ range: Range<Int>) -> Tensor {
        let size = count / shape[0]
        return Tensor(shape: [range.count] + shape.dropFirst(), values: Array(values[(range.lowerBound * size)..<(range.upperBound * size)]))
    }

    /// Concatenation along the first axis.
    public static func stack(_ parts: [Tensor]) -> Tensor {
        let rest = Array(parts[0].shape.dropFirst())
        return Tensor(shape: [parts.map { $0.shape[0] }.reduce(0, +)] + rest, values: parts.flatMap(\.values))
    }

    public func withPointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try values.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    public mutating func withMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try values.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }

    /// Largest absolute difference to another tensor of the same shape.
    public func maxAbsDifference(_ other: Tensor) -> Float {
        zip(values, other.values).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }
}
