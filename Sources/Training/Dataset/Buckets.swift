import Foundation

/// A bucket's resolution in pixels (width, height), kohya's `reso` tuple.
public struct Resolution: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var width: Int, height: Int
    public init(_ width: Int, _ height: Int) {
        self.width = width
        self.height = height
    }
    public static func < (a: Resolution, b: Resolution) -> Bool { (a.width, a.height) < (b.width, b.height) }
    public var description: String { "(\(width), \(height))" }
    /// The sides a training resolution may have (multiples of 8, the latent grid): the VAE needs 64 at least, and
    /// past 8192 a single image's activations would not fit in any machine's memory.
    public static let trainingSides = 64...8192
    /// Both sides in `trainingSides` and multiples of 8: what --resolution and a dataset config's resolution may be.
    public var isTrainingSize: Bool {
        Resolution.trainingSides.contains(width) && Resolution.trainingSides.contains(height) && width % 8 == 0 && height % 8 == 0
    }
    var aspect: Double { Double(width) / Double(height) }
}

/// Aspect-ratio buckets exactly as sd-scripts makes and chooses them
/// (library/model_util.py `make_bucket_resolutions`, library/train_util.py
/// `BucketManager.select_bucket`), so the same folder gives the same buckets,
/// counts and steps as kohya.
public struct BucketSet: Sendable {
    /// kohya's enable_bucket and bucket_no_upscale for this mode.
    public var bucketed: Bool { mode != .fixed }
    public var noUpscale: Bool { if case .noUpscale = mode { true } else { false } }

    public enum Mode: Sendable, Equatable {
        /// `--enable_bucket`: the predefined buckets of area ≤ resolution.
        case predefined(min: Int, max: Int, step: Int)
        /// `--enable_bucket --bucket_no_upscale`: buckets from each image's own size.
        case noUpscale(step: Int)
        /// No bucketing: one bucket of the resolution; images are cropped, not resized.
        case fixed
    }

    public let resolution: Resolution
    public let mode: Mode
    /// kohya's min/max_bucket_reso after `adjust_min_max_bucket_reso_by_steps`, which it keeps (and records)
    /// for both bucketed modes; without buckets none.
    public var limits: (min: Int, max: Int)? {
        if case let .predefined(minimum, maximum, _) = mode { return (minimum, maximum) }
        return noUpscaleLimits
    }
    /// The limits a `.noUpscale` set was made under (its buckets come from each image's size instead).
    public var noUpscaleLimits: (min: Int, max: Int)?
    /// The predefined buckets, sorted (empty without them).
    public let predefined: [Resolution]

    public init(resolution: Resolution, mode: Mode) {
        self.resolution = resolution
        self.mode = mode
        switch mode {
        case let .predefined(minimum, maximum, step): predefined = BucketSet.resolutions(area: resolution, min: minimum, max: maximum, step: step)
        case .fixed: predefined = [resolution]
        case .noUpscale: predefined = []
        }
    }

    /// kohya's list: the square of side ⌊√area/step⌋·step, then for every width
    /// from min to max in steps the tallest height (a multiple of step, ≤ max)
    /// that keeps the area, and its transpose.
    public static func resolutions(area max: Resolution, min minimum: Int, max maximum: Int, step: Int) -> [Resolution] {
        let area = max.width * max.height
        var set: Set<Resolution> = []
        let side = Int(Double(area).squareRoot()) / step * step
        set.insert(Resolution(side, side))
        var width = minimum
        while width <= maximum {
            let height = Swift.min(maximum, area / width / step * step)
            if height >= minimum {
                set.insert(Resolution(width, height))
                set.insert(Resolution(height, width))
            }
            width += step
        }
        return set.sorted()
    }

    /// kohya's `adjust_min_max_bucket_reso_by_steps`: min rounded down and max
    /// up to multiples of the step; nil with the reason when the resolution
    /// does not fit between them.
    public static func adjustedLimits(resolution: Resolution, min minimum: Int, max maximum: Int, step: Int) -> (min: Int, max: Int, error: String?) {
        // A TOML's bucket_reso_steps is checked here too (the command line's is checked by the parser).
        guard step >= 8, step % 8 == 0 else { return (minimum, maximum, "bucket_reso_steps \(step) is not a positive multiple of 8") }
        let lo = minimum - minimum % step
        let hi = maximum % step == 0 ? maximum : maximum + step - maximum % step
        // kohya goes on with 0 and stops with a ZeroDivisionError in make_bucket_resolutions.
        if lo <= 0 { return (lo, hi, "--min-bucket-reso \(minimum) rounds down to \(lo) at --bucket-reso-steps \(step): give at least \(step)") }
        if Swift.min(resolution.width, resolution.height) < lo { return (lo, hi, "--min-bucket-reso \(lo) is larger than the resolution's smaller side") }
        if Swift.max(resolution.width, resolution.height) > hi { return (lo, hi, "--max-bucket-reso \(hi) is smaller than the resolution's larger side") }
        return (lo, hi, nil)
    }

    /// The bucket for an image, the size it is resized to before the crop, and
    /// the aspect-ratio error (bucket − image).
    public func select(width: Int, height: Int) -> (bucket: Resolution, resized: Resolution, aspectError: Double) {
        let aspect = Double(width) / Double(height)
        switch mode {
        case .predefined, .fixed:
            var bucket = Resolution(width, height)
            if !predefined.contains(bucket) {
                // numpy's argmin: the first of equal errors.
                var best = 0, bestError = Double.infinity
                for (i, r) in predefined.enumerated() where abs(r.aspect - aspect) < bestError {
                    (best, bestError) = (i, abs(r.aspect - aspect))
                }
                bucket = predefined[best]
            }
            // Cover the bucket: the side that is relatively shorter fits exactly.
            let scale = aspect > bucket.aspect ? Double(bucket.height) / Double(height) : Double(bucket.width) / Double(width)
            let resized = Resolution(Int(Double(width) * scale + 0.5), Int(Double(height) * scale + 0.5))
            return (bucket, resized, bucket.aspect - aspect)
        case let .noUpscale(step):
            let maxArea = resolution.width * resolution.height
            var resized = Resolution(width, height)
            if width * height > maxArea {
                func roundToStep(_ x: Double) -> Int { let v = Int(x + 0.5); return v - v % step }
                let w = (Double(maxArea) * aspect).squareRoot(), h = Double(maxArea) / w
                let widthRounded = roundToStep(w), heightInWidthRounded = roundToStep(Double(widthRounded) / aspect)
                let aspectWidthRounded = Double(widthRounded) / Double(heightInWidthRounded)
                let heightRounded = roundToStep(h), widthInHeightRounded = roundToStep(Double(heightRounded) * aspect)
                let aspectHeightRounded = Double(widthInHeightRounded) / Double(heightRounded)
                if abs(aspectWidthRounded - aspect) < abs(aspectHeightRounded - aspect) {
                    resized = Resolution(widthRounded, Int(Double(widthRounded) / aspect + 0.5))
                } else {
                    resized = Resolution(Int(Double(heightRounded) * aspect + 0.5), heightRounded)
                }
            }
            let bucket = Resolution(resized.width - resized.width % step, resized.height - resized.height % step)
            return (bucket, resized, bucket.aspect - aspect)
        }
    }
}
