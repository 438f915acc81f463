/// A LoRA opened for merging, with what it is for.
public struct LoadedLoRA: Sendable {
    public let spec: LoRASpec
    public let network: NetworkFile
    public let family: FamilyGuess

    public static func open(_ spec: LoRASpec) throws(ModelError) -> LoadedLoRA {
        let model = try ModelFile.open(spec.path)
        let network = try NetworkFile(model: model)
        guard !network.modules.isEmpty else { throw ModelError.notALoRA(model, network: network) }
        return LoadedLoRA(spec: spec, network: network, family: FamilyDetection.lora(network))
    }

    public var path: String { spec.path }
}

/// One module applied to one checkpoint tensor.
public struct MergeContribution: Sendable {
    public let lora: Int
    public let module: NetworkModule
    public let target: LoRATarget
    /// The tensor in the base checkpoint (its own naming).
    public let weightKey: String
    public let biasKey: String?
    /// Rows of a packed q/k/v weight.
    public let rows: Range<Int>?
    public let multiplier: Double
}

public struct UnmatchedModule: Sendable, Codable, Equatable {
    public var file: String
    public var module: String
    public var reason: String
}

/// Every LoRA module resolved to the checkpoint tensor it changes, checked
/// before a single byte is written.
public struct MergePlan: Sendable {
    public let base: ModelFile
    public let family: Family
    public let loras: [LoadedLoRA]
    /// Weight key → contributions, in the order the LoRAs were given.
    public let contributions: [String: [MergeContribution]]
    /// Bias key → contributions carrying bias deltas.
    public let biasContributions: [String: [MergeContribution]]
    public let unmatched: [UnmatchedModule]
    public var appliedModules: Int { contributions.values.reduce(0) { $0 + $1.count } }

    public static func make(base: ModelFile, loras: [LoadedLoRA], allowUnmatched: Bool) throws(ModelError) -> MergePlan {
        try base.requireCheckpoint()
        let guess = FamilyDetection.checkpoint(base)
        guard let family = guess.family, guess.variant?.contains("refiner") != true else {
            throw ModelError(.unsupported, "cannot tell whether the checkpoint is SD1.x, SD2.x or SDXL (\(guess.label)); only those can be merged into",
                             file: base.path)
        }
        let keyMap = KeyMap.real(family)
        let names = Set(base.tensorNames)
        var contributions: [String: [MergeContribution]] = [:]
        var biases: [String: [MergeContribution]] = [:]
        var unmatched: [UnmatchedModule] = []

        for (index, lora) in loras.enumerated() {
            let path = lora.path
            if let other = lora.family.otherArchitecture {
                throw ModelError(.mismatch, "this LoRA is for \(other), the checkpoint is \(family.rawValue)", file: path)
            }
            if lora.family.evidence == .tensors, let loraFamily = lora.family.family, loraFamily != family {
                throw ModelError(
                    .mismatch,
                    "an \(loraFamily.rawValue) LoRA cannot be merged into an \(family.rawValue) checkpoint (\(lora.family.reasons.joined(separator: "; ")))",
                                 file: path)
            }
            for incomplete in lora.network.incompleteModules {
                unmatched.append(UnmatchedModule(file: path, module: incomplete.name,
                                                 reason: "incomplete module (has only \(incomplete.roles.joined(separator: ", ")))"))
            }
            for key in lora.network.unparsedKeys {
                unmatched.append(UnmatchedModule(file: path, module: key, reason: "not a LoRA tensor"))
            }
            for module in lora.network.modules {
                guard let target = keyMap.target(forModule: module.name) else {
                    unmatched.append(UnmatchedModule(file: path, module: module.name, reason: "no such layer in \(family.rawValue)"))
                    continue
                }
                guard let weightKey = resolve(target.checkpointKey, in: names) else {
                    unmatched.append(UnmatchedModule(file: path, module: module.name, reason: "the checkpoint has no \(target.checkpointKey)"))
                    continue
                }
                let tensor = base[weightKey]!
                let rows = target.rows(inPackedRows: tensor.shape.first ?? 0)
                try checkShape(module, tensor: tensor, rows: rows, path: path)
                let biasKey = target.biasKey.flatMap { resolve($0, in: names) }
                if module.biasDelta != nil {
                    guard let biasKey, let bias = base[biasKey], bias.elementCount == module.biasDelta!.count else {
                        throw ModelError(.mismatch, "the module changes a bias the checkpoint does not have (or of another size)", file: path, key: module.name)
                    }
                }
                let contribution = MergeContribution(lora: index, module: module, target: target, weightKey: weightKey, biasKey: biasKey,
                                                     rows: rows, multiplier: lora.spec.multiplier(component: target.component, block: target.block))
                contributions[weightKey, default: []].append(contribution)
                if module.biasDelta != nil, let biasKey { biases[biasKey, default: []].append(contribution) }
            }
        }
        if !unmatched.isEmpty && !allowUnmatched {
            let first = unmatched[0]
            throw ModelError(
                .mismatch,
                "\(unmatched.count) LoRA module(s) match no weight of the checkpoint (first: \(first.module): \(first.reason)); pass --allow-unmatched to "
                    + "skip them",
                             file: first.file)
        }
        return MergePlan(base: base, family: family, loras: loras, contributions: contributions, biasContributions: biases, unmatched: unmatched)
    }

    /// The key in this checkpoint: the LDM name, or the pre-transformers SD1 text-encoder name.
    static func resolve(_ key: String, in names: Set<String>) -> String? {
        if names.contains(key) { return key }
        let old = key.replacingFirst("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer.")
        return names.contains(old) ? old : nil
    }

    /// ΔW must have exactly the weight's shape (flattened; 1×1 convs and linear layers interchange, as in SD2's proj_in).
    static func checkShape(_ module: NetworkModule, tensor: TensorView, rows: Range<Int>?, path: String) throws(ModelError) {
        let out = rows?.count ?? tensor.shape.first ?? 1
        let columns = tensor.shape.count > 1 ? tensor.shape.dropFirst().reduce(1, *) : 1
        func fail(_ got: String) -> ModelError {
            ModelError(.mismatch, "shape mismatch: the module gives \(got) but \(tensor.name) is \(rows.map { "rows \($0) of " } ?? "")\(tensor.shape)",
                       file: path, key: module.name)
        }
        switch module.algorithm {
        case .ia3:
            let n = module["weight"]?.elementCount ?? 0
            let onInput = (module["on_input"]?.scalarValue() ?? 0) != 0
            if onInput ? (n == 0 || columns % n != 0) : n != out { throw fail("an (IA)^3 vector of \(n)") }
        case .oft, .boft:
            if let blocks = module["oft_blocks"] ?? module["oft_diag"], blocks.shape.count == 3, blocks.shape[0] * blocks.shape[1] != out {
                throw fail("OFT blocks \(blocks.shape)")
            }
        case .norm:
            if let n = module["w_norm"]?.elementCount, n != tensor.elementCount { throw fail("a norm delta of \(n)") }
        default:
            let want = tensor.shape.count > 1 ? [out] + Array(tensor.shape.dropFirst()) : [tensor.elementCount]
            if module.deltaFits(want) == false { throw fail("\(module.deltaShape!)") }
        }
    }
}
