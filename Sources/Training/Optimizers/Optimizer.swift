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

/// An optimizer updates parameters from the gradients in their buffers; the
/// training loop zeroes the buffers after. Implementations: AdamW (Lion,
/// SGDNesterov, Prodigy, D-Adaptation and Adafactor to come, issue 14).
public protocol Optimizer: Sendable {
    /// Steps taken so far.
    var step: Int { get }
    mutating func update(_ groups: [ParameterGroup])
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
        for p in parameters { for i in p.gradient.values.indices { p.gradient.values[i] *= factor } }
    }
    return norm
}
