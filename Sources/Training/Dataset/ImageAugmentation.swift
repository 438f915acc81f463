import Foundation
import Imaging

/// kohya's per-step image augmentations (sd-scripts library/train_util.py), for the subsets it cannot
/// cache latents of (`is_latent_cacheable`: `color_aug` or `random_crop`): those images are resized once
/// and then cropped, colour-augmented, mirrored and encoded at every step, in kohya's order (flip decided
/// first, then the crop, then the colour). The draws come from the run's own generator, not Python's.
public enum ImageAugmentation {
    /// `trim_and_resize_if_required` with `random_crop`: the excess over the bucket is trimmed at
    /// `random.randint(0, trim)` (both ends inclusive), the width first, then the height.
    public static func randomCropOrigin(width: Int, height: Int, bucket: Resolution, random: inout some DataRandom) -> (left: Int, top: Int) {
        let left = width > bucket.width ? random.integer(below: width - bucket.width + 1) : 0
        let top = height > bucket.height ? random.integer(below: height - bucket.height + 1) : 0
        return (left, top)
    }

    /// Without buckets kohya does not resize an image it encodes at every step (`__getitem__`'s uncached
    /// branch): random_crop takes a target-sized window of the image as it is, at `random.randint(0, excess)`,
    /// the height first. The image covers the target (the plan checks it).
    public static func unbucketedCropOrigin(width: Int, height: Int, target: Resolution, random: inout some DataRandom) -> (left: Int, top: Int) {
        let top = height > target.height ? random.integer(in: 0...(height - target.height)) : 0
        let left = width > target.width ? random.integer(in: 0...(width - target.width)) : 0
        return (left, top)
    }

    /// One of `AugHelper.color_aug`'s outcomes.
    public enum ColorChange: Equatable, Sendable {
        case none
        /// OpenCV 8-bit hue units (0..<180 is a full turn), already made non-negative as kohya does (180 + shift).
        case hueShift(Double)
        /// `np.clip(image ** gamma, 0, 255)` on the 0..255 values: kohya's formula, far stronger than a gamma
        /// on [0, 1] would be (0.95 takes 200 to 153).
        case gamma(Double)
    }

    /// `color_aug`'s draws: a third of the images change; of those, half shift the hue by uniform(−8, 8),
    /// half take a gamma of uniform(0.95, 1.05).
    public static func drawColorChange(random: inout some DataRandom) -> ColorChange {
        guard random.uniform() <= 0.33 else { return .none }
        if random.uniform() > 0.5 {
            let shift = -8 + 16 * random.uniform()
            return .hueShift(shift < 0 ? 180 + shift : shift)
        }
        return .gamma(0.95 + 0.1 * random.uniform())
    }

    public static func apply(_ change: ColorChange, to bitmap: inout Bitmap) {
        switch change {
        case .none: return
        case let .gamma(gamma):
            // Computed per value once (256 entries); astype(uint8) truncates.
            let table = (0..<256).map { UInt8(min(255, pow(Double($0), gamma))) }
            for i in bitmap.pixels.indices { bitmap.pixels[i] = table[Int(bitmap.pixels[i])] }
        case let .hueShift(shift):
            for p in stride(from: 0, to: bitmap.pixels.count, by: 3) {
                // kohya hands its RGB array to COLOR_BGR2HSV: the first channel is taken as blue.
                var (h, s, v) = OpenCVHSV.fromBGR(bitmap.pixels[p], bitmap.pixels[p + 1], bitmap.pixels[p + 2])
                // (hsv[..., 0] + shift) % 180 in float64, stored back into uint8: truncated.
                h = UInt8((Double(h) + shift).truncatingRemainder(dividingBy: 180))
                (bitmap.pixels[p], bitmap.pixels[p + 1], bitmap.pixels[p + 2]) = OpenCVHSV.toBGR(h, s, v)
            }
        }
    }
}

/// OpenCV's 8-bit HSV (imgproc color_hsv: RGB2HSV_b with its fixed-point tables, HSV2RGB_b through
/// floats), H in 0..<180, as kohya's colour augmentation calls it.
enum OpenCVHSV {
    static let shift = 12
    static let saturationTable: [Int] = (0..<256).map { $0 == 0 ? 0 : Int((Double(255 << shift) / Double($0)).rounded(.toNearestOrEven)) }
    static let hueTable: [Int] = (0..<256).map { $0 == 0 ? 0 : Int((Double(180 << shift) / (6 * Double($0))).rounded(.toNearestOrEven)) }

    static func fromBGR(_ b8: UInt8, _ g8: UInt8, _ r8: UInt8) -> (UInt8, UInt8, UInt8) {
        let (b, g, r) = (Int(b8), Int(g8), Int(r8))
        let v = max(b, g, r), diff = v - min(b, g, r)
        let half = 1 << (shift - 1)
        let s = (diff * saturationTable[v] + half) >> shift
        var h = v == r ? g - b : v == g ? b - r + 2 * diff : r - g + 4 * diff
        h = (h * hueTable[diff] + half) >> shift
        if h < 0 { h += 180 }
        return (UInt8(h), UInt8(s), UInt8(v))
    }

    static func toBGR(_ h8: UInt8, _ s8: UInt8, _ v8: UInt8) -> (UInt8, UInt8, UInt8) {
        let s = Float(s8) * (1 / 255), v = Float(v8) * (1 / 255)
        var b = v, g = v, r = v
        if s != 0 {
            var h = Float(h8) * (6 / 180)
            while h >= 6 { h -= 6 }
            let sector = Int(h.rounded(.down))
            h -= Float(sector)
            let tab = [v, v * (1 - s), v * (1 - s * h), v * (1 - s * (1 - h))]
            let order = [[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]][sector]
            (b, g, r) = (tab[order[0]], tab[order[1]], tab[order[2]])
        }
        func byte(_ x: Float) -> UInt8 { UInt8(max(0, min(255, (x * 255).rounded(.toNearestOrEven)))) }
        return (byte(b), byte(g), byte(r))
    }
}
