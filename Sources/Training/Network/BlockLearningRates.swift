import Foundation

/// kohya's block learning rates (network args `down_lr_weight`, `mid_lr_weight`,
/// `up_lr_weight`, `block_lr_zero_threshold`; networks/lora.py
/// `parse_block_lr_kwargs`, `get_block_lr_weight`) for SD1/SD2: 12 down, 1 mid
/// and 12 up weights laid over the 25 block slots of `LoRANetwork.blockIndex`
/// (the first down weight falls on the unused slot 0, as in kohya). A list
/// (comma-separated, missing values 1, extra ones ignored) or a preset —
/// cosine, sine, linear, reverse_linear, zeros, with `+base` added. Weights
/// at or below the threshold become 0: those blocks get no modules. Each
/// block's modules form their own parameter group at unet_lr × weight.
public struct BlockLearningRates: Sendable, Equatable {
    public var weights: [Double]

    public init(weights: [Double]) { self.weights = weights }

    public static func parse(down: String?, mid: String?, up: String?, zeroThreshold: Double = 0) throws(OptimizerError) -> BlockLearningRates? {
        guard down != nil || mid != nil || up != nil else { return nil }
        func list(_ text: String?, count: Int, name: String) throws(OptimizerError) -> [Double] {
            guard let text else { return [Double](repeating: 1, count: count) }
            var values: [Double]
            if text.contains(",") || count == 1 {
                values = []
                for part in text.split(separator: ",", omittingEmptySubsequences: false) {
                    let t = part.trimmingCharacters(in: .whitespaces)
                    guard t.isEmpty || Double(t) != nil else { throw OptimizerError("\(name): \(t) is not a number") }
                    values.append(Double(t) ?? 0)
                }
            } else {
                let tokens = text.split(separator: "+", maxSplits: 1).map(String.init)
                guard let base = tokens.count > 1 ? Double(tokens[1]) : 0 else { throw OptimizerError("\(name): \(text) is not a preset+base") }
                let n = Double(count - 1)
                switch tokens[0] {
                case "cosine": values = (0..<count).reversed().map { sin(Double.pi * (Double($0) / n) / 2) + base }
                case "sine": values = (0..<count).map { sin(Double.pi * (Double($0) / n) / 2) + base }
                case "linear": values = (0..<count).map { Double($0) / n + base }
                case "reverse_linear": values = (0..<count).reversed().map { Double($0) / n + base }
                case "zeros": values = [Double](repeating: base, count: count)
                default: throw OptimizerError("\(name) \(tokens[0]) is not a preset (cosine, sine, linear, reverse_linear, zeros) or a list")
                }
            }
            values = Array(values.prefix(count)) + [Double](repeating: 1, count: max(0, count - values.count))
            return values.map { $0 > zeroThreshold ? $0 : 0 }
        }
        let weights = try list(down, count: 12, name: "down_lr_weight") + list(mid, count: 1, name: "mid_lr_weight")
            + list(up, count: 12, name: "up_lr_weight")
        return BlockLearningRates(weights: weights)
    }

    /// Block dims with the zero-weight blocks removed (kohya's remove_block_dims_and_alphas).
    public func removingZeroBlocks(from blocks: LoRANetwork.BlockDims) -> LoRANetwork.BlockDims {
        var b = blocks
        for (i, w) in weights.enumerated() where w == 0 {
            b.dims[i] = 0
            b.convDims?[i] = 0
        }
        return b
    }
}
