import Foundation
import LoRACore
import XCTest

/// Paths into the repository, from this file's location.
enum Repo {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static func fixture(_ relative: String) -> String { root + "/Fixtures/" + relative }
    static func golden(_ relative: String) -> String { fixture("golden/" + relative) }
}

/// A fresh temporary folder per test, removed afterwards.
final class TemporaryFolder {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "lora-tools-tests-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
    var contents: [String] { (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] }
}

/// golden.json written by Fixtures/golden/make_golden.py.
struct Golden: Decodable {
    struct Module: Decodable {
        var algorithm: String
        var shape: [Int]
        var rank: Int?
        var alpha: Double?
        var scale: Double
        var norm: Double
        var singular_values: [Double]
        var rank90: Int
        var rank99: Int
        var projection: [Double]
        var delta: [Double]?
    }
    struct TensorInfo: Decodable {
        var shape: [Int]
        var dtype: String
        var sum: Double
        var sum_squares: Double
        var first: [Double]
    }
    struct Hashes: Decodable {
        var sha256: String
        var autov1: String
        var addnet: String?
    }
    struct File: Decodable {
        var kind: String
        var family: String?
        var modules: [String: Module]?
        var tensors: [String: TensorInfo]?
        var hashes: Hashes
    }
    var files: [String: File]

    static let shared: Golden = {
        let data = try! Data(contentsOf: URL(fileURLWithPath: Repo.golden("golden.json")))
        return try! JSONDecoder().decode(Golden.self, from: data)
    }()
}

func XCTAssertClose(_ a: Double, _ b: Double, relative: Double, absolute: Double = 0, _ message: @autoclosure () -> String = "",
                    file: StaticString = #filePath, line: UInt = #line) {
    let tolerance = max(absolute, relative * max(abs(a), abs(b)))
    XCTAssertLessThanOrEqual(abs(a - b), tolerance, "\(a) vs \(b) \(message())", file: file, line: line)
}

/// Build raw bytes of a safetensors file from a header string and data.
func safetensorsBytes(header: String, data: [UInt8]) -> [UInt8] {
    var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
    bytes += Array(header.utf8)
    bytes += data
    return bytes
}

/// Write tensors given as floats (in each listed dtype) to a safetensors file.
func writeSafetensors(_ path: String, tensors: [(String, DType, [Int], [Float])], metadata: Metadata) throws {
    let writer = try SafeTensorsWriter(path: path, metadata: metadata, entries: tensors.map { .init(name: $0.0, dtype: $0.1, shape: $0.2) })
    for t in tensors { try t.3.withUnsafeBufferPointer { try writer.write(name: t.0, floats: $0) } }
    try writer.finish()
}

func writeBytes(_ bytes: [UInt8], to path: String) {
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
}
