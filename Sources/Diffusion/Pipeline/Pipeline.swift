import LoRACore

/// Text → latents → image with a loaded model, in A1111's order: the image's
/// own CPU generator gives the initial noise (and, continued, the ancestral
/// noise), k-diffusion samplers start from noise·σ_max, DDIM from the noise.
/// Conditioning is separate so callers can reuse it across images.
public struct Pipeline: Sendable {
    public let model: StableDiffusionModel
    /// The arithmetic of every matrix product this pipeline runs, already
    /// resolved for this CPU (`ComputePrecision.resolved`).
    public let precision: ComputePrecision

    public init(model: StableDiffusionModel, precision: ComputePrecision = .fp32) {
        self.model = model
        self.precision = precision.resolved().precision
    }

    public struct Conditions: Sendable {
        public var cond: Conditioning
        public var uncond: Conditioning
    }

    public func conditions(prompt: String, negative: String, clipSkip: Int = 1, emphasis: EmphasisMode = .original,
                           adapters: AdapterSet = .empty) throws(ModelError) -> Conditions {
        var text = model.text
        text.clipSkip = clipSkip
        text.emphasis = emphasis
        return try precision.run { () throws(ModelError) in
            Conditions(cond: try text.encode(ExtraNetworks.strip(prompt), adapters: adapters),
                       uncond: try text.encode(ExtraNetworks.strip(negative), isNegative: true, adapters: adapters))
        }
    }

    /// Latent size for an image size: sides must be multiples of 8 (the VAE's
    /// factor), as in A1111; the U-Net matches odd latent sizes at its skips.
    public func latentSize(width: Int, height: Int) throws(ModelError) -> (Int, Int) {
        guard width > 0, height > 0, width % Pipeline.sizeMultiple == 0, height % Pipeline.sizeMultiple == 0 else {
            throw ModelError(.mismatch, "width and height must be positive multiples of \(Pipeline.sizeMultiple) (got \(width)x\(height))")
        }
        return (height / 8, width / 8)
    }

    /// Image sides are multiples of this (one latent pixel).
    public static let sizeMultiple = 8

    /// The initial noise of an image: torch.randn(4, h, w) from its seed, by torch's `variant` kernel.
    public func initialNoise(seed: UInt64, width: Int, height: Int,
                             variant: TorchGenerator.Variant = .native) throws(ModelError) -> (Tensor, TorchGenerator) {
        let (h, w) = try latentSize(width: width, height: height)
        var generator = TorchGenerator(seed: seed, variant: variant)
        let c = model.config.latentChannels
        return (Tensor(shape: [1, c, h, w], values: generator.randn(c * h * w)), generator)
    }

    public func sample(_ parameters: GenerationParameters, conditions: Conditions, adapters: AdapterSet = .empty,
                       progress: KDiffusion.Progress? = nil) throws(ModelError) -> Tensor {
        try precision.run { () throws(ModelError) in try sampleRun(parameters, conditions: conditions, adapters: adapters, progress: progress) }
    }

    private func sampleRun(_ parameters: GenerationParameters, conditions: Conditions, adapters: AdapterSet,
                           progress: KDiffusion.Progress?) throws(ModelError) -> Tensor {
        guard parameters.steps >= 1 else { throw ModelError(.mismatch, "steps must be at least 1") }
        let (noise, generator) = try initialNoise(seed: parameters.seed, width: parameters.width, height: parameters.height,
                                                  variant: parameters.noise)
        var condVector: Tensor?, uncondVector: Tensor?
        if model.family == .sdxl {
            let size = (parameters.height, parameters.width)
            guard let c = conditions.cond.pooled, let u = conditions.uncond.pooled else {
                throw ModelError(.mismatch, "SDXL conditioning needs the pooled text embedding")
            }
            condVector = TextConditioner.sdxlVector(pooled: c, originalSize: size, targetSize: size, dim: model.config.sizeEmbeddingDim)
            uncondVector = TextConditioner.sdxlVector(pooled: u, originalSize: size, targetSize: size, dim: model.config.sizeEmbeddingDim)
        }
        let denoiser = GuidedDenoiser(unet: model.unet, schedule: model.schedule, prediction: model.prediction,
                                      cond: conditions.cond, uncond: conditions.uncond, condVector: condVector,
                                      uncondVector: uncondVector, scale: parameters.cfgScale, adapters: adapters)
        let choice = parameters.sampler
        var ancestral = GeneratorNoise(generators: [generator])
        let alphas = model.schedule.alphasCumprod
        switch choice.sampler {
        case .ddim: return KDiffusion.ddim(denoiser, x: noise, timesteps: SamplerChoice.ddimTimesteps(steps: parameters.steps),
                                           alphasCumprod: alphas, noise: &ancestral, progress: progress)
        case .plms: return KDiffusion.plms(denoiser, x: noise, timesteps: SamplerChoice.ddimTimesteps(steps: parameters.steps),
                                           alphasCumprod: alphas, progress: progress)
        case .dpmpp2s: return KDiffusion.dpmSolverSinglestep(denoiser, x: noise, timesteps: choice.timesteps(steps: parameters.steps),
                                                             alphasCumprod: alphas, progress: progress)
        case .euler, .eulerAncestral, .dpmpp2m, .dpmppSDE, .lms, .heun, .dpm2, .dpm2Ancestral: break
        }
        let sigmas = choice.sigmas(steps: parameters.steps, schedule: model.schedule)
        var x = noise
        for i in x.values.indices { x.values[i] *= sigmas[0] }
        switch choice.sampler {
        case .euler: return KDiffusion.euler(denoiser, x: x, sigmas: sigmas, progress: progress)
        case .eulerAncestral: return KDiffusion.eulerAncestral(denoiser, x: x, sigmas: sigmas, noise: &ancestral, progress: progress)
        case .dpmpp2m: return KDiffusion.dpmpp2m(denoiser, x: x, sigmas: sigmas, progress: progress)
        case .lms: return KDiffusion.lms(denoiser, x: x, sigmas: sigmas, progress: progress)
        case .heun: return KDiffusion.heun(denoiser, x: x, sigmas: sigmas, progress: progress)
        case .dpm2: return KDiffusion.dpm2(denoiser, x: x, sigmas: sigmas, progress: progress)
        case .dpm2Ancestral: return KDiffusion.dpm2Ancestral(denoiser, x: x, sigmas: sigmas, noise: &ancestral, progress: progress)
        case .dpmppSDE:
            let positive = sigmas.filter { $0 > 0 }
            var brownian = BrownianNoise(seeds: [parameters.seed], elementsPerImage: noise.count,
                                         sigmaMin: positive.min() ?? 0, sigmaMax: sigmas.max() ?? 0, variant: parameters.noise)
            return KDiffusion.dpmppSDE(denoiser, x: x, sigmas: sigmas, noise: &brownian, progress: progress)
        case .ddim, .plms, .dpmpp2s: fatalError("handled above")
        }
    }

    public func decode(_ latents: Tensor) throws(ModelError) -> RGBImage {
        guard let decoder = model.decoder else { throw ModelError(.mismatch, "the model was loaded without its VAE decoder", file: model.path) }
        return precision.run { RGBImage(decoded: decoder.decode(latents)) }
    }

    /// One image, start to finish.
    public func render(_ parameters: GenerationParameters, adapters: AdapterSet = .empty,
                       progress: KDiffusion.Progress? = nil) throws(ModelError) -> RGBImage {
        let conditions = try self.conditions(prompt: parameters.prompt, negative: parameters.negativePrompt,
                                             clipSkip: parameters.clipSkip, emphasis: parameters.emphasis, adapters: adapters)
        let latents = try sample(parameters, conditions: conditions, adapters: adapters, progress: progress)
        // The sampler's freed activations go back to the system before the decoder allocates its full-size tensors
        // (hundreds of MB each at 768²), which the heap's small freed blocks cannot serve; kept, they add to the
        // decoder's peak (Benchmarks/README.md: a training run's sample images). The next image faults its pages in
        // again: milliseconds beside a render.
        EngineAllocator.returnFreedMemory()
        return try decode(latents)
    }
}
