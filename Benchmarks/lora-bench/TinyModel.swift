import ArgumentParser
import Diffusion
import FixtureKit
import Foundation
import LoRACore
import ToolSupport
import Training

/// Trains the tiny shapes model from scratch: the SD1 layout at small widths
/// (U-Net and VAE 64 wide at every level, one VAE ResBlock per level; CLIP 64
/// wide × 2 layers with the real tokenizer's vocabulary), on coloured shapes
/// rendered on the fly; the VAE learns on 32×32 crops of them. The defaults
/// are the recipe of Fixtures/shapes/shapes_tiny.safetensors; the same options
/// and seed give the same file on a host with the same kernel path, on any
/// number of cores (each step runs as `--shards` single-core shards).
struct TinyModel: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tiny-model",
                                                    abstract: "Train the tiny shapes model (VAE, then U-Net) from scratch.")

    @Option(help: "The checkpoint to write.")
    var out: String

    @Option(help: "CLIP tokenizer (merges file or folder).")
    var tokenizer = "Fixtures/tokenizer/clip_bpe_merges.txt.gz"

    @Option(help: "Autoencoder steps.")
    var vaeSteps = 2000

    @Option(help: "U-Net steps.")
    var unetSteps = 3600

    // 24 was tried for speed on 2026-12-02 (0.28 s a step against 0.43): the VAE then reconstructed whole 64×64 scenes
    // at MSE 0.20 against 0.028 for the committed one, and the model drew 19/72 seen prompts right against 60/72.
    @Option(help: "Side of the random crops the autoencoder learns on (a multiple of 8; the recipe's 32: 24 reconstructs whole scenes poorly).")
    var vaeCrop = TinyModelTrainer.Recipe().autoencoderCrop

    @Option(help: "Images per step.")
    var batch = TinyModelTrainer.Recipe().batch

    @Option(help: "Shards each step's batch is split into, run at once, one core each (part of the recipe: the file does not depend on the machine's cores).")
    var shards = TinyModelTrainer.Recipe().shards

    @Option(help: "Seed of the initialisation and the scenes.")
    var seed: UInt64 = 1

    @Option(help: "Autoencoder learning rate (warm-up, then cosine to a tenth).")
    var vaeRate = TinyModelTrainer.Recipe().autoencoderRate

    @Option(help: "U-Net learning rate (warm-up, then cosine to a tenth).")
    var unetRate = TinyModelTrainer.Recipe().unetRate

    @Option(help: "The autoencoder's KL weight (per latent element, against the per-pixel MSE).")
    var klWeight = TinyModelTrainer.Recipe().klWeight

    @Option(help: "kohya's --noise_offset for the U-Net.")
    var noiseOffset = TinyModelTrainer.Recipe().noiseOffset

    @Option(help: "kohya's --min_snr_gamma for the U-Net (0: off).")
    var minSnrGamma = TinyModelTrainer.Recipe().minSNRGamma ?? 0

    @Option(help: "Save the U-Net's exponential moving average with this decay (0: the last step's weights).")
    var emaDecay = TinyModelTrainer.Recipe().emaDecay

    @Option(help: "Also write the model after the autoencoder stage here (to look at its reconstructions).")
    var vaeStageOut: String?

    @Option(help: "Start from this model's weights instead of a fresh initialisation (a second U-Net stage: --vae-steps 0).")
    var from: String?

    @Option(help: "Precision of the written model: fp16, fp32, or fp8 (F8_E4M3 for every tensor of 2+ dimensions, fp16 for biases and norms: the committed file, under the 10 MB fixture limit).")
    var savePrecision = "fp16"

    @Option(help: "Print every n steps.")
    var every = 25

    static func config() -> ArchitectureConfig {
        // 64 channels at every level: GroupNorm's 32 groups then hold 2 channels each. With 32 channels each
        // group is one channel, and normalising a channel on its own erases its mean — a flat background's
        // colour — before the output conv (measured: a 32-wide VAE stayed near the mean image for 100 steps).
        var config = ArchitectureConfig.engineTiny(.sd1)
        config.modelChannels = 64
        config.channelMultipliers = [1, 1, 1, 1]
        config.vaeChannels = 64
        config.vaeMultipliers = [1, 1, 1, 1]
        config.vaeResBlocks = 1
        var te = config.textEncoders[0]
        te.width = 64
        te.mlpWidth = 256
        te.layers = 2
        te.loraLayers = 2
        config.textEncoders = [te]
        config.contextDim = 64
        return config
    }

    func run() throws {
        ToolEnvironment.prepare()
        let (dtype, matrices): (DType, DType?) = switch savePrecision {
        case "fp16": (.f16, nil)
        case "fp32": (.f32, nil)
        case "fp8": (.f16, .f8e4m3)
        default: throw ValidationError("--save-precision is fp16, fp32 or fp8, not \(savePrecision)")
        }
        var recipe = TinyModelTrainer.Recipe()
        guard vaeCrop >= 8, vaeCrop % 8 == 0 else { throw ValidationError("--vae-crop is a multiple of 8, not \(vaeCrop)") }
        recipe.autoencoderCrop = vaeCrop
        recipe.batch = batch
        guard shards >= 1, shards <= batch else { throw ValidationError("--shards is 1 to the batch (\(batch)), not \(shards)") }
        recipe.shards = shards
        recipe.seed = seed
        recipe.autoencoderRate = vaeRate
        recipe.unetRate = unetRate
        recipe.klWeight = klWeight
        recipe.noiseOffset = noiseOffset
        recipe.minSNRGamma = minSnrGamma > 0 ? minSnrGamma : nil
        recipe.emaDecay = emaDecay
        let trainer = TinyModelTrainer(config: Self.config(), recipe: recipe)
        if let from { try trainer.parameters.load(try ModelFile.open(from)) }
        let start = Date()
        func clock() -> String { String(format: "%6.0f s", Date().timeIntervalSince(start)) }
        var window: [Double] = []
        try trainer.trainAutoencoder(steps: vaeSteps) { step, loss, reconstruction in
            window.append(reconstruction)
            if step % every == 0 || step == vaeSteps {
                print("\(clock())  vae  step \(step)/\(vaeSteps)  loss \(String(format: "%.5f", loss))  reconstruction MSE \(String(format: "%.5f", window.reduce(0, +) / Double(window.count)))")
                window = []
            }
        }
        if vaeSteps > 0 {
            let c = try trainer.normaliseLatentScale()
            print("\(clock())  latent scale folded into quant_conv/post_quant_conv: ×\(c)")
        }
        if let vaeStageOut { try trainer.save(to: vaeStageOut, dtype: .f32) }
        let tokenizer = try BPETokenizer.load(self.tokenizer)
        window = []
        try trainer.trainUNet(steps: unetSteps, tokenizer: tokenizer) { step, loss in
            window.append(loss)
            if step % every == 0 || step == unetSteps {
                print("\(clock())  unet step \(step)/\(unetSteps)  loss \(String(format: "%.5f", window.reduce(0, +) / Double(window.count)))")
                window = []
            }
        }
        var metadata = Metadata()
        metadata["modelspec.architecture"] = "stable-diffusion-v1"
        metadata["modelspec.title"] = "LoRA Tools tiny shapes model"
        let stage = "lora-bench tiny-model --vae-steps \(vaeSteps) --vae-crop \(vaeCrop) --unet-steps \(unetSteps) --batch \(batch) --shards \(shards) --seed \(seed)"
            + " --vae-rate \(vaeRate) --unet-rate \(unetRate) --kl-weight \(klWeight) --noise-offset \(noiseOffset)"
            + " --min-snr-gamma \(minSnrGamma) --ema-decay \(emaDecay) --save-precision \(savePrecision)"
        let earlier = try from.map { path throws in try ModelFile.open(path).metadata["lora_tools.recipe"].map { $0 + " && " } ?? "" } ?? ""
        metadata["lora_tools.recipe"] = earlier + stage + (from == nil ? "" : " --from <previous>")
        try trainer.save(to: out, dtype: dtype, matrices: matrices, metadata: metadata)
        print("\(clock())  wrote \(out)")
    }
}
