/// What a file's tensors (and, failing that, its metadata) say about the base model.
public struct FamilyGuess: Sendable, Codable, Equatable {
    public enum Evidence: String, Sendable, Codable {
        /// Key structure or tensor widths that only one family has.
        case tensors
        /// Only `ss_base_model_version` / `ss_v2` / `modelspec.architecture`.
        case metadata
        case none
    }

    public var family: Family?
    public var evidence: Evidence
    /// e.g. "inpainting", "refiner", "v-prediction".
    public var variant: String?
    public var reasons: [String]
    /// What metadata says, when it disagrees with the tensors.
    public var metadataDisagreement: String?
    /// A non-SD architecture recognised by its keys (Flux, SD3, ...).
    public var otherArchitecture: String?

    public var label: String {
        if let other = otherArchitecture { return other }
        guard let family else { return "unknown" }
        return family.rawValue + (variant.map { " (\($0))" } ?? "")
    }
}

public enum FamilyDetection {
    /// The family metadata claims (kohya's `ss_*` keys or ModelSpec).
    public static func fromMetadata(_ metadata: Metadata) -> (Family, String)? {
        if let version = metadata[.baseModelVersion] {
            if version.hasPrefix("sdxl") { return (.sdxl, "ss_base_model_version=\(version)") }
            if version.hasPrefix("sd_v2") { return (.sd2, "ss_base_model_version=\(version)") }
            if version.hasPrefix("sd_v1") { return (.sd1, "ss_base_model_version=\(version)") }
        }
        if let arch = metadata[.specArchitecture] {
            if arch.hasPrefix("stable-diffusion-xl") { return (.sdxl, "modelspec.architecture=\(arch)") }
            if arch.hasPrefix("stable-diffusion-v2") { return (.sd2, "modelspec.architecture=\(arch)") }
            if arch.hasPrefix("stable-diffusion-v1") { return (.sd1, "modelspec.architecture=\(arch)") }
        }
        if let v2 = metadata[.v2] { return v2 == "True" ? (.sd2, "ss_v2=True") : (.sd1, "ss_v2=False") }
        return nil
    }

    static func isVPrediction(_ metadata: Metadata) -> Bool {
        metadata[.specPredictionType] == "v" || (metadata[.baseModelVersion]?.hasSuffix("_v") ?? false)
            || (metadata[.specArchitecture]?.contains("768-v") ?? false) || metadata[.vParameterization] == "True"
    }

    /// Non-SD architectures by marker keys (ComfyUI's rules), so they are named, not mislabelled.
    static func otherArchitecture(_ names: [String]) -> String? {
        func any(_ marker: String) -> Bool { names.contains { $0.contains(marker) } }
        if any("double_blocks") && any("single_blocks") { return "Flux" }
        if any("joint_blocks") { return "SD3" }
        if any("lora_prior_unet") || any("clf.1.weight") { return "Stable Cascade" }
        if any("lora_transformer_") || names.contains(where: { $0.hasPrefix("transformer.") }) { return "DiT (diffusers transformer)" }
        return nil
    }

    /// Family of a full checkpoint, from its key structure (A1111's rules) and widths.
    public static func checkpoint(_ model: ModelFile) -> FamilyGuess {
        let names = model.tensorNames
        func has(_ key: String) -> Bool { model[key] != nil }
        func hasPrefix(_ prefix: String) -> Bool { names.contains { $0.hasPrefix(prefix) } }
        var guess = FamilyGuess(family: nil, evidence: .none, variant: nil, reasons: [], metadataDisagreement: nil, otherArchitecture: nil)
        if let other = otherArchitecture(names) {
            guess.otherArchitecture = other
            return guess
        }
        let inputConv = model["model.diffusion_model.input_blocks.0.0.weight"]
        if hasPrefix("conditioner.embedders.1.model.") {
            guess.family = .sdxl
            guess.reasons.append("has conditioner.embedders.1 (OpenCLIP bigG)")
        } else if hasPrefix("conditioner.embedders.0.model.") {
            guess.family = .sdxl
            guess.variant = "refiner"
            guess.reasons.append("only conditioner.embedders.0 is OpenCLIP: SDXL refiner")
        } else if hasPrefix("cond_stage_model.model.transformer.resblocks.") {
            guess.family = .sd2
            guess.reasons.append("OpenCLIP text encoder under cond_stage_model.model")
        } else if hasPrefix("cond_stage_model.transformer.") {
            guess.family = .sd1
            guess.reasons.append("CLIP text encoder under cond_stage_model.transformer")
        } else if hasPrefix("model.diffusion_model.") {
            // U-Net only: decide from its structure.
            if has("model.diffusion_model.label_emb.0.0.weight") || hasPrefix("model.diffusion_model.input_blocks.4.1.transformer_blocks.1.") {
                guess.family = .sdxl
                guess.reasons.append("U-Net has size conditioning / deep transformer blocks")
            } else if let k = model["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"], k.shape.count == 2 {
                switch k.shape[1] {
                case 768: guess.family = .sd1
                case 1024: guess.family = .sd2
                default: break
                }
                if guess.family != nil { guess.reasons.append("cross-attention context width \(k.shape[1])") }
            }
        }
        if guess.family != nil { guess.evidence = .tensors }
        if let conv = inputConv, conv.shape.count == 4 {
            if conv.shape[1] == 9 { guess.variant = "inpainting" } else if conv.shape[1] == 8 { guess.variant = "instruct-pix2pix" }
        }
        if has("v_pred") || isVPrediction(model.metadata) {
            guess.variant = guess.variant.map { $0 + ", v-prediction" } ?? "v-prediction"
        }
        applyMetadata(model.metadata, to: &guess)
        return guess
    }

    /// Family a LoRA targets: key structure first, then widths, then metadata.
    public static func lora(_ network: NetworkFile) -> FamilyGuess {
        let names = network.modules.map { KeyMap.kohyaStyleName($0.name) }
        var guess = FamilyGuess(family: nil, evidence: .none, variant: nil, reasons: [], metadataDisagreement: nil, otherArchitecture: nil)
        if let other = otherArchitecture(network.modules.map(\.name)) {
            guess.otherArchitecture = other
            return guess
        }
        func any(_ test: (String) -> Bool) -> Bool { names.contains(where: test) }
        // Structure that only SDXL has.
        if any({ $0.hasPrefix("lora_te2_") }) {
            guess.family = .sdxl
            guess.reasons.append("has a second text encoder (lora_te2_)")
        } else if any({ $0.hasPrefix("lora_unet_input_blocks_") || $0.hasPrefix("lora_unet_output_blocks_") || $0.hasPrefix("lora_unet_middle_block_") }) {
            guess.family = .sdxl
            guess.reasons.append("U-Net modules use SGM (input_blocks) names, as kohya's SDXL LoRAs do")
        } else if any({ $0.contains("transformer_blocks_") && !$0.contains("transformer_blocks_0_") }) {
            guess.family = .sdxl
            guess.reasons.append("transformer depth above 1 exists only in SDXL")
        }
        // Widths: cross-attention context and text-encoder width.
        var contextWidths = Set<Int>(), teWidths = Set<Int>()
        var maxTextLayer = -1
        for module in network.modules {
            let name = KeyMap.kohyaStyleName(module.name)
            if name.hasPrefix("lora_unet_"), name.hasSuffix("attn2_to_k") || name.hasSuffix("attn2_to_v"),
               let inputs = module.flattenedInputs {
                contextWidths.insert(inputs)
            }
            if name.hasPrefix("lora_te"), name.hasSuffix("self_attn_q_proj") || name.hasSuffix("self_attn_k_proj"),
               let inputs = module.flattenedInputs, !name.hasPrefix("lora_te2_") {
                teWidths.insert(inputs)
            }
            if name.hasPrefix("lora_te"), !name.hasPrefix("lora_te2_"), let range = name.range(of: "encoder_layers_") {
                let digits = name[range.upperBound...].prefix { $0.isNumber }
                if let layer = Int(digits) { maxTextLayer = max(maxTextLayer, layer) }
            }
        }
        if guess.family == nil {
            if contextWidths.contains(2048) || contextWidths.contains(1280) {
                guess.family = .sdxl
                guess.reasons.append("cross-attention context width \(contextWidths.sorted())")
            } else if contextWidths.contains(1024) || teWidths.contains(1024) {
                guess.family = .sd2
                guess.reasons.append("width 1024 (OpenCLIP-H)")
            } else if maxTextLayer >= 12 {
                guess.family = .sd2
                guess.reasons.append("text-encoder layer \(maxTextLayer) (SD1's CLIP has 12)")
            } else if contextWidths.contains(768) || (contextWidths.isEmpty && teWidths.contains(768)) {
                guess.family = .sd1
                guess.reasons.append("width 768 (CLIP ViT-L)")
            }
        }
        if guess.family != nil { guess.evidence = .tensors }
        if isVPrediction(network.model.metadata) { guess.variant = "v-prediction" }
        applyMetadata(network.model.metadata, to: &guess)
        return guess
    }

    /// Why LoRA module names (kohya style) cannot belong to `family`, if they
    /// cannot: loaders never apply plain `lora_te_` text-encoder keys to SDXL
    /// (kohya names its encoders lora_te1_/lora_te2_ there), and `lora_te2_` or
    /// kohya's LDM U-Net names (input_blocks, middle_block, output_blocks)
    /// exist only in SDXL files.
    public static func ruledOut(_ family: Family, byNames names: [String]) -> String? {
        if family == .sdxl, let te = names.first(where: { $0.hasPrefix("lora_te_") }) {
            return "its text-encoder keys use SD1/SD2's lora_te_ prefix (\(te))"
        }
        if family != .sdxl, let sdxl = names.first(where: {
                $0.hasPrefix("lora_te2_") || $0.hasPrefix("lora_unet_input_blocks_") || $0.hasPrefix("lora_unet_middle_block_")
                    || $0.hasPrefix("lora_unet_output_blocks_")
        }) {
            return "it has SDXL-only keys (\(sdxl))"
        }
        return nil
    }

    private static func applyMetadata(_ metadata: Metadata, to guess: inout FamilyGuess) {
        guard let (claimed, source) = fromMetadata(metadata) else { return }
        if guess.family == nil {
            guess.family = claimed
            guess.evidence = .metadata
            guess.reasons.append("from metadata only: \(source)")
        } else if guess.family != claimed {
            guess.metadataDisagreement = "metadata says \(claimed.rawValue) (\(source))"
        }
    }
}
