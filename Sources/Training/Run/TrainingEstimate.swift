import Foundation
import LoRACore

/// A rough time for a run before anything is loaded (`--dry-run`), from one
/// host's measured figures (`HostFigures`: the AVX2 EPYC's or the AVX-512
/// Xeon's, whichever kernel path this CPU takes) for an SD1.5-sized model at
/// 512² with kohya's LoRA at rank 32: seconds per sample-step with U-Net
/// modules, with gradient checkpointing, the text encoder's share, and a VAE
/// encode per image. LyCORIS's networks cost more (`networkFactor`). Scaled by
/// image area (the attention's share grows faster than the pixels: area^1.15,
/// as lora-xyz's estimate), by cores, ×1.3 for SD2's wider attention, and by
/// the model's size against SD1.5's: two thirds of a step (convolutions and
/// linear layers) follow the U-Net's weight count, the third spent in
/// attention follows its width (the score matrices do not shrink with the
/// weights), and the VAE encode follows the encoder's weights. Rough by
/// design: the shared hosts move a step by ±10–20% from run to run, and the
/// real figure is the progress bar's s/it.
public enum TrainingEstimate {
    /// One host's figures, 2 cores, fp32 (Benchmarks/README.md).
    public struct HostFigures: Sendable, Equatable {
        /// How the estimate names the host it scales from.
        public var name: String
        /// Seconds per sample-step with U-Net modules, without and with gradient checkpointing.
        public var step: Double, checkpointedStep: Double
        /// What training the text encoder's modules adds to a step.
        public var textEncoder: Double
        /// A VAE encode of one 512² image.
        public var encode: Double

        /// AMD EPYC, AVX2 (`lora-bench train`): 14 s a step, 18 s with checkpointing (the shared host's load moved the
        /// step medians from 11.5 to 20 s since 2026-12-02; 11.8 / 16.7 s on 2026-12-03 06:50), about 1 s more when
        /// the text encoder trains; a VAE encode ≈ 6.5 s per image (2026-12-01).
        public static let avx2EPYC = HostFigures(name: "a 2-core AVX2 EPYC", step: 14, checkpointedStep: 18, textEncoder: 1, encode: 6.5)
        /// Intel Xeon (Emerald Rapids), AVX-512 without AMX: `lora-bench train` steps of 10.0–11.6 s (2026-12-03),
        /// `lora-bench kohya-train` steps with the text encoder training of 9.5–12.0 s and 12.3–13.4 s with
        /// checkpointing (2026-12-03/04), and its caching ETAs of 4.0–4.3 s per 512² image.
        public static let avx512Xeon = HostFigures(name: "a 2-core AVX-512 Xeon", step: 10.5, checkpointedStep: 12.5, textEncoder: 1, encode: 4.2)

        /// The figures of the host whose kernel path this CPU takes under the kernels' ceiling (the portable path is
        /// slower than either and takes the EPYC's, the slower of the two).
        public static var thisHost: HostFigures {
            let path = KernelPaths.available.last { $0.rawValue <= KernelPaths.ceiling.rawValue } ?? .portable
            return path == .avx512 ? avx512Xeon : avx2EPYC
        }
    }

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
                               host: HostFigures = .thisHost,
                               cores: Int = ProcessInfo.processInfo.activeProcessorCount) -> (caching: Double, training: Double) {
        let coreScale = 2 / Double(max(1, cores)) * (sd2 ? 1.3 : 1)
        func scale(_ r: Resolution) -> Double { pow(Double(r.width * r.height) / 262_144, 1.15) * coreScale }
        let perSample = ((checkpointing ? host.checkpointedStep : host.step) * network + (textEncoder ? host.textEncoder : 0)) * model.unet
        let encode = host.encode * model.encoder
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
