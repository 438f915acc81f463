import Diffusion

/// Parameters that share a learning rate (sd-scripts' parameter groups: the
/// text encoder's modules, the U-Net's, or one U-Net block's).
public struct ParameterGroup: Sendable {
    public var name: String
    public var parameters: [Parameter]
    /// This step's learning rate (the schedule applied to the group's base rate).
    public var learningRate: Double

    public init(name: String, parameters: [Parameter], learningRate: Double) {
        self.name = name
        self.parameters = parameters
        self.learningRate = learningRate
    }
}

extension [ParameterGroup] {
    /// D-Adaptation and Prodigy adapt one d for all groups: every group's rate must be the largest one or 0
    /// (their packages raise otherwise; kohya warns that only the first rate takes effect). `hint` is how to fix it.
    /// The first group's rate, which dadaptation's AdaGrad and Adan use for every group (a group at 0 too): so every
    /// group's rate must equal it here rather than be overridden quietly.
    func firstGroupLearningRate(_ optimizer: String) throws(OptimizerError) -> Double {
        let lr = first?.learningRate ?? 0
        if let other = first(where: { $0.learningRate != lr }) {
            throw OptimizerError("\(optimizer) takes one learning rate for every group (dadaptation uses the first group's for all): "
                                 + "\(other.name) has \(other.learningRate), another \(lr); use --text-encoder-lr equal to --unet-lr")
        }
        return lr
    }

    func sharedLearningRate(_ optimizer: String, hint: String = "use --text-encoder-lr equal to --unet-lr") throws(OptimizerError) -> Double {
        let lr = map(\.learningRate).max() ?? 0
        if let bad = first(where: { $0.learningRate != lr && $0.learningRate != 0 }) {
            throw OptimizerError("\(optimizer) takes one learning rate for every group (or 0): \(bad.name) has \(bad.learningRate), another \(lr); \(hint)")
        }
        return lr
    }
}

/// An optimizer updates parameters from the gradients in their buffers; the
/// training loop zeroes the buffers after. Implementations follow the code
/// kohya's `--optimizer_type` loads: AdamW (torch), Lion (lion-pytorch),
/// SGDNesterov (torch SGD), Prodigy (prodigyopt), DAdaptAdam, DAdaptLion, DAdaptSGD, DAdaptAdaGrad and
/// DAdaptAdamPreprint (dadaptation), Adafactor (transformers), AdamWScheduleFree and SGDScheduleFree (schedulefree),
/// and the module paths the kohya_ss GUI passes: CAME (pytorch-optimizer, came_pytorch), AdEMAMix (bitsandbytes),
/// ProdigyPlusScheduleFree (prodigy-plus-schedule-free).
public protocol Optimizer: Sendable {
    /// Steps taken so far.
    var step: Int { get }
    /// One step over every group. A group whose rate is 0 now (the first step of a warmup: diffusers' starts at 0) is
    /// taken as its package takes it: torch, lion-pytorch, transformers, pytorch-optimizer and bitsandbytes move its
    /// moments and leave its weights; prodigyopt and dadaptation skip a step on which no group has a rate. Groups
    /// whose base rate is 0 never get here (the trainer leaves them out, as kohya leaves them out of the optimizer).
    mutating func update(_ groups: [ParameterGroup]) throws(OptimizerError)
    /// Everything a resumed run needs: per-parameter tensors ("<key>.<name>") and scalars.
    var state: OptimizerState { get }
    mutating func restore(_ state: OptimizerState) throws(OptimizerError)
    /// The adaptive methods' d (their Adam-equivalent rate is d·lr: kohya logs lr/d*lr); nil for the others.
    var adaptiveScale: Double? { get }
    /// What kohya records as `ss_optimizer`, e.g. "torch.optim.adamw.AdamW".
    var kohyaName: String { get }
    /// Schedule-free optimizers (`ScheduleFree`) train at one point and save another: the trainer switches
    /// to the averaged weights for saving, sampling and validating and back before the next step, where kohya
    /// calls their eval() and train(). The others keep one set of weights and do nothing.
    mutating func useAveragedWeights(_ parameters: [Parameter])
    mutating func useGradientPointWeights(_ parameters: [Parameter])
    /// Sets its own rate over time (kohya gives it a dummy scheduler: --lr_scheduler does not apply).
    var schedulesItself: Bool { get }
}

extension Optimizer {
    public var adaptiveScale: Double? { nil }
    public mutating func useAveragedWeights(_ parameters: [Parameter]) {}
    public mutating func useGradientPointWeights(_ parameters: [Parameter]) {}
    public var schedulesItself: Bool { false }
}

public struct OptimizerState: Sendable, Equatable {
    public var tensors: [String: [Float]] = [:]
    public var scalars: [String: Double] = [:]
    public init(tensors: [String: [Float]] = [:], scalars: [String: Double] = [:]) {
        self.tensors = tensors
        self.scalars = scalars
    }
    /// Scalars and each set of per-parameter buffers under its torch state name ("<key>.<name>").
    init(scalars: [String: Double], buffers: KeyValuePairs<String, ParameterBuffers>) {
        self.init(scalars: scalars)
        for (name, set) in buffers { set.export(name, into: &self) }
    }
    func scalar(_ name: String) throws(OptimizerError) -> Double {
        guard let v = scalars[name] else { throw OptimizerError("the optimizer state has no \(name)") }
        return v
    }
}

/// A setting the optimizer cannot work with (group rates), or a state that does not fit.
public struct OptimizerError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Per-parameter buffers kept by key (moments, momentum…), created as zeros on first use.
struct ParameterBuffers: Sendable, Equatable {
    var values: [String: [Float]] = [:]

    mutating func take(_ key: String, count: Int) -> [Float] {
        values.removeValue(forKey: key) ?? [Float](repeating: 0, count: count)
    }

    func export(_ name: String, into state: inout OptimizerState) {
        for (key, v) in values { state.tensors[key + "." + name] = v }
    }

    static func restore(_ name: String, from state: OptimizerState) -> ParameterBuffers {
        let suffix = "." + name
        var buffers = ParameterBuffers()
        for (key, v) in state.tensors where key.hasSuffix(suffix) { buffers.values[String(key.dropLast(suffix.count))] = v }
        return buffers
    }
}

/// sd-scripts' `--max_grad_norm` (default 1): the L2 norm over every trained
/// gradient; above `maximum`, all are scaled by maximum / (norm + 1e-6)
/// (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Parameter], maximum: Float) -> Float {
    var squares = 0.0
    for p in parameters { for g in p.gradient.values { squares += Double(g) * Double(g) } }
    let norm = Float(squares.squareRoot())
    guard maximum > 0 else { return norm }
    let factor = maximum / (norm + 1e-6)
    if factor < 1 {
        for p in parameters { p.gradient.values.withUnsafeMutableBufferPointer { g in for i in g.indices { g[i] *= factor } } }
    }
    return norm
}
