import Foundation

/// Writes a safetensors file tensor by tensor, never holding the model in memory.
///
/// The header needs every tensor's name, dtype and shape but no data, so the
/// layout is fixed up front; each tensor is then written at its own offset, in
/// any order and from any thread. The file appears only after `finish()`.
public final class SafeTensorsWriter: @unchecked Sendable {
    public struct Entry: Sendable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public init(name: String, dtype: DType, shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }
        public var byteCount: Int { shape.reduce(1, *) * dtype.size }
    }

    private struct Slot {
        let entry: Entry
        let begin: Int
    }

    public let output: AtomicOutput
    public let dataOffset: Int
    /// Entries in file order: by dtype (wider first), then by name, like the
    /// reference writer, so AutoV3 hashes match files written by Python.
    public let layout: [Entry]
    private var slots: [String: Slot] = [:]
    private var written: Set<String> = []
    /// Byte offsets (in the file) of reserved metadata values, patched before finishing.
    private var reserved: [String: Int] = [:]
    /// Length of a reserved metadata value: a SHA-256 in hex.
    public static let reservedLength = 64
    private let lock = NSLock()

    /// - Parameter reservedMetadata: keys whose 64-character values are filled
    ///   in later with `patchMetadata` (e.g. a hash of the data, known only at the end).
    public init(path: String, metadata: Metadata, entries: [Entry], inputs: [String] = [],
                overwrite: Bool = true, reservedMetadata: [String] = []) throws(ModelError) {
        var seen = Set<String>()
        for entry in entries {
            guard !entry.name.isEmpty, entry.name != "__metadata__" else {
                throw ModelError(.invalid, "invalid tensor name", file: path, key: entry.name)
            }
            guard seen.insert(entry.name).inserted else {
                throw ModelError(.invalid, "duplicate tensor name", file: path, key: entry.name)
            }
        }
        layout = entries.sorted { a, b in
            a.dtype.writerRank != b.dtype.writerRank ? a.dtype.writerRank > b.dtype.writerRank : a.name < b.name
        }
        var metadata = metadata
        let placeholder = String(repeating: "0", count: SafeTensorsWriter.reservedLength)
        for key in reservedMetadata { metadata[key] = placeholder }
        var header = "{"
        var first = true
        if !metadata.isEmpty {
            header += "\"__metadata__\":{"
            for (i, pair) in metadata.pairs.sorted(by: { $0.key < $1.key }).enumerated() {
                if i > 0 { header += "," }
                JSON.appendQuoted(pair.key, to: &header)
                header += ":"
                JSON.appendQuoted(pair.value, to: &header)
            }
            header += "}"
            first = false
        }
        var offset = 0
        var slots: [String: Slot] = [:]
        for entry in layout {
            if !first { header += "," }
            first = false
            JSON.appendQuoted(entry.name, to: &header)
            header += ":{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(entry.shape.map(String.init).joined(separator: ","))],"
            header += "\"data_offsets\":[\(offset),\(offset + entry.byteCount)]}"
            slots[entry.name] = Slot(entry: entry, begin: offset)
            offset += entry.byteCount
        }
        header += "}"
        // Pad with spaces so the data buffer starts 8-byte aligned.
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        guard headerBytes.count <= SafeTensorsFile.maxHeaderLength else {
            throw ModelError(.invalid, "header would exceed the 100 MB limit", file: path)
        }
        self.slots = slots
        for key in reservedMetadata {
            var needle = ""
            JSON.appendQuoted(key, to: &needle)
            needle += ":\"" + placeholder + "\""
            if let range = header.range(of: needle) {
                let prefix = header[header.startIndex..<range.lowerBound].utf8.count + needle.utf8.count - 1 - SafeTensorsWriter.reservedLength
                reserved[key] = 8 + prefix
            }
        }
        dataOffset = 8 + headerBytes.count
        output = try AtomicOutput(destination: path, inputs: inputs, overwrite: overwrite)
        try output.reserve(dataOffset + offset)
        var prefix = withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { Array($0) }
        prefix.append(contentsOf: headerBytes)
        let output = self.output
        try rethrowingModelError { try prefix.withUnsafeBytes { raw in try output.write(raw, at: 0) } }
    }

    /// Write one tensor's bytes, already in its dtype.
    public func write(name: String, bytes: UnsafeRawBufferPointer) throws(ModelError) {
        guard let slot = slots[name] else {
            throw ModelError(.invalid, "tensor was not declared in the header", file: output.destination, key: name)
        }
        guard bytes.count == slot.entry.byteCount else {
            throw ModelError(.invalid, "expected \(slot.entry.byteCount) bytes, got \(bytes.count)", file: output.destination, key: name)
        }
        try output.write(bytes, at: dataOffset + slot.begin)
        lock.lock()
        written.insert(name)
        lock.unlock()
    }

    /// Copy a tensor's bytes unchanged from its file (same dtype, contiguous).
    public func copy(name: String, from tensor: TensorView) throws(ModelError) {
        guard let slot = slots[name], slot.entry.byteCount == tensor.byteCount, slot.entry.dtype == tensor.dtype, tensor.isContiguous else {
            throw ModelError(.invalid, "cannot copy: tensor differs from its declaration", file: output.destination, key: name)
        }
        try output.copy(from: tensor.file, sourceOffset: tensor.byteOffset, count: tensor.byteCount, at: dataOffset + slot.begin)
        lock.lock()
        written.insert(name)
        lock.unlock()
    }

    /// Write one tensor from Float values, converting to the declared dtype in chunks.
    public func write(name: String, floats: UnsafeBufferPointer<Float>) throws(ModelError) {
        guard let slot = slots[name] else {
            throw ModelError(.invalid, "tensor was not declared in the header", file: output.destination, key: name)
        }
        let dtype = slot.entry.dtype
        guard floats.count * dtype.size == slot.entry.byteCount else {
            throw ModelError(.invalid, "expected \(slot.entry.byteCount / dtype.size) values, got \(floats.count)", file: output.destination, key: name)
        }
        let chunk = 1 << 20
        var scratch = [UInt8](repeating: 0, count: min(floats.count, chunk) * dtype.size)
        var start = 0
        while start < floats.count {
            let count = min(chunk, floats.count - start)
            let offset = dataOffset + slot.begin + start * dtype.size
            try rethrowingModelError {
                try scratch.withUnsafeMutableBytes { out in
                    let dst = UnsafeMutableRawBufferPointer(rebasing: out[0..<(count * dtype.size)])
                    try Conversion.fromFloat(UnsafeBufferPointer(rebasing: floats[start..<(start + count)]), to: dtype, into: dst)
                    try output.write(UnsafeRawBufferPointer(dst), at: offset)
                }
            }
            start += count
        }
        lock.lock()
        written.insert(name)
        lock.unlock()
    }

    /// Fill in a value reserved at creation (same length: 64 characters).
    public func patchMetadata(_ key: String, value: String) throws(ModelError) {
        guard let offset = reserved[key], value.utf8.count == SafeTensorsWriter.reservedLength,
              value.utf8.allSatisfy({ $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") && $0 >= 0x20 }) else {
            throw ModelError(.invalid, "metadata \(key) was not reserved or the value does not fit", file: output.destination)
        }
        let bytes = Array(value.utf8)
        try rethrowingModelError { try bytes.withUnsafeBytes { try output.write($0, at: offset) } }
    }

    /// SHA-256 of everything after the header, read back from the file being
    /// written: the "addnet" hash (`sshs_model_hash`, AutoV3) of the result.
    public func dataSHA256() throws(ModelError) -> String {
        try output.sha256(from: dataOffset)
    }

    /// Check every tensor was written, then move the file into place.
    public func finish() throws(ModelError) {
        let missing = layout.map(\.name).filter { !written.contains($0) }
        if let first = missing.first {
            output.abandon()
            throw ModelError(.invalid, "\(missing.count) tensor(s) were never written", file: output.destination, key: first)
        }
        try output.commit()
    }

    /// Give up: remove the temporary file.
    public func abandon() { output.abandon() }
}
