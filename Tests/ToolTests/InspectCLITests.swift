import Foundation
import XCTest

final class InspectCLITests: XCTestCase {
    func testHumanReportAndExitCodes() throws {
        let clean = try ToolRunner.run("lora-inspect", ["Fixtures/models/sd1_tiny_lora.safetensors", "--quiet"])
        XCTAssertEqual(clean.status, 0, clean.stderr)
        XCTAssertTrue(clean.stdout.contains("LoRA for SD1.x"), clean.stdout)
        XCTAssertTrue(clean.stdout.contains("mychar (30)"), "trigger words from ss_tag_frequency")

        let warned = try ToolRunner.run("lora-inspect", ["Fixtures/golden/sd1_kohya_lora.safetensors", "--fail-on", "warning"])
        XCTAssertEqual(warned.status, 1)
        XCTAssertTrue(warned.stdout.contains("dead-modules"))
    }

    func testJSONForScripts() throws {
        let one = try ToolRunner.run("lora-inspect", ["Fixtures/golden/sdxl_kohya_lora.safetensors", "--json", "--svd"])
        XCTAssertEqual(one.status, 0, one.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["kind"] as? String, "lora")
        let lora = try XCTUnwrap(object["lora"] as? [String: Any])
        XCTAssertEqual((lora["family"] as? [String: Any])?["family"] as? String, "SDXL")
        XCTAssertEqual((lora["modules"] as? [[String: Any]])?.count, 4)
        XCTAssertNotNil((lora["modules"] as? [[String: Any]])?.first?["rank90"])

        let many = try ToolRunner.run("lora-inspect", ["Fixtures/golden/sd1_loha.safetensors", "Fixtures/golden/sd1_lokr.safetensors", "--json"])
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(many.stdout.utf8)) as? [Any])?.count, 2)
    }

    func testSummaryOfAFolderOfDownloads() throws {
        let result = try ToolRunner.run("lora-inspect", ["--summary", "Fixtures/golden/sd1_locon.safetensors",
                                                          "Fixtures/golden/ckpt/lora_zip.ckpt", "Fixtures/golden/evil/os_system.ckpt"])
        XCTAssertEqual(result.status, 3, "a dangerous file wins the exit status")
        let lines = result.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 4)
        XCTAssertTrue(lines[0].hasPrefix("file"))
        XCTAssertTrue(lines[3].contains("DANGEROUS"))
    }

    func testBadInputGetsOneLineNamingTheFile() throws {
        let folder = NSTemporaryDirectory() + "cli-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/half-download.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: ToolRunner.repoRoot + "/Fixtures/models/sd1_tiny_lora.safetensors"))
        FileManager.default.createFile(atPath: path, contents: data.prefix(data.count / 2))
        let result = try ToolRunner.run("lora-inspect", [path])
        XCTAssertEqual(result.status, 2)
        let errorLine = result.stdout.split(separator: "\n").first { $0.contains("unreadable:") }
        XCTAssertNotNil(errorLine, result.stdout)
        XCTAssertTrue(errorLine?.contains(path) ?? false)
        XCTAssertTrue(errorLine?.contains("truncated") ?? false, result.stdout)

        let none = try ToolRunner.run("lora-inspect", [])
        XCTAssertNotEqual(none.status, 0)
    }
}
