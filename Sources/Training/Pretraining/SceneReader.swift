import Foundation
import Imaging

/// What a picture of the shapes world shows, read from pixel statistics
/// alone (no learned classifier): the background is the palette colour
/// nearest the border's mean, the shape is every pixel far from it, its
/// colour the palette colour nearest their mean, and its kind the nearest
/// reference in three moments of the mask — area over bounding box, area
/// over the disc through its farthest pixels, and how far the centroid sits
/// below the box's centre (a triangle's apex points up). The references are
/// the generator's own shapes measured once, not fitted.
public struct SceneReading: Sendable, Equatable, CustomStringConvertible {
    public var shape: String?
    public var color: Int?
    public var background: Int

    public var colorName: String? { color.map { ShapeScene.colors[$0].name } }
    public var description: String {
        "\(colorName ?? "-") \(shape ?? "nothing") on \(ShapeScene.colors[background].name)"
    }
}

public enum SceneReader {
    static func nearestColor(_ rgb: (Double, Double, Double)) -> Int {
        ShapeScene.colors.indices.min { distance(rgb, ShapeScene.colors[$0].rgb) < distance(rgb, ShapeScene.colors[$1].rgb) }!
    }

    static func distance(_ a: (Double, Double, Double), _ b: RGB) -> Double {
        let dr = a.0 - Double(b.r), dg = a.1 - Double(b.g), db = a.2 - Double(b.b)
        return (dr * dr + dg * dg + db * db).squareRoot()
    }

    /// (area / box, area / disc, centroid offset) of a mask; nil when it has under 2% of the pixels.
    static func moments(_ mask: [Bool], width: Int, height: Int) -> [Double]? {
        var count = 0.0, sx = 0.0, sy = 0.0
        var minX = width, maxX = -1, minY = height, maxY = -1
        for y in 0..<height {
            for x in 0..<width where mask[y * width + x] {
                count += 1; sx += Double(x); sy += Double(y)
                minX = min(minX, x); maxX = max(maxX, x); minY = min(minY, y); maxY = max(maxY, y)
            }
        }
        guard count >= 0.02 * Double(width * height) else { return nil }
        let cx = sx / count, cy = sy / count
        var distances: [Double] = []
        for y in 0..<height {
            for x in 0..<width where mask[y * width + x] {
                distances.append(((Double(x) - cx) * (Double(x) - cx) + (Double(y) - cy) * (Double(y) - cy)).squareRoot())
            }
        }
        distances.sort()
        // The 98th percentile: a few stray pixels do not make a disc.
        let reach = distances[min(distances.count - 1, Int(0.98 * Double(distances.count)))] + 0.5
        let boxWidth = Double(maxX - minX + 1), boxHeight = Double(maxY - minY + 1)
        return [count / (boxWidth * boxHeight), count / (Double.pi * reach * reach), (cy - (Double(minY + maxY) / 2)) / boxHeight]
    }

    /// Each shape's moments drawn large and centred by the generator itself.
    static let references: [(String, [Double])] = {
        let size = 64
        return (ShapeScene.baseShapes + ["star"]).map { shape in
            let scene = ShapeScene(shape: shape, color: 0, background: 4, radius: 0.3, center: (0.5, 0.5))
            let bitmap = scene.render(size: size)
            let mask = (0..<(size * size)).map { bitmap.pixels[3 * $0 + 1] < 128 }
            return (shape, moments(mask, width: size, height: size)!)
        }
    }()

    public static func read(_ bitmap: Bitmap, shapes: [String] = ShapeScene.baseShapes + ["star"]) -> SceneReading {
        let w = bitmap.width, h = bitmap.height
        func pixel(_ i: Int) -> (Double, Double, Double) {
            (Double(bitmap.pixels[3 * i]), Double(bitmap.pixels[3 * i + 1]), Double(bitmap.pixels[3 * i + 2]))
        }
        var border = (0.0, 0.0, 0.0), borderCount = 0.0
        for y in 0..<h {
            for x in 0..<w where x < 2 || y < 2 || x >= w - 2 || y >= h - 2 {
                let p = pixel(y * w + x)
                border = (border.0 + p.0, border.1 + p.1, border.2 + p.2)
                borderCount += 1
            }
        }
        let background = nearestColor((border.0 / borderCount, border.1 / borderCount, border.2 / borderCount))
        let backgroundRGB = ShapeScene.colors[background].rgb
        let mask = (0..<(w * h)).map { distance(pixel($0), backgroundRGB) > 90 }
        guard let m = moments(mask, width: w, height: h) else { return SceneReading(shape: nil, color: nil, background: background) }
        var sum = (0.0, 0.0, 0.0), n = 0.0
        for i in mask.indices where mask[i] {
            let p = pixel(i)
            sum = (sum.0 + p.0, sum.1 + p.1, sum.2 + p.2)
            n += 1
        }
        let color = nearestColor((sum.0 / n, sum.1 / n, sum.2 / n))
        let weights = [1.0, 1.0, 3.0]
        let shape = references.filter { shapes.contains($0.0) }.min { a, b in
            func d(_ r: [Double]) -> Double { zip(zip(r, m), weights).reduce(0) { $0 + $1.1 * ($1.0.0 - $1.0.1) * ($1.0.0 - $1.0.1) } }
            return d(a.1) < d(b.1)
        }!.0
        return SceneReading(shape: shape, color: color, background: background)
    }
}
