import Foundation
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
