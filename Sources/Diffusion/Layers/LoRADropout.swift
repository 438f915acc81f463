import Foundation
import LoRACore

/// kohya's training-time dropouts of a LoRA module (sd-scripts networks/lora.py
/// `LoRAModule.forward`), drawn from one generator per run:
///   module_dropout p:  with probability p per forward, the module is skipped
///   network_dropout p: each value of down(x) kept with probability 1 − p, scaled by 1/(1 − p)
///   rank_dropout p:    each (item, rank) channel kept with probability 1 − p (the same over tokens or
///                      pixels), and the module's scale multiplied by 1/(1 − p)
/// The masks are saved for the backward, which applies them to the hidden gradient.
/// LyCORIS's modules under lycoris.kohya (`RankDropout.weightRows`) read rank_dropout otherwise: see `rowMask`.
/// Each module's draws in a pass come from a generator seeded by (run seed,
/// pass, module name): a block recomputed by gradient checkpointing gets the
/// same masks again (as torch's checkpoint restores its RNG state).
public final class LoRADropout: @unchecked Sendable {
    /// What rank_dropout drops.
    public enum RankDropout: Sendable {
        /// kohya's LoRA: (item, rank) channels of down(x), rescaled by 1/(1 − p) (`masks`).
        case rankChannels
        /// LyCORIS's modules as lycoris.kohya builds them: rows of ΔW (`rowMask`).
        case weightRows
    }

    public let neuron: Double?
    public let rank: Double?
    public let module: Double?
    public let seed: UInt64
    public let rankDropout: RankDropout
    /// Set by the training loop for each forward pass (micro-batch), from its epoch and batch.
    public var pass: UInt64 = 0

    public init(neuron: Double?, rank: Double?, module: Double?, seed: UInt64, rankDropout: RankDropout = .rankChannels) {
        (self.neuron, self.rank, self.module, self.seed, self.rankDropout) = (neuron, rank, module, seed, rankDropout)
    }

    public var isActive: Bool { (neuron ?? 0) > 0 || (rank ?? 0) > 0 || (module ?? 0) > 0 }

    /// The generator of `name`'s draws in this pass.
    func generator(_ name: String) -> TorchGenerator {
        TorchGenerator(seed: generatorSeed(name), variant: .libm)
    }

    static func uniform(_ g: inout TorchGenerator) -> Double { Double(g.nextUInt32() >> 8) / Double(1 << 24) }

    func skipsModule(_ name: String) -> Bool {
        guard let p = module, p > 0 else { return false }
        var g = generator("skip:" + name)
        return LoRADropout.uniform(&g) < p
    }

    /// The multiplier per hidden value and the output factor, or nil when neither neuron nor rank dropout is on.
    /// hidden: [items, …, rank] for linear modules, [items, rank, h, w] for convolutions.
    func masks(_ name: String, hiddenShape: [Int], rank r: Int, convolution: Bool) -> ([Float], Float)? {
        let n = neuron ?? 0, q = rankDropout == .rankChannels ? self.rank ?? 0 : 0
        guard n > 0 || q > 0 else { return nil }
        var g = generator(name)
        func uniform() -> Double { LoRADropout.uniform(&g) }
        let count = hiddenShape.reduce(1, *)
        var mask = [Float](repeating: 1, count: count)
        if n > 0 {
            let keep = Float(1 / (1 - n))
            for i in 0..<count { mask[i] = uniform() < n ? 0 : keep }
        }
        var factor: Float = 1
        if q > 0 {
            let items = hiddenShape[0], perItem = count / items
            for item in 0..<items {
                let kept = (0..<r).map { _ in uniform() > q }
                for j in 0..<perItem {
                    let channel = convolution ? (j / (perItem / r)) : (j % r)
                    if !kept[channel] { mask[item * perItem + j] = 0 }
                }
            }
            factor = Float(1 / (1 - q))
        }
        return (mask, factor)
    }

    /// LyCORIS's rank dropout (lycoris/modules/locon.py `make_weight`, loha.py and lokr.py `get_weight`, lycoris_lora
    /// 3.2.0.post2, not in bypass_mode): one draw per output row of the module's ΔW per forward, the row kept where
    /// `torch.rand(rows) > p`, with no rescaling (LyCORIS's rank_dropout_scale would divide by the mask's mean, but
    /// lycoris.kohya's create_network does not pass it on). A LoCon module run beside its layer has its output
    /// channels masked, which is the same. The draws are torch's float uniforms from the module's generator of the pass
    /// (so a golden made with torch.manual_seed of that generator's seed has the same masks). Nil when off.
    public func rowMask(_ name: String, rows: Int) -> [Float]? {
        guard rankDropout == .weightRows, let p = rank, p > 0 else { return nil }
        var g = generator(name)
        let threshold = Float(p)
        return (0..<rows).map { _ in g.nextFloat() > threshold ? 1 : 0 }
    }

    /// The seed of `name`'s generator in this pass (what `generator` seeds torch's MT19937 with).
    func generatorSeed(_ name: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        h ^= seed &* 0x9E37_79B9_7F4A_7C15 ^ pass &* 0xC2B2_AE3D_27D4_EB4F
        return (h ^ (h >> 32)) & 0xFFFF_FFFF
    }
}
