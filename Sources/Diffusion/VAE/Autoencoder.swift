import Foundation
import LoRACore

/// The KL autoencoder's decoder: latents → RGB in [-1, 1].
public struct VAEDecoder: Sendable {
    public let config: ArchitectureConfig
    let postQuantConv: Conv2d
    let inputConv: Conv2d
    let middle: (VAEResBlock, VAEAttention, VAEResBlock)
    /// Levels in execution order (deepest first), each its blocks and upsampler.
    let levels: [([VAEResBlock], Conv2d?)]
    let outputNorm: GroupNorm
    let outputConv: Conv2d

    public static let prefix = "first_stage_model."

    public init(_ weights: Weights, config: ArchitectureConfig) throws(ModelError) {
        self.config = config
        let p = VAEDecoder.prefix, d = p + "decoder."
        let ch = config.vaeChannels, mult = config.vaeMultipliers, z = config.latentChannels
        let top = ch * (mult.last ?? 1)
        postQuantConv = try Conv2d(weights, p + "post_quant_conv", in: z, out: z, kernel: 1)
        inputConv = try Conv2d(weights, d + "conv_in", in: z, out: top, kernel: 3)
        middle = (try VAEResBlock(weights, d + "mid.block_1", in: top, out: top),
                  try VAEAttention(weights, d + "mid.attn_1", channels: top),
                  try VAEResBlock(weights, d + "mid.block_2", in: top, out: top))
        var levels: [([VAEResBlock], Conv2d?)] = []
        var channels = top
        for level in stride(from: mult.count - 1, through: 0, by: -1) {
            let out = ch * mult[level]
            var blocks: [VAEResBlock] = []
            for j in 0...config.vaeResBlocks {
                blocks.append(try VAEResBlock(weights, d + "up.\(level).block.\(j)", in: channels, out: out))
                channels = out
            }
            let upsample = level == 0 ? nil : try Conv2d(weights, d + "up.\(level).upsample.conv", in: out, out: out, kernel: 3)
            levels.append((blocks, upsample))
        }
        self.levels = levels
        outputNorm = try GroupNorm(weights, d + "norm_out", channels: ch, epsilon: 1e-6)
        outputConv = try Conv2d(weights, d + "conv_out", in: ch, out: 3, kernel: 3)
    }

    /// Decode latents as the sampler produces them (divided by the scale factor here).
    public func decode(_ latents: Tensor, progress: ((Int, Int) -> Void)? = nil) -> Tensor {
        var z = latents
        let inverse = 1 / config.vaeScaleFactor
        for i in z.values.indices { z.values[i] *= inverse }
        let total = levels.count + 2
        var h = inputConv.forward(postQuantConv.forward(z))
        h = middle.2.forward(middle.1.forward(middle.0.forward(consume h)))
        progress?(1, total)
        // `consume`: each block may then write over its input (VAEResBlock), and the upsampler's input is freed as
        // soon as its convolution, which reads it through the upsampling (no upsampled copy), returns.
        for (index, (blocks, upsample)) in levels.enumerated() {
            for block in blocks { h = block.forward(consume h) }
            if let upsample {
                // Each level's tensors are 4× the last's, so the heap's freed blocks of this level cannot serve the
                // next one and, kept, stay resident beside it (glibc's heap held 1.0–1.6 GB free during a 768²
                // decode; EngineAllocator keeps freed memory). Handing them back at each level: a training run's
                // 768² sample image peaked at 6.08 GB resident entering the full-size level, 5.28 GB with this.
                EngineAllocator.returnFreedMemory()
                h = upsample.forward(upsampling: consume h)
            }
            progress?(index + 2, total)
        }
        outputNorm.forwardInPlace(&h, silu: true)
        let out = outputConv.forward(h)
        progress?(total, total)
        return out
    }
}

/// The KL autoencoder's encoder: RGB in [-1, 1] → latent distribution.
public struct VAEEncoder: Sendable {
    public let config: ArchitectureConfig
    let inputConv: Conv2d
    let levels: [([VAEResBlock], Conv2d?)]
    let middle: (VAEResBlock, VAEAttention, VAEResBlock)
    let outputNorm: GroupNorm
    let outputConv: Conv2d
    let quantConv: Conv2d

    public init(_ weights: Weights, config: ArchitectureConfig) throws(ModelError) {
        self.config = config
        let p = VAEDecoder.prefix, e = p + "encoder."
        let ch = config.vaeChannels, mult = config.vaeMultipliers, z = config.latentChannels
        let top = ch * (mult.last ?? 1)
        inputConv = try Conv2d(weights, e + "conv_in", in: 3, out: ch, kernel: 3)
        var levels: [([VAEResBlock], Conv2d?)] = []
        var channels = ch
        for level in 0..<mult.count {
            let out = ch * mult[level]
            var blocks: [VAEResBlock] = []
            for j in 0..<config.vaeResBlocks {
                blocks.append(try VAEResBlock(weights, e + "down.\(level).block.\(j)", in: channels, out: out))
                channels = out
            }
            // LDM pads right and bottom by one, then convolves with stride 2 and no padding.
            let downsample = level == mult.count - 1 ? nil
                : try Conv2d(weights, e + "down.\(level).downsample.conv", in: out, out: out, kernel: 3, stride: 2,
                             padding: Conv2d.Padding(top: 0, left: 0, bottom: 1, right: 1))
            levels.append((blocks, downsample))
        }
        self.levels = levels
        middle = (try VAEResBlock(weights, e + "mid.block_1", in: top, out: top),
                  try VAEAttention(weights, e + "mid.attn_1", channels: top),
                  try VAEResBlock(weights, e + "mid.block_2", in: top, out: top))
        outputNorm = try GroupNorm(weights, e + "norm_out", channels: top, epsilon: 1e-6)
        outputConv = try Conv2d(weights, e + "conv_out", in: top, out: 2 * z, kernel: 3)
        quantConv = try Conv2d(weights, p + "quant_conv", in: 2 * z, out: 2 * z, kernel: 1)
    }

    /// The latent distribution's mean and log-variance, each [batch, 4, h/8, w/8]
    /// (unscaled: multiply by the scale factor for the sampler's space).
    public func moments(_ image: Tensor) -> (mean: Tensor, logVariance: Tensor) {
        var h = inputConv.forward(image)
        for (blocks, downsample) in levels {
            for block in blocks { h = block.forward(consume h) }
            if let downsample { h = downsample.forward(h) }
        }
        h = middle.2.forward(middle.1.forward(middle.0.forward(h)))
        let moments = quantConv.forward(outputConv.forward(outputNorm.forward(h, silu: true)))
        let batch = moments.shape[0], z = config.latentChannels, plane = moments.shape[2] * moments.shape[3]
        var mean = Tensor.uninitialized([batch, z, moments.shape[2], moments.shape[3]])
        var logVariance = mean
        for b in 0..<batch {
            let base = b * 2 * z * plane
            mean.values.replaceSubrange((b * z * plane)..<((b + 1) * z * plane), with: moments.values[base..<(base + z * plane)])
            logVariance.values.replaceSubrange((b * z * plane)..<((b + 1) * z * plane),
                                               with: moments.values[(base + z * plane)..<(base + 2 * z * plane)])
        }
        return (mean, logVariance)
    }

    /// Scaled latents: the distribution's mean, or a sample mean + σ·noise
    /// (LDM clamps the log-variance to [-30, 20]) when noise is given.
    public func encode(_ image: Tensor, noise: [Float]? = nil) -> Tensor {
        let (mean, logVariance) = moments(image)
        var latents = mean
        for i in latents.values.indices {
            var value = mean.values[i]
            if let noise {
                let logVar = min(max(logVariance.values[i], -30), 20)
                value += (0.5 * logVar).exp() * noise[i]
            }
            latents.values[i] = value * config.vaeScaleFactor
        }
        return latents
    }
}

extension Float {
    fileprivate func exp() -> Float { Float(Foundation.exp(Double(self))) }
}
