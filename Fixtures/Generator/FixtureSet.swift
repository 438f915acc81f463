import LoRACore

/// The named tiny fixtures committed under Fixtures/models (and regenerated
/// bit-identically by tests to prove the generator is deterministic).
public enum FixtureSet {
    public struct Item: Sendable {
        public let name: String
        public let write: @Sendable (String) throws -> Void
    }

    public static var items: [Item] {
        func lora(
            _ family: Family, _ layout: FixtureGenerator.LoRALayout, configure: @escaping @Sendable (inout FixtureGenerator.LoRAOptions) -> Void = { _ in }
        ) -> @Sendable (String) throws -> Void {
            { path in
                var options = FixtureGenerator.LoRAOptions()
                options.layout = layout
                configure(&options)
                try FixtureGenerator.writeLoRA(.tiny(family), to: path, options: options)
            }
        }
        func engine(_ family: Family) -> @Sendable (String) throws -> Void {
            { path in
                var options = FixtureGenerator.CheckpointOptions()
                options.dtype = .f32
                try FixtureGenerator.writeCheckpoint(.engineTiny(family), to: path, options: options)
            }
        }
        func engineLoRA(_ family: Family, _ layout: FixtureGenerator.LoRALayout) -> @Sendable (String) throws -> Void {
            { path in
                var options = FixtureGenerator.LoRAOptions()
                options.layout = layout
                options.rank = 4
                options.alpha = 4
                options.dtype = .f32
                try FixtureGenerator.writeLoRA(.engineTiny(family), to: path, options: options)
            }
        }
        return [
            Item(name: "sd1_tiny.safetensors") { try FixtureGenerator.writeCheckpoint(.tiny(.sd1), to: $0) },
            Item(name: "sd2_tiny.safetensors") { try FixtureGenerator.writeCheckpoint(.tiny(.sd2), to: $0) },
            Item(name: "sdxl_tiny.safetensors") { try FixtureGenerator.writeCheckpoint(.tiny(.sdxl), to: $0) },
            Item(name: "sd1_tiny_lora.safetensors", write: lora(.sd1, .lora)),
            Item(name: "sd1_tiny_tuned.safetensors") {
                try FixtureGenerator.writeCheckpoint(.tiny(.sd1), to: $0, options: FixtureGenerator.tunedOptions(.tiny(.sd1)))
            },
            Item(name: "sd1_tiny_locon.safetensors", write: lora(.sd1, .locon)),
            Item(name: "sd1_tiny_loha.safetensors", write: lora(.sd1, .loha)),
            Item(name: "sd1_tiny_lokr.safetensors", write: lora(.sd1, .lokr) { $0.rank = 2 }),
            Item(name: "sd1_tiny_ia3.safetensors", write: lora(.sd1, .ia3)),
            Item(name: "sd1_tiny_full.safetensors", write: lora(.sd1, .full)),
            Item(name: "sd1_tiny_diffusers.safetensors", write: lora(.sd1, .diffusers)),
            Item(name: "sd1_tiny_dylora.safetensors", write: lora(.sd1, .dylora)),
            Item(name: "sd2_tiny_lora.safetensors", write: lora(.sd2, .lora)),
            Item(name: "sdxl_tiny_lora.safetensors", write: lora(.sdxl, .lora)),
            // Models the diffusion engine runs (float32; golden outputs from diffusers).
            Item(name: "sd1_engine.safetensors", write: engine(.sd1)),
            Item(name: "sd2_engine.safetensors", write: engine(.sd2)),
            Item(name: "sdxl_engine.safetensors", write: engine(.sdxl)),
            Item(name: "sd1_engine_lora.safetensors", write: engineLoRA(.sd1, .lora)),
            Item(name: "sd1_engine_locon.safetensors", write: engineLoRA(.sd1, .locon)),
            Item(name: "sd1_engine_loha.safetensors", write: engineLoRA(.sd1, .loha)),
            Item(name: "sdxl_engine_lora.safetensors", write: engineLoRA(.sdxl, .lora)),
        ]
    }

    /// The items committed under Fixtures/models (the rest are written by tests as needed).
    public static let committed: Set<String> = ["sd1_tiny.safetensors", "sd1_tiny_lora.safetensors"]

    /// Write items into `folder` (all, or only the committed ones); returns (name, path) pairs.
    public static func write(to folder: String, all: Bool = false) throws -> [(String, String)] {
        try items.filter { all || committed.contains($0.name) }.map { item in
            let path = folder + "/" + item.name
            try item.write(path)
            return (item.name, path)
        }
    }
}
