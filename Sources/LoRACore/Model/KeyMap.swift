import Foundation

/// Maps every name a LoRA module goes by (kohya with diffusers or LDM paths,
/// `lora_te1_` for a single encoder, diffusers/PEFT paths) to the checkpoint
/// weight it changes, for one family.
public struct KeyMap: Sendable {
    public let family: Family
    public let layout: ModelLayout
    private let byName: [String: Int]

    public init(_ config: ArchitectureConfig) {
        family = config.family
        layout = ModelLayout(config)
        var byName: [String: Int] = [:]
        for (i, target) in layout.targets.enumerated() {
            byName[target.kohyaName] = i
            for alternate in target.alternateNames where byName[alternate] == nil { byName[alternate] = i }
        }
        self.byName = byName
    }

    /// Key maps of the released models (names do not depend on widths).
    public static let sd1 = KeyMap(.real(.sd1))
    public static let sd2 = KeyMap(.real(.sd2))
    public static let sdxl = KeyMap(.real(.sdxl))

    public static func real(_ family: Family) -> KeyMap {
        switch family {
        case .sd1: return sd1
        case .sd2: return sd2
        case .sdxl: return sdxl
        }
    }

    public var targets: [LoRATarget] { layout.targets }

    /// The target a module name refers to, after normalising diffusers/PEFT names.
    public func target(forModule name: String) -> LoRATarget? {
        if let i = byName[name] { return layout.targets[i] }
        if let i = byName[KeyMap.kohyaStyleName(name)] { return layout.targets[i] }
        return nil
    }

    /// Turn a diffusers/PEFT module path into the underscore form kohya uses:
    /// `unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q`
    /// → `lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q`.
    public static func kohyaStyleName(_ name: String) -> String {
        var path = name
        for prefix in ["base_model.model.", "model."] where path.hasPrefix(prefix) {
            path.removeFirst(prefix.count)
        }
        // Attention-processor era names: `attn1.processor.to_q_lora` → `attn1.to_q`.
        path = path.replacingOccurrences(of: ".processor.", with: ".")
        for (old, new) in [("to_q_lora", "to_q"), ("to_k_lora", "to_k"), ("to_v_lora", "to_v"), ("to_out_lora", "to_out.0")] {
            if path.hasSuffix(old) { path = String(path.dropLast(old.count)) + new }
        }
        let component: String
        if path.hasPrefix("unet.") {
            component = "lora_unet_"; path.removeFirst(5)
        } else if path.hasPrefix("text_encoder_2.") {
            component = "lora_te2_"; path.removeFirst(15)
        } else if path.hasPrefix("text_encoder.") {
            component = "lora_te1_"; path.removeFirst(13)
        } else if path.hasPrefix("text_model.") {
            component = "lora_te1_"
        } else if path.hasPrefix("down_blocks.") || path.hasPrefix("up_blocks.") || path.hasPrefix("mid_block.")
                    || path.hasPrefix("input_blocks.") || path.hasPrefix("output_blocks.") || path.hasPrefix("middle_block.") {
            component = "lora_unet_"
        } else {
            return name.replacingDots()
        }
        return component + path.replacingDots()
    }
}
