import Diffusion
import LoRACore

/// Every image encoded once before training (sd-scripts `--cache_latents`):
/// a *sample* of the VAE's latent distribution (not its mean), scaled by the
/// model's factor, frozen for the run; with flip augmentation the mirrored
/// image's latents too. NaNs from the VAE become 0 as sd-scripts does.
public struct LatentCache: Sendable {
    /// Per image of the plan: [1, 4, h/8, w/8], and the mirrored one when flips are on.
    public private(set) var latents: [Tensor] = []
    public private(set) var flipped: [Tensor?] = []

    public static func encode(plan: DatasetPlan, encoder: VAEEncoder, random: inout TrainingRandom,
                              progress: (Int, Int) -> Void = { _, _ in }) throws(ModelError) -> LatentCache {
        var cache = LatentCache()
        for (i, image) in plan.images.enumerated() {
            let bucket = plan.buckets[plan.bucketOf[i]].resolution
            let flips = plan.subsets[image.subsetIndex].flipAugment ? [false, true] : [false]
            var encoded: [Tensor] = []
            for flip in flips {
                let pixels = try TrainingImage.pixels(image.path, bucket: bucket, resized: plan.resizedSize[i], flipped: flip)
                let count = 4 * (bucket.width / 8) * (bucket.height / 8)
                var latents = encoder.encode(pixels, noise: random.normal(count))
                for j in latents.values.indices where !latents.values[j].isFinite { latents.values[j] = 0 }
                encoded.append(latents)
            }
            cache.latents.append(encoded[0])
            cache.flipped.append(encoded.count > 1 ? encoded[1] : nil)
            progress(i + 1, plan.images.count)
        }
        return cache
    }
}
