import Diffusion
import Foundation
import LoRACore

/// Everything that decides one cell's image. The command line gives the
/// base settings; each axis value overrides one of them.
public struct CellSettings: Sendable, Hashable, Codable {
    public var checkpoint: String
    public var lora: String?
    public var loraLabel: String?
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
    public var width = 512
    public var height = 512
    public var clipSkip = 1

    public init(checkpoint: String, prompt: String) {
        self.checkpoint = checkpoint
        self.prompt = prompt
    }

    public mutating func apply(_ value: AxisValue) throws(ModelError) {
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
        case .sampler(let s): sampler = s
        case .cfg(let c): cfg = c
        case .steps(let n): steps = n
        case .lbw(let text): blockWeights = text
        case .checkpoint(let path): checkpoint = path
        case .clipSkip(let n): clipSkip = n
        }
    }

    /// The LoRA's name as A1111 refers to it: the file name without extension.
    public var loraName: String? {
        lora.map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }
    }

    /// The A1111 extra-network tag for the cell's LoRA, with the LoRA Block
    /// Weight extension's `lbw=` when block weights are set.
    public var loraTag: String? {
        guard let name = loraName else { return nil }
        var tag = "<lora:\(name):\(Infotext.number(weight))"
        if let lbw = blockWeights { tag += ":lbw=\(lbw)" }
        return tag + ">"
    }

    /// The prompt A1111 would be given: `<lora>` replaced by the tag (or the
    /// tag appended when the prompt has no placeholder); no LoRA, no tag.
    public var finalPrompt: String {
        let placeholder = "<lora>"
        guard let tag = loraTag else {
            return prompt.replacingOccurrences(of: placeholder, with: "").trimmingCharacters(in: .whitespaces)
        }
        if prompt.contains(placeholder) { return prompt.replacingOccurrences(of: placeholder, with: tag) }
        // A space, not ", ": once A1111 strips the tag the prompt encodes as typed.
        return prompt.isEmpty ? tag : prompt + " " + tag
    }

    public var generationParameters: GenerationParameters {
        GenerationParameters(prompt: finalPrompt, negativePrompt: negative, seed: seed, steps: steps, cfgScale: Float(cfg),
                             sampler: sampler, width: width, height: height, clipSkip: clipSkip)
    }

    /// The LoRA as lora-merge's spec, unless there is none or its weight is 0
    /// (weight 0 renders the base model exactly, nothing attached).
    public var loraSpec: LoRASpec? {
        get throws(ModelError) {
            guard let lora, weight != 0 else { return nil }
            return LoRASpec(path: lora, ratio: weight, blockWeights: try blockWeights.map { b throws(ModelError) in try BlockWeights(parsing: b) })
        }
    }
}
