import Diffusion
import Foundation
import LoRACore

/// One sample image to render during training, from a line of kohya's
/// prompt file (library/train_util.py `line_to_prompt_dict`): the prompt,
/// then ` --n negative`, ` --w width`, ` --h height`, ` --d seed`, ` --l cfg
/// scale`, ` --s steps`, ` --ss sampler`. kohya's defaults: 512×512, 30
/// steps, CFG 7.5, `--sample_sampler` (ddim), a random seed when none is given.
public struct SamplePrompt: Sendable, Equatable {
    public var prompt: String
    public var negative = ""
    public var width = 512, height = 512
    public var seed: UInt64?
    public var steps = 30
    public var scale: Float = 7.5
    public var sampler: String?

    public init(line: String) {
        let parts = line.components(separatedBy: " --")
        prompt = parts[0]
        for part in parts.dropFirst() {
            // kohya matches each option by a case-insensitive prefix regex; a malformed one is skipped.
            let split = part.split(separator: " ", maxSplits: 1).map(String.init)
            guard split.count == 2 else { continue }
            let (key, value) = (split[0].lowercased(), split[1])
            let digits = String(value.prefix { $0.isNumber })
            switch key {
            case "w": if let v = Int(digits) { width = v }
            case "h": if let v = Int(digits) { height = v }
            case "d": if let v = UInt64(digits) { seed = v }
            case "s": if let v = Int(digits) { steps = max(1, min(1000, v)) }
            case "l": if let v = Float(String(value.prefix { $0.isNumber || $0 == "." })) { scale = v }
            case "n": negative = value
            case "ss": sampler = value
            default: continue
            }
        }
        // kohya rounds sizes down to multiples of 8, at least 64.
        width = max(64, width - width % 8)
        height = max(64, height - height % 8)
    }

    /// The prompts of a kohya prompt file: non-empty lines not starting with '#'.
    public static func load(_ path: String) throws(ModelError) -> [SamplePrompt] {
        guard path.hasSuffix(".txt") else {
            throw ModelError(.unsupported, "only .txt prompt files are read (kohya's .toml and .json forms are not yet)", file: path)
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError(.io, "cannot read the prompt file", file: path) }
        guard let text = String(data: data, encoding: .utf8) else { throw ModelError(.invalid, "the prompt file is not UTF-8", file: path) }
        let prompts = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            .filter { !$0.hasPrefix("#") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { SamplePrompt(line: $0) }
        guard !prompts.isEmpty else { throw ModelError(.invalid, "the prompt file has no prompts", file: path) }
        return prompts
    }

    /// kohya's `--sample_sampler` names on the engine's samplers; nil for one we do not have.
    public static func sampler(named name: String) -> SamplerChoice? {
        switch name.lowercased() {
        case "ddim": return SamplerChoice(.ddim)
        case "euler", "k_euler": return SamplerChoice(.euler)
        case "euler_a", "k_euler_a": return SamplerChoice(.eulerAncestral)
        case "dpmsolver", "dpmsolver++": return SamplerChoice(.dpmpp2m)
        default: return nil
        }
    }

    public static let samplerNames = ["ddim", "euler", "euler_a", "k_euler", "k_euler_a", "dpmsolver", "dpmsolver++"]
}
