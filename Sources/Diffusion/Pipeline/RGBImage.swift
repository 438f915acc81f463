/// An 8-bit RGB image, rows top to bottom, pixels interleaved.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3)
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (255, 255, 255)) {
        self.width = width
        self.height = height
        var p = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { p[3 * i] = fill.0; p[3 * i + 1] = fill.1; p[3 * i + 2] = fill.2 }
        pixels = p
    }

    /// The VAE's [1, 3, H, W] output in [-1, 1] as A1111 converts it:
    /// clamp((x + 1) / 2, 0, 1) · 255, truncated (not rounded) to 8 bits.
    public init(decoded: Tensor, item: Int = 0) {
        let h = decoded.shape[2], w = decoded.shape[3], plane = h * w
        var pixels = [UInt8](repeating: 0, count: plane * 3)
        let base = item * 3 * plane
        for c in 0..<3 {
            for i in 0..<plane {
                let v = min(max((decoded.values[base + c * plane + i] + 1) / 2, 0), 1) * 255
                pixels[i * 3 + c] = UInt8(v)
            }
        }
        self.init(width: w, height: h, pixels: pixels)
    }
}
