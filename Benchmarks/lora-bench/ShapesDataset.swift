import ArgumentParser
import Foundation
import Imaging
import LoRACore
import Training

/// A procedural captioned dataset in kohya's folder layout: coloured shapes
/// (circle, square, triangle, star) of several sizes and positions on coloured
/// backgrounds, captioned "a red circle on a blue background". Deterministic
/// (the same seed writes the same files). `--concept` writes a small concept
/// folder instead: the held-out shape (a star) captioned with a trigger word,
/// for a LoRA to learn (`10_zkw shape/`). The quick start trains on it.
struct ShapesDataset: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "shapes", abstract: "Write a procedural shapes dataset in kohya's folder layout.")

    @Option(help: "The dataset folder (the parent of the <repeats>_<name> folder written).")
    var out: String

    @Option(help: "Images to write.")
    var count = 16

    @Option(help: "Image side in pixels.")
    var size = 64

    @Option(help: "Repeats in the folder name.")
    var repeats = 10

    @Option(help: "Seed of the layout.")
    var seed: UInt64 = 1

    @Flag(help: "The held-out concept: stars captioned with the trigger word zkw.")
    var concept = false

    func run() throws {
        let folder = try Self.write(into: out, count: count, size: size, repeats: repeats, seed: seed, concept: concept)
        print("wrote \(count) images and captions to \(folder)")
    }

    /// Writes the `<repeats>_<name>` folder under `parent` (also for `lora-bench kohya-train`'s dataset); returns it.
    static func write(into parent: String, count: Int, size: Int, repeats: Int, seed: UInt64, concept: Bool = false) throws -> String {
        let folder = (parent as NSString).appendingPathComponent(concept ? "\(repeats)_zkw shape" : "\(repeats)_shapes")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var scenes = ShapeScene.Stream(seed: seed, shapes: concept ? ["star"] : ShapeScene.baseShapes)
        for index in 0..<count {
            let scene = scenes.next()
            let base = (folder as NSString).appendingPathComponent(String(format: "%04d", index))
            try Data(try PNGCodec.encode(scene.render(size: size))).write(to: URL(fileURLWithPath: base + ".png"))
            try ((concept ? "zkw shape, " : "") + scene.caption + "\n").write(toFile: base + ".txt", atomically: false, encoding: .utf8)
        }
        return folder
    }
}
