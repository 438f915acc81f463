import LoRACore

/// Which of the U-Net's ResBlocks and transformers gradient checkpointing
/// recomputes: those whose input has at least `minimumPixels` latent pixels
/// (h·w). sd-scripts wraps every block (`every`); a block at a coarse level
/// holds few activation bytes for its work (the channels grow as the pixels
/// shrink, and its attention has few tokens), so `--gradient-checkpointing`
/// keeps those (`lowResolutionKept`): measured in Benchmarks/README.md
/// ("Gradient checkpointing"). The gradients are the same either way.
public struct CheckpointPolicy: Sendable, Equatable {
    public var minimumPixels: Int

    public init(minimumPixels: Int) { self.minimumPixels = minimumPixels }

    /// Everything kept: no recomputation.
    public static let none = CheckpointPolicy(minimumPixels: .max)
    /// sd-scripts': every block recomputed.
    public static let every = CheckpointPolicy(minimumPixels: 0)
    /// Blocks of 32×32 latent pixels and more recomputed (SD1 at 512²: levels 64² and 32²), coarser ones kept.
    public static let lowResolutionKept = CheckpointPolicy(minimumPixels: 32 * 32)

    func recomputes(_ input: Tensor) -> Bool { input.shape[2] * input.shape[3] >= minimumPixels }
}

extension UNet {
    enum LayerSaved: Sendable {
        case res(ResBlock.Saved)
        case transformer(SpatialTransformer.Saved)
        case downsample(input: Tensor)
        case upsample(upsampled: Tensor)
        /// Gradient checkpointing: only the block's input; its backward recomputes the rest.
        case checkpoint(input: Tensor)
    }

    /// The activations a backward through the U-Net needs (the training
    /// forward's tape; with gradient checkpointing, ResBlocks and transformers
    /// keep their inputs only).
    public struct Saved: Sendable {
        let input: Tensor                   // x                     [b, 4, h, w]
        let inputBlocks: [[LayerSaved]]
        let middleBlock: [LayerSaved]
        let outputBlocks: [[LayerSaved]]
        /// The decoder path's channels at each output block's concatenation (the skip's come after).
        let concatSplit: [Int]
        let finalHidden: Tensor             // before out.0 (norm + SiLU)
        let finalActivated: Tensor          // silu(norm(h)): out.2's input
        let contextShape: [Int]
        let context: Tensor
        let activatedEmbedding: Tensor
        let timestepFeatures: Tensor        // sinusoidal features   [b, mc]
        let timeHidden: Tensor              // time_embed.0's output [b, 4mc]
        let embedding: Tensor               // time_embed.2's output [b, 4mc]
    }

    /// `forward` (no SDXL vector yet) with the tape's trained modules instead
    /// of inference adapters, keeping what `backward` needs. `checkpointing`:
    /// gradient checkpointing as sd-scripts does it (each ResnetBlock and
    /// Transformer2D on its own), for the blocks the policy names: those keep
    /// only their input and run their forward again in the backward.
    public func forwardSaving(_ x: Tensor, timesteps: [Float], context: Tensor, tape: TrainingTape? = nil,
                              checkpointing: CheckpointPolicy = .none) -> (Tensor, Saved) {
        let features = timestepEmbedding(timesteps, dim: config.modelChannels)   // [b, mc]
        let timeHidden = timeEmbed1.forward(features, tape: tape)                 // [b, 4mc]  (LyCORIS trains modules here)
        let emb = timeEmbed2.forward(Activation.silu(timeHidden), tape: tape)     // [b, 4mc]
        let activated = Activation.silu(emb)
        func run(_ layers: [Layer], _ input: Tensor) -> (Tensor, [LayerSaved]) {
            var h = input
            var saved: [LayerSaved] = []
            for layer in layers {
                switch layer {
                case .res(let block) where checkpointing.recomputes(h):
                    saved.append(.checkpoint(input: h))
                    h = tape.map { t in t.withoutRecording { block.forwardSaving(h, activatedEmbedding: activated, tape: t).0 } }
                        ?? block.forwardSaving(h, activatedEmbedding: activated, tape: nil).0
                case .transformer(let t) where checkpointing.recomputes(h):
                    saved.append(.checkpoint(input: h))
                    h = tape.map { tp in tp.withoutRecording { t.forwardSaving(h, context: context, tape: tp).0 } }
                        ?? t.forwardSaving(h, context: context, tape: nil).0
                case .res(let block):
                    let (out, s) = block.forwardSaving(h, activatedEmbedding: activated, tape: tape)
                    saved.append(.res(s))
                    h = out
                case .transformer(let t):
                    let (out, s) = t.forwardSaving(h, context: context, tape: tape)
                    saved.append(.transformer(s))
                    h = out
                case .downsample(let conv):
                    saved.append(.downsample(input: h))
                    h = conv.forward(h, tape: tape)
                case .upsample(let conv):
                    let up = upsampleNearest2x(h)
                    saved.append(.upsample(upsampled: up))
                    h = conv.forward(up, tape: tape)
                }
            }
            return (h, saved)
        }
        var h = inputConv.forward(x, tape: tape)
        var skips = [h]
        var inputSaved: [[LayerSaved]] = []
        for block in inputBlocks {
            let (out, saved) = run(block, h)
            inputSaved.append(saved)
            h = out
            skips.append(h)
        }
        let (middle, middleSaved) = run(middleBlock, h)
        h = middle
        var outputSaved: [[LayerSaved]] = [], split: [Int] = []
        for block in outputBlocks {
            let skip = skips.removeLast()
            split.append(h.shape[1])
            let (out, saved) = run(block, concatenateChannels(h, skip))
            outputSaved.append(saved)
            h = out
        }
        let activatedOut = outputNorm.forward(h, silu: true, tape: tape)
        let y = outputConv.forward(activatedOut, tape: tape)
        return (y, Saved(input: x, inputBlocks: inputSaved, middleBlock: middleSaved, outputBlocks: outputSaved, concatSplit: split,
                         finalHidden: h, finalActivated: activatedOut, contextShape: context.shape, context: context, activatedEmbedding: activated,
                         timestepFeatures: features, timeHidden: timeHidden, embedding: emb))
    }

    /// Input gradients through the U-Net, d(latents) and d(context); the
    /// tape's modules add their factor gradients on the way, and the weights
    /// the tape trains theirs. The time embedding's gradient (every ResBlock's
    /// d SiLU(emb), summed) is formed only when the tape trains `time_embed`
    /// (its weights, or modules beside its layers).
    public func backward(_ saved: Saved, outputGradient dy: Tensor, tape: TrainingTape? = nil) -> (input: Tensor, context: Tensor) {
        var dContext = Tensor(zeros: saved.contextShape)
        let trainsTimeEmbedding = tape.map { t in
            t.gradient(timeEmbed2.parts[0].key) != nil || [timeEmbed1, timeEmbed2].contains { !(t.modules[$0.parts[0].key] ?? []).isEmpty }
        } ?? false
        var dActivated = Tensor(zeros: saved.activatedEmbedding.shape)
        func back(_ layers: [Layer], _ savedLayers: [LayerSaved], _ gradient: Tensor) -> Tensor {
            var d = gradient
            for (layer, stored) in zip(layers, savedLayers).reversed() {
                // A checkpointed block runs its forward again, now keeping what its backward needs (and its modules' inputs,
                // dropped from the tape once used).
                var s = stored
                let keep = tape?.recordedKeys
                if case let .checkpoint(input) = stored {
                    switch layer {
                    case .res(let block): s = .res(block.forwardSaving(input, activatedEmbedding: saved.activatedEmbedding, tape: tape).1)
                    case .transformer(let t): s = .transformer(t.forwardSaving(input, context: saved.context, tape: tape).1)
                    default: preconditionFailure("only ResBlocks and transformers are checkpointed")
                    }
                }
                defer { if case .checkpoint = stored, let keep { tape?.forgetAll(except: keep) } }
                switch (layer, s) {
                case let (.res(block), .res(blockSaved)):
                    let (dx, dEmbedding) = block.backward(blockSaved, outputGradient: d, tape: tape)
                    if trainsTimeEmbedding { addInPlace(&dActivated, dEmbedding) }
                    d = dx
                case let (.transformer(t), .transformer(tSaved)):
                    let (dx, dc) = t.backward(tSaved, outputGradient: d, tape: tape)
                    addInPlace(&dContext, dc)
                    d = dx
                case let (.downsample(conv), .downsample(input)):
                    d = conv.backward(input: input, outputGradient: d, tape: tape)
                case let (.upsample(conv), .upsample(upsampled)):
                    d = upsampleNearest2xBackward(conv.backward(input: upsampled, outputGradient: d, tape: tape))
                default:
                    preconditionFailure("saved activations do not match the layers")
                }
            }
            return d
        }
        var d = outputNorm.backward(input: saved.finalHidden, outputGradient: outputConv.backward(input: saved.finalActivated, outputGradient: dy, tape: tape),
                                    silu: true, tape: tape)
        // skips[i]: the input conv's output (0) and each input block's output; output block j concatenates skip n − j.
        let n = inputBlocks.count
        var dSkips = [Tensor?](repeating: nil, count: n + 1)
        for (j, block) in outputBlocks.enumerated().reversed() {
            let dConcat = back(block, saved.outputBlocks[j], d)
            let (dPath, dSkip) = concatenateChannelsBackward(dConcat, channelsA: saved.concatSplit[j])
            dSkips[n - j] = dSkip
            d = dPath
        }
        d = back(middleBlock, saved.middleBlock, d)
        for i in stride(from: n, through: 1, by: -1) {
            if let skip = dSkips[i] { addInPlace(&d, skip) }
            d = back(inputBlocks[i - 1], saved.inputBlocks[i - 1], d)
        }
        if let skip = dSkips[0] { addInPlace(&d, skip) }
        if trainsTimeEmbedding {
            // activated = silu(emb), emb = te2(silu(te1(features))): features are constants of t.
            let dEmbedding = Activation.silu.backward(input: saved.embedding, outputGradient: dActivated)
            let dHidden = timeEmbed2.backward(input: Activation.silu(saved.timeHidden), outputGradient: dEmbedding, tape: tape)
            _ = timeEmbed1.backward(input: saved.timestepFeatures, outputGradient: Activation.silu.backward(input: saved.timeHidden, outputGradient: dHidden),
                                    tape: tape)
        }
        return (inputConv.backward(input: saved.input, outputGradient: d, tape: tape), dContext)
    }
}
