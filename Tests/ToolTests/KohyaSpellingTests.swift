import FixtureKit
import Foundation
import LoRACore
import XCTest

/// kohya command lines run unchanged where the meaning is the same: the
/// kohya spelling writes the same tensors as ours.
final class KohyaSpellingTests: XCTestCase {
    func dataHash(_ path: String) throws -> String {
        try XCTUnwrap(Hashing.hashes(of: ModelFile.open(path)).autoV3)
    }

    func testKohyaSpellingsGiveTheSameFiles() throws {
        let folder = NSTemporaryDirectory() + "kohya-spelling-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for name in ["sd1_tiny_tuned.safetensors", "sd1_tiny_locon.safetensors"] {
            try XCTUnwrap(FixtureSet.items.first { $0.name == name }).write(folder + "/" + name)
        }
        let model = "Fixtures/models/sd1_tiny.safetensors", tuned = folder + "/sd1_tiny_tuned.safetensors"
        let lora = "Fixtures/models/sd1_tiny_lora.safetensors", locon = folder + "/sd1_tiny_locon.safetensors"
        let pairs: [(String, [String], [String])] = [
            ("lora-merge", ["--sd_model", model, "--models", lora, locon, "--ratios", "0.5", "0.25", "--save_precision", "fp16", "--device", "cpu"],
             ["--model", model, "--lora", lora + ":0.5", "--lora", locon + ":0.25", "--precision", "fp16"]),
            ("lora-merge", ["loras", "--models", lora, locon, "--ratios", "0.5", "0.25", "--new_rank", "2", "--new_conv_rank", "1", "--save_precision", "fp32"],
             ["loras", lora + ":0.5", locon + ":0.25", "--rank", "2", "--conv-rank", "1", "--precision", "fp32"]),
            ("lora-extract", ["--model_org", model, "--model_tuned", tuned, "--dim", "4", "--conv_dim", "2", "--clamp_quantile", "0.9",
                              "--min_diff", "0", "--save_precision", "float", "--v2"],
             ["--base", model, "--tuned", tuned, "--rank", "4", "--conv-rank", "2", "--clamp-quantile", "0.9", "--min-diff", "0", "--precision", "fp32"]),
            ("lora-extract", ["resize", "--model", lora, "--new_rank", "3", "--dynamic_method", "sv_fro", "--dynamic_param", "0.9"],
             ["resize", lora, "--rank", "3", "--dynamic", "sv_fro=0.9"]),
        ]
        for (n, (tool, kohya, ours)) in pairs.enumerated() {
            let a = folder + "/kohya\(n).safetensors", b = folder + "/ours\(n).safetensors"
            let first = try ToolRunner.run(tool, kohya + ["--save_to", a, "--quiet"])
            XCTAssertEqual(first.status, 0, "\(tool) \(kohya): \(first.stderr)")
            let second = try ToolRunner.run(tool, ours + ["-o", b, "--quiet"])
            XCTAssertEqual(second.status, 0, "\(tool) \(ours): \(second.stderr)")
            XCTAssertEqual(try dataHash(a), try dataHash(b), "\(tool): the kohya spelling writes the same tensors")
        }
        let cuda = try ToolRunner.run("lora-merge", ["--sd_model", model, "--models", lora, "--save_to", folder + "/x.safetensors", "--device", "cuda"])
        XCTAssertEqual(cuda.status, 64)
        XCTAssertTrue(cuda.stderr.contains("run on the CPU"), cuda.stderr)
        let unequal = try ToolRunner.run(
            "lora-merge", ["--sd_model", model, "--models", lora, locon, "--ratios", "0.5", "--save_to", folder + "/x.safetensors"])
        XCTAssertEqual(unequal.status, 64)
        XCTAssertTrue(unequal.stderr.contains("one value per --models file"), unequal.stderr)
    }
}
