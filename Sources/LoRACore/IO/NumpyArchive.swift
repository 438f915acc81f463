import CZlib
import Foundation

/// NumPy's `.npz` (a zip of `.npy` arrays, as `np.savez` writes it: stored,
/// not compressed) for the arrays training caches share with sd-scripts
/// (latent caches: float32 latents, integer sizes). Reading goes through the
/// hardened zip reader and accepts little-endian float32/float16/int32/int64/
/// uint8 in C order, as numpy writes them; anything else is an error naming
/// the member.
public enum NumpyArchive {
    public enum Values: Sendable, Equatable {
        case float32([Float])
        case int64([Int64])
        case uint8([UInt8])

        var descriptor: String {
            switch self {
            case .float32: return "<f4"
            case .int64: return "<i8"
            case .uint8: return "|u1"
            }
        }
        var count: Int {
            switch self {
            case let .float32(v): return v.count
            case let .int64(v): return v.count
            case let .uint8(v): return v.count
            }
        }
        public var floats: [Float]? { if case let .float32(v) = self { return v } else { return nil } }
        public var integers: [Int64]? { if case let .int64(v) = self { return v } else { return nil } }
        public var bytes: [UInt8]? { if case let .uint8(v) = self { return v } else { return nil } }
    }

    public struct Array: Sendable, Equatable {
        public var shape: [Int]
        public var values: Values
        public init(shape: [Int], values: Values) {
            precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
            self.shape = shape
            self.values = values
        }
    }

    /// The bytes of an .npz holding `arrays` (in this order), written as np.savez writes them.
    public static func encode(_ arrays: [(name: String, array: Array)]) -> [UInt8] {
        var out: [UInt8] = [], central: [UInt8] = []
        for (name, array) in arrays {
            let data = npy(array)
            let fileName = Swift.Array((name + ".npy").utf8)
            let crc = data.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
            let offset = out.count
            // Local header: version 2.0, no flags, stored, a fixed DOS time (1980-01-01), CRC and sizes.
            out += le(UInt32(0x0403_4B50)) + le(UInt16(20)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0x21))
            out += le(crc) + le(UInt32(data.count)) + le(UInt32(data.count)) + le(UInt16(fileName.count)) + le(UInt16(0)) + fileName
            out += data
            central += le(UInt32(0x0201_4B50)) + le(UInt16(20)) + le(UInt16(20)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(0x21))
            central += le(crc) + le(UInt32(data.count)) + le(UInt32(data.count)) + le(UInt16(fileName.count)) + le(UInt16(0)) + le(UInt16(0))
            central += le(UInt16(0)) + le(UInt16(0)) + le(UInt32(0)) + le(UInt32(offset)) + fileName
        }
        let centralOffset = out.count
        out += central
        out += le(UInt32(0x0605_4B50)) + le(UInt16(0)) + le(UInt16(0)) + le(UInt16(arrays.count)) + le(UInt16(arrays.count))
        out += le(UInt32(central.count)) + le(UInt32(centralOffset)) + le(UInt16(0))
        return out
    }

    /// One .npy: magic, version 1.0, the header dict padded with spaces to a multiple of 64, the data.
    static func npy(_ array: Array) -> [UInt8] {
        let shape = array.shape.count == 1 ? "(\(array.shape[0]),)" : "(" + array.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(array.values.descriptor)', 'fortran_order': False, 'shape': \(shape), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out: [UInt8] = [0x93] + Swift.Array("NUMPY".utf8) + [1, 0] + le(UInt16(header.utf8.count)) + Swift.Array(header.utf8)
        switch array.values {
        case let .float32(v): v.withUnsafeBytes { out += $0 }
        case let .int64(v): v.withUnsafeBytes { out += $0 }
        case let .uint8(v): out += v
        }
        return out
    }

    /// The arrays of an .npz file, by name (without ".npy").
    public static func read(_ path: String) throws(ModelError) -> [String: Array] {
        let archive = try ZipArchive(file: try MappedFile(path: path))
        var arrays: [String: Array] = [:]
        for member in archive.members where member.name.hasSuffix(".npy") {
            let (file, offset, count) = try archive.contents(of: member)
            let name = String(member.name.dropLast(4))
            arrays[name] = try parse(UnsafeRawBufferPointer(rebasing: file.bytes[offset..<(offset + count)]), path: path, name: name)
        }
        return arrays
    }

    static func parse(_ b: UnsafeRawBufferPointer, path: String, name: String) throws(ModelError) -> Array {
        func fail(_ message: String) -> ModelError { ModelError(.invalid, "\(name).npy: \(message)", file: path, key: name) }
        guard b.count >= 10, b[0] == 0x93, Swift.Array(b[1..<6]) == Swift.Array("NUMPY".utf8) else { throw fail("not an .npy array") }
        let major = b[6]
        let headerLength = major == 1 ? Int(b[8]) | Int(b[9]) << 8 : (b.count >= 12 ? Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24 : -1)
        let start = major == 1 ? 10 : 12
        guard (1...3).contains(major), headerLength > 0, start + headerLength <= b.count else { throw fail("bad header") }
        let header = String(decoding: b[start..<(start + headerLength)], as: UTF8.self)
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return header[r.upperBound...].trimmingCharacters(in: .whitespaces)
        }
        guard let descrText = field("descr"), let quote = descrText.dropFirst().firstIndex(of: "'") else { throw fail("no descr") }
        let descr = String(descrText.dropFirst()[..<quote])
        guard field("fortran_order")?.hasPrefix("False") == true else { throw fail("Fortran order is not read") }
        guard let shapeText = field("shape"), shapeText.hasPrefix("("), let close = shapeText.firstIndex(of: ")") else { throw fail("no shape") }
        var shape: [Int] = []
        for part in shapeText[shapeText.index(after: shapeText.startIndex)..<close].split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            guard let n = Int(t), n >= 0, n < 1 << 31 else { throw fail("bad shape \(shapeText[...close])") }
            shape.append(n)
        }
        let count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        let data = UnsafeRawBufferPointer(rebasing: b[(start + headerLength)...])
        func need(_ size: Int) throws(ModelError) {
            guard count < Int.max / size, data.count >= count * size else { throw fail("\(count) values of \(size) bytes do not fit in \(data.count)") }
        }
        switch descr {
        case "<f4":
            try need(4)
            return Array(shape: shape, values: .float32((0..<count).map { data.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }))
        case "<f2":
            try need(2)
            let halves = (0..<count).map { data.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self) }
            return Array(shape: shape, values: .float32(halves.map { Float(Float16(bitPattern: $0)) }))
        case "<i8":
            try need(8)
            return Array(shape: shape, values: .int64((0..<count).map { data.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) }))
        case "<i4":
            try need(4)
            return Array(shape: shape, values: .int64((0..<count).map { Int64(data.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }))
        case "|u1", "|b1":
            try need(1)
            return Array(shape: shape, values: .uint8(Swift.Array(data[0..<count])))
        default:
            throw fail("dtype \(descr) is not read")
        }
    }

    static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Swift.Array($0) } }
}
