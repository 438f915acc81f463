import LoRACore
import CEngineKernels

/// GroupNorm over NCHW tensors (statistics in double), optionally fused with
/// SiLU: every ResBlock starts with GroupNorm → SiLU, and fusing saves a pass
/// over the activation.
public struct GroupNorm: Sendable {
    public let key: String
    public let biasKey: String
    public let channels: Int
    public let groups: Int
    public let epsilon: Float
    public var weight: [Float]
    public var bias: [Float]

    public init(_ weights: Weights, _ prefix: String, channels: Int, groups: Int = 32, epsilon: Float) throws(ModelError) {
        guard channels % groups == 0 else {
            throw ModelError(.mismatch, "\(prefix): \(channels) channels cannot form \(groups) groups", file: weights.path)
        }
        self.init(key: prefix + ".weight", biasKey: prefix + ".bias", channels: channels, groups: groups, epsilon: epsilon,
                  weight: try weights.load(prefix + ".weight", shape: [channels]), bias: try weights.load(prefix + ".bias", shape: [channels]))
    }

    /// A layer from values in memory (tests, training), as Linear and Conv2d can be built.
    public init(key: String = "group_norm.weight", biasKey: String = "group_norm.bias", channels: Int, groups: Int = 32, epsilon: Float,
                weight: [Float], bias: [Float]) {
        precondition(
            channels % groups == 0 && weight.count == channels && bias.count == channels,
            "group norm parameters do not fit \(channels) channels in \(groups) groups")
        self.key = key
        self.biasKey = biasKey
        self.channels = channels
        self.groups = groups
        self.epsilon = epsilon
        self.weight = weight
        self.bias = bias
    }

    public func forward(_ x: Tensor, silu: Bool = false, adapters: AdapterSet = .empty) -> Tensor {
        EngineProfile.measure(.normalization) {
            var y = Tensor.uninitialized(x.shape)
            x.withPointer { xp in y.withMutablePointer { yp in run(xp, into: yp, shape: x.shape, silu: silu, adapters: adapters) } }
            return y
        }
    }

    /// The same values written over x: where x is not needed after its normalisation (the VAE's blocks), no second
    /// tensor of its size is held.
    public func forwardInPlace(_ x: inout Tensor, silu: Bool = false) {
        EngineProfile.measure(.normalization) {
            let shape = x.shape
            x.withMutablePointer { p in run(p, into: p, shape: shape, silu: silu, adapters: .empty) }
        }
    }

    /// `y` may be `x`: a group's statistics are read before any of its values are written, and each value is
    /// then read once before its own slot is overwritten.
    private func run(_ xp: UnsafePointer<Float>, into yp: UnsafeMutablePointer<Float>, shape: [Int], silu: Bool, adapters: AdapterSet) {
        let batch = shape[0]
        let spatial = shape.reduce(1, *) / (batch * channels)
        let perGroup = channels / groups
        let gamma = adapters.replacements[key] ?? weight, beta = adapters.replacements[biasKey] ?? bias
        Parallel.forEach(batch * groups, cost: perGroup * spatial * 4) { index in
            let b = index / groups, g = index % groups
            let offset = (b * channels + g * perGroup) * spatial
            let n = perGroup * spatial
            let source = xp + offset
            let (mean, rstd) = normalizationStatistics(source, count: n, epsilon: Double(epsilon))
            for cIndex in 0..<perGroup {
                let c = g * perGroup + cIndex
                let scale = Float(rstd * Double(gamma[c]))
                let shift = Float(Double(beta[c]) - mean * rstd * Double(gamma[c]))
                let s = source + cIndex * spatial, d = yp + offset + cIndex * spatial
                for i in 0..<spatial { d[i] = s[i] * scale + shift }
                if silu { lt_silu(d, d, spatial) }
            }
        }
    }
}

/// LayerNorm over the last axis of [tokens, width] (statistics in double).
public struct LayerNorm: Sendable {
    public let key: String
    public let biasKey: String
    public let width: Int
    public let epsilon: Float
    public var weight: [Float]
    public var bias: [Float]

    public init(_ weights: Weights, weightKey: String, biasKey: String, width: Int, epsilon: Float = 1e-5) throws(ModelError) {
        self.init(key: weightKey, biasKey: biasKey, width: width, epsilon: epsilon,
                  weight: try weights.load(weightKey, shape: [width]), bias: try weights.load(biasKey, shape: [width]))
    }

    /// A layer from values in memory (tests, training).
    public init(key: String = "layer_norm.weight", biasKey: String = "layer_norm.bias", width: Int, epsilon: Float = 1e-5,
                weight: [Float], bias: [Float]) {
        precondition(weight.count == width && bias.count == width, "layer norm parameters do not fit width \(width)")
        self.key = key
        self.biasKey = biasKey
        self.width = width
        self.epsilon = epsilon
        self.weight = weight
        self.bias = bias
    }

    public init(_ weights: Weights, _ prefix: String, width: Int, epsilon: Float = 1e-5) throws(ModelError) {
        try self.init(weights, weightKey: prefix + ".weight", biasKey: prefix + ".bias", width: width, epsilon: epsilon)
    }

    public func forward(_ x: Tensor, adapters: AdapterSet = .empty) -> Tensor {
        EngineProfile.measure(.normalization) { run(x, adapters: adapters) }
    }

    private func run(_ x: Tensor, adapters: AdapterSet) -> Tensor {
        let rows = x.count / width
        let gamma = adapters.replacements[key] ?? weight, beta = adapters.replacements[biasKey] ?? bias
        var y = Tensor.uninitialized(x.shape)
        let width = self.width, epsilon = Double(self.epsilon)
        x.withPointer { xp in
            y.withMutablePointer { yp in
                Parallel.forEach(rows, cost: width * 4) { r in
                    let s = xp + r * width, d = yp + r * width
                    let (mean, rstd) = normalizationStatistics(s, count: width, epsilon: epsilon)
                    for i in 0..<width { d[i] = Float((Double(s[i]) - mean) * rstd) * gamma[i] + beta[i] }
                }
            }
        }
        return y
    }
}

/// Mean and 1/√(variance + ε) of n values, in double (two passes, as the
/// norms' forwards and backwards all compute their statistics).
@inline(__always)
func normalizationStatistics(_ values: UnsafePointer<Float>, count n: Int, epsilon: Double) -> (mean: Double, rstd: Double) {
    var sum = 0.0
    for i in 0..<n { sum += Double(values[i]) }
    let mean = sum / Double(n)
    var squares = 0.0
    for i in 0..<n { let d = Double(values[i]) - mean; squares += d * d }
    return (mean, 1 / (squares / Double(n) + epsilon).squareRoot())
}

