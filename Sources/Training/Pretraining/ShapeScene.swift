import Foundation
import Imaging

/// One picture of the procedural shapes world the tiny model learns: a
/// coloured shape (circle, square, triangle; the star is held out for the
/// LoRA concept) of some size and position on a coloured background, with its
/// caption ("a red circle on a blue background"). `lora-bench shapes` writes
/// them as a kohya folder; the tiny model's pretraining draws them in memory.
public struct ShapeScene: Sendable, Equatable {
    public static let colors: [(name: String, rgb: RGB)] = [
        ("red", RGB(220, 30, 30)), ("green", RGB(30, 170, 60)), ("blue", RGB(40, 70, 220)),
        ("yellow", RGB(240, 210, 30)), ("white", RGB(245, 245, 245)), ("black", RGB(15, 15, 15))]
    /// The shapes of the base training; "star" is the held-out concept.
    public static let baseShapes = ["circle", "square", "triangle"]

    public var shape: String
    public var color: Int
    public var background: Int
    /// Radius and centre as fractions of the side.
    public var radius: Double
    public var center: (x: Double, y: Double)

    public static func == (a: ShapeScene, b: ShapeScene) -> Bool {
        a.shape == b.shape && a.color == b.color && a.background == b.background && a.radius == b.radius && a.center == b.center
    }

    public var caption: String {
        "a \(Self.colors[color].name) \(shape) on a \(Self.colors[background].name) background"
    }

    /// A deterministic stream of scenes (xorshift; the same seed gives the same scenes on every machine).
    public struct Stream: Sendable {
        var state: UInt64
        public let shapes: [String]
        public init(seed: UInt64, shapes: [String] = ShapeScene.baseShapes) {
            state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
            self.shapes = shapes
        }
        mutating func next(_ bound: Int) -> Int {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Int(state % UInt64(bound))
        }
        public mutating func next() -> ShapeScene {
            let shape = shapes[next(shapes.count)]
            let color = next(ShapeScene.colors.count)
            var background = next(ShapeScene.colors.count)
            if background == color { background = (color + 1) % ShapeScene.colors.count }
            let radius = 0.18 + 0.12 * Double(next(3))
            let cx = 0.5 + Double(next(5) - 2) * 0.08, cy = 0.5 + Double(next(5) - 2) * 0.08
            return ShapeScene(shape: shape, color: color, background: background, radius: radius, center: (cx, cy))
        }
    }

    public func render(size: Int) -> Bitmap {
        var bitmap = Bitmap(width: size, height: size, fill: Self.colors[background].rgb)
        let c = Self.colors[color].rgb, s = Double(size)
        for y in 0..<size {
            for x in 0..<size where Self.inside(shape, x: Double(x) + 0.5 - center.x * s, y: Double(y) + 0.5 - center.y * s, radius: radius * s) {
                let p = (y * size + x) * 3
                (bitmap.pixels[p], bitmap.pixels[p + 1], bitmap.pixels[p + 2]) = (c.r, c.g, c.b)
            }
        }
        return bitmap
    }

    /// Whether (x, y) relative to the centre lies in the shape of this radius.
    public static func inside(_ shape: String, x: Double, y: Double, radius r: Double) -> Bool {
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
