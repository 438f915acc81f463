import Foundation
import LoRACore
import XCTest

final class MergeCLITests: XCTestCase {
    private var folder = ""

    override func setUp() {
        folder = NSTemporaryDirectory() + "merge-cli-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func testBakeWithRatiosAndBlockWeights() throws {
        let out = folder + "/merged.safetensors"
        let result = try ToolRunner.run("lora-merge", ["--model", "Fixtures/models/sd1_tiny.safetensors",
                                                       "--lora", "Fixtures/models/sd1_tiny_lora.safetensors:0.8:lbw=OUTALL",
                                                       "--lora", "Fixtures/golden/kohya/kohya_lora_r4.safetensors:0.5:te=0",
                                                       "--precision", "fp16", "-o", out, "--json", "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["family"] as? String, "SD1.x")
        XCTAssertEqual((report["loras"] as? [[String: Any]])?.map { $0["applied"] as? Int }, [264, 264])
        // The result is a valid checkpoint that lora-inspect reads.
        let inspected = try ToolRunner.run("lora-inspect", [out, "--summary"])
        XCTAssertEqual(inspected.status, 0, inspected.stdout)
        XCTAssertTrue(inspected.stdout.contains("checkpoint  SD1.x"), inspected.stdout)
    }

    /// An fp8 checkpoint (as ComfyUI and Forge load them) stays fp8: each changed tensor is the fp32
    /// merge rounded once to F8_E4M3, the rest is copied byte for byte, and the tool says what fp8 costs.
    func testFloat8CheckpointKeepsItsDtype() throws {
        let source = try ModelFile.open("Fixtures/models/sd1_tiny.safetensors")
        let base = folder + "/fp8.safetensors"
        let entries = source.tensors.map { SafeTensorsWriter.Entry(name: $0.name, dtype: $0.shape.count >= 2 ? .f8e4m3 : $0.dtype, shape: $0.shape) }
        let writer = try SafeTensorsWriter(path: base, metadata: source.metadata, entries: entries)
        for t in source.tensors {
            if t.shape.count >= 2 { try t.floats().withUnsafeBufferPointer { try writer.write(name: t.name, floats: $0) } } else { try writer.copy(name: t.name, from: t) }
        }
        try writer.finish()
        let lora = "Fixtures/models/sd1_tiny_lora.safetensors:0.8"
        let kept = try ToolRunner.run("lora-merge", ["--model", base, "--lora", lora, "-o", folder + "/kept.safetensors"])
        XCTAssertEqual(kept.status, 0, kept.stderr)
        XCTAssertTrue(kept.stderr.contains("stored as float8") && kept.stderr.contains("--precision fp16"), kept.stderr)
        let wide = try ToolRunner.run("lora-merge", ["--model", base, "--lora", lora, "--precision", "fp32", "-o", folder + "/wide.safetensors", "--quiet"])
        XCTAssertEqual(wide.status, 0, wide.stderr)
        XCTAssertFalse(wide.stderr.contains("float8"), wide.stderr)
        let (fp8, merged, reference) = (try ModelFile.open(base), try ModelFile.open(folder + "/kept.safetensors"), try ModelFile.open(folder + "/wide.safetensors"))
        var changed = 0
        for t in fp8.tensors {
            let out = try XCTUnwrap(merged[t.name])
            XCTAssertEqual(out.dtype, t.dtype, t.name)
            guard t.shape.count >= 2 else { continue }
            let wideValues = try XCTUnwrap(reference[t.name]).floats()
            var rounded = [UInt8](repeating: 0, count: wideValues.count)
            try wideValues.withUnsafeBufferPointer { src in try rounded.withUnsafeMutableBytes { try Conversion.fromFloat(src, to: .f8e4m3, into: $0) } }
            XCTAssertEqual([UInt8](out.rawBytes), rounded, "\(t.name): the fp32 merge rounded once")
            if [UInt8](out.rawBytes) != [UInt8](t.rawBytes) { changed += 1 }
        }
        XCTAssertGreaterThan(changed, 100, "the LoRA changed the fp8 weights")
    }

    func testWrongFamilyIsAOneLineError() throws {
        let result = try ToolRunner.run("lora-merge", ["--model", "Fixtures/models/sd1_tiny.safetensors",
                                                       "--lora", "Fixtures/golden/sdxl_kohya_lora.safetensors", "-o", folder + "/x.safetensors"])
        XCTAssertNotEqual(result.status, 0)
        let lines = result.stderr.split(separator: "\n").filter { !$0.isEmpty }
        XCTAssertEqual(lines.count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("sdxl_kohya_lora.safetensors") && result.stderr.contains("SDXL"), result.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), [], "nothing written")
    }

    func testCombineLoRAs() throws {
        let out = folder + "/ab.safetensors"
        let result = try ToolRunner.run("lora-merge", ["loras", "Fixtures/golden/kohya/kohya_lora_r4.safetensors:0.6",
                                                       "Fixtures/golden/kohya/kohya_locon_r4.safetensors:0.4", "--rank", "2", "-o", out, "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("relative error overall"), result.stdout)
        let inspected = try ToolRunner.run("lora-inspect", [out, "--json"])
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(inspected.stdout.utf8)) as? [String: Any])
        let lora = try XCTUnwrap(object["lora"] as? [String: Any])
        let ranks = try XCTUnwrap(lora["ranks"] as? [[String: Any]])
        XCTAssertEqual(ranks.count, 1)
        XCTAssertEqual(ranks.first?["value"] as? String, "2")
        XCTAssertEqual(ranks.first?["count"] as? Int, 350)
        XCTAssertEqual((object["metadata"] as? [String: String])?["ss_network_dim"], "2")

        let bad = try ToolRunner.run("lora-merge", ["loras", "Fixtures/golden/sd1_loha.safetensors:zz", "-o", out])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("lora"), bad.stderr)
    }
}
