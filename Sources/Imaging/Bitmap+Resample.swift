import Foundation

/// Resizing the way sd-scripts prepares training images (library/utils.py
/// `resize_image`): OpenCV's INTER_AREA when both sides shrink (each target
/// pixel the mean of its footprint, fractional source pixels weighted by
/// coverage, rounded once) and PIL's Lanczos (a = 3, support widened by the
/// scale when a side shrinks) otherwise. PIL resamples one axis at a time
/// into an 8-bit image — the axis whose pass leaves the smaller intermediate
/// first — so its overshoot is rounded and clipped between passes; so is ours.
extension Bitmap {
    public func resampled(width newWidth: Int, height newHeight: Int) -> Bitmap {
        guard newWidth != width || newHeight != height else { return self }
        precondition(newWidth > 0 && newHeight > 0)
        let area = newWidth <= width && newHeight <= height
        var plane = Plane(width: width, height: height, values: pixels.map(Float.init))
        let horizontalFirst = area || newWidth * height <= width * newHeight
        for horizontal in horizontalFirst ? [true, false] : [false, true] {
            let (source, target) = horizontal ? (plane.width, newWidth) : (plane.height, newHeight)
            guard source != target else { continue }
            plane = plane.resampled(horizontal: horizontal, taps: Bitmap.weights(from: source, to: target, area: area))
            if !area { plane.roundToBytes() }
        }
        if area { plane.roundToBytes() }
        return Bitmap(width: newWidth, height: newHeight, pixels: plane.values.map { UInt8($0) })
    }

    /// Interleaved RGB in float, for the passes.
    struct Plane {
        var width: Int, height: Int, values: [Float]

        func resampled(horizontal: Bool, taps: [[(Int, Float)]]) -> Plane {
            let (w, h) = horizontal ? (taps.count, height) : (width, taps.count)
            var out = [Float](repeating: 0, count: w * h * 3)
            for y in 0..<h {
                for x in 0..<w {
                    var r: Float = 0, g: Float = 0, b: Float = 0
                    for (s, weight) in taps[horizontal ? x : y] {
                        let i = horizontal ? (y * width + s) * 3 : (s * width + x) * 3
                        r += weight * values[i]; g += weight * values[i + 1]; b += weight * values[i + 2]
                    }
                    let o = (y * w + x) * 3
                    out[o] = r; out[o + 1] = g; out[o + 2] = b
                }
            }
            return Plane(width: w, height: h, values: out)
        }

        mutating func roundToBytes() {
            for i in values.indices { values[i] = max(0, min(255, values[i].rounded())) }
        }
    }

    /// Per target index, the source indices and their normalised weights.
    static func weights(from source: Int, to target: Int, area: Bool) -> [[(Int, Float)]] {
        let scale = Double(source) / Double(target)
        return (0..<target).map { t in
            var taps: [(Int, Double)] = []
            if area {
                let start = Double(t) * scale, end = start + scale
                var s = Int(start)
                while Double(s) < end && s < source {
                    let covered = min(end, Double(s + 1)) - max(start, Double(s))
                    if covered > 1e-9 { taps.append((s, covered)) }
                    s += 1
                }
            } else {
                // PIL's Lanczos-3; the support widens when this axis shrinks.
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
