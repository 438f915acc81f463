/// The container a model file uses.
public enum ModelFormat: String, Sendable, Codable {
    case safetensors
    case pytorchZip = "pytorch-zip"
    case pytorchLegacy = "pytorch-legacy"

    public var isPickle: Bool { self != .safetensors }
}

/// Any model file, opened by content (not by extension): safetensors, or a
/// PyTorch checkpoint read through the restricted pickle interpreter. This is
/// the one entry point every tool uses to read weights.
public struct ModelFile: Sendable {
    public let path: String
    public let format: ModelFormat
    public let file: MappedFile
    public let tensors: [TensorView]
    public let metadata: Metadata
    /// For safetensors: where the tensor data starts (the AutoV3 hash covers [dataOffset, EOF)).
    public let dataOffset: Int?
    public let headerStartsStrictly: Bool
    /// For checkpoints: non-tensor entries and the key the weights were nested under.
    public let extras: [(key: String, value: String)]
    public let stateDictKey: String?
    private let index: [String: Int]

    public static func open(_ path: String) throws(ModelError) -> ModelFile {
        let file = try MappedFile(path: path)
        return try ModelFile(file: file)
    }

    public init(file: MappedFile) throws(ModelError) {
        path = file.path
        self.file = file
        let bytes = file.bytes
        switch ModelFile.sniff(bytes) {
        case .safetensors:
            let st = try SafeTensorsFile(file: file)
            format = .safetensors
            tensors = st.tensors
            metadata = st.metadata
            dataOffset = st.dataOffset
            headerStartsStrictly = st.headerStartsStrictly
            extras = []
            stateDictKey = nil
        case .pytorchZip, .pytorchLegacy:
            let ckpt = try TorchCheckpoint(file: file)
            format = ckpt.container == .zip ? .pytorchZip : .pytorchLegacy
            tensors = ckpt.tensors
            metadata = Metadata()
            dataOffset = nil
            headerStartsStrictly = true
            extras = ckpt.extras
            stateDictKey = ckpt.stateDictKey
        case nil:
            throw ModelFile.unrecognised(bytes, path: file.path)
        }
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { index[t.name] = i }
        self.index = index
    }

    public subscript(name: String) -> TensorView? {
        index[name].map { tensors[$0] }
    }

    public var tensorNames: [String] { tensors.map(\.name) }

    /// Decide the container from the first bytes.
    static func sniff(_ bytes: UnsafeRawBufferPointer) -> ModelFormat? {
        if ZipArchive.looksLikeZip(bytes) { return .pytorchZip }
        // A safetensors header of 384..389 bytes starts with 0x80 0x01..0x05, like a
        // pickle: a plausible length followed by JSON decides first.
        if bytes.count >= 9, bytes[8] == UInt8(ascii: "{") {
            let n = bytes.loadLE(UInt64.self, at: 0)
            if n >= 2 && n <= UInt64(SafeTensorsFile.maxHeaderLength) && n + 8 <= UInt64(bytes.count) { return .safetensors }
        }
        if bytes.count >= 2 && bytes[0] == 0x80 && bytes[1] <= 5 { return .pytorchLegacy }
        if bytes.count >= 9 {
            let n = bytes.loadLE(UInt64.self, at: 0)
            let first = bytes[8]
            // A plausible header length followed by JSON (the reference reader
            // also accepts leading whitespace).
            if n >= 2 && n <= UInt64(SafeTensorsFile.maxHeaderLength) &&
                (first == UInt8(ascii: "{") || first == 0x20 || first == 0x0A || first == 0x0D || first == 0x09) {
                return .safetensors
            }
            // Anything else that claims to be safetensors gets the reader's precise error.
            if n > UInt64(SafeTensorsFile.maxHeaderLength) || n + 8 > UInt64(bytes.count) {
                return bytes.count >= 8 && (first == UInt8(ascii: "{") || n > 0) ? .safetensors : nil
            }
        }
        return nil
    }

    private static func unrecognised(_ bytes: UnsafeRawBufferPointer, path: String) -> ModelError {
        if bytes.count == 0 { return ModelError(.invalid, "file is empty", file: path) }
        if bytes.count >= 6 && bytes[0] == 0x37 && bytes[1] == 0x7A && bytes[2] == 0xBC && bytes[3] == 0xAF {
            return ModelError(
                .unsupported, "a 7z archive, not a model file (7z-wrapped pickles have been used to hide malware; do not load it with torch)", file: path)
        }
        if bytes.count > 262 && Array(UnsafeRawBufferPointer(rebasing: bytes[257..<262])) == Array("ustar".utf8) {
            return ModelError(.unsupported, "a tar archive (the oldest torch format, refused by torch itself since 2.6)", file: path)
        }
        if bytes.count < 8 { return ModelError(.invalid, "file too small to be a model (\(bytes.count) bytes)", file: path) }
        return ModelError(.invalid, "not a safetensors or PyTorch file (unrecognised leading bytes)", file: path, offset: 0)
    }
}
