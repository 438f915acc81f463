import Diffusion
import Imaging
import LoRACore

/// An image as the VAE sees it for training (sd-scripts library/train_util.py
/// `trim_and_resize_if_required` on the latent-caching path): resized to the
/// size its bucket chose (area when shrinking, Lanczos when enlarging, or the
/// subset's `resize_interpolation`), the
/// excess trimmed evenly from both sides (`excess // 2` first), optionally
/// mirrored, pixels to [-1, 1] as x/127.5 − 1. [1, 3, height, width].
public enum TrainingImage {
    /// The image decoded and resized once (a flipped copy crops from the same pixels).
    public static func resized(_ path: String, to size: Resolution, interpolation: Bitmap.Interpolation? = nil) throws(ModelError) -> Bitmap {
        try resized(path, to: size, alpha: false, interpolation: interpolation).image
    }

    /// The same, with its alpha plane resized alike when asked for and present (`AlphaMask`).
    public static func resized(_ path: String, to size: Resolution, alpha: Bool,
                               interpolation: Bitmap.Interpolation? = nil) throws(ModelError) -> (image: Bitmap, alpha: Bitmap?) {
        let read: (image: Bitmap, alpha: [UInt8]?)
        do { read = try ImageFile.readWithAlpha(path) } catch { throw ModelError(.invalid, error.message, file: path) }
        let plane = alpha ? read.alpha.map {
            AlphaMask.resized($0, width: read.image.width, height: read.image.height, to: size, interpolation: interpolation)
        } : nil
        return (read.image.resampled(width: size.width, height: size.height, interpolation: interpolation), plane)
    }

    /// The bucket's crop of an already resized image: centred, or from `origin` (kohya's random_crop).
    public static func pixels(_ scaled: Bitmap, path: String, bucket: Resolution, flipped: Bool = false,
                              origin: (left: Int, top: Int)? = nil) throws(ModelError) -> Tensor {
        let left = origin?.left ?? max(0, scaled.width - bucket.width) / 2, top = origin?.top ?? max(0, scaled.height - bucket.height) / 2
        guard scaled.width >= bucket.width, scaled.height >= bucket.height else {
            throw ModelError(.mismatch, "image of \(scaled.width)x\(scaled.height) is smaller than its bucket \(bucket.width)x\(bucket.height)",
                             file: path)
        }
        let plane = bucket.width * bucket.height
        var values = [Float](repeating: 0, count: 3 * plane)
        for y in 0..<bucket.height {
            for x in 0..<bucket.width {
                let sx = left + (flipped ? bucket.width - 1 - x : x)
                let s = ((top + y) * scaled.width + sx) * 3
                for c in 0..<3 { values[c * plane + y * bucket.width + x] = Float(scaled.pixels[s + c]) / 127.5 - 1 }
            }
        }
        return Tensor(shape: [1, 3, bucket.height, bucket.width], values: values)
    }
}
