import Diffusion
import LoRACore

/// Every float weight of some parts of a model, trained from scratch (the
/// tiny model the quick start draws with): values and gradients by
/// checkpoint key, the tape that trains them, and the `Weights` the engine's
/// constructors read the current values from.
public final class ModelParameters: @unchecked Sendable {
    public let config: ArchitectureConfig
    public let parameters: [Parameter]
    private let index: [String: Int]

    /// Fresh weights for the tensors of `config` whose names start with one
    /// of `prefixes`, initialised as torch initialises the layers (and as LDM
    /// zeroes some):
    /// - 2-D and 4-D weights: U(−1/√fan_in, 1/√fan_in) (nn.Linear/nn.Conv2d's
    ///   kaiming_uniform with a = √5); biases 0;
    /// - norms: γ = 1, β = 0 (every 1-D `.weight` of an SD checkpoint is a norm's);
    /// - embeddings (CLIP's token and position tables): N(0, 0.02²), CLIP's init;
    /// - LDM's `zero_module`: each ResBlock's last conv, each transformer's
    ///   proj_out and the U-Net's output conv start at zero, so every block
    ///   starts as the identity and the untrained U-Net predicts 0;
    /// - the VAE's log-variance starts small (see below).
    public init(config: ArchitectureConfig, prefixes: [String], seed: UInt64) {
        self.config = config
        var random = TrainingRandom(seed: seed)
        var parameters: [Parameter] = []
        for spec in ModelLayout(config).tensors where prefixes.contains(where: { spec.name.hasPrefix($0) }) && spec.dtype == nil {
            let count = spec.shape.reduce(1, *)
            var values = [Float](repeating: 0, count: count)
            let name = spec.name
            if name.hasSuffix("embedding.weight") {
                values = random.normal(count).map { 0.02 * $0 }
            } else if spec.shape.count == 1 {
                if name.hasSuffix(".weight") { values = [Float](repeating: 1, count: count) }
            } else if !ModelParameters.startsAtZero(name) && spec.shape.count >= 2 {
                let bound = 1 / Double(spec.shape.dropFirst().reduce(1, *)).squareRoot()
                for i in 0..<count { values[i] = Float((2 * random.uniform() - 1) * bound) }
            }
            if name == ModelLayout.vaePrefix + "quant_conv.bias" {
                // The log-variance channels start at −6 (σ ≈ 0.05): with LDM's σ ≈ 1 at the start the decoder sees
                // mostly noise until the encoder learns to shrink it (measured: no progress in the first 100 steps).
                for i in (count / 2)..<count { values[i] = -6 }
            }
            parameters.append(Parameter(key: name, shape: spec.shape, values: values))
        }
        self.parameters = parameters
        index = Dictionary(uniqueKeysWithValues: parameters.enumerated().map { ($1.key, $0) })
    }

    static func startsAtZero(_ name: String) -> Bool {
        name.hasPrefix(UNet.prefix) && (name.contains(".out_layers.3.") || name.contains(".proj_out.") || name.hasPrefix(UNet.prefix + "out.2."))
    }

    public subscript(key: String) -> Parameter? { index[key].map { parameters[$0] } }

    /// The tape that trains all of them (gradients added into their buffers).
    public func tape() -> TrainingTape { TrainingTape(training: parameters) }

    /// The current values as the `Weights` the engine's layers load from: a
    /// file made once (for the names and shapes the layers check) whose values
    /// are replaced by the parameters' arrays, which are shared, not copied. A
    /// step that rebuilt the file serialised every parameter twice (12 ms of a
    /// tiny-model U-Net step's 0.45 s).
    public func weights() throws(ModelError) -> Weights {
        var weights = Weights(try layoutFile())
        weights.replacements = Dictionary(uniqueKeysWithValues: parameters.map { ($0.key, $0.values) })
        return weights
    }

    private var layout: ModelFile?
    private func layoutFile() throws(ModelError) -> ModelFile {
        if let layout { return layout }
        let file = try ModelFile.inMemory(parameters.map { ($0.key, $0.shape, $0.values) }, path: "<training>")
        layout = file
        return file
    }

    public func zeroGradients() { for p in parameters { p.gradient.zero() } }

    /// Replaces the values of keys present in `file` (a run continued from a saved model).
    public func load(_ file: ModelFile) throws(ModelError) {
        for p in parameters {
            guard let tensor = file[p.key] else { continue }
            guard tensor.elementCount == p.count else {
                throw ModelError(.mismatch, "\(p.key) is \(tensor.shapeDescription), expected \(p.shape)", file: file.path, key: p.key)
            }
            p.values = tensor.floats()
        }
    }
}

extension TrainingTape {
    /// A tape that trains `parameters`: their gradients are added into `buffers` (one per parameter, in order),
    /// or into the parameters' own.
    convenience init(training parameters: [Parameter], into buffers: [Gradient]? = nil) {
        let gradients = buffers ?? parameters.map(\.gradient)
        self.init(parameterGradients: Dictionary(uniqueKeysWithValues: zip(parameters, gradients).map { ($0.key, $1) }))
    }
}
