/// A float32 safetensors image built in memory and opened as a model file:
/// how a model whose weights are being trained (the tiny model trained from
/// scratch) hands its current values to the engine's constructors, which read
/// every layer from a `ModelFile`, without a trip through the disk.
extension ModelFile {
    public static func inMemory(_ tensors: [(name: String, shape: [Int], values: [Float])], path: String = "<memory>") throws(ModelError) -> ModelFile {
        var header = "{"
        var offset = 0
        for (i, t) in tensors.enumerated() {
            if i > 0 { header += "," }
            JSON.appendQuoted(t.name, to: &header)
            header += ":{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],"
            header += "\"data_offsets\":[\(offset),\(offset + 4 * t.values.count)]}"
            offset += 4 * t.values.count
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var bytes = withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { Array($0) }
        bytes.reserveCapacity(8 + headerBytes.count + offset)
        bytes += headerBytes
        for t in tensors {
            // Little-endian float32 is the host's layout on every machine this builds for.
            t.values.withUnsafeBytes { bytes.append(contentsOf: $0) }
        }
        return try ModelFile(file: MappedFile.inMemory(bytes, path: path))
    }
}
