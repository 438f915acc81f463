/// Base-model families this suite understands.
public enum Family: String, Sendable, Codable, CaseIterable {
    case sd1 = "SD1.x"
    case sd2 = "SD2.x"
    case sdxl = "SDXL"

    /// kohya's `ss_base_model_version` value for this family.
    public var kohyaBaseVersion: String {
        switch self {
        case .sd1: return "sd_v1"
        case .sd2: return "sd_v2"
        case .sdxl: return "sdxl_base_v1-0"
        }
    }

    /// ModelSpec architecture id (without the `/lora` suffix).
    public var modelSpecArchitecture: String {
        switch self {
        case .sd1: return "stable-diffusion-v1"
        case .sd2: return "stable-diffusion-v2-512"
        case .sdxl: return "stable-diffusion-xl-v1-base"
        }
    }
}

/// Which network a weight belongs to.
public enum Component: String, Sendable, Codable, CaseIterable {
    case unet
    /// The text encoder of SD1/SD2, or CLIP-L of SDXL.
    case textEncoder1 = "te1"
    /// SDXL's OpenCLIP bigG.
    case textEncoder2 = "te2"
    case vae
    case other
}

/// The widths and depths of a Stable Diffusion model. The `real` configs
/// describe the released models; tests and fixtures use the same structure
/// (hence the same key names) at tiny widths.
public struct ArchitectureConfig: Sendable, Equatable {
    public enum TextEncoderLayout: Sendable, Equatable {
        /// Hugging Face CLIPTextModel layout (SD1, SDXL CLIP-L).
        case huggingFace
        /// OpenCLIP layout with packed q/k/v (SD2, SDXL bigG).
        case openCLIP
    }

    public struct TextEncoder: Sendable, Equatable {
        public var layout: TextEncoderLayout
        public var layers: Int
        public var width: Int
        public var mlpWidth: Int
        public var vocabulary: Int
        public var positions: Int
        /// Layers a kohya LoRA covers (SD2 drops the last one: it uses the penultimate).
        public var loraLayers: Int
        public var hasProjection: Bool
        /// Width of one attention head (64 in every released CLIP).
        public var headDim: Int = 64

        public var heads: Int { width / headDim }
        /// OpenAI's CLIP uses QuickGELU; OpenCLIP's ViT-H and bigG use exact GELU.
        public var usesQuickGELU: Bool { layout == .huggingFace }
    }

    /// How the U-Net's attention layers split their width into heads.
    public enum AttentionHeads: Sendable, Equatable {
        /// SD1: 8 heads at every level (head width 40/80/160).
        case count(Int)
        /// SD2 and SDXL: 64-wide heads (5/10/20 heads).
        case width(Int)

        public func heads(channels: Int) -> Int {
            switch self {
            case .count(let n): return n
            case .width(let d): return max(1, channels / d)
            }
        }
    }

    public var family: Family
    // UNet
    public var modelChannels: Int
    public var channelMultipliers: [Int]
    public var resBlocksPerLevel: Int
    /// Transformer depth by level; absent levels have no attention.
    public var attentionDepth: [Int: Int]
    public var middleDepth: Int
    public var contextDim: Int
    public var linearProjection: Bool
    public var latentChannels: Int
    /// SDXL's size/crop conditioning input width (`label_emb`).
    public var additionalEmbeddingInput: Int?
    // Text encoders
    public var textEncoders: [TextEncoder]
    // VAE
    public var vaeChannels: Int
    public var vaeMultipliers: [Int]
    public var vaeResBlocks: Int
    public var attentionHeads: AttentionHeads = .width(64)
    /// Width of each sinusoidal size/crop embedding in SDXL's `label_emb` input.
    public var sizeEmbeddingDim: Int = 256

    public var timeEmbedDim: Int { modelChannels * 4 }

    /// Latents are the VAE's output times this (sd-v1 and SD2 configs: 0.18215; SDXL: 0.13025).
    public var vaeScaleFactor: Float { family == .sdxl ? 0.13025 : 0.18215 }

    public static func real(_ family: Family) -> ArchitectureConfig {
        let clipL = TextEncoder(layout: .huggingFace, layers: 12, width: 768, mlpWidth: 3072, vocabulary: 49408,
                                positions: 77, loraLayers: 12, hasProjection: false)
        switch family {
        case .sd1:
            return ArchitectureConfig(family: .sd1, modelChannels: 320, channelMultipliers: [1, 2, 4, 4], resBlocksPerLevel: 2,
                                      attentionDepth: [0: 1, 1: 1, 2: 1], middleDepth: 1, contextDim: 768,
                                      linearProjection: false, latentChannels: 4, additionalEmbeddingInput: nil,
                                      textEncoders: [clipL], vaeChannels: 128, vaeMultipliers: [1, 2, 4, 4], vaeResBlocks: 2,
                                      attentionHeads: .count(8))
        case .sd2:
            let openCLIPH = TextEncoder(layout: .openCLIP, layers: 24, width: 1024, mlpWidth: 4096, vocabulary: 49408,
                                        positions: 77, loraLayers: 23, hasProjection: true)
            return ArchitectureConfig(family: .sd2, modelChannels: 320, channelMultipliers: [1, 2, 4, 4], resBlocksPerLevel: 2,
                                      attentionDepth: [0: 1, 1: 1, 2: 1], middleDepth: 1, contextDim: 1024,
                                      linearProjection: true, latentChannels: 4, additionalEmbeddingInput: nil,
                                      textEncoders: [openCLIPH], vaeChannels: 128, vaeMultipliers: [1, 2, 4, 4], vaeResBlocks: 2)
        case .sdxl:
            let bigG = TextEncoder(layout: .openCLIP, layers: 32, width: 1280, mlpWidth: 5120, vocabulary: 49408,
                                   positions: 77, loraLayers: 32, hasProjection: true)
            return ArchitectureConfig(family: .sdxl, modelChannels: 320, channelMultipliers: [1, 2, 4], resBlocksPerLevel: 2,
                                      attentionDepth: [1: 2, 2: 10], middleDepth: 10, contextDim: 2048,
                                      linearProjection: true, latentChannels: 4, additionalEmbeddingInput: 2816,
                                      textEncoders: [clipL, bigG], vaeChannels: 128, vaeMultipliers: [1, 2, 4, 4], vaeResBlocks: 2)
        }
    }

    /// The same structure at small widths, for fixtures and tests. Key names
    /// (and so every LoRA key) are identical to the real model's.
    public static func tiny(_ family: Family) -> ArchitectureConfig {
        var config = real(family)
        config.modelChannels = 8
        config.vaeChannels = 4
        let width = family == .sdxl ? 8 : (family == .sd2 ? 12 : 8)
        config.textEncoders = config.textEncoders.enumerated().map { index, te in
            var te = te
            te.width = family == .sdxl ? (index == 0 ? 8 : 12) : width
            te.mlpWidth = te.width * 4
            te.vocabulary = 64
            te.positions = 8
            return te
        }
        config.contextDim = config.textEncoders.map(\.width).reduce(0, +)
        if family == .sdxl { config.additionalEmbeddingInput = 24 }
        return config
    }
}
