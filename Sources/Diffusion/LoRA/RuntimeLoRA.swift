import LinearAlgebra
import LoRACore

/// Attaches LoRAs to a loaded model without touching its weights: the same
/// plan `lora-merge` makes (key mapping, family check, ratios, TE/UNet
/// ratios, block weights), turned into an `AdapterSet`. Modules that are
/// exactly low-rank (LoRA, LoCon, LoHa and LoKr through their factored forms)
/// run as side paths when that is cheaper than a dense weight; everything else
/// is folded into a replacement weight with lora-merge's own code, so a run
/// with LoRAs at weight w equals a run of the checkpoint baked at ratio w.
public enum RuntimeLoRA {
    public struct Summary: Sendable {
        public var sidePaths = 0
        public var replacedTensors = 0
        public var unmatched: [UnmatchedModule] = []
    }

    public static func adapters(for model: StableDiffusionModel, loras: [LoadedLoRA], allowUnmatched: Bool = false,
                                allowNaN: Bool = false) throws(ModelError) -> (AdapterSet, Summary) {
        guard !loras.isEmpty else { return (.empty, Summary()) }
        if !allowNaN { for lora in loras { try CheckpointBaker.refuseNonFinite(lora) } }
        let plan = try MergePlan.make(base: model.file, loras: loras, allowUnmatched: allowUnmatched)
        var lowRank: [String: [AdapterSet.LowRank]] = [:]
        var replacements: [String: [Float]] = [:]
        var summary = Summary(unmatched: plan.unmatched)
        let paths = loras.map(\.path)
        for (key, contributions) in plan.contributions {
            guard let tensor = model.file[key] else { continue }
            var sides: [AdapterSet.LowRank] = []
            var dense = false
            for c in contributions where c.multiplier != 0 {
                guard let side = try sidePath(c, tensor: tensor) else {
                    dense = true
                    break
                }
                sides.append(side)
            }
            if dense {
                // Keep the order and semantics of baking exactly (DoRA depends on it).
                replacements[key] = try CheckpointBaker.mergedValues(tensor, weightContributions: contributions, biasContributions: [],
                                                                     loraPaths: paths)
                summary.replacedTensors += 1
            } else if !sides.isEmpty {
                lowRank[key] = sides
                summary.sidePaths += sides.count
            }
        }
        for (key, contributions) in plan.biasContributions {
            guard let tensor = model.file[key] else { continue }
            replacements[key] = try CheckpointBaker.mergedValues(tensor, weightContributions: [], biasContributions: contributions, loraPaths: paths)
        }
        return (try layerKeyed(AdapterSet(lowRank: lowRank, replacements: replacements), model: model), summary)
    }

    /// The plan names tensors as the checkpoint does (an old SD1 file lacks
    /// `text_model.`); layers look adapters up by their own keys. Every key is
    /// moved to the layer that reads it, and one that no layer reads is an
    /// error: it would silently do nothing (and, in training, never learn).
    static func layerKeyed(_ adapters: AdapterSet, model: StableDiffusionModel) throws(ModelError) -> AdapterSet {
        var layerKey: [String: String] = [:]
        for (key, name) in model.layerKeys { layerKey[name] = key }
        func rekey<V>(_ table: [String: V]) throws(ModelError) -> [String: V] {
            var out: [String: V] = [:]
            for (name, value) in table {
                guard let key = layerKey[name] else {
                    throw ModelError(.mismatch, "a LoRA module targets \(name), which no layer of the engine reads, so it would have no effect",
                                     file: model.path, key: name)
                }
                out[key] = value
            }
            return out
        }
        return AdapterSet(lowRank: try rekey(adapters.lowRank), replacements: try rekey(adapters.replacements))
    }

    /// The module as factors up·down, when it is exactly low-rank and the side
    /// path costs less than a dense weight would.
    static func sidePath(_ c: MergeContribution, tensor: TensorView) throws(ModelError) -> AdapterSet.LowRank? {
        let module = c.module
        if module["dora_scale"] != nil || module["magnitude"] != nil { return nil }
        guard let (u, v) = try module.lowRankForm() else { return nil }
        let out = c.rows?.count ?? tensor.shape.first ?? 0
        let columns = tensor.elementCount / max(tensor.shape.first ?? 1, 1)
        guard u.rows == out, v.cols == columns, u.cols == v.rows else { return nil }
        let rank = u.cols
        guard rank * (out + columns) * 2 <= out * columns else { return nil }
        return AdapterSet.LowRank(down: v.values, up: u.values, rank: rank, scale: Float(c.multiplier), rows: c.rows)
    }
}
