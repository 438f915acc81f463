import Foundation
import Imaging
import Training
import XCTest

/// The quick start's LoRA story (Fixtures/demo.sh) on the bundled tiny shapes model, judged by the pictures: lora-train learns a
/// concept the model has never seen (a star, "zkw shape"), and lora-xyz's cells — read by
/// SceneReader's pixel statistics — show it at weight 1 and not at weight 0. Where the other CLI
/// tests check files and numbers, this one fails when training or rendering stops making sense.
final class ShapesConceptCLITests: XCTestCase {
    var folder = ""

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "lora-shapes-\(UUID().uuidString)"
        let concept = folder + "/data/10_zkw shape"
        try FileManager.default.createDirectory(atPath: concept, withIntermediateDirectories: true)
        // What `lora-bench shapes --concept` writes: stars of every colour, size and place, with the trigger word.
        var scenes = ShapeScene.Stream(seed: 1, shapes: ["star"])
        for index in 0..<16 {
            let scene = scenes.next(), base = concept + String(format: "/%04d", index)
            FileManager.default.createFile(atPath: base + ".png", contents: Data(try PNGCodec.encode(scene.render(size: 64))))
            FileManager.default.createFile(atPath: base + ".txt", contents: Data(("zkw shape, " + scene.caption + "\n").utf8))
        }
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func testTrainedConceptAppearsWithTheLoRAWeight() throws {
        let model = "Fixtures/shapes/shapes_tiny.safetensors", tokenizer = "Fixtures/tokenizer/clip_bpe_merges.txt.gz"
        let train = try ToolRunner.run("lora-train", [
            "--model", model, "--tokenizer", tokenizer, "--train-data-dir", folder + "/data", "--output-dir", folder + "/train",
            "--output-name", "zkw", "--resolution", "64", "--train-batch-size", "4", "--network-dim", "8", "--network-alpha", "8",
            "--learning-rate", "1e-3", "--caption-extension", ".txt", "--max-train-epochs", "4", "--seed", "1", "--quiet"])
        XCTAssertEqual(train.status, 0, train.stderr)
        let xyz = try ToolRunner.run("lora-xyz", [
            "--model", model, "--loras", folder + "/train/zkw.safetensors", "--weights", "0,1",
            "--prompt", "zkw shape, a yellow star on a blue background, <lora>", "--seeds", "1,2,3,4,5,6", "--steps", "20", "--cfg", "5",
            "--width", "64", "--height", "64", "--tokenizer", tokenizer, "--cells", folder + "/cells", "-o", folder + "/sheet.png", "--quiet"])
        XCTAssertEqual(xyz.status, 0, xyz.stderr)
        var stars: [String: Int] = [:], readings: [String] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: folder + "/cells") where name.hasSuffix(".png") {
            let bitmap = try PNGCodec.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: folder + "/cells/" + name))))
            let weight = name.contains("-Weight 0-") ? "0" : "1"   // "0007-Weight 1-Seed 4.png"
            let reading = SceneReader.read(bitmap)
            readings.append("\(name): \(reading)")
            stars[weight, default: 0] += reading.shape == "star" ? 1 : 0
        }
        XCTAssertEqual(readings.count, 12, readings.joined(separator: "\n"))
        XCTAssertGreaterThanOrEqual(stars["1", default: 0], 4, readings.joined(separator: "\n"))
        XCTAssertGreaterThan(stars["1", default: 0], stars["0", default: 0] + 2, readings.joined(separator: "\n"))
    }
}
