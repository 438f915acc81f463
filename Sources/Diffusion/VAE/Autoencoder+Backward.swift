import LoRACore

/// The autoencoder as a list of steps, in execution order: the training
/// forward and backward walk the same list (forward, then reversed), so the
/// encoder and the decoder share one pair of loops.
enum AutoencoderStep: Sendable {
    case conv(Conv2d)
    /// Nearest ×2, then the conv (the decoder's upsamplers).
    case upsample(Conv2d)
    case res(VAEResBlock)
    case attention(VAEAttention)
    /// GroupNorm + SiLU (norm_out).
    case normSiLU(GroupNorm)

    enum Saved: Sendable {
        case input(Tensor)
        case res(VAEResBlock.Saved)
        case attention(VAEAttention.Saved)
    }

    static func forwardSaving(_ steps: [AutoencoderStep], _ x: Tensor, tape: TrainingTape?) -> (Tensor, [Saved]) {
        var h = x
        var saved: [Saved] = []
        for step in steps {
            switch step {
            case .conv(let conv):
                saved.append(.input(h))
                h = conv.forward(h, tape: tape)
            case .upsample(let conv):
                let up = upsampleNearest2x(h)                           // [b, c, 2h, 2w]
                saved.append(.input(up))
                h = conv.forward(up, tape: tape)
            case .res(let block):
                let (out, s) = block.forwardSaving(h, tape: tape)
                saved.append(.res(s))
                h = out
            case .attention(let attention):
                let (out, s) = attention.forwardSaving(h, tape: tape)
                saved.append(.attention(s))
                h = out
            case .normSiLU(let norm):
                saved.append(.input(h))
                h = norm.forward(h, silu: true)
            }
        }
        return (h, saved)
    }

    static func backward(_ steps: [AutoencoderStep], _ saved: [Saved], outputGradient dy: Tensor, tape: TrainingTape?) -> Tensor {
        var d = dy
        for (step, stored) in zip(steps, saved).reversed() {
            switch (step, stored) {
            case let (.conv(conv), .input(x)): d = conv.backward(input: x, outputGradient: d, tape: tape)
            case let (.upsample(conv), .input(up)): d = upsampleNearest2xBackward(conv.backward(input: up, outputGradient: d, tape: tape))
            case let (.res(block), .res(s)): d = block.backward(s, outputGradient: d, tape: tape)
            case let (.attention(attention), .attention(s)): d = attention.backward(s, outputGradient: d, tape: tape)
            case let (.normSiLU(norm), .input(x)): d = norm.backward(input: x, outputGradient: d, silu: true, tape: tape)
            default: preconditionFailure("saved activations do not match the autoencoder's steps")
            }
        }
        return d
    }
}

extension VAEDecoder {
    var steps: [AutoencoderStep] {
        var steps: [AutoencoderStep] = [.conv(postQuantConv), .conv(inputConv), .res(middle.0), .attention(middle.1), .res(middle.2)]
        for (blocks, upsample) in levels {
            steps += blocks.map { .res($0) }
            if let upsample { steps.append(.upsample(upsample)) }
        }
        return steps + [.normSiLU(outputNorm), .conv(outputConv)]
    }

    public struct Saved: Sendable { let steps: [AutoencoderStep.Saved] }

    /// The decoder from unscaled latents z [b, 4, h, w] (post_quant_conv's
    /// input; `decode` divides by the scale factor first) to RGB [b, 3, 8h, 8w].
    public func forwardSaving(_ z: Tensor, tape: TrainingTape?) -> (Tensor, Saved) {
        let (out, saved) = AutoencoderStep.forwardSaving(steps, z, tape: tape)
        return (out, Saved(steps: saved))
    }

    /// d(z) from d(image); the tape's trained weights add their gradients.
    public func backward(_ saved: Saved, outputGradient dy: Tensor, tape: TrainingTape?) -> Tensor {
        AutoencoderStep.backward(steps, saved.steps, outputGradient: dy, tape: tape)
    }
}

extension VAEEncoder {
    var steps: [AutoencoderStep] {
        var steps: [AutoencoderStep] = [.conv(inputConv)]
        for (blocks, downsample) in levels {
            steps += blocks.map { .res($0) }
            if let downsample { steps.append(.conv(downsample)) }
        }
        return steps + [.res(middle.0), .attention(middle.1), .res(middle.2), .normSiLU(outputNorm), .conv(outputConv), .conv(quantConv)]
    }

    public struct Saved: Sendable { let steps: [AutoencoderStep.Saved] }

    /// The encoder's moments [b, 8, h/8, w/8]: the mean's 4 channels, then the log-variance's.
    public func forwardSaving(_ image: Tensor, tape: TrainingTape?) -> (Tensor, Saved) {
        let (out, saved) = AutoencoderStep.forwardSaving(steps, image, tape: tape)
        return (out, Saved(steps: saved))
    }

    /// d(image) from d(moments); the tape's trained weights add their gradients.
    public func backward(_ saved: Saved, outputGradient dy: Tensor, tape: TrainingTape?) -> Tensor {
        AutoencoderStep.backward(steps, saved.steps, outputGradient: dy, tape: tape)
    }
}
