import Foundation

/// Resizing the way sd-scripts prepares training images (library/utils.py
/// `resize_image`): OpenCV's INTER_AREA when shrinking (each target pixel the
/// mean of its footprint, fractional source pixels weighted by coverage) and
/// PIL's Lanczos (a = 3) when enlarging. Both separable, in float, rounded once.
extension Bitmap {
    public func resampled(width newWidth: Int, height newHeight: Int) -> Bitmap {
        guard newWidth != width || newHeight != height else { return self }
        precondition(newWidth > 0 && newHeight > 0)
        let shrinking = newWidth <= width && newHeight <= height
        let horizontal = Bitmap.weights(from: width, to: newWidth, area: shrinking)
        let vertical = Bitmap.weights(from: height, to: newHeight, area: shrinking)
        // Rows first: [height][newWidth][3].
        var rows = [Float](repeating: 0, count: height * newWidth * 3)
        for y in 0..<height {
            for (tx, taps) in horizontal.enumerated() {
                var r: Float = 0, g: Float = 0, b: Float = 0
                for (x, w) in taps {
                    let i = (y * width + x) * 3
                    r += w * Float(pixels[i]); g += w * Float(pixels[i + 1]); b += w * Float(pixels[i + 2])
                }
                let o = (y * newWidth + tx) * 3
                rows[o] = r; rows[o + 1] = g; rows[o + 2] = b
            }
        }
        var out = [UInt8](repeating: 0, count: newWidth * newHeight * 3)
        for (ty, taps) in vertical.enumerated() {
            for i in 0..<(newWidth * 3) {
                var v: Float = 0
                for (y, w) in taps { v += w * rows[y * newWidth * 3 + i] }
                out[ty * newWidth * 3 + i] = UInt8(max(0, min(255, v.rounded())))
            }
        }
        return Bitmap(width: newWidth, height: newHeight, pixels: out)
    }

    /// Per target index, the source indices and their normalised weights.
    static func weights(from source: Int, to target: Int, area: Bool) -> [[(Int, Float)]] {
        let scale = Double(source) / Double(target)
        return (0..<target).map { t in
            var taps: [(Int, Double)] = []
            if area && scale >= 1 {
                let start = Double(t) * scale, end = start + scale
                var s = Int(start)
                while Double(s) < end && s < source {
                    let covered = min(end, Double(s + 1)) - max(start, Double(s))
                    if covered > 1e-9 { taps.append((s, covered)) }
                    s += 1
                }
            } else {
                // PIL's resample with a Lanczos-3 kernel; support widens when shrinking.
                let filterScale = max(scale, 1), support = 3 * filterScale
                let center = (Double(t) + 0.5) * scale
                let lo = max(Int(center - support + 0.5), 0), hi = min(Int(center + support + 0.5), source)
                for s in lo..<max(lo, hi) {
                    let w = lanczos((Double(s) - center + 0.5) / filterScale)
                    if w != 0 { taps.append((s, w)) }
                }
                if taps.isEmpty { taps = [(min(source - 1, Int(center)), 1)] }
            }
            let total = taps.reduce(0) { $0 + $1.1 }
            return taps.map { ($0.0, Float($0.1 / total)) }
        }
    }

    static func lanczos(_ x: Double) -> Double {
        func sinc(_ v: Double) -> Double { v == 0 ? 1 : sin(Double.pi * v) / (Double.pi * v) }
        return abs(x) < 3 ? sinc(x) * sinc(x / 3) : 0
    }
}
