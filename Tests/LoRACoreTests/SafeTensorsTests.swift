import Foundation
import LoRACore
import XCTest

final class SafeTensorsTests: XCTestCase {
    func testWriterRoundTripsAndLaysOutLikeTheReference() throws {
        let folder = TemporaryFolder()
        let path = folder.file("round.safetensors")
        let entries = [SafeTensorsWriter.Entry(name: "b.weight", dtype: .f16, shape: [2, 3]),
                       SafeTensorsWriter.Entry(name: "a.weight", dtype: .f32, shape: [3]),
                       SafeTensorsWriter.Entry(name: "c.alpha", dtype: .bf16, shape: []),
                       SafeTensorsWriter.Entry(name: "z.empty", dtype: .f32, shape: [0, 4])]
        var metadata = Metadata()
        metadata["ss_network_dim"] = "4"
        metadata["note"] = "ünïcödé \"quoted\"\n"
        let writer = try SafeTensorsWriter(path: path, metadata: metadata, entries: entries)
        // Out of order on purpose: each tensor goes to its own offset.
        try [Float](arrayLiteral: 1, 2, 3).withUnsafeBufferPointer { try writer.write(name: "a.weight", floats: $0) }
        try [Float](arrayLiteral: 16).withUnsafeBufferPointer { try writer.write(name: "c.alpha", floats: $0) }
        try [Float](arrayLiteral: 0.5, -1, 2, 65504, 1e-7, -0.0).withUnsafeBufferPointer { try writer.write(name: "b.weight", floats: $0) }
        try [Float]().withUnsafeBufferPointer { try writer.write(name: "z.empty", floats: $0) }
        try writer.finish()
        XCTAssertEqual(folder.contents, ["round.safetensors"], "no temporary file left behind")

        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.dataOffset % 8, 0)
        XCTAssertTrue(file.headerStartsStrictly)
        XCTAssertEqual(file.metadata["note"], "ünïcödé \"quoted\"\n")
        // Reference order: wider dtypes first, then by name.
        XCTAssertEqual(file.tensors.map(\.name), ["a.weight", "z.empty", "c.alpha", "b.weight"])
        XCTAssertEqual(file.tensor(named: "b.weight")?.floats(), [0.5, -1, 2, 65504, Float(Float16(1e-7)), -0.0])
        XCTAssertEqual(file.tensor(named: "c.alpha")?.scalarValue(), 16)
        XCTAssertEqual(file.tensor(named: "z.empty")?.elementCount, 0)
    }

    /// The same tensors written by Python's safetensors and by us give the same
    /// layout and data bytes (so the same AutoV3 hash), and the same header; a
    /// file without metadata is identical byte for byte. (Python emits metadata
    /// keys in hash-map order, we sort them, so headers with metadata differ in order only.)
    func testWriterMatchesPythonSafetensors() throws {
        for name in ["sd1_full.safetensors", "sd1_lokr.safetensors", "sd1_locon.safetensors", "sd1_kohya_lora.safetensors"] {
            let original = try SafeTensorsFile(path: Repo.golden(name))
            let folder = TemporaryFolder()
            let copy = folder.file(name)
            let writer = try SafeTensorsWriter(path: copy, metadata: original.metadata,
                                               entries: original.tensors.map { .init(name: $0.name, dtype: $0.dtype, shape: $0.shape) })
            for t in original.tensors { try writer.write(name: t.name, bytes: t.rawBytes) }
            try writer.finish()
            let ours = try SafeTensorsFile(path: copy)
            let a = try Data(contentsOf: URL(fileURLWithPath: Repo.golden(name)))
            let b = try Data(contentsOf: URL(fileURLWithPath: copy))
            XCTAssertEqual(a.count, b.count, name)
            XCTAssertEqual(a[original.dataOffset...], b[ours.dataOffset...], "\(name): data section (AutoV3) identical")
            XCTAssertEqual(ours.tensors.map(\.name), original.tensors.map(\.name), name)
            XCTAssertEqual(ours.tensors.map(\.byteOffset), original.tensors.map(\.byteOffset), name)
            XCTAssertEqual(ours.metadata.pairs.sorted { $0.key < $1.key }.map(\.value), original.metadata.pairs.sorted { $0.key < $1.key }.map(\.value))
            if original.metadata.isEmpty { XCTAssertEqual(a, b, "\(name): identical bytes") }
        }
    }

    func testRejectsMalformedFilesWithOneLineErrorsNamingTheProblem() throws {
        let folder = TemporaryFolder()
        let good = #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        var huge = withUnsafeBytes(of: UInt64(1) << 63) { Array($0) }
        huge += Array("{}".utf8)
        let cases: [(String, [UInt8], String)] = [
            ("tiny", [1, 2, 3], "too small"),
            ("huge-length", huge, "exceeds the 100 MB limit"),
            ("past-end", withUnsafeBytes(of: UInt64(500).littleEndian) { Array($0) } + Array("{}".utf8), "runs past the end"),
            ("not-utf8", safetensorsBytes(header: "{\"\u{FF}\"", data: []).enumerated().map { $0.offset == 10 ? 0xFF : $0.element }, "UTF-8"),
            ("not-json", safetensorsBytes(header: "{nope}", data: []), "not valid JSON"),
            ("not-object", safetensorsBytes(header: "[1,2]", data: []), "not a JSON object"),
            ("unknown-dtype", safetensorsBytes(header: #"{"t":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}}"#, data: [0]), "unknown dtype 'F7'"),
            ("unsupported-dtype", safetensorsBytes(header: #"{"t":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}"#, data: [0]), "not supported"),
            (
                "wrong-size", safetensorsBytes(header: #"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8)),
                "needs 12 bytes"
            ),
            (
                "overlap",
                safetensorsBytes(
                    header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                                         data: [UInt8](repeating: 0, count: 8)), "overlaps"),
            ("gap", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: [UInt8](repeating: 0, count: 8)), "gap"),
            ("trailing", safetensorsBytes(header: good, data: [UInt8](repeating: 0, count: 12)), "not covered"),
            ("truncated", safetensorsBytes(header: good, data: [UInt8](repeating: 0, count: 5)), "truncated"),
            ("metadata-number", safetensorsBytes(header: #"{"__metadata__":{"k":1},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                                                 data: [UInt8](repeating: 0, count: 8)), "not a string"),
            (
                "duplicate",
                safetensorsBytes(
                    header: #"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                                           data: [UInt8](repeating: 0, count: 8)), "duplicate key"),
            ("negative-dim", safetensorsBytes(header: #"{"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "negative dimension"),
            ("reversed", safetensorsBytes(header: #"{"t":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: [0, 0, 0, 0]), "end before they begin"),
            ("three-offsets", safetensorsBytes(header: #"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}"#, data: [0, 0, 0, 0]), "pair"),
            (
                "overflow", safetensorsBytes(header: #"{"t":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
                "overflows"
            ),
        ]
        for (name, bytes, expected) in cases {
            let path = folder.file(name + ".safetensors")
            writeBytes(bytes, to: path)
            XCTAssertThrowsError(try SafeTensorsFile(path: path), name) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(expected), "\(name): \(text)")
                XCTAssertTrue(text.hasPrefix(path), "\(name): names the file: \(text)")
                XCTAssertFalse(text.contains("\n"), "\(name): one line")
            }
        }
    }

    /// A header of 384…389 bytes begins 0x80 0x01…0x05, which is also how a
    /// pickle begins; the JSON after the length decides.
    func testHeaderLengthThatLooksLikeAPickleIsStillSafetensors() throws {
        let folder = TemporaryFolder()
        for padding in 0..<40 {
            let path = folder.file("p\(padding).safetensors")
            var metadata = Metadata()
            metadata["pad"] = String(repeating: "x", count: 300 + padding)
            let writer = try SafeTensorsWriter(path: path, metadata: metadata, entries: [.init(name: "t", dtype: .f32, shape: [1])])
            try [Float](arrayLiteral: 1).withUnsafeBufferPointer { try writer.write(name: "t", floats: $0) }
            try writer.finish()
            let model = try ModelFile.open(path)
            XCTAssertEqual(model.format, .safetensors)
            XCTAssertEqual(model["t"]?.floats(), [1])
        }
    }

    func testAcceptsLeadingWhitespaceButFlagsIt() throws {
        let folder = TemporaryFolder()
        let path = folder.file("ws.safetensors")
        writeBytes(safetensorsBytes(header: #"  {"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}  "#, data: [7]), to: path)
        let file = try SafeTensorsFile(path: path)
        XCTAssertFalse(file.headerStartsStrictly)
        XCTAssertEqual(file.tensors.first?.floats(), [7])
    }

    func testFailedWriteLeavesNoFileAndKeepsTheOldOne() throws {
        let folder = TemporaryFolder()
        let path = folder.file("out.safetensors")
        writeBytes([1, 2, 3], to: path)
        do {
            let writer = try SafeTensorsWriter(path: path, metadata: Metadata(), entries: [.init(name: "a", dtype: .f32, shape: [1]),
                                                                                          .init(name: "b", dtype: .f32, shape: [1])])
            try [Float](arrayLiteral: 1).withUnsafeBufferPointer { try writer.write(name: "a", floats: $0) }
            XCTAssertThrowsError(try writer.finish())
        }
        XCTAssertEqual(folder.contents, ["out.safetensors"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), Data([1, 2, 3]), "old file untouched")
    }

    func testRefusesToOverwriteAnInput() throws {
        let folder = TemporaryFolder()
        let path = folder.file("in.safetensors")
        writeBytes(safetensorsBytes(header: "{}      ", data: []), to: path)
        let link = folder.file("link.safetensors")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        XCTAssertThrowsError(try SafeTensorsWriter(path: link, metadata: Metadata(), entries: [], inputs: [path])) { error in
            XCTAssertTrue("\(error)".contains("same file as input"))
        }
    }

    /// A full disk (simulated with a file-size limit) fails the write cleanly.
    func testFullDiskLeavesNoTruncatedFile() throws {
        let folder = TemporaryFolder()
        let path = folder.file("big.safetensors")
        signal(SIGXFSZ, SIG_IGN)
        var old = rlimit()
        getrlimit(Int32(RLIMIT_FSIZE.rawValue), &old)
        var limited = old
        limited.rlim_cur = 64 * 1024
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limited)
        defer { setrlimit(Int32(RLIMIT_FSIZE.rawValue), &old) }
        let values = [Float](repeating: 1, count: 100_000)
        XCTAssertThrowsError(try {
            let writer = try SafeTensorsWriter(path: path, metadata: Metadata(), entries: [.init(name: "w", dtype: .f32, shape: [values.count])])
            try values.withUnsafeBufferPointer { try writer.write(name: "w", floats: $0) }
            try writer.finish()
        }()) { error in
            XCTAssertTrue("\(error)".contains(path), "\(error)")
        }
        XCTAssertEqual(folder.contents, [], "neither the output nor a temporary file remains")
    }
}
