import Diffusion
import Imaging
import LoRACore

/// Every image encoded once before training (sd-scripts `--cache_latents`):
/// a *sample* of the VAE's latent distribution (not its mean), scaled by the
/// model's factor, frozen for the run; with flip augmentation the mirrored
/// image's latents too. NaNs from the VAE become 0 as sd-scripts does.
/// Images of subsets with `random_crop`, `color_aug` or face crops are not cached
/// (kohya cannot either): they keep their pixels, resized to cover their bucket
/// or, where kohya crops them unresized, as they are; encoded at every step.
public struct LatentCache: Sendable {
    /// Per image of the plan: [1, 4, h/8, w/8], and the mirrored one when flips are on; nil for the
    /// images encoded at every step.
    public private(set) var latents: [Tensor?] = []
    public private(set) var flipped: [Tensor?] = []
    /// Loss masks at latent size of the `alpha_mask` images that have alpha, and mirrored for the flipped
    /// latents; nil elsewhere (a mask of ones).
    public private(set) var masks: [[Float]?] = []
    public private(set) var flippedMasks: [[Float]?] = []
    /// The images encoded at every step, resized to their bucket's size (not yet cropped) or as they are
    /// (`DatasetPlan.cropsUnresized`), by plan index,
    /// with their resized alpha for `alpha_mask`.
    public private(set) var perStep: [Int: Bitmap] = [:]
    public private(set) var perStepAlpha: [Int: Bitmap] = [:]
    /// Images whose latents came from `.npz` files on disk.
    public private(set) var reused = 0

    /// `disk`: read and write kohya's per-image `.npz` caches (`--cache_latents_to_disk`).
    public static func encode(plan: DatasetPlan, encoder: VAEEncoder, random: inout TrainingRandom, disk: DiskLatentCache? = nil,
                              progress: (Int, Int) -> Void = { _, _ in }) throws(ModelError) -> LatentCache {
        var cache = LatentCache()
        for (i, image) in plan.images.enumerated() {
            let bucket = plan.buckets[plan.bucketOf[i]].resolution, resized = plan.resizedSize[i]
            let subset = plan.subsets[image.subsetIndex]
            if plan.encodesEachStep(i) {
                // Images cropped as they are (no buckets: random_crop, face crops) keep their own size.
                let size = plan.cropsUnresized(i) ? Resolution(image.width, image.height) : resized
                (cache.perStep[i], cache.perStepAlpha[i]) = try TrainingImage.resized(image.path, to: size, alpha: subset.alphaMask,
                                                                                         interpolation: subset.resizeInterpolation)
                cache.latents.append(nil)
                cache.flipped.append(nil)
                cache.masks.append(nil)
                cache.flippedMasks.append(nil)
                progress(i + 1, plan.images.count)
                continue
            }
            let flips = subset.flipAugment ? [false, true] : [false]
            // The sample noise is drawn either way, so a run's other latents do not depend on what was on disk.
            let count = 4 * (bucket.width / 8) * (bucket.height / 8)
            let noises = flips.map { _ in random.normal(count) }
            if let disk, let (latents, flipped, pixelMask) = try disk.load(image, bucket: bucket, resized: resized, flipped: flips.count > 1,
                                                                          alphaMask: subset.alphaMask, interpolation: subset.resizeInterpolation) {
                cache.latents.append(latents)
                cache.flipped.append(flipped)
                cache.appendMasks(pixelMask, bucket: bucket, flips: flips.count > 1)
                cache.reused += 1
                progress(i + 1, plan.images.count)
                continue
            }
            var encoded: [Tensor] = []
            let (scaled, alpha) = try TrainingImage.resized(image.path, to: resized, alpha: subset.alphaMask,
                                                                                         interpolation: subset.resizeInterpolation) // once, for the flipped copy too
            for (flip, noise) in zip(flips, noises) {
                let pixels = try TrainingImage.pixels(scaled, path: image.path, bucket: bucket, flipped: flip)
                var latents = encoder.encode(pixels, noise: noise)
                for j in latents.values.indices where !latents.values[j].isFinite { latents.values[j] = 0 }
                encoded.append(latents)
            }
            cache.latents.append(encoded[0])
            cache.flipped.append(encoded.count > 1 ? encoded[1] : nil)
            // kohya stores a mask for every alpha_mask image, ones for an opaque one.
            let pixelMask = subset.alphaMask ? alpha.map { AlphaMask.pixelMask($0, bucket: bucket) } ?? [Float](repeating: 1, count: bucket.width * bucket.height)
                                             : nil
            cache.appendMasks(pixelMask, bucket: bucket, flips: flips.count > 1)
            try disk?.save(image, bucket: bucket, resized: resized, latents: encoded[0], flipped: encoded.count > 1 ? encoded[1] : nil,
                           alphaMask: pixelMask, interpolation: subset.resizeInterpolation)
            progress(i + 1, plan.images.count)
        }
        return cache
    }

    /// A pixel mask's latent masks (nil when it is all ones: the same as none).
    mutating func appendMasks(_ pixelMask: [Float]?, bucket: Resolution, flips: Bool) {
        guard let pixelMask, pixelMask.contains(where: { $0 != 1 }) else {
            masks.append(nil)
            flippedMasks.append(nil)
            return
        }
        masks.append(AlphaMask.latentMask(pixelMask, bucket: bucket))
        flippedMasks.append(flips ? AlphaMask.latentMask(pixelMask, bucket: bucket, flipped: true) : nil)
    }
}
