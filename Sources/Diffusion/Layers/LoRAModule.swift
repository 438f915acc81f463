import LoRACore

/// kohya's LoRAModule (sd-scripts networks/lora.py), the layer a LoRA network
/// trains (the network's layout, initialisation and files are Training's): beside a frozen Linear
/// or Conv2d, y = org(x) + multiplier · (alpha/rank) · up(down(x)), with
/// `lora_down` [rank, in] (or a conv with the original's kernel, stride and
/// padding: LoCon/C3Lier) and `lora_up` [out, rank] (a 1×1 conv). Keys are
/// kohya's: `<name>.lora_down.weight`, `<name>.lora_up.weight`, `<name>.alpha`.
public struct LoRAModule: SidePathModule {
    public enum Shape: Sendable, Equatable {
        case linear(in: Int, out: Int)
        case conv(in: Int, out: Int, kernel: Int, stride: Int, padding: Int)
    }

    public let name: String
    public let shape: Shape
    public let rank: Int
    public let alpha: Float
    public var multiplier: Float = 1
    public let down: Parameter
    public let up: Parameter
    /// LyCORIS's scalar (only its max-norm rule moves it; kohya's scales the factors): ΔW = scalar·scale·up·down.
    public let scalar = ModuleScalar()

    public var scale: Float { alpha / Float(rank) }
    /// scale·scalar, what the forward and backward multiply by.
    public var effectiveScale: Float { scale * scalar.value }
    public var lycorisScalar: (scalar: ModuleScalar, savedInto: Parameter)? { (scalar, up) }
    public var fileScalars: [(suffix: String, value: Float)] { [("alpha", alpha)] }
    public var parameters: [Parameter] { [down, up] }

    /// What the backward needs from the forward.
    public struct Saved: Sendable {
        public let input: Tensor
        /// down(x), after the dropouts' masks.
        public let hidden: Tensor
        /// The dropouts' multiplier on each hidden value (nil without dropout).
        public var mask: [Float]? = nil
        /// rank_dropout's scale factor 1/(1 − p) on the output.
        public var outputFactor: Float = 1
        /// module_dropout skipped the module in this pass: no output, no gradients.
        public var skipped = false
    }

    public init(name: String, shape: Shape, rank: Int, alpha: Float, down: [Float], up: [Float]) {
        self.name = name
        self.shape = shape
        self.rank = rank
        self.alpha = alpha
        switch shape {
        case let .linear(inputs, outputs):
            self.down = Parameter(key: name + ".lora_down.weight", shape: [rank, inputs], values: down)
            self.up = Parameter(key: name + ".lora_up.weight", shape: [outputs, rank], values: up)
        case let .conv(inputs, outputs, kernel, _, _):
            self.down = Parameter(key: name + ".lora_down.weight", shape: [rank, inputs, kernel, kernel], values: down)
            self.up = Parameter(key: name + ".lora_up.weight", shape: [outputs, rank, 1, 1], values: up)
        }
    }

    /// down as a layer: the wrapped layer's inputs, kernel, stride and padding, `rank` outputs.
    private var downLayer: ModuleLayer {
        switch shape {
        case let .linear(inputs, _): return ModuleLayer(.linear(in: inputs, out: rank), key: down.key, weight: down.values)
        case let .conv(inputs, _, kernel, stride, padding):
            return ModuleLayer(.conv(in: inputs, out: rank, kernel: kernel, stride: stride, padding: padding), key: down.key, weight: down.values)
        }
    }

    /// up as a layer: linear, or a 1×1 convolution.
    private var upLayer: ModuleLayer {
        switch shape {
        case let .linear(_, outputs): return ModuleLayer(.linear(in: rank, out: outputs), key: up.key, weight: up.values)
        case let .conv(_, outputs, _, _, _): return ModuleLayer(.conv(in: rank, out: outputs, kernel: 1, stride: 1, padding: 0), key: up.key, weight: up.values)
        }
    }

    /// The module's contribution, multiplier·scale·scalar·up(down(x)) (to add to the
    /// frozen layer's output), and what its backward needs; with `dropout`,
    /// kohya's training-time dropouts (module, neuron, rank) applied.
    public func forward(_ x: Tensor, dropout: LoRADropout? = nil) -> (output: Tensor, saved: Saved) {
        if let dropout, dropout.skipsModule(name) {
            return (Tensor(zeros: shape.outputShape(for: x)), Saved(input: x, hidden: x, mask: nil, outputFactor: 0, skipped: true))
        }
        var hidden = downLayer.forward(x)
        var saved = Saved(input: x, hidden: hidden)
        let convolution: Bool = { if case .conv = shape { return true } else { return false } }()
        if let dropout, let (mask, factor) = dropout.masks(name, hiddenShape: hidden.shape, rank: rank, convolution: convolution) {
            for i in hidden.values.indices { hidden.values[i] *= mask[i] }
            saved = Saved(input: x, hidden: hidden, mask: mask, outputFactor: factor)
        }
        var output = upLayer.forward(hidden)
        let factor = multiplier * effectiveScale * saved.outputFactor
        for i in output.values.indices { output.values[i] *= factor }
        return (output, saved)
    }

    /// dy: the gradient at the wrapped layer's output. Adds into down's and
    /// up's gradients; returns the module's part of dx (add the frozen layer's).
    public func backward(_ saved: Saved, outputGradient dy: Tensor) -> Tensor {
        if saved.skipped { return Tensor(zeros: saved.input.shape) }
        var scaled = dy
        let factor = multiplier * effectiveScale * saved.outputFactor
        for i in scaled.values.indices { scaled.values[i] *= factor }
        var dHidden = upLayer.backward(input: saved.hidden, outputGradient: scaled, weightGradient: up.gradient)
        if let mask = saved.mask { for i in dHidden.values.indices { dHidden.values[i] *= mask[i] } }
        return downLayer.backward(input: saved.input, outputGradient: dHidden, weightGradient: down.gradient)
    }
}
