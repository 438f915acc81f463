import Foundation
import LoRACore

/// A rough time for a run before anything is loaded (`--dry-run`), from
/// figures measured on a 2-core AVX2 EPYC (2026-12-01, SD1.5-sized model,
/// 512², rank 32): 24 s per sample-step with U-Net modules, 31 s with
/// gradient checkpointing, about 1 s more when the text encoder trains; a VAE
/// encode ≈ 6.5 s per image. Scaled by image area (the attention's share
/// grows faster than the pixels: area^1.15, as lora-xyz's estimate), by
/// cores, ×1.3 for SD2's wider attention, and by the model's size against
/// SD1.5's: two thirds of a step (convolutions and linear layers) follow the
/// U-Net's weight count, the third spent in attention follows its width
/// (the score matrices do not shrink with the weights), and the VAE encode
/// follows the encoder's weights. Rough by design: the real figure is the
/// progress bar's s/it.
public enum TrainingEstimate {
    /// SD1.5's weight counts: `model.diffusion_model.*`, and `first_stage_model.encoder.*` with `quant_conv`.
    public static let sd15UNetWeights = 859_520_964.0, sd15EncoderWeights = 34_163_664.0

    /// The model's step and encode time against SD1.5's, from its tensors' shapes; 1 for what it cannot count.
    public static func modelScale(_ file: ModelFile) -> (unet: Double, encoder: Double) {
        var unet = 0.0, encoder = 0.0
        for tensor in file.tensors {
            if tensor.name.hasPrefix("model.diffusion_model.") { unet += Double(tensor.elementCount) }
            if tensor.name.hasPrefix("first_stage_model.encoder.") || tensor.name.hasPrefix("first_stage_model.quant_conv.") {
                encoder += Double(tensor.elementCount)
            }
        }
        let width = file["model.diffusion_model.input_blocks.0.0.weight"].map { Double($0.shape.first ?? 320) } ?? 320
        let step = unet > 0 ? 2.0 / 3 * unet / sd15UNetWeights + 1.0 / 3 * width / 320 : 1
        return (step, encoder > 0 ? encoder / sd15EncoderWeights : 1)
    }

    public static func seconds(plan: DatasetPlan, steps: StepCount, checkpointing: Bool, textEncoder: Bool, sd2: Bool = false,
                               model: (unet: Double, encoder: Double) = (1, 1),
                               cores: Int = ProcessInfo.processInfo.activeProcessorCount) -> (caching: Double, training: Double) {
        let coreScale = 2 / Double(max(1, cores)) * (sd2 ? 1.3 : 1)
        func scale(_ r: Resolution) -> Double { pow(Double(r.width * r.height) / 262_144, 1.15) * coreScale }
        let perSample = ((checkpointing ? 31.0 : 24.0) + (textEncoder ? 1 : 0)) * model.unet, encode = 6.5 * model.encoder
        var epochSeconds = 0.0, cachingSeconds = 0.0
        // Images with random_crop, color_aug or a face crop go through the VAE at every step instead of once.
        for bucket in plan.buckets {
            let encoded = Double(bucket.entries.filter(plan.encodesEachStep).count)
            epochSeconds += (Double(bucket.entries.count) * perSample + encoded * encode) * scale(bucket.resolution)
        }
        for (i, image) in plan.images.enumerated() where !plan.encodesEachStep(i) {
            let flips = plan.subsets[image.subsetIndex].flipAugment ? 2.0 : 1.0
            cachingSeconds += encode * flips * scale(plan.buckets[plan.bucketOf[i]].resolution)
        }
        let epochs = Double(steps.totalSteps) / Double(max(1, steps.stepsPerEpoch))
        return (cachingSeconds, epochSeconds * epochs)
    }
}
