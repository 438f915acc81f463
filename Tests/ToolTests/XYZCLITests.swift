import FixtureKit
import Foundation
import LoRACore
import XCTest

/// lora-xyz as users run it: plan, render, resume, errors.
final class XYZCLITests: XCTestCase {
    func testDryRunRenderResumeAndErrors() throws {
        let folder = NSTemporaryDirectory() + "lora-xyz-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for (name, file) in [("sd1_engine.safetensors", "base.safetensors"), ("sd1_engine_lora.safetensors", "run-000003.safetensors"),
                             ("sd1_engine_locon.safetensors", "run-000006.safetensors")] {
            try XCTUnwrap(FixtureSet.items.first { $0.name == name }).write(folder + "/" + file)
        }
        let common = ["--model", folder + "/base.safetensors", "--loras", folder + "/run-*.safetensors", "--weights", "0.5,1",
                      "--prompt", "a cat, <lora>", "--seeds", "5", "--steps", "2", "--sampler", "Euler", "--width", "64", "--height", "64",
                      "--tokenizer", "Fixtures/tokenizer/clip_bpe_merges.txt.gz", "-o", folder + "/sheet.png"]
        let plan = try ToolRunner.run("lora-xyz", common + ["--dry-run"])
        XCTAssertEqual(plan.status, 0, plan.stderr)
        XCTAssertTrue(plan.stdout.contains("X: LoRA (2): e3 · e6"), plan.stdout)
        XCTAssertTrue(plan.stdout.contains("4 cells, 0 cached, 4 to render"), plan.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/sheet.png"), "a dry run draws nothing")

        let first = try ToolRunner.run("lora-xyz", common + ["--quiet"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("4 cells: 4 rendered, 0 from the cache"), first.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/sheet.png"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/sheet.json"))

        let again = try ToolRunner.run("lora-xyz", common + ["--quiet", "--json"])
        XCTAssertEqual(again.status, 0, again.stderr)
        let result = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(result["missing"] as? Int, 0)
        let manifest = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/sheet.json"))) as? [String: Any])
        XCTAssertEqual((manifest["cells"] as? [[String: Any]])?.compactMap { $0["status"] as? String }, ["cached", "cached", "cached", "cached"])
        // torch's noise kernel on this CPU: avx2 on both CPUs of the machine kind (AVX-512 ones too), recorded per cell.
        let hostVariant = CPUFeatures.host.contains([.avx2, .fma]) ? "avx2" : "libm", otherVariant = hostVariant == "avx2" ? "libm" : "avx2"
        XCTAssertEqual((manifest["cells"] as? [[String: Any]])?.compactMap { $0["rngVariant"] as? String }, Array(repeating: hostVariant, count: 4))
        let explicit = try ToolRunner.run("lora-xyz", common + ["--dry-run", "--rng-variant", hostVariant])
        XCTAssertTrue(explicit.stdout.contains("4 cells, 4 cached, 0 to render"), explicit.stdout)
        let other = try ToolRunner.run("lora-xyz", common + ["--dry-run", "--rng-variant", otherVariant])
        XCTAssertTrue(other.stdout.contains("4 cells, 0 cached, 4 to render"), "other noise, other cells: \(other.stdout)")
        let badVariant = try ToolRunner.run("lora-xyz", common + ["--rng-variant", "avx512"])
        XCTAssertNotEqual(badVariant.status, 0)
        XCTAssertTrue(badVariant.stderr.contains("--rng-variant takes auto, avx2 or libm"), badVariant.stderr)

        let badSampler = try ToolRunner.run("lora-xyz", common + ["--sampler", "Heun"])
        XCTAssertNotEqual(badSampler.status, 0)
        XCTAssertTrue(badSampler.stderr.contains("unknown sampler 'Heun'"), badSampler.stderr)
        let noTokenizer = try ToolRunner.run("lora-xyz", common + ["--tokenizer", folder + "/none"])
        XCTAssertNotEqual(noTokenizer.status, 0)
        XCTAssertTrue(noTokenizer.stderr.contains(folder + "/none"), noTokenizer.stderr)
    }
}
