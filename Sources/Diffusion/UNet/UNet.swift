import LoRACore

/// The denoising U-Net of SD1/SD2/SDXL in LDM's single-file layout
/// (`model.diffusion_model.*`): predicts noise (or v) from a latent, a
/// (fractional) timestep, the text context and, for SDXL, the pooled text and
/// size embedding vector.
public struct UNet: Sendable {
    enum Layer: Sendable {
        case res(ResBlock)
        case transformer(SpatialTransformer)
        case downsample(Conv2d)
        case upsample(Conv2d)
    }

    public let config: ArchitectureConfig
    let timeEmbed1: Linear
    let timeEmbed2: Linear
    let labelEmbed: (Linear, Linear)?
    let inputConv: Conv2d
    let inputBlocks: [[Layer]]
    let middleBlock: [Layer]
    let outputBlocks: [[Layer]]
    let outputNorm: GroupNorm
    let outputConv: Conv2d

    public static let prefix = "model.diffusion_model."

    public init(_ weights: Weights, config: ArchitectureConfig) throws(ModelError) {
        self.config = config
        let p = UNet.prefix
        let mc = config.modelChannels, temb = config.timeEmbedDim
        timeEmbed1 = try Linear(weights, p + "time_embed.0", in: mc, out: temb)
        timeEmbed2 = try Linear(weights, p + "time_embed.2", in: temb, out: temb)
        if let adm = config.additionalEmbeddingInput {
            labelEmbed = (try Linear(weights, p + "label_emb.0.0", in: adm, out: temb), try Linear(weights, p + "label_emb.0.2", in: temb, out: temb))
        } else {
            labelEmbed = nil
        }
        inputConv = try Conv2d(weights, p + "input_blocks.0.0", in: config.latentChannels, out: mc, kernel: 3)

        func transformer(_ prefix: String, _ channels: Int, _ depth: Int) throws(ModelError) -> Layer {
            .transformer(try SpatialTransformer(weights, prefix, channels: channels, depth: depth, contextDim: config.contextDim,
                                                heads: config.attentionHeads.heads(channels: channels), linear: config.linearProjection))
        }

        let levels = config.channelMultipliers.count
        var inputs: [[Layer]] = []
        var skipChannels = [mc]
        var channels = mc
        var k = 0
        for level in 0..<levels {
            let out = mc * config.channelMultipliers[level]
            for _ in 0..<config.resBlocksPerLevel {
                k += 1
                var block: [Layer] = [.res(try ResBlock(weights, p + "input_blocks.\(k).0", in: channels, out: out, embedding: temb))]
                channels = out
                if let depth = config.attentionDepth[level] { block.append(try transformer(p + "input_blocks.\(k).1", channels, depth)) }
                inputs.append(block)
                skipChannels.append(channels)
            }
            if level != levels - 1 {
                k += 1
                inputs.append([.downsample(try Conv2d(weights, p + "input_blocks.\(k).0.op", in: channels, out: channels, kernel: 3, stride: 2))])
                skipChannels.append(channels)
            }
        }
        inputBlocks = inputs
        middleBlock = [
            .res(try ResBlock(weights, p + "middle_block.0", in: channels, out: channels, embedding: temb)),
            try transformer(p + "middle_block.1", channels, config.middleDepth),
            .res(try ResBlock(weights, p + "middle_block.2", in: channels, out: channels, embedding: temb)),
        ]
        var outputs: [[Layer]] = []
        k = 0
        for level in stride(from: levels - 1, through: 0, by: -1) {
            let out = mc * config.channelMultipliers[level]
            for j in 0...config.resBlocksPerLevel {
                let skip = skipChannels.removeLast()
                var block: [Layer] = [.res(try ResBlock(weights, p + "output_blocks.\(k).0", in: channels + skip, out: out, embedding: temb))]
                channels = out
                if let depth = config.attentionDepth[level] { block.append(try transformer(p + "output_blocks.\(k).1", channels, depth)) }
                if level != 0 && j == config.resBlocksPerLevel {
                    block.append(.upsample(try Conv2d(weights, p + "output_blocks.\(k).\(block.count).conv", in: channels, out: channels, kernel: 3)))
                }
                outputs.append(block)
                k += 1
            }
        }
        outputBlocks = outputs
        outputNorm = try GroupNorm(weights, p + "out.0", channels: mc, epsilon: 1e-5)
        outputConv = try Conv2d(weights, p + "out.2", in: mc, out: config.latentChannels, kernel: 3)
    }

    /// One evaluation.
    /// - Parameters:
    ///   - x: [batch, 4, h, w] latents (already scaled by the sampler's c_in).
    ///   - timesteps: one (possibly fractional) DDPM timestep per batch item.
    ///   - context: [batch, tokens, contextDim].
    ///   - vector: SDXL's [batch, adm] pooled-text-and-size vector.
    public func forward(_ x: Tensor, timesteps: [Float], context: Tensor, vector: Tensor? = nil,
                        adapters: AdapterSet = .empty) -> Tensor {
        var emb = timeEmbed2.forward(Activation.silu(timeEmbed1.forward(
            timestepEmbedding(timesteps, dim: config.modelChannels), adapters: adapters)), adapters: adapters)
        if let (first, second) = labelEmbed, let vector {
            addInPlace(&emb, second.forward(Activation.silu(first.forward(vector, adapters: adapters)), adapters: adapters))
        }
        let activated = Activation.silu(emb)

        func run(_ layers: [Layer], _ input: Tensor) -> Tensor {
            var h = input
            for layer in layers {
                switch layer {
                case .res(let block): h = block.forward(h, activatedEmbedding: activated, adapters: adapters)
                case .transformer(let t): h = t.forward(h, context: context, adapters: adapters)
                case .downsample(let conv): h = conv.forward(h, adapters: adapters)
                case .upsample(let conv): h = conv.forward(upsampling: h, adapters: adapters)
                }
            }
            return h
        }

        var h = inputConv.forward(x, adapters: adapters)
        var skips = [h]
        for block in inputBlocks {
            h = run(block, h)
            skips.append(h)
        }
        h = run(middleBlock, h)
        for block in outputBlocks {
            h = run(block, concatenateChannels(h, skips.removeLast()))
        }
        return outputConv.forward(outputNorm.forward(h, silu: true, adapters: adapters), adapters: adapters)
    }
}
