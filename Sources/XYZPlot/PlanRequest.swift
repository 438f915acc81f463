import Diffusion
import Foundation
import LoRACore

/// What the command line asks for, before it becomes a `Plan`: every
/// parameter as a list; lists of more than one value become axes.
public struct PlanRequest: Sendable {
    public var checkpoints: [String] = []
    public var vaes: [String] = []
    public var loras: [LoRAEpochs.Entry] = []
    public var weights: [Double] = [1]
    public var seeds: [UInt64] = [0]
    public var prompt = ""
    /// Prompts for a prompt axis (--prompts file); replaces `prompt`.
    public var prompts: [String] = []
    /// Prompt S/R values; the first is what is searched for.
    public var promptSR: [String] = []
    public var samplers = [SamplerChoice(.dpmpp2m)]
    /// --schedule values (none: each sampler's own).
    public var schedules: [ScheduleKind] = []
    public var cfgs: [Double] = [7]
    public var steps: [Int] = [20]
    public var blockWeights: [String] = []
    public var clipSkips: [Int] = [1]
    /// LoRAs on every cell (lora-merge spec syntax).
    public var extraLoRAs: [String] = []
    public var negative = ""
    public var width = 512
    public var height = 512
    /// torch's noise kernel to reproduce (--rng-variant).
    public var noise = TorchGenerator.Variant.native
    /// --precision, resolved for this CPU (bf16 without bf16 units is fp32).
    public var precision = ComputePrecision.fp32
    /// Parameters the user put on X, Y, Z (each may hold several).
    public var axes: [[AxisKind]] = [[], [], []]

    public init() {}

    func values(_ kind: AxisKind) -> [AxisValue] {
        switch kind {
        case .lora: return loras.map { .lora(path: $0.path, label: $0.label) }
        case .weight: return weights.map { .weight($0) }
        case .seed: return seeds.map { .seed($0) }
        case .prompt: return prompts.map { .prompt($0) }
        case .promptSR: return promptSR.map { .promptSR(search: promptSR[0], replacement: $0) }
        case .sampler: return samplers.map { .sampler($0) }
        case .schedule: return schedules.map { .schedule($0) }
        case .cfg: return cfgs.map { .cfg($0) }
        case .steps: return steps.map { .steps($0) }
        case .lbw: return blockWeights.map { .lbw($0) }
        case .checkpoint: return checkpoints.map { .checkpoint(path: $0) }
        case .vae: return vaes.map { .vae(path: $0) }
        case .clipSkip: return clipSkips.map { .clipSkip($0) }
        }
    }

    /// Place every multi-valued parameter on an axis: the user's choices
    /// first, then the rest in `AxisKind` order onto the free axes X, Y, Z;
    /// when all three are taken the remainder joins Z (as a product).
    public func plan() throws(RequestError) -> Plan {
        guard let checkpoint = checkpoints.first else { throw RequestError("no checkpoint given (--model)") }
        for kind in AxisKind.allCases {
            let placed = axes.flatMap { $0 }.filter { $0 == kind }.count
            if placed > 1 { throw RequestError("\(kind.rawValue) is on more than one axis") }
            if placed == 1 && values(kind).isEmpty {
                throw RequestError("\(kind.rawValue) is on an axis but has no values (see --help for its option)")
            }
        }
        var layout = axes
        let explicit = Set(axes.flatMap { $0 })
        for kind in AxisKind.allCases where !explicit.contains(kind) && values(kind).count > 1 {
            if let free = layout.firstIndex(where: { $0.isEmpty }) {
                layout[free] = [kind]
            } else {
                layout[2].append(kind)
            }
        }
        // A1111 would apply <lora:name:w> tags typed in a prompt; this tool cannot look names up,
        // and silently dropping them would make the infotext lie.
        for text in [prompt, negative] + prompts + promptSR {
            if let tag = ExtraNetworks.parse(text).tags.first {
                throw RequestError(
                    "the prompt has an A1111 tag <\(tag.kind):\(tag.arguments.joined(separator: ":"))>: lora-xyz does not look networks up by name; "
                                 + "put the axis LoRA's place as <lora>, and pass fixed LoRAs with --with-lora path:weight")
            }
        }
        for text in extraLoRAs { _ = try RequestError.wrapping { () throws(ModelError) in try LoRASpec(parsing: text) } }
        var base = CellSettings(checkpoint: checkpoint, prompt: prompts.first ?? prompt)
        base.extraLoRAs = extraLoRAs
        base.negative = negative
        base.width = width
        base.height = height
        base.noise = noise
        base.precision = precision
        let onAxes = Set(layout.flatMap { $0 })
        for kind in AxisKind.allCases where !onAxes.contains(kind) {
            // Single values set the base; prompt-sr's single value is the identity.
            if let only = values(kind).first, kind != .promptSR { try RequestError.wrapping { () throws(ModelError) in try base.apply(only) } }
        }
        let built = layout.map { kinds in kinds.isEmpty ? Axis.single : Axis.product(kinds.map { ($0, values($0)) }) }
        return try RequestError.wrapping { () throws(ModelError) in try Plan(base: base, x: built[0], y: built[1], z: built[2]) }
    }
}
