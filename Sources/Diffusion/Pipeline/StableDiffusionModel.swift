import Foundation
import LoRACore

/// What the U-Net predicts. Not stored in checkpoints; SD2 768-v models predict v.
public enum Prediction: String, Sendable, Codable, CaseIterable {
    case epsilon
    case v
}

/// A single-file SD1/SD2/SDXL checkpoint loaded for inference: text
/// conditioner, U-Net and VAE as float32 in memory, the file itself
/// memory-mapped only while loading.
public final class StableDiffusionModel: @unchecked Sendable {
    public let path: String
    /// The separate VAE file in use (`Options.vae`), if any.
    public let vaePath: String?
    /// The checkpoint, still mapped: LoRAs are planned against its keys and
    /// folded modules start from its weights.
    public let file: ModelFile
    public let family: Family
    public let config: ArchitectureConfig
    public let text: TextConditioner
    public let unet: UNet
    /// nil when loaded without it (`Options.loadDecoder`: a training run that samples nothing).
    public let decoder: VAEDecoder?
    /// nil when loaded without it, or after `releaseEncoder()`.
    public private(set) var encoder: VAEEncoder?
    public let prediction: Prediction
    /// Every weight the layers read: layer key → the checkpoint's own name.
    public let layerKeys: [String: String]
    /// The checkpoint's tensors that `Options.baseLoRAs` changed, as the layers hold them (by the checkpoint's names).
    public let bakedWeights: [String: [Float]]
    public let schedule = NoiseSchedule.standard

    public struct Options: Sendable {
        /// Override what the weights' shapes say (tests, unusual models).
        public var config: ArchitectureConfig?
        /// Override the prediction type (otherwise: metadata, then A1111's test for SD2).
        public var prediction: Prediction?
        public var loadEncoder = false
        /// The VAE decoder turns latents into images; a training run that renders no samples never uses it.
        public var loadDecoder = true
        public var weightPrecision = WeightPrecision.automatic
        /// A separate VAE file (A1111's "SD VAE" setting) instead of the checkpoint's own.
        public var vae: String?
        /// LoRAs merged into the weights as they load, as lora-merge bakes them (kohya's `--base_weights`:
        /// training on top of them).
        public var baseLoRAs: [LoRASpec] = []
        public init(config: ArchitectureConfig? = nil, prediction: Prediction? = nil, loadEncoder: Bool = false,
                    weightPrecision: WeightPrecision = .automatic, vae: String? = nil) {
            self.config = config
            self.prediction = prediction
            self.loadEncoder = loadEncoder
            self.weightPrecision = weightPrecision
            self.vae = vae
        }
    }

    public init(checkpoint path: String, tokenizer: BPETokenizer, options: Options = .init()) throws(ModelError) {
        EngineAllocator.configure()
        let file = try ModelFile.open(path)
        let (family, guess) = try StableDiffusionModel.renderableFamily(file)
        let config: ArchitectureConfig
        if let forced = options.config { config = forced } else { config = try ArchitectureConfig.infer(from: file, family: family) }
        try StableDiffusionModel.checkAttention(config, path: path)
        var weights = Weights(file)
        weights.halfStorage = StableDiffusionModel.keepsHalf(file, options.weightPrecision)
        weights.replacements = try StableDiffusionModel.baked(options.baseLoRAs, into: file)
        let log = Weights.KeyLog()
        weights.log = log
        bakedWeights = weights.replacements
        self.path = path
        self.vaePath = options.vae
        self.file = file
        self.family = family
        self.config = config
        let layout = ModelLayout(config)
        var encoders: [CLIPTextEncoder] = []
        for (index, te) in config.textEncoders.enumerated() {
            encoders.append(try CLIPTextEncoder(weights, prefix: layout.textEncoderPrefix(index), config: te))
        }
        text = TextConditioner(family: family, encoders: encoders, tokenizer: tokenizer)
        unet = try UNet(weights, config: config)
        let vaeWeights = try options.vae.map { path throws(ModelError) in try StableDiffusionModel.vaeWeights(path) } ?? weights
        decoder = options.loadDecoder ? try VAEDecoder(vaeWeights, config: config) : nil
        encoder = options.loadEncoder ? try VAEEncoder(vaeWeights, config: config) : nil
        if let forced = options.prediction {
            prediction = forced
        } else if guess.variant?.contains("v-prediction") == true {
            prediction = .v
        } else if family == .sd2 {
            prediction = StableDiffusionModel.looksLikeVPrediction(unet) ? .v : .epsilon
        } else {
            prediction = .epsilon
        }
        layerKeys = log.resolved
        // The mapping is no longer needed: everything is in memory.
        file.file.advise(.dontNeed, offset: 0, count: file.file.size)
    }

    /// Drops the VAE encoder's weights (SD1.5: 34 M parameters, 137 MB) once a training run has cached every
    /// latent it needs, so the U-Net's step has that memory. Not while another thread may be encoding.
    public func releaseEncoder() { encoder = nil }

    /// The merged values of every tensor the LoRAs change, by the checkpoint's key (lora-merge's plan and arithmetic).
    static func baked(_ specs: [LoRASpec], into file: ModelFile) throws(ModelError) -> [String: [Float]] {
        guard !specs.isEmpty else { return [:] }
        let loras = try specs.map { spec throws(ModelError) in try LoadedLoRA.open(spec) }
        for lora in loras { try CheckpointBaker.refuseNonFinite(lora) }
        let plan = try MergePlan.make(base: file, loras: loras, allowUnmatched: false)
        var values: [String: [Float]] = [:]
        let paths = loras.map(\.path)
        for key in Set(plan.contributions.keys).union(plan.biasContributions.keys) {
            guard let tensor = file[key] else { continue }
            values[key] = try CheckpointBaker.mergedValues(tensor, weightContributions: plan.contributions[key] ?? [],
                                                           biasContributions: plan.biasContributions[key] ?? [], loraPaths: paths)
        }
        return values
    }

    /// The family of a checkpoint this engine can render text-to-image with,
    /// or an error saying why not (another architecture, a refiner, an inpainting model…).
    public static func renderableFamily(_ file: ModelFile) throws(ModelError) -> (Family, FamilyGuess) {
        try file.requireCheckpoint()
        let guess = FamilyDetection.checkpoint(file)
        if let other = guess.otherArchitecture {
            throw ModelError(.unsupported, "this is a \(other) model; only SD1.x, SD2.x and SDXL checkpoints can be rendered", file: file.path)
        }
        guard let family = guess.family else {
            throw ModelError(.unsupported, "not a Stable Diffusion checkpoint this engine knows (\(guess.label))", file: file.path)
        }
        if let variant = guess.variant, variant.contains("refiner") || variant.contains("inpainting") || variant.contains("pix2pix") {
            throw ModelError(.unsupported, "\(family.rawValue) \(variant) checkpoints are not supported for text-to-image", file: file.path)
        }
        return (family, guess)
    }

    /// Refuses a model whose attention widths do not split into the heads the
    /// released models use, instead of rendering it wrongly: CLIP's heads are 64
    /// wide (a pruned or tiny text encoder of width 8 would get zero heads), and
    /// each U-Net attention level's channels must divide into its heads.
    public static func checkAttention(_ config: ArchitectureConfig, path: String) throws(ModelError) {
        for te in config.textEncoders { try checkHeads(te, path: path) }
        let levels = config.channelMultipliers.map { $0 * config.modelChannels }
        for (level, channels) in levels.enumerated() where (config.attentionDepth[level] ?? 0) > 0 || (level == levels.count - 1 && config.middleDepth > 0) {
            let heads = config.attentionHeads.heads(channels: channels)
            guard heads >= 1, channels % heads == 0 else {
                throw ModelError(
                    .unsupported,
                    "U-Net attention at \(channels) channels does not split into \(heads) heads; this engine renders only the released head layouts",
                                 file: path)
            }
        }
    }

    static func checkHeads(_ te: ArchitectureConfig.TextEncoder, path: String) throws(ModelError) {
        guard te.width >= te.headDim, te.width % te.headDim == 0 else {
            throw ModelError(
                .unsupported,
                "the text encoder is \(te.width) wide, which does not split into CLIP's \(te.headDim)-wide attention heads (a pruned or tiny model?); it "
                    + "cannot be rendered correctly",
                             file: path)
        }
    }

    /// The weights of a standalone VAE file (`decoder.…`, `encoder.…`, as
    /// vae-ft-mse-840000 and sdxl_vae ship), or of a checkpoint's VAE.
    public static func vaeWeights(_ path: String) throws(ModelError) -> Weights {
        var weights = Weights(try ModelFile.open(path))
        if !weights.contains(VAEDecoder.prefix + "decoder.conv_in.weight") {
            weights.prefixMap = (VAEDecoder.prefix, "")
            guard weights.contains(VAEDecoder.prefix + "decoder.conv_in.weight") else {
                throw ModelError(.mismatch, "not a VAE: no decoder.conv_in.weight", file: path)
            }
        }
        return weights
    }

    /// Whether fp16 tensors stay fp16 in memory: asked for, or (automatic)
    /// when the model in float32 would take more than half of physical memory.
    static func keepsHalf(_ file: ModelFile, _ precision: WeightPrecision) -> Bool {
        switch precision {
        case .f32: return false
        case .f16: return true
        case .automatic:
            let float32Bytes = file.tensorNames.reduce(0) { total, name in
                guard let t = file[name], t.dtype.isFloatingPoint else { return total }
                return total + 4 * t.elementCount
            }
            let physical = Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE)))
            return physical > 0 && float32Bytes > physical / 2
        }
    }

    /// A1111's test for SD2 v-models: a constant 0.5 latent at t = 999 with a
    /// constant 0.5 context; v-models answer with mean(out − x) < −1.
    static func looksLikeVPrediction(_ unet: UNet) -> Bool {
        let x = Tensor(shape: [1, unet.config.latentChannels, 8, 8], values: [Float](repeating: 0.5, count: unet.config.latentChannels * 64))
        let context = Tensor(shape: [1, 2, unet.config.contextDim], values: [Float](repeating: 0.5, count: 2 * unet.config.contextDim))
        let out = unet.forward(x, timesteps: [999], context: context)
        let mean = zip(out.values, x.values).reduce(0.0) { $0 + Double($1.0 - $1.1) } / Double(out.count)
        return mean < -1
    }
}
