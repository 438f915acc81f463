import Imaging
import LoRACore

/// kohya's `alpha_mask` (train_util.py `load_image(alpha=True)`, custom_train_functions.py
/// `apply_masked_loss`): the image's alpha channel, resized and cropped with the image, as alpha/255
/// at pixel size (what kohya's .npz stores as `alpha_mask`), then averaged over each 8×8 block
/// (`interpolate(mode="area")` to the latent size) and multiplied into the loss element by element.
/// An image without alpha is opaque (kohya's convert("RGBA")): a mask of ones.
public enum AlphaMask {
    /// The alpha plane resized as its image: it rides through the same filter in a bitmap's three channels.
    public static func resized(_ alpha: [UInt8], width: Int, height: Int, to size: Resolution, interpolation: Bitmap.Interpolation? = nil) -> Bitmap {
        var pixels = [UInt8](repeating: 0, count: alpha.count * 3)
        for (i, a) in alpha.enumerated() { (pixels[3 * i], pixels[3 * i + 1], pixels[3 * i + 2]) = (a, a, a) }
        return Bitmap(width: width, height: height, pixels: pixels).resampled(width: size.width, height: size.height, interpolation: interpolation)
    }

    /// The bucket's crop of a resized alpha (centred, or from `origin`) as alpha/255, [bucket.height × bucket.width].
    public static func pixelMask(_ alpha: Bitmap, bucket: Resolution, origin: (left: Int, top: Int)? = nil) -> [Float] {
        let left = origin?.left ?? max(0, alpha.width - bucket.width) / 2, top = origin?.top ?? max(0, alpha.height - bucket.height) / 2
        var mask = [Float](repeating: 0, count: bucket.width * bucket.height)
        for y in 0..<bucket.height {
            for x in 0..<bucket.width { mask[y * bucket.width + x] = Float(alpha.pixels[((top + y) * alpha.width + left + x) * 3]) / 255 }
        }
        return mask
    }

    /// The loss mask at latent size [h/8 × w/8]: each 8×8 block's mean, mirrored for a flipped sample.
    public static func latentMask(_ pixelMask: [Float], bucket: Resolution, flipped: Bool = false) -> [Float] {
        let (w, h) = (bucket.width / 8, bucket.height / 8)
        var mask = [Float](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                var sum: Float = 0
                for dy in 0..<8 { for dx in 0..<8 { sum += pixelMask[(8 * y + dy) * bucket.width + 8 * x + dx] } }
                mask[y * w + (flipped ? w - 1 - x : x)] = sum / 64
            }
        }
        return mask
    }
}
