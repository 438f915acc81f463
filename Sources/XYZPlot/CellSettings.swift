import Diffusion
import Foundation
import LoRACore

/// Everything that decides one cell's image. The command line gives the
/// base settings; each axis value overrides one of them.
public struct CellSettings: Sendable, Hashable, Codable {
    public var checkpoint: String
    /// A separate VAE file (A1111's "SD VAE"), else the checkpoint's own.
    public var vae: String?
    public var lora: String?
    var loraLabel: String?
    public var weight: Double = 1
    /// LoRA Block Weight preset or list (lora-merge syntax), if any.
    public var blockWeights: String?
    /// The prompt as typed, `<lora>` not yet replaced.
    public var prompt: String
    public var negative: String = ""
    public var seed: UInt64 = 0
    public var steps: Int = 20
    public var cfg: Double = 7
    public var sampler = SamplerChoice(.dpmpp2m)
    /// A1111's "Schedule type" when chosen (--schedule, or its axis): it
    /// overrides the schedule a sampler's name implies, in either order of application.
    var scheduleOverride: ScheduleKind?
    public var width = 512
    public var height = 512
    public var clipSkip = 1
    /// torch's CPU noise kernel the seeds are turned into noise with.
    public var noise = TorchGenerator.Variant.native
    /// The arithmetic of the engine's matrix products (resolved for this CPU).
    public var precision = ComputePrecision.fp32
    /// LoRAs applied to every cell besides the axis LoRA (`--with-lora`),
    /// in lora-merge's syntax: path[:ratio][:te=x][:unet=x][:lbw=weights].
    public var extraLoRAs: [String] = []

    public init(checkpoint: String, prompt: String) {
        self.checkpoint = checkpoint
        self.prompt = prompt
    }

    mutating func apply(_ value: AxisValue) throws(ModelError) {
        switch value {
        case .lora(let path, let label):
            lora = path
            loraLabel = label
        case .weight(let w): weight = w
        case .seed(let s): seed = s
        case .prompt(let p): prompt = p
        case .promptSR(let search, let replacement):
            guard prompt.contains(search) || negative.contains(search) else {
                throw ModelError(.mismatch, "Prompt S/R did not find '\(search)' in the prompt or the negative prompt")
            }
            prompt = prompt.replacingOccurrences(of: search, with: replacement)
            negative = negative.replacingOccurrences(of: search, with: replacement)
        case .sampler(let s): sampler = SamplerChoice(s.sampler, schedule: scheduleOverride ?? s.schedule)
        case .schedule(let k):
            scheduleOverride = k
            sampler = SamplerChoice(sampler.sampler, schedule: k)
        case .cfg(let c): cfg = c
        case .steps(let n): steps = n
        case .lbw(let text): blockWeights = text
        case .checkpoint(let path): checkpoint = path
        case .vae(let path): vae = path
        case .clipSkip(let n): clipSkip = n
        }
    }

    /// The LoRA's name as A1111 refers to it: the file name without extension.
    var loraName: String? {
        lora.map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }
    }

    /// The A1111 extra-network tag for the cell's LoRA, with the LoRA Block
    /// Weight extension's `lbw=` when block weights are set.
    var loraTag: String? {
        guard let name = loraName else { return nil }
        var tag = "<lora:\(name):\(Infotext.number(weight))"
        if let lbw = blockWeights { tag += ":lbw=\(lbw)" }
        return tag + ">"
    }

    /// The prompt A1111 would be given: `<lora>` replaced by the tag (or the
    /// tag appended when the prompt has no placeholder); no LoRA, no tag.
    /// Tags of `extraLoRAs` follow at the end.
    var finalPrompt: String {
        let placeholder = "<lora>"
        var text: String
        if let tag = loraTag {
            // A space, not ", ": once A1111 strips the tag the prompt encodes as typed.
            text = prompt.contains(placeholder) ? prompt.replacingOccurrences(of: placeholder, with: tag)
                : prompt.isEmpty ? tag : prompt + " " + tag
        } else {
            text = prompt.replacingOccurrences(of: placeholder, with: "").trimmingCharacters(in: .whitespaces)
        }
        for spec in extraSpecs { text += (text.isEmpty ? "" : " ") + CellSettings.tag(spec) }
        return text
    }

    /// `extraLoRAs` parsed (they were validated when the plan was made).
    var extraSpecs: [LoRASpec] {
        extraLoRAs.compactMap { try? LoRASpec(parsing: $0) }
    }

    /// A1111's tag for a spec: <lora:name:ratio>, or <lora:name:te:unet> with separate ratios.
    static func tag(_ spec: LoRASpec) -> String {
        let name = LoRAEpochs.stem(spec.path)
        var tag = "<lora:\(name):"
        if spec.textEncoderRatio != nil || spec.unetRatio != nil {
            tag += "\(Infotext.number(spec.textEncoderRatio ?? spec.ratio)):\(Infotext.number(spec.unetRatio ?? spec.ratio))"
        } else {
            tag += Infotext.number(spec.ratio)
        }
        if let lbw = spec.blockWeights { tag += ":lbw=\(lbw.description)" }
        return tag + ">"
    }

    var generationParameters: GenerationParameters {
        GenerationParameters(prompt: finalPrompt, negativePrompt: negative, seed: seed, steps: steps, cfgScale: Float(cfg),
                             sampler: sampler, width: width, height: height, clipSkip: clipSkip, noise: noise)
    }

    /// The axis LoRA as lora-merge's spec, unless there is none or its weight
    /// is 0 (weight 0 renders without it, exactly), then the extra LoRAs.
    var loraSpecs: [LoRASpec] {
        get throws(ModelError) {
            var specs: [LoRASpec] = []
            if let lora, weight != 0 {
                specs.append(LoRASpec(path: lora, ratio: weight,
                                      blockWeights: try blockWeights.map { b throws(ModelError) in try BlockWeights(parsing: b) }))
            }
            for text in extraLoRAs { specs.append(try LoRASpec(parsing: text)) }
            return specs
        }
    }

    /// Every LoRA file the cell reads.
    var loraPaths: [String] { (lora.map { [$0] } ?? []) + extraSpecs.map(\.path) }
}
