import Foundation
import Imaging

/// What a picture of the shapes world shows, read from pixel statistics
/// alone (no learned classifier): the background is the palette colour
/// nearest the border's mean, the shape is every pixel far from it, its
/// colour the palette colour nearest their mean, and its kind the nearest
/// reference in five moments of the mask — area over bounding box,
/// solidity (area over convex hull: a star's notches, which survive a
/// blurred edge better than its points do), how far the centroid sits
/// below the box's centre (a triangle's apex points up), and how full the
/// box's top and bottom corners are (a square's corners survive a soft
/// edge or bowed sides; a circle never reaches them). The references are
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

    /// (area / box, area / convex hull, centroid offset, top and bottom corner fill) of a mask; nil when it has under 2% of the pixels.
    static func moments(_ mask: [Bool], width: Int, height: Int) -> [Double]? {
        var count = 0.0, sy = 0.0
        var minX = width, maxX = -1, minY = height, maxY = -1
        // Each row's run from its first to its last pixel, as the corners of those pixels: the hull's points.
        var corners: [(x: Double, y: Double)] = []
        for y in 0..<height {
            var first = -1, last = -1
            for x in 0..<width where mask[y * width + x] {
                count += 1; sy += Double(y)
                if first < 0 { first = x }
                last = x
            }
            guard first >= 0 else { continue }
            minX = min(minX, first); maxX = max(maxX, last); minY = min(minY, y); maxY = max(maxY, y)
            for (cx, cy) in [(first, y), (first, y + 1), (last + 1, y), (last + 1, y + 1)] { corners.append((Double(cx), Double(cy))) }
        }
        guard count >= 0.02 * Double(width * height) else { return nil }
        let cy = sy / count
        let boxWidth = Double(maxX - minX + 1), boxHeight = Double(maxY - minY + 1)
        // How full the box's corners are (squares' are; circles', stars' and a triangle's top ones are not):
        // corner windows 15% of the box on a side, the top two and the bottom two averaged.
        let cornerWidth = max(1, Int((0.15 * boxWidth).rounded())), cornerHeight = max(1, Int((0.15 * boxHeight).rounded()))
        func fill(_ top: Int, _ left: Int) -> Double {
            var filled = 0
            for y in top..<(top + cornerHeight) { for x in left..<(left + cornerWidth) where mask[y * width + x] { filled += 1 } }
            return Double(filled) / Double(cornerWidth * cornerHeight)
        }
        let right = maxX + 1 - cornerWidth, bottom = maxY + 1 - cornerHeight
        return [count / (boxWidth * boxHeight), count / hullArea(corners), (cy + 0.5 - (Double(minY + maxY + 1) / 2)) / boxHeight,
                (fill(minY, minX) + fill(minY, right)) / 2, (fill(bottom, minX) + fill(bottom, right)) / 2]
    }

    /// The largest 4-connected region of a mask: a decoder's stray specks are not part of the shape.
    static func largestComponent(_ mask: [Bool], width: Int, height: Int) -> [Bool] {
        var label = [Int](repeating: -1, count: mask.count)
        var best: [Int] = []
        for start in mask.indices where mask[start] && label[start] < 0 {
            var region = [start], next = 0
            label[start] = start
            while next < region.count {
                let i = region[next], x = i % width, y = i / width
                next += 1
                for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] where (0..<width).contains(nx) && (0..<height).contains(ny) {
                    let j = ny * width + nx
                    if mask[j] && label[j] < 0 { label[j] = start; region.append(j) }
                }
            }
            if region.count > best.count { best = region }
        }
        var out = [Bool](repeating: false, count: mask.count)
        for i in best { out[i] = true }
        return out
    }

    /// The area of the convex hull of points (Andrew's monotone chain, then the shoelace formula).
    static func hullArea(_ points: [(x: Double, y: Double)]) -> Double {
        let sorted = points.sorted { $0.x != $1.x ? $0.x < $1.x : $0.y < $1.y }
        func cross(_ o: (x: Double, y: Double), _ a: (x: Double, y: Double), _ b: (x: Double, y: Double)) -> Double {
            (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x)
        }
        func chain(_ points: [(x: Double, y: Double)]) -> [(x: Double, y: Double)] {
            var chain: [(x: Double, y: Double)] = []
            for p in points {
                while chain.count >= 2 && cross(chain[chain.count - 2], chain[chain.count - 1], p) <= 0 { chain.removeLast() }
                chain.append(p)
            }
            return chain.dropLast()
        }
        let hull = chain(sorted) + chain(sorted.reversed())
        var twice = 0.0
        for i in hull.indices {
            let a = hull[i], b = hull[(i + 1) % hull.count]
            twice += a.x * b.y - b.x * a.y
        }
        return max(abs(twice) / 2, 1)
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
        let mask = largestComponent((0..<(w * h)).map { distance(pixel($0), backgroundRGB) > 90 }, width: w, height: h)
        guard let m = moments(mask, width: w, height: h) else { return SceneReading(shape: nil, color: nil, background: background) }
        // The colour most of the shape's pixels are nearest to (other than the background's): soft edges,
        // blends of the two colours, would pull a mean towards a third.
        // Only the shape's core votes: its pixels at least 70% as far from the background as the farthest.
        let far = 0.7 * mask.indices.filter { mask[$0] }.map { distance(pixel($0), backgroundRGB) }.max()!
        var votes = [Int](repeating: 0, count: ShapeScene.colors.count)
        for i in mask.indices where mask[i] && distance(pixel(i), backgroundRGB) >= far {
            let nearest = nearestColor(pixel(i))
            if nearest != background { votes[nearest] += 1 }
        }
        let color = votes.indices.max { votes[$0] < votes[$1] }!
        let weights = [1.0, 4.0, 3.0, 2.0, 2.0]
        let shape = references.filter { shapes.contains($0.0) }.min { a, b in
            func d(_ r: [Double]) -> Double { zip(zip(r, m), weights).reduce(0) { $0 + $1.1 * ($1.0.0 - $1.0.1) * ($1.0.0 - $1.0.1) } }
            return d(a.1) < d(b.1)
        }!.0
        return SceneReading(shape: shape, color: color, background: background)
    }
}
