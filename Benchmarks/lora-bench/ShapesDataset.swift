import ArgumentParser
import Foundation
import Imaging
import LoRACore

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

    static let colors: [(String, RGB)] = [("red", RGB(220, 30, 30)), ("green", RGB(30, 170, 60)), ("blue", RGB(40, 70, 220)),
                                          ("yellow", RGB(240, 210, 30)), ("white", RGB(245, 245, 245)), ("black", RGB(15, 15, 15))]
    static let shapes = ["circle", "square", "triangle"]

    func run() throws {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next(_ bound: Int) -> Int {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(state % UInt64(bound))
        }
        let folder = (out as NSString).appendingPathComponent(concept ? "\(repeats)_zkw shape" : "\(repeats)_shapes")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for index in 0..<count {
            let shape = concept ? "star" : Self.shapes[next(Self.shapes.count)]
            let (colorName, color) = Self.colors[next(Self.colors.count)]
            var (backgroundName, background) = Self.colors[next(Self.colors.count)]
            if backgroundName == colorName { (backgroundName, background) = Self.colors[(Self.colors.firstIndex { $0.0 == colorName }! + 1) % Self.colors.count] }
            let radius = Double(size) * (0.18 + 0.12 * Double(next(3)))
            let cx = Double(size) / 2 + Double(next(5) - 2) * Double(size) * 0.08, cy = Double(size) / 2 + Double(next(5) - 2) * Double(size) * 0.08
            var bitmap = Bitmap(width: size, height: size, fill: background)
            for y in 0..<size {
                for x in 0..<size where Self.inside(shape, x: Double(x) + 0.5 - cx, y: Double(y) + 0.5 - cy, radius: radius) {
                    let p = (y * size + x) * 3
                    (bitmap.pixels[p], bitmap.pixels[p + 1], bitmap.pixels[p + 2]) = (color.r, color.g, color.b)
                }
            }
            let base = (folder as NSString).appendingPathComponent(String(format: "%04d", index))
            try Data(try PNGCodec.encode(bitmap)).write(to: URL(fileURLWithPath: base + ".png"))
            let caption = concept ? "zkw shape, a \(colorName) star on a \(backgroundName) background"
                                  : "a \(colorName) \(shape) on a \(backgroundName) background"
            try (caption + "\n").write(toFile: base + ".txt", atomically: true, encoding: .utf8)
        }
        print("wrote \(count) images and captions to \(folder)")
    }

    /// Whether (x, y) relative to the centre lies in the shape of this radius.
    static func inside(_ shape: String, x: Double, y: Double, radius r: Double) -> Bool {
        switch shape {
        case "circle": return x * x + y * y <= r * r
        case "square": return abs(x) <= r * 0.85 && abs(y) <= r * 0.85
        case "triangle": return y <= r * 0.8 && y >= -r && abs(x) <= (y + r) * 0.6
        default: // a five-pointed star: the radius alternates between r and r·0.45 around the centre
            let angle = atan2(y, x) + Double.pi / 2, sector = 2 * Double.pi / 5
            let t = abs((angle.truncatingRemainder(dividingBy: sector) + sector).truncatingRemainder(dividingBy: sector) / sector - 0.5) * 2
            let edge = r * (0.45 + 0.55 * t * t)
            return (x * x + y * y).squareRoot() <= edge
        }
    }
}
