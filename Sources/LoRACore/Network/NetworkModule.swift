/// The algorithm of one module, decided from its tensor suffixes.
public enum Algorithm: String, Sendable, Codable, CaseIterable {
    case lora = "LoRA"
    case loha = "LoHa"
    case lokr = "LoKr"
    case ia3 = "(IA)^3"
    case full = "Full"
    case norm = "Norm"
    case oft = "OFT"
    case boft = "BOFT"
    case glora = "GLoRA"
}

/// How a file names its modules.
public enum Naming: String, Sendable, Codable {
    /// `lora_unet_…`, `lora_te_…`: kohya, LyCORIS, A1111, ComfyUI.
    case kohya
    /// `unet.…`, `text_encoder.…` with `lora_A`/`lora_B` (diffusers, PEFT).
    case diffusers
}

/// One module of a network file: its tensors by role, and what they imply.
public struct NetworkModule: Sendable {
    /// The module name as written in the file (the key without its suffix).
    public let name: String
    public let algorithm: Algorithm
    /// Tensors by canonical role ("down", "up", "alpha", "hada_w1_a", ...).
    public let parts: [String: TensorView]
    public let naming: Naming
    /// The stored alpha, if any (may be an integer tensor).
    public let alpha: Double?
    /// The rank the scale divides by, when the algorithm has one.
    public let rank: Int?
    /// What ΔW's factors are multiplied by: alpha/rank, or 1.
    public let scale: Double
    /// Shape of ΔW implied by the factors ([out, in] or [out, in, kh, kw]);
    /// nil when it depends on the base weight (IA3, OFT) or cannot be told.
    public let deltaShape: [Int]?
    /// A DoRA magnitude vector is present (needs the base weight to apply).
    public var hasDoRA: Bool { parts["dora_scale"] != nil || parts["magnitude"] != nil }

    public subscript(role: String) -> TensorView? { parts[role] }

    /// Kernel size for conv modules (1 for linear / 1×1).
    public var kernel: Int { (deltaShape?.count ?? 0) == 4 ? deltaShape![2] : 1 }
    public var isConv: Bool { (deltaShape?.count ?? 0) == 4 }

    public var outFeatures: Int? { deltaShape?.first }
    /// Input features times kernel area, i.e. ΔW's column count when flattened.
    public var flattenedInputs: Int? {
        guard let shape = deltaShape, shape.count >= 2 else { return nil }
        return shape.dropFirst().reduce(1, *)
    }
}

extension NetworkModule {
    /// Whether ΔW's factors fit a weight of this shape (of the row slice, for
    /// packed q/k/v), by the rule merging applies: both compared flattened to
    /// [out, in · kh · kw]. So LyCORIS's flattened LoHa/LoKr conv factors and
    /// Tucker cores fit their 3×3 convs, and 1×1 convs and linear layers fit
    /// each other (SD2's proj_in). nil when ΔW's shape comes from the base
    /// weight (IA3, OFT, norm), or the factors do not say.
    public func deltaFits(_ weightShape: [Int]) -> Bool? {
        switch algorithm {
        case .ia3, .oft, .boft, .norm: return nil
        default: break
        }
        guard let shape = deltaShape else { return nil }
        func flattened(_ s: [Int]) -> [Int] { s.count > 1 ? [s[0], s.dropFirst().reduce(1, *)] : [1, s.first ?? 0] }
        return flattened(shape) == flattened(weightShape)
    }

    /// The shape of the weight this module changes: its own ΔW shape, with the
    /// conv kernel restored from the target layer when the factors are stored
    /// flattened (LoHa/LoKr conv factors are 2-D).
    public func weightShape(for target: LoRATarget?) -> [Int]? {
        guard let shape = deltaShape else { return target?.shape }
        guard shape.count == 2, let target, target.shape.count == 4 else { return shape }
        let kernel = target.shape[2] * target.shape[3]
        guard shape[1] % kernel == 0 else { return shape }
        return [shape[0], shape[1] / kernel, target.shape[2], target.shape[3]]
    }
}
