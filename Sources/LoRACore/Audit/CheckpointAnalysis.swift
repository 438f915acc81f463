import Foundation

/// What `lora-inspect` reports about a full model checkpoint.
public struct CheckpointReport: Sendable, Codable, Equatable {
    public struct ComponentRow: Sendable, Codable, Equatable {
        public var component: String
        public var tensors: Int
        public var parameters: Int
        public var dtypes: [ValueCount]
    }

    public var family: FamilyGuess
    public var components: [ComponentRow]
    public var hasEMA: Bool
    public var parameters: Int
    /// Parameters by dtype (the precision mix).
    public var precision: [ValueCount]
    public var missingKeys: Int
    public var unknownKeys: Int
    /// Nested under `state_dict`/`model` (training checkpoints).
    public var stateDictKey: String?
    /// Non-tensor entries of a pickle checkpoint (epoch, global_step, ...).
    public var extras: [ValueCount]
}

public enum CheckpointAnalysis {
    /// Old SD1 checkpoints name the text encoder without `text_model.`; A1111 renames them.
    static let oldTextEncoderPrefixes = ["cond_stage_model.transformer.embeddings.", "cond_stage_model.transformer.encoder.",
                                         "cond_stage_model.transformer.final_layer_norm."]

    public static func analyze(_ model: ModelFile, stats: [TensorStats?]?) -> (CheckpointReport, [Finding]) {
        var findings: [Finding] = []
        let family = FamilyDetection.checkpoint(model)
        var names = model.tensorNames
        let oldNames = names.filter { n in oldTextEncoderPrefixes.contains { n.hasPrefix($0) } }
        if !oldNames.isEmpty {
            findings.append(Finding("old-text-encoder-keys", .info,
                    "text encoder uses the pre-transformers key layout (cond_stage_model.transformer.encoder...); AUTOMATIC1111 renames it on load",
                                    count: oldNames.count))
            names = names.map { n in
                oldNames.contains(n) ? n.replacingFirst("cond_stage_model.transformer.", "cond_stage_model.transformer.text_model.") : n
            }
        }

        // Components and precision.
        func component(of name: String) -> String {
            if name.hasPrefix("model.diffusion_model.") { return "unet" }
            if name.hasPrefix("first_stage_model.") { return "vae" }
            if name.hasPrefix("conditioner.embedders.1.") { return "text encoder 2 (OpenCLIP bigG)" }
            if name.hasPrefix("conditioner.embedders.0.") {
                return family.variant == "refiner" ? "text encoder (OpenCLIP bigG)" : "text encoder 1 (CLIP-L)"
            }
            if name.hasPrefix("cond_stage_model.model.") { return "text encoder (OpenCLIP-H)" }
            if name.hasPrefix("cond_stage_model.") { return "text encoder (CLIP-L)" }
            if name.hasPrefix("model_ema.") { return "ema" }
            if !name.contains(".") { return "noise schedule" }
            return "other"
        }
        var rows: [String: (tensors: Int, parameters: Int, dtypes: [String: Int])] = [:]
        var order: [String] = []
        var precision: [String: Int] = [:]
        for t in model.tensors {
            let c = component(of: t.name)
            if rows[c] == nil { order.append(c); rows[c] = (0, 0, [:]) }
            rows[c]!.tensors += 1
            rows[c]!.parameters += t.elementCount
            rows[c]!.dtypes[t.dtype.shortName, default: 0] += t.elementCount
            precision[t.dtype.shortName, default: 0] += t.elementCount
        }
        let preferred = ["unet", "text encoder (CLIP-L)", "text encoder (OpenCLIP-H)", "text encoder 1 (CLIP-L)",
                         "text encoder 2 (OpenCLIP bigG)", "text encoder (OpenCLIP bigG)", "vae", "ema", "noise schedule", "other"]
        let components = preferred.filter { rows[$0] != nil }.map { name in
            CheckpointReport.ComponentRow(component: name, tensors: rows[name]!.tensors, parameters: rows[name]!.parameters,
                                          dtypes: rows[name]!.dtypes.sorted { $0.value > $1.value }.map { ValueCount(value: $0.key, count: $0.value) })
        }
        let emaWeights = model.tensors.filter { $0.name.hasPrefix("model_ema.") && $0.name != "model_ema.decay" && $0.name != "model_ema.num_updates" }
        let hasEMA = !emaWeights.isEmpty

        // Completeness against the family's key set (ArchitectureConfig.keyStructure: the released
        // structure, or a small model's own).
        var missing: [String] = [], unknown: [String] = []
        if let fam = family.family, family.variant?.contains("refiner") != true {
            let layout = ModelLayout(.keyStructure(of: model, family: fam))
            let expected = Set(layout.tensors.map(\.name))
            let present = Set(names)
            missing = layout.tensors.map(\.name).filter { !present.contains($0) && !optionalKey($0) }
            unknown = names.filter { !expected.contains($0) && !$0.hasPrefix("model_ema.") && !knownExtra($0) }
            let missingUNet = missing.filter { $0.hasPrefix(ModelLayout.unetPrefix) }
            if !missingUNet.isEmpty {
                findings.append(
                    Finding(
                        "incomplete-unet", .error,
                        "\(missingUNet.count) U-Net tensor(s) of \(fam.rawValue) are missing: the checkpoint is broken or pruned wrongly",
                                        keys: missingUNet))
            }
            if !present.contains(where: { $0.hasPrefix(ModelLayout.vaePrefix) }) {
                findings.append(Finding("no-vae", .info, "no VAE inside: UIs use the VAE you select (or fail to decode without one)"))
            } else if missing.contains(where: { $0.hasPrefix(ModelLayout.vaePrefix) }) {
                findings.append(Finding("incomplete-vae", .warning, "the VAE is incomplete", keys: missing.filter { $0.hasPrefix(ModelLayout.vaePrefix) }))
            }
            let missingText = missing.filter { !$0.hasPrefix(ModelLayout.unetPrefix) && !$0.hasPrefix(ModelLayout.vaePrefix) && !$0.contains("alphas") }
            if !missingText.isEmpty && missingText.count < layout.tensors.count {
                findings.append(Finding("incomplete-text-encoder", .warning, "\(missingText.count) text-encoder tensor(s) are missing", keys: missingText))
            }
            if !unknown.isEmpty {
                findings.append(Finding("unknown-keys", .info, "\(unknown.count) key(s) are not part of \(fam.rawValue)", keys: unknown))
            }
            // Shapes, when the file has the released model's widths.
            if let conv = model["model.diffusion_model.input_blocks.0.0.weight"], conv.shape.first == 320 || conv.shape.first == 384 {
                var specs: [String: [Int]] = [:]
                for s in layout.tensors { specs[s.name] = s.shape }
                let wrong = model.tensors.compactMap { t -> String? in
                    let name =
                        oldNames.contains(t.name) ? t.name.replacingFirst("cond_stage_model.transformer.", "cond_stage_model.transformer.text_model.") : t.name
                    guard let shape = specs[name], shape != t.shape, !(name.hasSuffix("input_blocks.0.0.weight")) else { return nil }
                    return "\(t.name) \(t.shape) (expected \(shape))"
                }
                if !wrong.isEmpty {
                    findings.append(Finding("shape-mismatch", .error, "\(wrong.count) tensor(s) have shapes that do not fit \(fam.rawValue)", keys: wrong))
                }
            }
        } else if family.family == nil && family.otherArchitecture == nil {
            findings.append(Finding("family-unknown", .warning, "not recognisably SD1.x, SD2.x or SDXL"))
        }
        if let other = family.otherArchitecture {
            findings.append(Finding("other-architecture", .info, "a \(other) model; family-specific checks are skipped"))
        }

        // CLIP position_ids: float or scrambled ids are a known cause of prompt drift in merged models.
        for name in names where name.hasSuffix("text_model.embeddings.position_ids") {
            guard let t = model[name] ?? model[name.replacingFirst("text_model.", "")] else { continue }
            let values = t.floats()
            let broken = values.enumerated().contains { Float($0.offset) != $0.element }
            if !t.dtype.isFloatingPoint && !broken { continue }
            findings.append(Finding("broken-position-ids", .warning,
                    "\(name) is \(t.dtype.shortName)\(broken ? " with values that are not 0, 1, 2, ..." : ""): prompts lose position information (a common "
                        + "merge artefact)",
                                    keys: [name]))
        }

        if precision.keys.filter({ ["fp16", "bf16", "fp32", "fp64"].contains($0) }).count > 1 {
            findings.append(Finding("mixed-precision", .info, "weights mix \(precision.keys.sorted().joined(separator: ", "))"))
        }

        if let stats {
            let nan = zip(model.tensors, stats).filter { ($0.1?.nanCount ?? 0) > 0 }.map(\.0.name)
            let inf = zip(model.tensors, stats).filter { ($0.1?.infCount ?? 0) > 0 }.map(\.0.name)
            let zero = zip(model.tensors, stats).filter { ($0.1?.isAllZero ?? false) && $0.0.elementCount > 1 && !$0.0.name.hasSuffix(".bias") }.map(\.0.name)
            if !nan.isEmpty { findings.append(Finding("nan-values", .error, "\(nan.count) tensor(s) contain NaN: images will be black", keys: nan)) }
            if !inf.isEmpty { findings.append(Finding("inf-values", .error, "\(inf.count) tensor(s) contain infinities", keys: inf)) }
            if !zero.isEmpty { findings.append(Finding("zero-tensors", .warning, "\(zero.count) weight tensor(s) are entirely zero", keys: zero)) }
        }

        let report = CheckpointReport(
            family: family, components: components, hasEMA: hasEMA,
            parameters: model.tensors.reduce(0) { $0 + $1.elementCount },
            precision: precision.sorted { $0.value > $1.value }.map { ValueCount(value: $0.key, count: $0.value) },
            missingKeys: missing.count, unknownKeys: unknown.count, stateDictKey: model.stateDictKey,
            extras: model.extras.prefix(20).map { ValueCount(value: "\($0.key) = \($0.value)", count: 1) })
        return (report, findings)
    }

    /// Keys whose absence is normal (schedule buffers, EMA bookkeeping, position ids).
    static func optionalKey(_ name: String) -> Bool {
        !name.contains(".") || name.hasPrefix("model_ema.") || name.hasSuffix("position_ids") || name.hasSuffix("logit_scale")
            || name.hasSuffix("text_projection") || name.hasSuffix("text_projection.weight")
    }

    static func knownExtra(_ name: String) -> Bool {
        ["v_pred", "ztsnr", "edm_mean", "edm_std"].contains(name) || name.hasSuffix("position_ids") || name.hasSuffix("logit_scale")
            || name.hasSuffix("text_projection") || name.hasSuffix("text_projection.weight")
    }
}

extension String {
    func replacingFirst(_ target: String, _ replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
