import FixtureKit
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
            (
                "overlap", ZipBuilder.build([("archive/data.pkl", pickle), ("archive/data/0", [UInt8](repeating: 1, count: 64))], overlapLastWithFirst: true),
                "overlaps"
            ),
            ("bomb", ZipBuilder.build([("archive/data.pkl", pickle)], method: 8, declaredSize: 1 << 31), "zip bomb"),
            ("truncated", Array(ZipBuilder.build([("archive/data.pkl", pickle)]).dropLast(10)), "end-of-central-directory"),
            ("bad-local", ZipBuilder.build([("archive/data.pkl", pickle)], corruptLocalOffset: true), "local header"),
            ("missing-storage", ZipBuilder.build([("archive/data.pkl", Pickle.stateDict([("w", "0", [2])]))]), "missing from the archive"),
            (
                "short-storage",
                ZipBuilder.build([("archive/data.pkl", Pickle.stateDict([("w", "0", [8])])), ("archive/data/0", [UInt8](repeating: 0, count: 8))]),
             "claims 8 fp32 elements (32 bytes)"),
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

    /// Hostile nesting: 50,000 levels in ~100 KB crashed every tool by
    /// recursion (in the values' release). The machine refuses nesting past
    /// its limit, and containers nested *after* they were placed (through the
    /// memo, where the recorded depth cannot follow) are released iteratively;
    /// both run here on a thread with a 256 KB stack, where any recursion
    /// over the nesting would overflow.
    func testDeeplyNestedPicklesAreRefusedWithoutRecursion() throws {
        let n = 50_000
        func le32(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(v).littleEndian) { Array($0) } }
        var chained: [UInt8] = [0x80, 2, UInt8(ascii: "]"), UInt8(ascii: "r")] + le32(0)
        // list_i is memoised, appended to list_{i-1} while still empty, then filled: each is nested before it grows.
        for i in 1..<n {
            chained += [UInt8(ascii: "j")] + le32(i - 1) + [UInt8(ascii: "]"), UInt8(ascii: "r")] + le32(i) + [UInt8(ascii: "a"), UInt8(ascii: "0")]
        }
        chained += [UInt8(ascii: ".")]
        let cases: [(String, [UInt8], Bool)] = [
            (
                "lists by MARK",
                [0x80, 2] + [UInt8](repeating: UInt8(ascii: "("), count: n) + [UInt8](repeating: UInt8(ascii: "l"), count: n) + [UInt8(ascii: ".")], true
            ),
            (
                "lists by APPEND",
                [0x80, 2] + [UInt8](repeating: UInt8(ascii: "]"), count: n) + [UInt8](repeating: UInt8(ascii: "a"), count: n - 1) + [UInt8(ascii: ".")], true
            ),
            ("tuples", [0x80, 2, UInt8(ascii: ")")] + [UInt8](repeating: 0x85, count: n) + [UInt8(ascii: ".")], true),
            ("dicts", [0x80, 2, UInt8(ascii: "}")] + Array(repeating: [UInt8(ascii: "K"), 1, UInt8(ascii: "}")], count: n - 1).flatMap { $0 }
                + [UInt8](repeating: UInt8(ascii: "s"), count: n - 1) + [UInt8(ascii: ".")], true),
            ("lists nested through the memo, then grown", chained, false),
        ]
        for (name, bytes, refused) in cases {
            nonisolated(unsafe) var outcome: Result<PickleValue, ModelError>?
            let done = DispatchSemaphore(value: 0)
            let thread = Thread {
                outcome = bytes.withUnsafeBytes { raw in
                    var machine = PickleMachine(bytes: raw, path: name) { _ throws(ModelError) in throw ModelError(.invalid, "no") }
                    return Result { () throws(ModelError) in try machine.run() }
                }
                // The value (when one was made) is released here, on the small stack.
                if case .success = outcome { outcome = .success(.none) }
                done.signal()
            }
            thread.stackSize = 256 << 10
            thread.start()
            done.wait()
            switch outcome {
            case .failure(let error):
                XCTAssertTrue(refused, "\(name): \(error)")
                XCTAssertEqual(error.kind, .invalid, name)
                XCTAssertTrue(error.message.contains("nested more than \(PickleMachine.maxDepth) levels"), "\(name): \(error.message)")
            case .success:
                XCTAssertFalse(refused, "\(name) should have been refused")
            case nil:
                XCTFail("\(name): no outcome")
            }
        }
        // A legitimate depth is read.
        let shallow: [UInt8] =
            [0x80, 2] + [UInt8](repeating: UInt8(ascii: "]"), count: 50) + [UInt8](repeating: UInt8(ascii: "a"), count: 49) + [UInt8(ascii: ".")]
        try shallow.withUnsafeBytes { raw in
            var machine = PickleMachine(bytes: raw, path: "shallow") { _ throws(ModelError) in throw ModelError(.invalid, "no") }
            guard case let .list(list) = try machine.run() else { return XCTFail() }
            XCTAssertEqual(list.depth, 50)
        }
    }

    func testPickleMachineHandlesProtocolFourOpcodesAndMemo() throws {
        // {'a': [1, 'x', 'x'], 'b': (True, None, 2.5)} with FRAME, MEMOIZE, SHORT_BINUNICODE, BINGET.
        var p: [UInt8] = [0x80, 4, 0x95] + [UInt8](repeating: 0, count: 8)
        p += [UInt8(ascii: "}"), 0x94, UInt8(ascii: "(")]
        p += [0x8C, 1, UInt8(ascii: "a"), 0x94, UInt8(ascii: "]"), 0x94, UInt8(ascii: "("), UInt8(ascii: "K"), 1, 0x8C, 1, UInt8(ascii: "x"), 0x94,
              UInt8(ascii: "h"), 3, UInt8(ascii: "e")]
        p +=
            [0x8C, 1, UInt8(ascii: "b"), 0x88, UInt8(ascii: "N"), UInt8(ascii: "G")] + [0x40, 0x04, 0, 0, 0, 0, 0, 0] + [
                0x87, UInt8(ascii: "u"), UInt8(ascii: "."),
            ]
        let value: PickleValue = try p.withUnsafeBytes { raw in
            var machine = PickleMachine(bytes: raw, path: "p4") { _ throws(ModelError) in throw ModelError(.invalid, "no") }
            return try machine.run()
        }
        guard case let .dict(dict) = value, case let .list(list)? = dict["a"], case let .tuple(tuple)? = dict["b"] else { return XCTFail() }
        XCTAssertEqual(list.items.count, 3)
        XCTAssertEqual(list.items[2].string, "x")
        guard case let .float(f) = tuple.items[2] else { return XCTFail() }
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
