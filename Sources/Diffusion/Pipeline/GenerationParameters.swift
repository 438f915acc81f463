/// Everything that decides an image, named as A1111's infotext names it.
public struct GenerationParameters: Sendable, Codable, Equatable, Hashable {
    public var prompt: String
    public var negativePrompt: String = ""
    public var seed: UInt64 = 0
    public var steps: Int = 20
    public var cfgScale: Float = 7
    public var sampler: SamplerChoice = SamplerChoice(.dpmpp2m)
    public var width: Int = 512
    public var height: Int = 512
    /// A1111's "Clip skip" (SD1 only).
    public var clipSkip: Int = 1
    public var emphasis: EmphasisMode = .original
    /// torch's noise kernel to reproduce (A1111's "RNG source: CPU" gives the
    /// kernel of the CPU A1111 ran on; `.avx2` on every x86-64 CPU of the last decade).
    public var noise: TorchGenerator.Variant = .native

    public init(prompt: String, negativePrompt: String = "", seed: UInt64 = 0, steps: Int = 20, cfgScale: Float = 7,
                sampler: SamplerChoice = SamplerChoice(.dpmpp2m), width: Int = 512, height: Int = 512, clipSkip: Int = 1,
                noise: TorchGenerator.Variant = .native) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.seed = seed
        self.steps = steps
        self.cfgScale = cfgScale
        self.sampler = sampler
        self.width = width
        self.height = height
        self.clipSkip = clipSkip
        self.noise = noise
    }
}
