import Diffusion
import Foundation
import Imaging
import LoRACore
import Training
import XCTest

/// The bundled tiny shapes model (Fixtures/shapes/shapes_tiny.safetensors, trained from scratch by
/// `lora-bench tiny-model`, recipe in its metadata) draws what it is asked. Each render is read by
/// SceneReader — pixel statistics, no learned classifier — so these tests fail when the engine's
/// pictures stop making sense, not only when its numbers drift. The thresholds are the issue's: a
/// majority of renders of seen prompts show the asked colour and shape.
final class TinyShapesModelTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let modelPath = root + "/Fixtures/shapes/shapes_tiny.safetensors"

    static let model: Result<StableDiffusionModel, Error> = Result {
        try StableDiffusionModel(checkpoint: modelPath, tokenizer: try BPETokenizer.load(root + "/Fixtures/tokenizer/clip_bpe_merges.txt.gz"))
    }

    func render(_ prompt: String, seed: UInt64, adapters: AdapterSet = .empty) throws -> Bitmap {
        let parameters = GenerationParameters(prompt: prompt, seed: seed, steps: 20, cfgScale: 5, width: 64, height: 64)
        let image = try Pipeline(model: try Self.model.get()).render(parameters, adapters: adapters)
        return Bitmap(width: image.width, height: image.height, pixels: image.pixels)
    }

    /// Every base shape, in colours and on backgrounds of all kinds, over three seeds.
    func testSeenPromptsDrawTheAskedColourAndShape() throws {
        let asked: [(shape: String, color: String, background: String)] = [
            ("circle", "red", "white"), ("circle", "blue", "yellow"), ("square", "yellow", "black"),
            ("square", "green", "white"), ("triangle", "white", "blue"), ("triangle", "black", "red")]
        var right = 0, total = 0, misread: [String] = []
        for scene in asked {
            for seed in UInt64(1)...3 {
                let reading = SceneReader.read(try render("a \(scene.color) \(scene.shape) on a \(scene.background) background", seed: seed))
                total += 1
                if reading.shape == scene.shape && reading.colorName == scene.color { right += 1 } else {
                    misread.append("\(scene.color) \(scene.shape) seed \(seed): \(reading)")
                }
            }
        }
        XCTAssertGreaterThan(2 * right, total, "\(right)/\(total) right; " + misread.joined(separator: "; "))
    }

    /// Same seed, other prompt: another picture (the text reaches the U-Net); same prompt: the same one.
    func testThePromptChangesThePicture() throws {
        let a = try render("a red circle on a white background", seed: 7)
        let b = try render("a blue square on a yellow background", seed: 7)
        XCTAssertEqual(a.pixels, try render("a red circle on a white background", seed: 7).pixels)
        let difference = zip(a.pixels, b.pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(a.pixels.count)
        XCTAssertGreaterThan(difference, 40, "mean absolute difference \(difference) of 255")
        XCTAssertNotEqual(SceneReader.read(a).colorName, SceneReader.read(b).colorName)
    }
}
