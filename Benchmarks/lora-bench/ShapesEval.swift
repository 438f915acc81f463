import ArgumentParser
import Diffusion
import Foundation
import Imaging
import LoRACore
import ToolSupport
import Training

/// Renders a prompt over seeds (and LoRA weights) with the engine and reads
/// each picture with the pixel-statistics SceneReader: how often the asked
/// shape and colour appear. What the quick start and the tiny model's notes
/// measure a LoRA's effect with.
struct ShapesEval: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "shapes-eval",
                                                    abstract: "Render prompts over seeds and read the shapes and colours drawn.")

    @Option(help: "The checkpoint (the tiny shapes model).")
    var model: String

    @Option(help: "CLIP tokenizer (merges file or folder).")
    var tokenizer = "Fixtures/tokenizer/clip_bpe_merges.txt.gz"

    @Option(parsing: .singleValue, help: "A prompt; repeat for several. \"shape:colour:prompt\" names what it should show.")
    var prompt: [String] = []

    @Option(help: "A LoRA to apply at each of --weights.")
    var lora: String?

    @Option(help: "LoRA weights, comma-separated.")
    var weights = "1"

    @Option(help: "Seeds 1…n.")
    var seeds = 8

    @Option(help: "Sampling steps.")
    var steps = 20

    @Option(help: "CFG scale.")
    var cfg: Float = 5

    @Option(help: "Write each render here as a PNG.")
    var images: String?

    @Option(help: "Instead of prompts: encode and decode this many scenes with the VAE and read the decoded pictures.")
    var roundtrip: Int?

    func run() throws {
        ToolEnvironment.prepare()
        let model = try StableDiffusionModel(checkpoint: self.model, tokenizer: try BPETokenizer.load(tokenizer),
                                             options: .init(loadEncoder: roundtrip != nil))
        if let roundtrip { return try self.roundtrip(model, count: roundtrip) }
        let pipeline = Pipeline(model: model)
        let weightList = weights.split(separator: ",").compactMap { Double($0) }
        if let images { try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true) }
        for entry in prompt {
            let parts = entry.split(separator: ":", maxSplits: 2).map(String.init)
            guard parts.count == 3 else { throw ValidationError("--prompt takes shape:colour:prompt, got \(entry)") }
            for weight in lora == nil ? [1.0] : weightList {
                var adapters = AdapterSet.empty
                if let lora, weight != 0 {
                    adapters = try RuntimeLoRA.adapters(for: model, loras: [try LoadedLoRA.open(LoRASpec(path: lora, ratio: weight))]).0
                }
                var shapeHits = 0, colorHits = 0, bothHits = 0
                var readings: [String] = []
                for seed in 1...seeds {
                    let parameters = GenerationParameters(prompt: parts[2], seed: UInt64(seed), steps: steps, cfgScale: cfg, width: 64, height: 64)
                    let image = try pipeline.render(parameters, adapters: adapters)
                    let bitmap = Bitmap(width: image.width, height: image.height, pixels: image.pixels)
                    let reading = SceneReader.read(bitmap)
                    if reading.shape == parts[0] { shapeHits += 1 }
                    if reading.colorName == parts[1] { colorHits += 1 }
                    if reading.shape == parts[0] && reading.colorName == parts[1] { bothHits += 1 }
                    readings.append(reading.description)
                    if let images {
                        let name = "\(parts[2].prefix(40))-w\(weight)-s\(seed).png".replacingOccurrences(of: " ", with: "_")
                        try Data(try PNGCodec.encode(bitmap)).write(to: URL(fileURLWithPath: (images as NSString).appendingPathComponent(name)))
                    }
                }
                let label = lora == nil ? "" : "  weight \(weight)"
                print("\(parts[2])\(label): \(parts[0]) \(shapeHits)/\(seeds), \(parts[1]) \(colorHits)/\(seeds), both \(bothHits)/\(seeds)  [\(readings.joined(separator: "; "))]")
            }
        }
    }

    /// Scenes the base training never drew (another seed), through encoder and decoder.
    func roundtrip(_ model: StableDiffusionModel, count: Int) throws {
        var stream = ShapeScene.Stream(seed: 777, shapes: ShapeScene.baseShapes + ["star"])
        var right = 0, squares = 0.0, values = 0.0
        var strip = Bitmap(width: 64 * count, height: 128)
        for index in 0..<count {
            let scene = stream.next()
            let bitmap = scene.render(size: 64)
            let pixels = try TrainingImage.pixels(bitmap, path: "<scene>", bucket: Resolution(64, 64))
            let decoded = model.decoder!.decode(model.encoder!.encode(pixels))
            for (a, b) in zip(decoded.values, pixels.values) { squares += Double(max(-1, min(1, a)) - b) * Double(max(-1, min(1, a)) - b); values += 1 }
            let image = RGBImage(decoded: decoded)
            let roundTripped = Bitmap(width: 64, height: 64, pixels: image.pixels)
            let reading = SceneReader.read(roundTripped)
            if reading.shape == scene.shape && reading.color == scene.color && reading.background == scene.background { right += 1 }
            strip.draw(bitmap, x: index * 64, y: 0)
            strip.draw(roundTripped, x: index * 64, y: 64)
        }
        print("VAE round trip of \(count) unseen scenes: MSE \(String(format: "%.4f", squares / values)) (pixels in [-1, 1]), read right \(right)/\(count)")
        if let images {
            try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
            try Data(try PNGCodec.encode(strip)).write(to: URL(fileURLWithPath: (images as NSString).appendingPathComponent("roundtrip.png")))
        }
    }
}
