import LoRACore

/// kohya's LoRAModule (sd-scripts networks/lora.py), the layer a LoRA network
/// trains (the network's layout, initialisation and files are Training's): beside a frozen Linear
/// or Conv2d, y = org(x) + multiplier · (alpha/rank) · up(down(x)), with
/// `lora_down` [rank, in] (or a conv with the original's kernel, stride and
/// padding: LoCon/C3Lier) and `lora_up` [out, rank] (a 1×1 conv). Keys are
/// kohya's: `<name>.lora_down.weight`, `<name>.lora_up.weight`, `<name>.alpha`.
/// LyCORIS's LoCon with use_tucker (lycoris/modules/locon.py) splits a wider kernel's down into a 1×1 `lora_down`
/// [rank, in, 1, 1] and the core `lora_mid` [rank, rank, kh, kw] with the layer's stride and padding:
/// up(mid(down(x))), whose ΔW is LyCORIS's rebuild_tucker(mid, upᵀ, down) (`WeightFactor`); A1111 and ComfyUI read
/// `<name>.lora_mid.weight`.
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
    /// LyCORIS's Tucker core (nil without use_tucker).
    public let mid: Parameter?
    /// LyCORIS's scalar (its max-norm rule moves it, kohya's scales the factors; use_scalar trains it): ΔW = scalar·scale·up·down.
    public let scalar: ModuleScalar

    public var scale: Float { alpha / Float(rank) }
    /// scale·scalar, what the forward and backward multiply by.
    public var effectiveScale: Float { scale * scalar.value }
    public var lycorisScalar: (scalar: ModuleScalar, savedInto: Parameter)? { (scalar, up) }
    public var fileScalars: [(suffix: String, value: Float)] { [("alpha", alpha)] }
    /// kohya's and LyCORIS's registration order (a trained scalar, the module's own Parameter, before its layers').
    public var parameters: [Parameter] { scalar.parameters + [down] + (mid.map { [$0] } ?? []) + [up] }

    /// down as one kernel [rank, in·kh·kw]: with a core, mid ∘ down (`WeightFactor.coreProduct`), so ΔW = scale·up·composedDown.
    public var composedDown: [Float] {
        guard let mid else { return down.values }
        return WeightFactor.coreProduct(mid, down).values
    }

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
        /// down(x) where a core follows (mid's input).
        public var midInput: Tensor? = nil
        /// LyCORIS's rank dropout: 1 or 0 per output channel (the rows of ΔW it kept), nil without.
        public var outputMask: [Float]? = nil
    }

    /// `mid`: LyCORIS's Tucker core for a convolution (down then a 1×1 kernel). `scalar`: LyCORIS's (a trained one with use_scalar).
    public init(name: String, shape: Shape, rank: Int, alpha: Float, down: [Float], up: [Float], mid: [Float]? = nil,
                scalar: ModuleScalar = ModuleScalar()) {
        self.name = name
        self.scalar = scalar
        self.shape = shape
        self.rank = rank
        self.alpha = alpha
        if let mid {
            guard case let .conv(inputs, outputs, kernel, _, _) = shape else { preconditionFailure("\(name): a Tucker core is for convolutions") }
            self.down = Parameter(key: name + ".lora_down.weight", shape: [rank, inputs, 1, 1], values: down)
            self.mid = Parameter(key: name + ".lora_mid.weight", shape: [rank, rank, kernel, kernel], values: mid)
            self.up = Parameter(key: name + ".lora_up.weight", shape: [outputs, rank, 1, 1], values: up)
            return
        }
        self.mid = nil
        switch shape {
        case let .linear(inputs, outputs):
            self.down = Parameter(key: name + ".lora_down.weight", shape: [rank, inputs], values: down)
            self.up = Parameter(key: name + ".lora_up.weight", shape: [outputs, rank], values: up)
        case let .conv(inputs, outputs, kernel, _, _):
            self.down = Parameter(key: name + ".lora_down.weight", shape: [rank, inputs, kernel, kernel], values: down)
            self.up = Parameter(key: name + ".lora_up.weight", shape: [outputs, rank, 1, 1], values: up)
        }
    }

    /// down as a layer: the wrapped layer's inputs, kernel, stride and padding, `rank` outputs (a 1×1 kernel before a core).
    private var downLayer: ModuleLayer {
        switch shape {
        case let .linear(inputs, _): return ModuleLayer(.linear(in: inputs, out: rank), key: down.key, weight: down.values)
        case let .conv(inputs, _, kernel, stride, padding):
            let shape: Shape = mid == nil ? .conv(in: inputs, out: rank, kernel: kernel, stride: stride, padding: padding)
                : .conv(in: inputs, out: rank, kernel: 1, stride: 1, padding: 0)
            return ModuleLayer(shape, key: down.key, weight: down.values)
        }
    }

    /// The core as a layer: rank to rank with the wrapped layer's kernel, stride and padding.
    private var midLayer: ModuleLayer? {
        guard let mid, case let .conv(_, _, kernel, stride, padding) = shape else { return nil }
        return ModuleLayer(.conv(in: rank, out: rank, kernel: kernel, stride: stride, padding: padding), key: mid.key, weight: mid.values)
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
        var hidden = downLayer.forward(x)                        // [N, rank, H', W'] or [N, L, rank]
        var midInput: Tensor?
        if let midLayer {
            midInput = hidden                                      // [N, rank, H, W]
            hidden = midLayer.forward(hidden)                      // [N, rank, H', W']
        }
        var saved = Saved(input: x, hidden: hidden, midInput: midInput)
        let convolution: Bool = { if case .conv = shape { return true } else { return false } }()
        if let dropout, let (mask, factor) = dropout.masks(name, hiddenShape: hidden.shape, rank: rank, convolution: convolution) {
            for i in hidden.values.indices { hidden.values[i] *= mask[i] }
            saved = Saved(input: x, hidden: hidden, mask: mask, outputFactor: factor, midInput: midInput)
        }
        var output = upLayer.forward(hidden)                       // [N, out, H', W'] or [N, L, out]
        saved.outputMask = dropout?.rowMask(name, rows: shape.outputs)
        scale(&output, by: multiplier * effectiveScale * saved.outputFactor, channels: saved.outputMask)
        return (output, saved)
    }

    /// t (the module's output, or its gradient) times `factor`, and each output channel c times mask[c] when given.
    private func scale(_ t: inout Tensor, by factor: Float, channels mask: [Float]?) {
        guard let mask else {
            for i in t.values.indices { t.values[i] *= factor }
            return
        }
        let outputs = shape.outputs
        let pixels: Int = { if case .conv = shape { return t.count / (t.shape[0] * outputs) } else { return 1 } }()
        for i in t.values.indices { t.values[i] *= factor * mask[(i / pixels) % outputs] }
    }

    /// dy: the gradient at the wrapped layer's output. Adds into down's and
    /// up's gradients; returns the module's part of dx (add the frozen layer's).
    public func backward(_ saved: Saved, outputGradient dy: Tensor) -> Tensor {
        if saved.skipped { return Tensor(zeros: saved.input.shape) }
        var kept = dy                                               // dy on the output channels rank dropout kept
        if saved.outputMask != nil { scale(&kept, by: 1, channels: saved.outputMask) }
        var scaled = kept
        scale(&scaled, by: multiplier * effectiveScale * saved.outputFactor, channels: nil)
        var dHidden = upLayer.backward(input: saved.hidden, outputGradient: scaled, weightGradient: up.gradient)
        if let mask = saved.mask { for i in dHidden.values.indices { dHidden.values[i] *= mask[i] } }
        if let trained = scalar.parameter {
            // ∂scalar = Σ dy ⊙ (multiplier·scale·up(hidden)): up's output again (a rank-wide GEMM) rather than kept.
            let unscaled = upLayer.forward(saved.hidden), factor = Double(multiplier * scale * saved.outputFactor)
            var sum = 0.0
            for i in unscaled.values.indices { sum += Double(kept.values[i]) * Double(unscaled.values[i]) }
            trained.gradient.withPointer { $0[0] += Float(sum * factor) }
        }
        if let midLayer, let mid, let midInput = saved.midInput {
            dHidden = midLayer.backward(input: midInput, outputGradient: dHidden, weightGradient: mid.gradient)
        }
        return downLayer.backward(input: saved.input, outputGradient: dHidden, weightGradient: down.isFrozen ? nil : down.gradient)
    }
}
