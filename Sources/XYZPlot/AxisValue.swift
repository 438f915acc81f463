import Diffusion
import Foundation

/// The parameters an axis can vary, named as on the command line. The order
/// is the order in which unassigned multi-valued parameters fill X, Y, Z.
public enum AxisKind: String, CaseIterable, Sendable, Codable {
    case lora
    case weight
    case seed
    case prompt
    case promptSR = "prompt-sr"
    case sampler
    /// A1111's "Schedule type" (Automatic, Uniform, Karras, Exponential).
    case schedule
    case cfg
    case steps
    case lbw
    case checkpoint
    case vae
    case clipSkip = "clip-skip"

    /// The label prefix A1111's X/Y/Z plot uses for the type.
    public var title: String {
        switch self {
        case .lora: return "LoRA"
        case .weight: return "Weight"
        case .seed: return "Seed"
        case .prompt: return "Prompt"
        case .promptSR: return "Prompt S/R"
        case .sampler: return "Sampler"
        case .schedule: return "Schedule type"
        case .cfg: return "CFG Scale"
        case .steps: return "Steps"
        case .lbw: return "Block weights"
        case .checkpoint: return "Checkpoint name"
        case .vae: return "VAE"
        case .clipSkip: return "Clip skip"
        }
    }
}

/// One value of one parameter, and what it changes in a cell's settings.
public enum AxisValue: Sendable, Hashable, Codable {
    case lora(path: String, label: String)
    case weight(Double)
    case seed(UInt64)
    case prompt(String)
    /// Prompt S/R: replace `search` by `replacement` in prompt and negative prompt.
    case promptSR(search: String, replacement: String)
    case sampler(SamplerChoice)
    case schedule(ScheduleKind)
    case cfg(Double)
    case steps(Int)
    case lbw(String)
    case checkpoint(path: String)
    case vae(path: String)
    case clipSkip(Int)

    public var kind: AxisKind {
        switch self {
        case .lora: return .lora
        case .weight: return .weight
        case .seed: return .seed
        case .prompt: return .prompt
        case .promptSR: return .promptSR
        case .sampler: return .sampler
        case .schedule: return .schedule
        case .cfg: return .cfg
        case .steps: return .steps
        case .lbw: return .lbw
        case .checkpoint: return .checkpoint
        case .vae: return .vae
        case .clipSkip: return .clipSkip
        }
    }

    /// What the sheet prints for the value.
    public var label: String {
        switch self {
        case .lora(_, let label): return label
        case .weight(let w): return "Weight: \(Infotext.number(w))"
        case .seed(let s): return "Seed: \(s)"
        case .prompt(let p): return p
        case .promptSR(_, let replacement): return replacement
        case .sampler(let s): return s.description
        case .schedule(let k): return "Schedule type: \(k.rawValue)"
        case .cfg(let c): return "CFG Scale: \(Infotext.number(c))"
        case .steps(let n): return "Steps: \(n)"
        case .lbw(let text): return "LBW: \(text)"
        case .checkpoint(let path): return ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        case .vae(let path): return "VAE: " + (path as NSString).lastPathComponent
        case .clipSkip(let n): return "Clip skip: \(n)"
        }
    }

    /// The value as A1111's X/Y/Z script lists it in "X Values".
    var plainValue: String {
        switch self {
        case .lora(let path, _): return ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        case .weight(let w): return Infotext.number(w)
        case .seed(let s): return String(s)
        case .prompt(let p): return p
        case .promptSR(_, let replacement): return replacement
        case .sampler(let s): return s.description
        case .schedule(let k): return k.rawValue
        case .cfg(let c): return Infotext.number(c)
        case .steps(let n): return String(n)
        case .lbw(let text): return text
        case .checkpoint: return label
        case .vae(let path): return (path as NSString).lastPathComponent
        case .clipSkip(let n): return String(n)
        }
    }
}
