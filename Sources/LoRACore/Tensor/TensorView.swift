/// A typed window on bytes of a mapped file: name, dtype, shape and where the
/// elements are. Nothing is converted until someone asks for numbers.
public struct TensorView: Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Element strides; nil means contiguous row-major (always so for safetensors).
    public let strides: [Int]?
    /// Byte range in `file` of the first element through the last one's storage.
    public let byteOffset: Int
    public let byteCount: Int
    public let file: MappedFile

    public init(name: String, dtype: DType, shape: [Int], strides: [Int]? = nil,
                byteOffset: Int, byteCount: Int, file: MappedFile) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.strides = strides.flatMap { TensorView.isContiguous(shape: shape, strides: $0) ? nil : $0 }
        self.byteOffset = byteOffset
        self.byteCount = byteCount
        self.file = file
    }

    public var elementCount: Int { shape.reduce(1, *) }
    public var isContiguous: Bool { strides == nil }

    /// The raw bytes (contiguous tensors only are laid out element by element).
    public var rawBytes: UnsafeRawBufferPointer { file.slice(byteOffset, byteCount) }

    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= max(shape[axis], 1)
        }
        return strides
    }

    /// Row-major contiguity, ignoring the strides of size-1 axes (torch leaves
    /// those arbitrary) and anything about empty tensors.
    public static func isContiguous(shape: [Int], strides: [Int]) -> Bool {
        guard shape.count == strides.count else { return false }
        if shape.contains(0) { return true }
        var expected = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] != 1 {
            if strides[axis] != expected { return false }
            expected *= shape[axis]
        }
        return true
    }

    /// Shape written as users see it: [320, 768] or [] for a scalar.
    public var shapeDescription: String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
}
