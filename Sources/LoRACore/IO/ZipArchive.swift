import CZlib

/// A read-only view of a zip archive as PyTorch writes it (ZIP64, members
/// stored uncompressed and 64-byte aligned, so tensors are mapped in place).
///
/// Guards against hostile archives: every offset is checked against the file,
/// member data may not overlap (the "overlapping files" zip bomb), and a
/// compressed member is inflated only up to its declared size, which itself
/// may not exceed what deflate can physically produce from its input.
public struct ZipArchive: Sendable {
    public struct Member: Sendable {
        public let name: String
        public let method: UInt16
        public let compressedSize: Int
        public let uncompressedSize: Int
        /// Offset of the member's data (after its local header) in the file.
        public let dataOffset: Int
        public let crc32: UInt32
    }

    public static let maxMembers = 1_000_000
    /// Refuse to inflate more than this per member.
    public static let maxInflatedSize = 4 << 30

    public let file: MappedFile
    public let members: [Member]

    public static func looksLikeZip(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x50 && bytes[1] == 0x4B &&
            ((bytes[2] == 3 && bytes[3] == 4) || (bytes[2] == 5 && bytes[3] == 6))
    }

    public init(file: MappedFile) throws(ModelError) {
        self.file = file
        let bytes = file.bytes
        let path = file.path
        func fail(_ message: String, _ offset: Int? = nil) -> ModelError {
            ModelError(.invalid, "zip archive: \(message)", file: path, offset: offset.map(UInt64.init))
        }
        // End of central directory: 22 bytes plus an optional comment of up to 64 KiB.
        guard bytes.count >= 22 else { throw fail("file too small") }
        var eocd = -1
        let lowest = max(0, bytes.count - 22 - 65_535)
        var position = bytes.count - 22
        while position >= lowest {
            if bytes.loadLE(UInt32.self, at: position) == 0x0605_4B50 { eocd = position; break }
            position -= 1
        }
        guard eocd >= 0 else { throw fail("no end-of-central-directory record; the file is truncated or not a zip") }
        var entryCount = Int(bytes.loadLE(UInt16.self, at: eocd + 10))
        var directorySize = Int(bytes.loadLE(UInt32.self, at: eocd + 12))
        var directoryOffset = Int(bytes.loadLE(UInt32.self, at: eocd + 16))
        if entryCount == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            // ZIP64: the locator sits right before the classic record.
            let locator = eocd - 20
            guard locator >= 0, bytes.loadLE(UInt32.self, at: locator) == 0x0706_4B50 else {
                throw fail("ZIP64 locator missing", eocd)
            }
            let record64 = bytes.loadLE(UInt64.self, at: locator + 8)
            guard record64 <= UInt64(bytes.count - 56), bytes.loadLE(UInt32.self, at: Int(record64)) == 0x0606_4B50 else {
                throw fail("ZIP64 end record missing or out of bounds", locator)
            }
            let r = Int(record64)
            let count64 = bytes.loadLE(UInt64.self, at: r + 32)
            let size64 = bytes.loadLE(UInt64.self, at: r + 40)
            let offset64 = bytes.loadLE(UInt64.self, at: r + 48)
            guard count64 <= UInt64(ZipArchive.maxMembers), size64 <= UInt64(bytes.count), offset64 <= UInt64(bytes.count) else {
                throw fail("ZIP64 directory fields out of range", r)
            }
            entryCount = Int(count64)
            directorySize = Int(size64)
            directoryOffset = Int(offset64)
        }
        guard entryCount <= ZipArchive.maxMembers else { throw fail("too many members (\(entryCount))", eocd) }
        guard directoryOffset <= bytes.count, directorySize <= bytes.count - directoryOffset else {
            throw fail("central directory out of bounds", eocd)
        }

        var members: [Member] = []
        members.reserveCapacity(entryCount)
        var cursor = directoryOffset
        let directoryEnd = directoryOffset + directorySize
        for _ in 0..<entryCount {
            guard cursor + 46 <= directoryEnd, bytes.loadLE(UInt32.self, at: cursor) == 0x0201_4B50 else {
                throw fail("corrupt central directory entry", cursor)
            }
            let flags = bytes.loadLE(UInt16.self, at: cursor + 8)
            let method = bytes.loadLE(UInt16.self, at: cursor + 10)
            let crc = bytes.loadLE(UInt32.self, at: cursor + 16)
            var compressed = UInt64(bytes.loadLE(UInt32.self, at: cursor + 20))
            var uncompressed = UInt64(bytes.loadLE(UInt32.self, at: cursor + 24))
            let nameLength = Int(bytes.loadLE(UInt16.self, at: cursor + 28))
            let extraLength = Int(bytes.loadLE(UInt16.self, at: cursor + 30))
            let commentLength = Int(bytes.loadLE(UInt16.self, at: cursor + 32))
            var localOffset = UInt64(bytes.loadLE(UInt32.self, at: cursor + 42))
            let nameStart = cursor + 46
            guard nameStart + nameLength + extraLength + commentLength <= directoryEnd else {
                throw fail("central directory entry runs past the directory", cursor)
            }
            guard let name = String(validating: UnsafeRawBufferPointer(rebasing: bytes[nameStart..<(nameStart + nameLength)]), as: UTF8.self) else {
                throw fail("member name is not UTF-8", nameStart)
            }
            // ZIP64 extra field: the 64-bit values appear in a fixed order, only
            // for the fields whose 32-bit slot holds 0xFFFFFFFF.
            var extra = nameStart + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let tag = bytes.loadLE(UInt16.self, at: extra)
                let size = Int(bytes.loadLE(UInt16.self, at: extra + 2))
                guard extra + 4 + size <= extraEnd else { throw fail("corrupt extra field", extra) }
                if tag == 0x0001 {
                    var field = extra + 4
                    func next() throws(ModelError) -> UInt64 {
                        guard field + 8 <= extra + 4 + size else { throw fail("short ZIP64 extra field", field) }
                        defer { field += 8 }
                        return bytes.loadLE(UInt64.self, at: field)
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = try next() }
                    if compressed == 0xFFFF_FFFF { compressed = try next() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next() }
                }
                extra += 4 + size
            }
            if flags & 0x1 != 0 { throw ModelError(.unsupported, "zip archive: encrypted member", file: path, key: name) }
            guard localOffset <= UInt64(bytes.count - 30), bytes.loadLE(UInt32.self, at: Int(localOffset)) == 0x0403_4B50 else {
                throw ModelError(.invalid, "zip archive: local header missing or out of bounds", file: path, key: name, offset: localOffset)
            }
            let local = Int(localOffset)
            let dataOffset = local + 30 + Int(bytes.loadLE(UInt16.self, at: local + 26)) + Int(bytes.loadLE(UInt16.self, at: local + 28))
            guard compressed <= UInt64(bytes.count), dataOffset <= bytes.count - Int(compressed) else {
                throw ModelError(
                    .invalid, "zip archive: member data runs past the end of the file (truncated download?)", file: path, key: name, offset: UInt64(dataOffset))
            }
            guard uncompressed <= UInt64(Int.max) else { throw fail("member size out of range") }
            if method == 0 && compressed != uncompressed {
                throw ModelError(.invalid, "zip archive: stored member sizes disagree", file: path, key: name)
            }
            members.append(Member(name: name, method: method, compressedSize: Int(compressed), uncompressedSize: Int(uncompressed),
                                  dataOffset: dataOffset, crc32: crc))
            cursor = extraEnd + commentLength
        }

        // Member data may not overlap: overlapping members are how non-recursive
        // zip bombs multiply a small file into terabytes.
        let spans = members.filter { $0.compressedSize > 0 }.sorted { $0.dataOffset < $1.dataOffset }
        for (a, b) in zip(spans, spans.dropFirst()) where a.dataOffset + a.compressedSize > b.dataOffset {
            throw ModelError(.invalid, "zip archive: member data overlaps member \(a.name)", file: path, key: b.name, offset: UInt64(b.dataOffset))
        }
        self.members = members
    }

    public func member(named name: String) -> Member? {
        members.first { $0.name == name }
    }

    /// The member's bytes: a view of the mapping when stored, inflated into
    /// memory (with the limits above) when deflated.
    public func contents(of member: Member) throws(ModelError) -> (file: MappedFile, offset: Int, count: Int) {
        switch member.method {
        case 0:
            return (file, member.dataOffset, member.compressedSize)
        case 8:
            let bytes = try inflate(member)
            return (MappedFile.inMemory(bytes, path: file.path + "/" + member.name), 0, bytes.count)
        default:
            throw ModelError(.unsupported, "zip archive: compression method \(member.method) is not supported", file: file.path, key: member.name)
        }
    }

    private func inflate(_ member: Member) throws(ModelError) -> [UInt8] {
        // Deflate cannot expand beyond about 1032:1; a larger declared size is a lie.
        let plausible = member.compressedSize.multipliedReportingOverflow(by: 1032)
        guard member.uncompressedSize <= ZipArchive.maxInflatedSize,
              plausible.overflow || member.uncompressedSize <= plausible.partialValue + 1024 else {
            throw ModelError(.invalid, "zip archive: member declares \(member.uncompressedSize) bytes from \(member.compressedSize) compressed (zip bomb?)",
                             file: file.path, key: member.name)
        }
        var output = [UInt8](repeating: 0, count: member.uncompressedSize)
        let source = file.slice(member.dataOffset, member.compressedSize)
        var stream = z_stream()
        guard inflateInit2_(&stream, -MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw ModelError(.io, "zip archive: cannot initialise zlib", file: file.path, key: member.name)
        }
        defer { inflateEnd(&stream) }
        let status: Int32 = output.withUnsafeMutableBytes { out in
            stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(source.count)
            stream.next_out = out.baseAddress?.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(out.count)
            var status = Z_OK
            // Bounded by avail_out: the output buffer is exactly the declared size.
            while status == Z_OK && stream.avail_out > 0 {
                status = CZlib.inflate(&stream, Z_NO_FLUSH)
            }
            if status == Z_OK && stream.avail_out == 0 {
                // Anything more than the declared size is an error.
                var probe: [UInt8] = [0]
                probe.withUnsafeMutableBufferPointer { extra in
                    stream.next_out = extra.baseAddress
                    stream.avail_out = 1
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                if stream.avail_out == 0 { return Z_DATA_ERROR }
            }
            return status
        }
        guard status == Z_STREAM_END, Int(stream.total_out) == member.uncompressedSize else {
            throw ModelError(.invalid, "zip archive: member does not inflate to its declared size", file: file.path, key: member.name)
        }
        return output
    }
}
