import Foundation
import XCTest

final class ExtractCLITests: XCTestCase {
    private var folder = ""

    override func setUp() {
        folder = NSTemporaryDirectory() + "extract-cli-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func testExtractWithDynamicRankAndResize() throws {
        // A "fine-tuned" model: the tiny fixture baked with a LoRA.
        let tuned = folder + "/tuned.safetensors"
        let merged = try ToolRunner.run("lora-merge", ["--model", "Fixtures/models/sd1_tiny.safetensors", "--lora",
                                                       "Fixtures/models/sd1_tiny_lora.safetensors:2", "-o", tuned, "--quiet"])
        XCTAssertEqual(merged.status, 0, merged.stderr)
        let lora = folder + "/extracted.safetensors"
        let result = try ToolRunner.run("lora-extract", ["--base", "Fixtures/models/sd1_tiny.safetensors", "--tuned", tuned,
                                                         "--rank", "auto", "--fro", "0.99", "--max-rank", "8", "-o", lora, "--json", "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let modules = try XCTUnwrap(report["modules"] as? [[String: Any]])
        XCTAssertEqual(modules.count, 264)
        XCTAssertTrue(modules.allSatisfy { ($0["rank"] as? Int ?? 99) <= 8 })
        XCTAssertEqual(report["family"] as? String, "SD1.x")

        let small = folder + "/small.safetensors"
        let resized = try ToolRunner.run("lora-extract", ["resize", lora, "--rank", "2", "-o", small, "--quiet"])
        XCTAssertEqual(resized.status, 0, resized.stderr)
        XCTAssertTrue(resized.stdout.contains("resized 264 SD1.x modules"), resized.stdout)
        let inspected = try ToolRunner.run("lora-inspect", [small, "--summary"])
        XCTAssertTrue(inspected.stdout.contains("2/") || inspected.stdout.contains("mixed/"), inspected.stdout)
    }

    func testBadArgumentsAreExplained() throws {
        let auto = try ToolRunner.run("lora-extract", ["--base", "a", "--tuned", "b", "--rank", "auto", "-o", folder + "/x.safetensors"])
        XCTAssertNotEqual(auto.status, 0)
        XCTAssertTrue(auto.stderr.contains("--fro"), auto.stderr)
        let missing = try ToolRunner.run("lora-extract", ["--base", "nope.safetensors", "--tuned", "nope2.safetensors", "--rank", "4",
                                                          "-o", folder + "/x.safetensors"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("nope.safetensors"), missing.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), [])
    }
}
