/// A validated safetensors file: its metadata and zero-copy tensor views.
///
/// Validation follows the reference implementation (huggingface/safetensors)
/// and adds what it leaves to chance: duplicate names are rejected outright and
/// every failure names the file, the tensor and the byte offset.
public struct SafeTensorsFile: Sendable {
    /// Headers larger than this are refused before anything is allocated (the
    /// reference's limit, which also guards against multi-GB JSON headers).
    public static let maxHeaderLength = 100_000_000

    public let file: MappedFile
    /// N, the JSON header's length in bytes.
    public let headerLength: Int
    /// Where the data buffer starts (8 + N).
    public var dataOffset: Int { 8 + headerLength }
    public let metadata: Metadata
    /// Tensors in header order.
    public let tensors: [TensorView]
    /// False when the header has leading whitespace or does not start with `{"`:
    /// the reference reader accepts that, AUTOMATIC1111 does not.
    public let headerStartsStrictly: Bool

    public var path: String { file.path }

    public init(path: String) throws(ModelError) {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws(ModelError) {
        self.file = file
        let path = file.path
        let bytes = file.bytes
        guard bytes.count >= 8 else {
            throw ModelError(.invalid, "file too small for a safetensors header (\(bytes.count) bytes)", file: path, offset: 0)
        }
        let declared = bytes.loadLE(UInt64.self, at: 0)
        guard declared <= UInt64(SafeTensorsFile.maxHeaderLength) else {
            throw ModelError(.invalid, "header length \(declared) exceeds the 100 MB limit; not a safetensors file or corrupt", file: path, offset: 0)
        }
        let n = Int(declared)
        guard 8 + n <= bytes.count else {
            throw ModelError(
                .invalid, "header length \(n) runs past the end of the file (\(bytes.count) bytes); the file is truncated or not safetensors", file: path,
                offset: 0)
        }
        headerLength = n
        let headerBytes = Array(UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + n)]))
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw ModelError(.invalid, "header is not valid UTF-8", file: path, offset: 8)
        }
        headerStartsStrictly = headerBytes.count >= 2 && headerBytes[0] == UInt8(ascii: "{")
            && (headerBytes[1] == UInt8(ascii: "\"") || headerBytes[1] == UInt8(ascii: "'"))
        let json: JSON
        do {
            json = try JSONParser.parse(headerBytes)
        } catch {
            throw ModelError(.invalid, "header is not valid JSON: \(error.message)", file: path, offset: UInt64(8 + error.offset))
        }
        guard case let .object(members) = json else {
            throw ModelError(.invalid, "header is not a JSON object", file: path, offset: 8)
        }

        var metadata = Metadata()
        var infos: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
        infos.reserveCapacity(members.count)
        let dataLength = bytes.count - 8 - n
        for (name, value) in members {
            if name == "__metadata__" {
                metadata = try SafeTensorsFile.parseMetadata(value, path: path)
                continue
            }
            infos.append(try SafeTensorsFile.parseInfo(name: name, value, path: path, dataLength: dataLength))
        }

        // Sorted by offsets, the spans must tile the data buffer exactly: this one
        // rule rejects overlaps, gaps and trailing bytes (polyglot files), and
        // reports truncation.
        let order = infos.indices.sorted { (infos[$0].begin, infos[$0].end) < (infos[$1].begin, infos[$1].end) }
        var expected = 0
        for index in order {
            let info = infos[index]
            if info.begin != expected {
                let problem = info.begin < expected ? "overlaps the previous tensor" : "leaves a gap before it"
                throw ModelError(.invalid, "data_offsets [\(info.begin), \(info.end)] \(problem) (expected to start at \(expected))",
                                 file: path, key: info.name, offset: UInt64(8 + n + info.begin))
            }
            expected = info.end
        }
        if expected != dataLength {
            let problem = expected > dataLength
                ? "tensor data ends at \(expected) but the file holds only \(dataLength) bytes of data: the file is truncated"
                : "\(dataLength - expected) bytes after the last tensor are not covered by any tensor"
            throw ModelError(.invalid, problem, file: path, offset: UInt64(8 + n + min(expected, dataLength)))
        }

        self.metadata = metadata
        self.tensors = infos.map { info in
            TensorView(name: info.name, dtype: info.dtype, shape: info.shape,
                       byteOffset: 8 + n + info.begin, byteCount: info.end - info.begin, file: file)
        }
    }

    private static func parseMetadata(_ value: JSON, path: String) throws(ModelError) -> Metadata {
        switch value {
        case .null:
            return Metadata()
        case let .object(entries):
            var pairs: [(String, String)] = []
            for (key, entry) in entries {
                guard case let .string(text) = entry else {
                    throw ModelError(.invalid, "__metadata__ value is not a string (safetensors allows strings only)",
                                     file: path, key: key)
                }
                pairs.append((key, text))
            }
            return Metadata(pairs)
        default:
            throw ModelError(.invalid, "__metadata__ is not an object of strings", file: path)
        }
    }

    private static func parseInfo(name: String, _ value: JSON, path: String, dataLength: Int) throws(ModelError)
        -> (name: String, dtype: DType, shape: [Int], begin: Int, end: Int)
    {
        func fail(_ message: String) -> ModelError { ModelError(.invalid, message, file: path, key: name) }
        guard case .object = value else { throw fail("tensor entry is not an object") }
        guard let dtypeText = value["dtype"]?.stringValue else { throw fail("tensor entry has no dtype string") }
        guard let dtype = DType(rawValue: dtypeText) else {
            if DType.knownUnsupported.contains(dtypeText) {
                throw ModelError(.unsupported, "dtype \(dtypeText) is not supported", file: path, key: name)
            }
            throw fail("unknown dtype '\(dtypeText)'")
        }
        guard case let .array(dims)? = value["shape"] else { throw fail("tensor entry has no shape array") }
        var shape: [Int] = []
        var elements = 1
        for dim in dims {
            guard let d = dim.uint64, d <= UInt64(Int.max) else { throw fail("shape holds a non-integer or negative dimension") }
            let (product, overflow) = elements.multipliedReportingOverflow(by: Int(d))
            guard !overflow else { throw fail("shape \(dims.map { $0.serialized() }) overflows") }
            elements = product
            shape.append(Int(d))
        }
        guard case let .array(offsets)? = value["data_offsets"], offsets.count == 2,
              let begin64 = offsets[0].uint64, let end64 = offsets[1].uint64 else {
            throw fail("data_offsets is not a pair of non-negative integers")
        }
        guard begin64 <= end64 else { throw fail("data_offsets [\(begin64), \(end64)] end before they begin") }
        guard end64 <= UInt64(dataLength) else {
            throw ModelError(
                .invalid, "data_offsets [\(begin64), \(end64)] run past the end of the data (\(dataLength) bytes): the file is truncated or corrupt",
                             file: path, key: name)
        }
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, UInt64(bytes) == end64 - begin64 else {
            throw fail("shape \(shape) of \(dtype.rawValue) needs \(overflow ? "too many" : String(bytes)) bytes but data_offsets span \(end64 - begin64)")
        }
        return (name, dtype, shape, Int(begin64), Int(end64))
    }

    public func tensor(named name: String) -> TensorView? {
        tensors.first { $0.name == name }
    }
}
