/// An 8-bit RGB image, rows top to bottom, pixels interleaved. The sheets'
/// canvas and the unit cells read from and written to PNG/JPEG.
public struct Bitmap: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && pixels.count == width * height * 3, "pixel buffer does not match \(width)x\(height)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public init(width: Int, height: Int, fill: RGB = .white) {
        self.width = width
        self.height = height
        var row = [UInt8]()
        row.reserveCapacity(width * 3)
        for _ in 0..<width { row.append(contentsOf: [fill.r, fill.g, fill.b]) }
        var all = [UInt8]()
        all.reserveCapacity(width * height * 3)
        for _ in 0..<height { all.append(contentsOf: row) }
        pixels = all
    }
}

public struct RGB: Sendable, Equatable {
    public var r: UInt8, g: UInt8, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) {
        self.r = r
        self.g = g
        self.b = b
    }
    public static let white = RGB(255, 255, 255)
    public static let black = RGB(0, 0, 0)
    public static let gray = RGB(128, 128, 128)
    public static let lightGray = RGB(224, 224, 224)
}

extension Bitmap {
    /// Fill a rectangle (clipped to the image).
    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, color: RGB) {
        let x0 = max(0, x), y0 = max(0, y), x1 = min(width, x + w), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        for row in y0..<y1 {
            var i = (row * width + x0) * 3
            for _ in x0..<x1 {
                pixels[i] = color.r
                pixels[i + 1] = color.g
                pixels[i + 2] = color.b
                i += 3
            }
        }
    }

    /// Copy `image` with its top-left corner at (x, y), clipped.
    public mutating func draw(_ image: Bitmap, x: Int, y: Int) {
        let x0 = max(0, x), x1 = min(width, x + image.width)
        guard x0 < x1 else { return }
        for row in max(0, y)..<max(max(0, y), min(height, y + image.height)) {
            let src = ((row - y) * image.width + (x0 - x)) * 3
            let dst = (row * width + x0) * 3
            let count = (x1 - x0) * 3
            pixels.withUnsafeMutableBufferPointer { d in
                image.pixels.withUnsafeBufferPointer { s in
                    (d.baseAddress! + dst).update(from: s.baseAddress! + src, count: count)
                }
            }
        }
    }

    /// Blend `color` into (x, y) with coverage `alpha` (0…255): how glyphs are drawn.
    @inline(__always)
    mutating func blend(x: Int, y: Int, color: RGB, alpha: UInt8) {
        guard alpha > 0, x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        let a = Int(alpha), inverse = 255 - a
        pixels[i] = UInt8((Int(color.r) * a + Int(pixels[i]) * inverse + 127) / 255)
        pixels[i + 1] = UInt8((Int(color.g) * a + Int(pixels[i + 1]) * inverse + 127) / 255)
        pixels[i + 2] = UInt8((Int(color.b) * a + Int(pixels[i + 2]) * inverse + 127) / 255)
    }

    /// Area-averaged downscale (box filter over each target pixel's footprint):
    /// sheets of hundreds of cells shrink their cells without aliasing.
    public func resized(width newWidth: Int, height newHeight: Int) -> Bitmap {
        guard newWidth != width || newHeight != height else { return self }
        precondition(newWidth > 0 && newHeight > 0)
        var out = [UInt8](repeating: 0, count: newWidth * newHeight * 3)
        let sx = Double(width) / Double(newWidth), sy = Double(height) / Double(newHeight)
        for ty in 0..<newHeight {
            let y0 = Int(Double(ty) * sy), y1 = max(y0 + 1, min(height, Int((Double(ty + 1) * sy).rounded(.up))))
            for tx in 0..<newWidth {
                let x0 = Int(Double(tx) * sx), x1 = max(x0 + 1, min(width, Int((Double(tx + 1) * sx).rounded(.up))))
                var r = 0, g = 0, b = 0
                for y in y0..<y1 {
                    var i = (y * width + x0) * 3
                    for _ in x0..<x1 {
                        r += Int(pixels[i]); g += Int(pixels[i + 1]); b += Int(pixels[i + 2])
                        i += 3
                    }
                }
                let n = (y1 - y0) * (x1 - x0)
                let o = (ty * newWidth + tx) * 3
                out[o] = UInt8((r + n / 2) / n)
                out[o + 1] = UInt8((g + n / 2) / n)
                out[o + 2] = UInt8((b + n / 2) / n)
            }
        }
        return Bitmap(width: newWidth, height: newHeight, pixels: out)
    }
}

extension Bitmap {
    /// RGBA bytes as the colours and the alpha plane.
    public static func splitting(rgba: [UInt8], width: Int, height: Int) -> (image: Bitmap, alpha: [UInt8]) {
        var pixels = [UInt8](repeating: 0, count: width * height * 3), alpha = [UInt8](repeating: 0, count: width * height)
        rgba.withUnsafeBufferPointer { source in
            for i in 0..<(width * height) {
                (pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2], alpha[i]) = (source[4 * i], source[4 * i + 1], source[4 * i + 2], source[4 * i + 3])
            }
        }
        return (Bitmap(width: width, height: height, pixels: pixels), alpha)
    }
}
