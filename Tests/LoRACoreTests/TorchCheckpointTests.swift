import Foundation
import LoRACore
import XCTest

final class TorchCheckpointTests: XCTestCase {
    /// Every tensor torch saved is read back with the same shape, dtype and values,
    /// including views with offsets, transposed (strided) views, bf16 and Parameters.
    func testReadsEveryTorchContainerLikeTorch() throws {
        let names = ["ckpt/lora_zip.ckpt", "ckpt/lora_legacy.pt", "ckpt/lora_protocol4.pt", "ckpt/lora_deflated.ckpt", "ckpt/nested_training.ckpt"]
        for name in names {
            let golden = try XCTUnwrap(Golden.shared.files[name]?.tensors, name)
            let model = try ModelFile.open(Repo.golden(name))
            XCTAssertEqual(Set(model.tensorNames), Set(golden.keys), name)
            for (key, info) in golden {
                let t = try XCTUnwrap(model[key], key)
                XCTAssertEqual(t.shape, info.shape, key)
                XCTAssertEqual(t.dtype.shortName, torchName(info.dtype), key)
                let values = t.floats().map(Double.init)
                XCTAssertClose(values.reduce(0, +), info.sum, relative: 1e-5, absolute: 1e-6, key)
                XCTAssertClose(values.reduce(0) { $0 + $1 * $1 }, info.sum_squares, relative: 1e-5, absolute: 1e-6, key)
                for (a, b) in zip(values, info.first) { XCTAssertClose(a, b, relative: 1e-6, absolute: 1e-7, key) }
            }
        }
    }

    func testNestedTrainingCheckpointKeepsExtras() throws {
        let model = try ModelFile.open(Repo.golden("ckpt/nested_training.ckpt"))
        XCTAssertEqual(model.format, .pytorchZip)
        XCTAssertEqual(model.stateDictKey, "state_dict")
        let extras = Dictionary(uniqueKeysWithValues: model.extras.map { ($0.key, $0.value) })
        XCTAssertEqual(extras["epoch"], "3")
        XCTAssertEqual(extras["global_step"], "1200")
        XCTAssertFalse(model["model.diffusion_model.time_embed.0.weight"]!.isContiguous, "the transposed view keeps its strides")
    }

    /// Malicious pickles are refused, naming the global, without executing anything.
    func testDangerousPicklesAreRefusedWithTheGlobalNamed() {
        let expectations = ["evil/os_system.ckpt": "posix.system", "evil/builtins_eval.pt": "__builtin__.eval",
                            "evil/subprocess_protocol4.ckpt": "subprocess.Popen", "evil/unknown_global.ckpt": "__main__.collections_counter_like"]
        for (name, global) in expectations {
            XCTAssertThrowsError(try ModelFile.open(Repo.golden(name)), name) { error in
                guard let e = error as? ModelError else { return XCTFail("\(error)") }
                XCTAssertEqual(e.kind, .dangerous, name)
                XCTAssertTrue(e.description.contains(global), e.description)
            }
        }
    }

    // MARK: hand-built hostile archives

    func testHostileZipArchivesFailCleanly() throws {
        let folder = TemporaryFolder()
        let pickle = Pickle.stateDict([])
        let cases: [(String, [UInt8], String)] = [
            ("no-pickle", ZipBuilder.build([("archive/version", Array("3\n".utf8))]), "no data.pkl"),
            ("two-pickles", ZipBuilder.build([("a/data.pkl", pickle), ("b/data.pkl", pickle)]), "2 data.pkl"),
            ("overlap", ZipBuilder.build([("archive/data.pkl", pickle), ("archive/data/0", [UInt8](repeating: 1, count: 64))], overlapLastWithFirst: true), "overlaps"),
            ("bomb", ZipBuilder.build([("archive/data.pkl", pickle)], method: 8, declaredSize: 1 << 31), "zip bomb"),
            ("truncated", Array(ZipBuilder.build([("archive/data.pkl", pickle)]).dropLast(10)), "end-of-central-directory"),
            ("bad-local", ZipBuilder.build([("archive/data.pkl", pickle)], corruptLocalOffset: true), "local header"),
            ("missing-storage", ZipBuilder.build([("archive/data.pkl", Pickle.stateDict([("w", "0", [2])]))]), "missing from the archive"),
            ("short-storage", ZipBuilder.build([("archive/data.pkl", Pickle.stateDict([("w", "0", [8])])), ("archive/data/0", [UInt8](repeating: 0, count: 8))]),
             "claims 8 elements"),
            ("view-out-of-bounds", ZipBuilder.build([("archive/data.pkl", Pickle.stateDict([("w", "0", [2])], storageCount: 2, offset: 1)),
                                                     ("archive/data/0", [UInt8](repeating: 0, count: 8))]), "reaches element"),
        ]
        for (name, bytes, expected) in cases {
            let path = folder.file(name + ".ckpt")
            writeBytes(bytes, to: path)
            XCTAssertThrowsError(try ModelFile.open(path), name) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(name): \(error)")
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
        // The well-formed version of the same builder reads.
        let path = folder.file("good.ckpt")
        writeBytes(ZipBuilder.build([("archive/data.pkl", Pickle.stateDict([("w", "0", [2])])), ("archive/data/0", Pickle.floats([1.5, -2]))]), to: path)
        let model = try ModelFile.open(path)
        XCTAssertEqual(model["w"]?.floats(), [1.5, -2])
    }

    func testPickleMachineRejectsMalformedStreams() throws {
        let cases: [(String, [UInt8], ModelError.Kind)] = [
            ("underflow", [0x80, 2, UInt8(ascii: "s"), UInt8(ascii: ".")], .invalid),
            ("memo", [0x80, 2, UInt8(ascii: "h"), 9, UInt8(ascii: ".")], .invalid),
            ("huge-length", [0x80, 2, UInt8(ascii: "X"), 0xF0, 0xFF, 0xFF, 0xFF, UInt8(ascii: ".")], .invalid),
            ("unknown-op", [0x80, 2, 0xFE, UInt8(ascii: ".")], .invalid),
            ("ext", [0x80, 2, 0x82, 1, UInt8(ascii: ".")], .dangerous),
            ("append-to-int", [0x80, 2, UInt8(ascii: "K"), 1, UInt8(ascii: "K"), 2, UInt8(ascii: "a"), UInt8(ascii: ".")], .invalid),
            ("no-stop", [0x80, 2, UInt8(ascii: "N")], .invalid),
            ("persistent-not-storage", [0x80, 2, UInt8(ascii: "K"), 1, UInt8(ascii: "Q"), UInt8(ascii: ".")], .dangerous),
        ]
        for (name, bytes, kind) in cases {
            try bytes.withUnsafeBytes { raw in
                var machine = PickleMachine(bytes: raw, path: name) { _ throws(ModelError) in
                    throw ModelError(.dangerous, "persistent id is not a storage reference")
                }
                XCTAssertThrowsError(try machine.run(), name) { error in
                    XCTAssertEqual((error as? ModelError)?.kind, kind, "\(name): \(error)")
                }
            }
        }
    }

    func testPickleMachineHandlesProtocolFourOpcodesAndMemo() throws {
        // {'a': [1, 'x', 'x'], 'b': (True, None, 2.5)} with FRAME, MEMOIZE, SHORT_BINUNICODE, BINGET.
        var p: [UInt8] = [0x80, 4, 0x95] + [UInt8](repeating: 0, count: 8)
        p += [UInt8(ascii: "}"), 0x94, UInt8(ascii: "(")]
        p += [0x8C, 1, UInt8(ascii: "a"), 0x94, UInt8(ascii: "]"), 0x94, UInt8(ascii: "("), UInt8(ascii: "K"), 1, 0x8C, 1, UInt8(ascii: "x"), 0x94,
              UInt8(ascii: "h"), 3, UInt8(ascii: "e")]
        p += [0x8C, 1, UInt8(ascii: "b"), 0x88, UInt8(ascii: "N"), UInt8(ascii: "G")] + [0x40, 0x04, 0, 0, 0, 0, 0, 0] + [0x87, UInt8(ascii: "u"), UInt8(ascii: ".")]
        let value: PickleValue = try p.withUnsafeBytes { raw in
            var machine = PickleMachine(bytes: raw, path: "p4") { _ throws(ModelError) in throw ModelError(.invalid, "no") }
            return try machine.run()
        }
        guard case let .dict(dict) = value, case let .list(list)? = dict["a"], case let .tuple(tuple)? = dict["b"] else { return XCTFail() }
        XCTAssertEqual(list.items.count, 3)
        XCTAssertEqual(list.items[2].string, "x")
        guard case let .float(f) = tuple[2] else { return XCTFail() }
        XCTAssertEqual(f, 2.5)
    }

    private func torchName(_ dtype: String) -> String {
        ["float16": "fp16", "float32": "fp32", "bfloat16": "bf16", "int64": "i64", "float64": "fp64"][dtype] ?? dtype
    }
}

/// Hand-written protocol-2 pickles of torch state dicts.
enum Pickle {
    /// OrderedDict of float32 tensors: (name, storage key, shape).
    static func stateDict(_ tensors: [(String, String, [Int])], storageCount: Int? = nil, offset: Int = 0) -> [UInt8] {
        var p: [UInt8] = [0x80, 2]
        p += global("collections", "OrderedDict") + [UInt8(ascii: ")"), UInt8(ascii: "R")]
        for (name, key, shape) in tensors {
            p += unicode(name)
            p += global("torch._utils", "_rebuild_tensor_v2")
            p += [UInt8(ascii: "(")]
            // persistent id ('storage', FloatStorage, key, 'cpu', count)
            p += [UInt8(ascii: "(")] + unicode("storage") + global("torch", "FloatStorage") + unicode(key) + unicode("cpu")
            p += int(storageCount ?? shape.reduce(1, *)) + [UInt8(ascii: "t"), UInt8(ascii: "Q")]
            p += int(offset)
            p += [UInt8(ascii: "(")] + shape.flatMap(int) + [UInt8(ascii: "t")]
            var stride = [Int](repeating: 1, count: shape.count)
            for i in stride.indices.reversed().dropFirst() { stride[i] = stride[i + 1] * shape[i + 1] }
            p += [UInt8(ascii: "(")] + stride.flatMap(int) + [UInt8(ascii: "t")]
            p += [0x89] + global("collections", "OrderedDict") + [UInt8(ascii: ")"), UInt8(ascii: "R")]
            p += [UInt8(ascii: "t"), UInt8(ascii: "R"), UInt8(ascii: "s")]
        }
        return p + [UInt8(ascii: ".")]
    }

    static func global(_ module: String, _ name: String) -> [UInt8] { [UInt8(ascii: "c")] + Array("\(module)\n\(name)\n".utf8) }
    static func unicode(_ s: String) -> [UInt8] {
        [UInt8(ascii: "X")] + withUnsafeBytes(of: UInt32(s.utf8.count).littleEndian) { Array($0) } + Array(s.utf8)
    }
    static func int(_ v: Int) -> [UInt8] { [UInt8(ascii: "J")] + withUnsafeBytes(of: Int32(v).littleEndian) { Array($0) } }
    static func floats(_ values: [Float]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }
}

/// A minimal zip writer for hostile-archive tests.
enum ZipBuilder {
    static func build(_ entries: [(String, [UInt8])], method: UInt16 = 0, declaredSize: UInt32? = nil,
                      overlapLastWithFirst: Bool = false, corruptLocalOffset: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        var offsets: [Int] = []
        func le16(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt16(v).littleEndian) { Array($0) } }
        func le32(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { Array($0) } }
        for (name, data) in entries {
            offsets.append(out.count)
            let size = declaredSize.map(Int.init) ?? data.count
            out += le32(0x0403_4B50) + le16(20) + le16(0) + le16(Int(method)) + le16(0) + le16(0) + le32(0)
            out += le32(data.count) + le32(size) + le16(name.utf8.count) + le16(0) + Array(name.utf8) + data
        }
        for (i, (name, data)) in entries.enumerated() {
            var local = offsets[i]
            if overlapLastWithFirst && i == entries.count - 1 { local = offsets[0] }
            if corruptLocalOffset { local = 1_000_000 }
            let size = declaredSize.map(Int.init) ?? data.count
            central += le32(0x0201_4B50) + le16(20) + le16(20) + le16(0) + le16(Int(method)) + le16(0) + le16(0) + le32(0)
            central += le32(data.count) + le32(size) + le16(name.utf8.count) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(local)
            central += Array(name.utf8)
        }
        let centralOffset = out.count
        out += central
        out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(entries.count) + le16(entries.count) + le32(central.count) + le32(centralOffset) + le16(0)
        return out
    }
}
