import Foundation
import LoRACore

/// A rough time for a run before anything is loaded (`--dry-run`), from
/// figures measured on a 2-core AVX2 EPYC (`lora-bench train`, SD1.5-sized
/// model, 512², kohya's LoRA at rank 32): 14 s per sample-step with U-Net
/// modules, 18 s with gradient checkpointing (the shared host's load moves
/// them: step medians from 11.5 to 20 s since 2026-12-02; 11.8 / 16.7 s on
/// 2026-12-03 06:50; checkpointing cost 1.25–1.43× a step while it recomputed
/// every block, 1.16–1.29× since the coarse levels keep their activations,
/// measured on the Intel host 2026-12-03), about 1 s more when the text encoder trains; a VAE
/// encode ≈ 6.5 s per image (2026-12-01). LyCORIS's networks cost more
/// (`networkFactor`). Scaled by image area (the attention's share
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

    /// A step's time against kohya's LoRA on the same layers, from `lora-bench train --algo` beside it (same AMD host,
    /// 2026-12-03, pairs; Benchmarks/README.md): LoHa 1.28× (its ΔW and the factors' gradients formed at every step),
    /// LoKr 1.14×, (IA)^3 taken as LoKr (the same folding into the weight; not measured), LoCon 1; LyCORIS's max norm on
    /// LoHa another 1.07× (every ΔW formed again for its norm; the others' norms come from small Gram matrices); DoRA
    /// another 1.19× on LoCon (folded into the weight instead of a side path) and 1.07× on LoHa (07:30, pairs; LoKr
    /// taken as LoHa, not measured).
    public static func networkFactor(_ algorithm: LyCORISAlgorithm?, maxNorm: Bool = false, dora: Bool = false) -> Double {
        switch algorithm {
        case .loha: return 1.28 * (maxNorm ? 1.07 : 1) * (dora ? 1.07 : 1)
        case .lokr: return 1.14 * (dora ? 1.07 : 1)
        case .ia3: return 1.14
        case .locon: return dora ? 1.19 : 1
        case nil: return 1
        }
    }

    /// `network`: `networkFactor` of the run's network.
    public static func seconds(plan: DatasetPlan, steps: StepCount, checkpointing: Bool, textEncoder: Bool, sd2: Bool = false,
                               model: (unet: Double, encoder: Double) = (1, 1), network: Double = 1,
                               cores: Int = ProcessInfo.processInfo.activeProcessorCount) -> (caching: Double, training: Double) {
        let coreScale = 2 / Double(max(1, cores)) * (sd2 ? 1.3 : 1)
        func scale(_ r: Resolution) -> Double { pow(Double(r.width * r.height) / 262_144, 1.15) * coreScale }
        let perSample = ((checkpointing ? 18.0 : 14.0) * network + (textEncoder ? 1 : 0)) * model.unet, encode = 6.5 * model.encoder
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
