import LoRACore

/// LyCORIS's NormModule (lycoris/modules/norms.py, lycoris_lora 3.2.0.post2; `train_norm=True`): a GroupNorm's or
/// LayerNorm's affine parameters trained as offsets, γ' = γ + multiplier·w_norm and β' = β + multiplier·b_norm, both
/// starting at 0. Keys: `<name>.w_norm`, `<name>.b_norm` (no alpha; lora-merge adds them to the weight and bias).
/// The tape runs the layer with γ' and β' (Normalization+Tape.swift), and the layer's own dγ and dβ are the gradients
/// of w_norm and b_norm (times the multiplier).
public struct NormModule: TrainedModule {
    public let name: String
    /// w_norm [channels], b_norm [channels].
    public let weight: Parameter
    public let bias: Parameter
    public var multiplier: Float = 1
    /// LyCORIS's rank dropout in this pass: 1 or 0 per channel, on both offsets (nil: every channel).
    public private(set) var channelMask: [Float]?

    public var parameters: [Parameter] { [weight, bias] }
    public var fileScalars: [(suffix: String, value: Float)] { [] }

    public init(name: String, channels: Int, weight: [Float]? = nil, bias: [Float]? = nil) {
        self.name = name
        self.weight = Parameter(key: name + ".w_norm", shape: [channels], values: weight ?? [Float](repeating: 0, count: channels))
        self.bias = Parameter(key: name + ".b_norm", shape: [channels], values: bias ?? [Float](repeating: 0, count: channels))
    }

    /// This module for one pass under LyCORIS's rank dropout (lycoris/modules/norms.py `make_weight`): the offsets of
    /// the channels where `mask` is 0 left out. LyCORIS 3.2.0.post2 keeps a channel where `torch.rand(dim) < p`, the
    /// opposite of its other modules (so rank_dropout=0.1 drops nine channels in ten there); here a channel is
    /// dropped with probability p, as everywhere else.
    public func droppingChannels(_ mask: [Float]) -> NormModule {
        precondition(mask.count == weight.count, "\(name): a channel mask of \(mask.count) for \(weight.count) channels")
        var module = self
        module.channelMask = mask
        return module
    }

    /// multiplier, times the channel's mask value under rank dropout.
    private func factor(_ channel: Int) -> Float { multiplier * (channelMask?[channel] ?? 1) }

    /// γ + multiplier·w_norm and β + multiplier·b_norm.
    public func shifted(gamma: [Float], beta: [Float]) -> (gamma: [Float], beta: [Float]) {
        precondition(gamma.count == weight.count && beta.count == bias.count, "\(name): \(weight.count) channels for a norm of \(gamma.count)")
        return (gamma.indices.map { gamma[$0] + factor($0) * weight.values[$0] }, beta.indices.map { beta[$0] + factor($0) * bias.values[$0] })
    }

    /// Adds the layer's dγ and dβ into w_norm's and b_norm's gradients.
    public func accumulate(gammaGradient: Gradient, betaGradient: Gradient) {
        for (target, source) in [(weight.gradient, gammaGradient), (bias.gradient, betaGradient)] {
            target.withPointer { t in for i in 0..<source.values.count { t[i] += factor(i) * source.values[i] } }
        }
    }
}
