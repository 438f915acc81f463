import LoRACore

extension ArchitectureConfig {
    /// Tiny models the diffusion engine can run and diffusers can load: every
    /// GroupNorm has at least 32 channels, attention heads follow the released
    /// models' rules (8 heads in SD1, 64-wide elsewhere), and the text
    /// encoders keep CLIP's vocabulary and 77 positions, so the shapes alone
    /// describe the model, as they do for real checkpoints.
    public static func engineTiny(_ family: Family) -> ArchitectureConfig {
        var config = ArchitectureConfig.real(family)
        config.vaeChannels = 32
        config.vaeMultipliers = [1, 2, 2, 2]
        func clip(_ te: TextEncoder, width: Int) -> TextEncoder {
            var te = te
            te.width = width
            te.mlpWidth = 4 * width
            te.layers = 3
            te.loraLayers = family == .sd2 ? 2 : 3
            return te
        }
        switch family {
        case .sd1:
            config.modelChannels = 32
            config.channelMultipliers = [1, 2, 2, 2]
            config.textEncoders = [clip(config.textEncoders[0], width: 128)]
        case .sd2:
            config.modelChannels = 64
            config.channelMultipliers = [1, 1, 2, 2]
            config.textEncoders = [clip(config.textEncoders[0], width: 128)]
        case .sdxl:
            config.modelChannels = 64
            config.channelMultipliers = [1, 2, 2]
            config.attentionDepth = [1: 2, 2: 2]
            config.middleDepth = 2
            config.textEncoders = [clip(config.textEncoders[0], width: 64), clip(config.textEncoders[1], width: 128)]
            config.additionalEmbeddingInput = 128 + 6 * config.sizeEmbeddingDim
        }
        config.contextDim = config.textEncoders.map(\.width).reduce(0, +)
        return config
    }
}
