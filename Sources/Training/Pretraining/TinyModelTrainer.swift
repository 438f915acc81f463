import Diffusion
import Foundation
import Imaging
import LinearAlgebra
import LoRACore

/// Trains the tiny shapes model from scratch — the autoencoder first, then
/// the U-Net on the autoencoder's latents — with the text encoder frozen at
/// its initialisation (a random CLIP still gives each caption a distinct
/// context; the U-Net's cross-attention learns to read it). Every step
/// renders fresh scenes, so there is no dataset to overfit.
public final class TinyModelTrainer {
    /// The defaults are the first stage of Fixtures/shapes/shapes_tiny.safetensors (lora-bench tiny-model's defaults).
    public struct Recipe: Sendable {
        public var imageSize = 64
        /// The autoencoder learns on random crops of this side (it is convolutional: a quarter of the
        /// pixels is a quarter of the time, and edges and flat areas look the same in a crop).
        public var autoencoderCrop = 32
        public var batch = 8
        public var seed: UInt64 = 1
        public var autoencoderRate = 1e-3
        public var unetRate = 1e-3
        public var warmup = 50
        public var maxGradNorm: Float = 1
        /// The autoencoder's KL weight (per latent element, against the per-pixel MSE).
        public var klWeight = 1e-5
        /// kohya's --noise_offset for the U-Net: the background is most of each picture, and without an offset
        /// an ε-predicting model hardly learns to move a latent's mean (its colour) away from the noise's.
        public var noiseOffset = 0.1
        /// kohya's --min_snr_gamma for the U-Net (nil: unweighted).
        public var minSNRGamma: Double? = 5
        /// The U-Net weights saved are an exponential moving average with this decay (0: the last step's).
        public var emaDecay = 0.999
        /// Each step's batch is split into this many shards that run at once, one core each (`BatchShards`):
        /// at these widths that is 1.6× faster on 2 cores than each layer split over both (2026-12-02, AMD
        /// EPYC: VAE step 0.26 s against 0.44, U-Net step 0.28 s against 0.45). The recipe's number, not
        /// the machine's, so that any machine with the same kernels computes the same file.
        public var shards = 2
        public init() {}
    }

    public let config: ArchitectureConfig
    public let recipe: Recipe
    public let parameters: ModelParameters
    let layout: ModelLayout
    var random: TrainingRandom
    var scenes: ShapeScene.Stream

    public init(config: ArchitectureConfig, recipe: Recipe) {
        // It runs the engine's layers without a StableDiffusionModel, which is what usually sets this up.
        EngineAllocator.configure()
        self.config = config
        self.recipe = recipe
        layout = ModelLayout(config)
        parameters = ModelParameters(config: config, prefixes: [layout.textEncoderPrefix(0), ModelLayout.vaePrefix, UNet.prefix], seed: recipe.seed)
        random = TrainingRandom(seed: recipe.seed &+ 1)
        scenes = ShapeScene.Stream(seed: recipe.seed)
    }

    func group(_ prefix: String, rate: Double) -> [ParameterGroup] {
        [ParameterGroup(name: prefix, parameters: parameters.parameters.filter { $0.key.hasPrefix(prefix) }, learningRate: rate)]
    }

    /// Linear warm-up, then cosine decay to a tenth.
    func rate(_ base: Double, step: Int, of steps: Int) -> Double {
        if step < recipe.warmup { return base * Double(step + 1) / Double(recipe.warmup) }
        let t = Double(step - recipe.warmup) / Double(max(1, steps - recipe.warmup))
        return base * (0.1 + 0.9 * 0.5 * (1 + cos(Double.pi * t)))
    }

    func images(_ batch: [ShapeScene]) -> Tensor {
        let size = recipe.imageSize, plane = 3 * size * size
        var out = Tensor(zeros: [batch.count, 3, size, size])
        for (i, scene) in batch.enumerated() {
            let pixels = try! TrainingImage.pixels(scene.render(size: size), path: "<scene>", bucket: Resolution(size, size))
            out.values.replaceSubrange((i * plane)..<((i + 1) * plane), with: pixels.values)
        }
        return out
    }

    /// A random side×side window of each image, at multiples of 8 (the latent grid).
    func crops(_ images: Tensor, side: Int) -> Tensor {
        let batch = images.shape[0], size = images.shape[2]
        guard side < size else { return images }
        var out = Tensor(zeros: [batch, 3, side, side])
        for b in 0..<batch {
            let top = 8 * random.integer(below: (size - side) / 8 + 1), left = 8 * random.integer(below: (size - side) / 8 + 1)
            for c in 0..<3 {
                for y in 0..<side {
                    let source = ((b * 3 + c) * size + top + y) * size + left, target = ((b * 3 + c) * side + y) * side
                    out.values.replaceSubrange(target..<(target + side), with: images.values[source..<(source + side)])
                }
            }
        }
        return out
    }

    func nextScenes() -> [ShapeScene] { (0..<recipe.batch).map { _ in scenes.next() } }

    /// `report(step, loss, reconstruction MSE)` after each step.
    public func trainAutoencoder(steps: Int, report: (Int, Double, Double) -> Void) throws(ModelError) {
        var optimizer = AdamW(weightDecay: 0)
        let objective = AutoencoderTraining(klWeight: recipe.klWeight)
        let latentSide = recipe.autoencoderCrop / 8
        let shards = BatchShards(group(ModelLayout.vaePrefix, rate: 0)[0].parameters, count: recipe.shards)
        for step in 0..<steps {
            let weights = try parameters.weights()
            let encoder = try VAEEncoder(weights, config: config), decoder = try VAEDecoder(weights, config: config)
            let x = crops(images(nextScenes()), side: recipe.autoencoderCrop)
            let noise = Tensor(shape: [recipe.batch, config.latentChannels, latentSide, latentSide],
                               values: random.normal(recipe.batch * config.latentChannels * latentSide * latentSide))
            let means = shards.run(batch: recipe.batch) { items, tape in
                let (loss, reconstruction) = objective.step(encoder: encoder, decoder: decoder, tape: tape, images: x.items(items),
                                                            noise: noise.items(items))
                return [loss, reconstruction]
            }
            let (loss, reconstruction) = (means[0], means[1])
            let trained = group(ModelLayout.vaePrefix, rate: rate(recipe.autoencoderRate, step: step, of: steps))
            clipGradientNorm(trained[0].parameters, maximum: recipe.maxGradNorm)
            optimizer.update(trained)
            parameters.zeroGradients()
            report(step + 1, loss, reconstruction)
        }
    }

    /// Rescales the latent space so that the scaled latents (× the SD1 factor
    /// 0.18215 the engine applies) have unit standard deviation, as SD's do:
    /// the mean's rows of quant_conv are multiplied by c and post_quant_conv's
    /// columns divided by c, which leaves the decoded images unchanged.
    /// Returns c.
    @discardableResult
    public func normaliseLatentScale(samples: Int = 64) throws(ModelError) -> Float {
        let encoder = try VAEEncoder(try parameters.weights(), config: config)
        var sum = 0.0, squares = 0.0, count = 0.0
        var stream = ShapeScene.Stream(seed: recipe.seed &+ 99)
        for _ in 0..<max(1, samples / recipe.batch) {
            let scenes = (0..<recipe.batch).map { _ in stream.next() }
            let mean = Parallel.serially { encoder.moments(images(scenes)).mean }
            for v in mean.values { sum += Double(v); squares += Double(v) * Double(v); count += 1 }
        }
        let std = (squares / count - (sum / count) * (sum / count)).squareRoot()
        let c = Float(1 / (Double(config.vaeScaleFactor) * std))
        let z = config.latentChannels
        let quant = parameters[ModelLayout.vaePrefix + "quant_conv.weight"]!, quantBias = parameters[ModelLayout.vaePrefix + "quant_conv.bias"]!
        for o in 0..<z {
            for i in 0..<(2 * z) { quant.values[o * 2 * z + i] *= c }
            quantBias.values[o] *= c
            quantBias.values[z + o] += 2 * log(c)
        }
        let post = parameters[ModelLayout.vaePrefix + "post_quant_conv.weight"]!
        for o in 0..<z { for i in 0..<z { post.values[o * z + i] /= c } }
        return c
    }

    /// `report(step, loss)` after each step.
    public func trainUNet(steps: Int, tokenizer: BPETokenizer, report: (Int, Double) -> Void) throws(ModelError) {
        let frozen = try parameters.weights()
        let encoder = try VAEEncoder(frozen, config: config)
        let text = TextConditioner(family: config.family, encoders: [try CLIPTextEncoder(frozen, prefix: layout.textEncoderPrefix(0), config: config.textEncoders[0])],
                                   tokenizer: tokenizer)
        let captions = try CaptionEncoder(text: text)
        var optimizer = AdamW(weightDecay: 0)
        var objective = DiffusionObjective()
        objective.minSNRGamma = recipe.minSNRGamma
        var noiseOptions = NoiseOptions()
        noiseOptions.offset = recipe.noiseOffset == 0 ? nil : recipe.noiseOffset
        let trainedParameters = group(UNet.prefix, rate: 0)[0].parameters
        var average = recipe.emaDecay > 0 ? ExponentialMovingAverage(trainedParameters, decay: recipe.emaDecay) : nil
        let shards = BatchShards(trainedParameters, count: recipe.shards)
        let scale = config.vaeScaleFactor
        for step in 0..<steps {
            let batch = nextScenes()
            // Each shard encodes its own scenes (the frozen encoder), then trains on them.
            var latents = shards.map(batch: batch.count) { items in encoder.moments(images(Array(batch[items]))).mean }
            for i in latents.values.indices { latents.values[i] *= scale }
            // Captions dropped one time in ten: the empty prompt's context is what negative prompts and CFG start from.
            let captionsHere = batch.map { random.uniform() < 0.1 ? "" : $0.caption }
            let context = try Parallel.serially { () throws(ModelError) in try captions.contexts(captionsHere) }
            let noise = TrainingNoise.draw(like: latents, options: noiseOptions, random: &random).noise
            let timesteps = (0..<batch.count).map { _ in random.integer(below: 1000) }
            let unet = try UNet(try parameters.weights(), config: config)
            let loss = shards.run(batch: batch.count) { items, tape in
                [unetTrainingStep(unet, tape: tape, objective: objective, latents: latents.items(items), noise: noise.items(items),
                                  timesteps: Array(timesteps[items]), context: context.items(items)).loss]
            }[0]
            let trained = group(UNet.prefix, rate: rate(recipe.unetRate, step: step, of: steps))
            clipGradientNorm(trained[0].parameters, maximum: recipe.maxGradNorm)
            optimizer.update(trained)
            parameters.zeroGradients()
            average?.update(trainedParameters)
            report(step + 1, loss)
        }
        average?.copy(into: trainedParameters)
    }

    /// Writes every tensor as fp16 (or `dtype`), the single-file SD1 layout; with `matrices`, the tensors of
    /// two or more dimensions (linear and conv weights, embeddings) in that dtype instead: F8_E4M3 halves
    /// the file and keeps biases and norms, which are few and sensitive, in `dtype`.
    public func save(to path: String, dtype: DType = .f16, matrices: DType? = nil, metadata: Metadata = Metadata()) throws(ModelError) {
        let entries = parameters.parameters.map {
            SafeTensorsWriter.Entry(name: $0.key, dtype: $0.shape.count >= 2 ? matrices ?? dtype : dtype, shape: $0.shape)
        }
        let writer = try SafeTensorsWriter(path: path, metadata: metadata, entries: entries)
        for p in parameters.parameters {
            try rethrowingModelError { try p.values.withUnsafeBufferPointer { try writer.write(name: p.key, floats: $0) } }
        }
        try writer.finish()
    }
}
