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

    /// The prompts of a kohya prompt file (train_util.py `load_prompts`): `.txt` — non-empty lines not
    /// starting with '#'; `.json` — a list of such lines or of objects; `.toml` — `[prompt]` defaults
    /// merged into each `[[prompt.subset]]`. Objects use kohya's keys: prompt, negative_prompt, width,
    /// height, seed, sample_steps, scale, sample_sampler.
    public static func load(_ path: String) throws(ModelError) -> [SamplePrompt] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ModelError(.io, "cannot read the prompt file", file: path) }
        guard let text = String(data: data, encoding: .utf8) else { throw ModelError(.invalid, "the prompt file is not UTF-8", file: path) }
        let prompts: [SamplePrompt]
        if path.hasSuffix(".json") || path.hasSuffix(".toml") {
            let root: JSON
            if path.hasSuffix(".json") {
                do { root = try JSONParser.parse(text) } catch { throw ModelError(.invalid, "not JSON: \(error.message) at offset \(error.offset)", file: path) }
            } else {
                do { root = try TOML.parse(text) } catch { throw ModelError(.invalid, error.description, file: path) }
            }
            var items: [JSON] = []
            if case let .array(list) = root { items = list } else if case let .object(table)? = root["prompt"] {
                let defaults = table.filter { $0.0 != "subset" }
                guard case let .array(subsets)? = root["prompt"]?["subset"] else { throw ModelError(.invalid, "[prompt] has no [[prompt.subset]]", file: path) }
                items = subsets.map { subset in
                    guard case let .object(own) = subset else { return subset }
                    return .object(defaults.filter { key, _ in !own.contains { $0.0 == key } } + own)
                }
            } else {
                throw ModelError(.invalid, "expected a list of prompts (JSON) or [prompt] with [[prompt.subset]] (TOML)", file: path)
            }
            prompts = try items.map { item throws(ModelError) in try SamplePrompt(item, path: path) }
        } else {
            prompts = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
                .filter { !$0.hasPrefix("#") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { SamplePrompt(line: $0) }
        }
        // kohya has no limit; a side past the training resolutions' would ask the sampler for more memory than any machine has.
        for (n, p) in prompts.enumerated() where max(p.width, p.height) > Resolution.trainingSides.upperBound {
            throw ModelError(.invalid, "prompt \(n + 1) asks for \(p.width)×\(p.height) pixels; sample images are at most "
                             + "\(Resolution.trainingSides.upperBound) a side", file: path)
        }
        // An empty file is what the kohya_ss GUI writes when its prompt box is empty; kohya renders nothing from it.
        return prompts
    }

    /// One entry of a JSON/TOML prompt file: a line, or an object with kohya's keys.
    init(_ item: JSON, path: String) throws(ModelError) {
        if case let .string(line) = item {
            self.init(line: line)
            return
        }
        guard case let .object(fields) = item, let prompt = item["prompt"]?.stringValue else {
            throw ModelError(.invalid, "a prompt entry needs a \"prompt\"", file: path)
        }
        self.init(line: prompt)
        self.prompt = prompt
        for (key, value) in fields {
            // Finite and in range before any conversion: Int(1e300) or Int(nan) would stop the process.
            func number() throws(ModelError) -> Double {
                guard let v = value.double, v.isFinite else { throw ModelError(.invalid, "\(key) must be a number", file: path, key: key) }
                return v
            }
            func integer(below limit: Double) throws(ModelError) -> Double {
                let v = try number()
                guard v >= 0, v < limit else { throw ModelError(.invalid, "\(key) \(v) is out of range", file: path, key: key) }
                return v
            }
            switch key {
            case "prompt": continue
            case "negative_prompt": negative = value.stringValue ?? ""
            case "width": width = Int(try integer(below: 0x1p20))
            case "height": height = Int(try integer(below: 0x1p20))
            case "seed": seed = UInt64(try integer(below: 0x1p64))
            case "sample_steps": steps = Int(max(1, min(1000, try number())))
            case "scale": scale = Float(try number())
            case "sample_sampler": sampler = value.stringValue
            default: continue // kohya ignores keys its SD sampler does not use (guidance_scale, controlnet_image, …)
            }
        }
        width = max(64, width - width % 8)
        height = max(64, height - height % 8)
    }

    /// kohya's `--sample_sampler` names on the engine's samplers; nil for one we do not have.
    public static func sampler(named name: String) -> SamplerChoice? {
        switch name.lowercased() {
        case "ddim": return SamplerChoice(.ddim)
        // diffusers' PNDMScheduler, as kohya builds it, warms up with Runge–Kutta steps; A1111's PLMS is PNDM's
        // linear multistep with an improved-Euler first step instead.
        case "pndm": return SamplerChoice(.plms)
        case "euler", "k_euler": return SamplerChoice(.euler)
        case "euler_a", "k_euler_a": return SamplerChoice(.eulerAncestral)
        case "dpmsolver", "dpmsolver++": return SamplerChoice(.dpmpp2m)
        // diffusers' DPMSolverSinglestepScheduler itself, on its own timesteps: A1111 has no such sampler.
        case "dpmsingle": return SamplerChoice(.dpmpp2s)
        case "lms", "k_lms": return SamplerChoice(.lms)
        case "heun": return SamplerChoice(.heun)
        case "dpm_2", "k_dpm_2": return SamplerChoice(.dpm2)
        case "dpm_2_a", "k_dpm_2_a": return SamplerChoice(.dpm2Ancestral)
        default: return nil
        }
    }

    public static let samplerNames = ["ddim", "pndm", "euler", "euler_a", "k_euler", "k_euler_a", "dpmsolver", "dpmsolver++", "dpmsingle", "lms", "k_lms", "heun",
                                      "dpm_2", "k_dpm_2", "dpm_2_a", "k_dpm_2_a"]
}
