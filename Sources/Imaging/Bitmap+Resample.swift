import Foundation

/// Resizing the way sd-scripts prepares training images (library/utils.py
/// `resize_image`). Without a method: OpenCV's INTER_AREA when both sides
/// shrink, PIL's Lanczos otherwise. `--resize_interpolation` picks one:
/// "lanczos" and "box" through PIL, the others through OpenCV.
/// - PIL (Resample.c) convolves one axis at a time with its filter, whose
///   support widens by the scale when the axis shrinks (antialiasing), into
///   an 8-bit image: the axis whose pass leaves the smaller intermediate goes
///   first, and its overshoot is rounded and clipped between passes; so is ours.
/// - OpenCV (imgproc/resize.cpp) does not widen its kernels: INTER_LINEAR and
///   INTER_CUBIC (a = −0.75) take 2 and 4 source pixels around
///   (x + 0.5)·scale − 0.5, replicating the border; INTER_AREA averages each
///   footprint when both sides shrink and is a 2-tap filter with its own
///   weights otherwise; INTER_NEAREST_EXACT picks pixel centres in 16-bit fixed
///   point. The sum is rounded once at the end.
/// OpenCV and PIL keep their weights in fixed point; ours are floats, so a
/// pixel can land one level away (nearest is exact).
extension Bitmap {
    /// kohya's `--resize_interpolation` values (utils.py `validate_interpolation_fn`).
    public enum Interpolation: String, CaseIterable, Sendable {
        case lanczos, box, nearest, bilinear, linear, bicubic, cubic, area
    }

    public func resampled(width newWidth: Int, height newHeight: Int, interpolation: Interpolation? = nil) -> Bitmap {
        guard newWidth != width || newHeight != height else { return self }
        precondition(newWidth > 0 && newHeight > 0)
        let shrinks = newWidth <= width && newHeight <= height
        var method = interpolation ?? (shrinks ? .area : .lanczos)
        // OpenCV: "in case of scale_x && scale_y is equal to 2, INTER_AREA (fast) also is equal to INTER_LINEAR".
        if method == .bilinear || method == .linear, width == 2 * newWidth, height == 2 * newHeight { method = .area }
        var plane = Plane(width: width, height: height, values: pixels.map(Float.init))
        switch method {
        case .lanczos, .box:
            let filter: Filter = method == .box ? .box : .lanczos
            let horizontalFirst = newWidth * height <= width * newHeight
            for horizontal in horizontalFirst ? [true, false] : [false, true] {
                let (source, target) = horizontal ? (plane.width, newWidth) : (plane.height, newHeight)
                guard source != target else { continue }
                plane = plane.resampled(horizontal: horizontal, taps: Bitmap.convolution(filter, from: source, to: target))
                plane.roundToBytes()
            }
        default:
            let taps: (Int, Int) -> [[(Int, Float)]]
            switch method {
            case .area where shrinks: taps = Bitmap.areaFootprints
            case .nearest: taps = Bitmap.nearestExact
            default: taps = { Bitmap.openCVKernel(method, from: $0, to: $1) }
            }
            for horizontal in [true, false] {
                let (source, target) = horizontal ? (plane.width, newWidth) : (plane.height, newHeight)
                guard source != target else { continue }
                plane = plane.resampled(horizontal: horizontal, taps: taps(source, target))
            }
            plane.roundToBytes()
        }
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

    /// Per target index, the source indices and their normalised weights: INTER_AREA's footprints (each
    /// target pixel the mean of the source it covers, fractional pixels weighted by coverage).
    static func areaFootprints(from source: Int, to target: Int) -> [[(Int, Float)]] {
        let scale = Double(source) / Double(target)
        return (0..<target).map { t in
            var taps: [(Int, Double)] = []
            let start = Double(t) * scale, end = start + scale
            var s = Int(start)
            while Double(s) < end && s < source {
                let covered = min(end, Double(s + 1)) - max(start, Double(s))
                if covered > 1e-9 { taps.append((s, covered)) }
                s += 1
            }
            return normalised(taps)
        }
    }

    /// PIL's filters (Resample.c): the kernel and its support at scale 1.
    enum Filter {
        case lanczos, box
        var support: Double { self == .box ? 0.5 : 3 }
        func callAsFunction(_ x: Double) -> Double {
            switch self {
            case .box: return x > -0.5 && x <= 0.5 ? 1 : 0
            case .lanczos: return Bitmap.lanczos(x)
            }
        }
    }

    /// PIL's `precompute_coeffs`: the support widens by the scale when this axis shrinks.
    static func convolution(_ filter: Filter, from source: Int, to target: Int) -> [[(Int, Float)]] {
        let scale = Double(source) / Double(target)
        let filterScale = max(scale, 1), support = filter.support * filterScale
        return (0..<target).map { t in
            let center = (Double(t) + 0.5) * scale
            let lo = max(Int(center - support + 0.5), 0), hi = min(Int(center + support + 0.5), source)
            var taps: [(Int, Double)] = []
            for s in lo..<max(lo, hi) {
                let w = filter((Double(s) - center + 0.5) / filterScale)
                if w != 0 { taps.append((s, w)) }
            }
            if taps.isEmpty { taps = [(min(source - 1, Int(center)), 1)] }
            return normalised(taps)
        }
    }

    /// OpenCV's generic resize coefficients (resize.cpp `resize`, the `xofs`/`alpha` tables) for INTER_LINEAR,
    /// INTER_CUBIC and INTER_AREA where a side grows ("area mode").
    static func openCVKernel(_ method: Interpolation, from source: Int, to target: Int) -> [[(Int, Float)]] {
        let cubic = method == .bicubic || method == .cubic, areaMode = method == .area
        let inverseScale = Double(target) / Double(source), scale = 1 / inverseScale
        return (0..<target).map { t in
            var sx: Int, fx: Float
            if areaMode {
                sx = Int((Double(t) * scale).rounded(.down))
                let f = Float(Double(t + 1) - Double(sx + 1) * inverseScale)
                fx = f <= 0 ? 0 : f - f.rounded(.down)
            } else {
                let f = Float((Double(t) + 0.5) * scale - 0.5)
                sx = Int(f.rounded(.down))
                fx = f - Float(sx)
            }
            if !cubic {
                if sx < 0 { (fx, sx) = (0, 0) }
                if sx >= source - 1 { (fx, sx) = (0, source - 1) }
                return fx == 0 ? [(sx, Float(1))] : [(sx, 1 - fx), (sx + 1, fx)]
            }
            // interpolateCubic, A = −0.75; taps outside the image repeat its edge pixel.
            let a: Float = -0.75
            let c0 = ((a * (fx + 1) - 5 * a) * (fx + 1) + 8 * a) * (fx + 1) - 4 * a
            let c1 = ((a + 2) * fx - (a + 3)) * fx * fx + 1
            let c2 = ((a + 2) * (1 - fx) - (a + 3)) * (1 - fx) * (1 - fx) + 1
            let weights = [c0, c1, c2, 1 - c0 - c1 - c2]
            return (0..<4).map { k in (min(max(sx - 1 + k, 0), source - 1), weights[k]) }
        }
    }

    /// INTER_NEAREST_EXACT (resize.cpp `resizeNN_bitexact`): pixel centres, like PIL's and scikit-image's nearest.
    static func nearestExact(from source: Int, to target: Int) -> [[(Int, Float)]] {
        let step = ((source << 16) + target / 2) / target, start = step / 2 - source % 2
        return (0..<target).map { t in [(min((start + t * step) >> 16, source - 1), Float(1))] }
    }

    static func normalised(_ taps: [(Int, Double)]) -> [(Int, Float)] {
        let total = taps.reduce(0) { $0 + $1.1 }
        return taps.map { ($0.0, Float($0.1 / total)) }
    }

    static func lanczos(_ x: Double) -> Double {
        func sinc(_ v: Double) -> Double { v == 0 ? 1 : sin(Double.pi * v) / (Double.pi * v) }
        return abs(x) < 3 ? sinc(x) * sinc(x / 3) : 0
    }
}
