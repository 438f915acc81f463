import LoRACore

/// A module trained on a frozen Linear or Conv2d and attached to it by a `TrainingTape`, in one of two ways:
/// a side path (`SidePathModule`: kohya's LoRA, also LyCORIS's LoCon), whose output is added to the layer's, or a
/// change of the layer's weight (`WeightDeltaModule`: LyCORIS's LoHa and LoKr), folded into the weight the layer runs.
/// Either follows the rule in Gradient.swift (dx returned, its parameters' gradients added into their buffers).
public protocol TrainedModule: Sendable {
    /// kohya's module name (`lora_unet_…`, `lora_te_…`), the prefix of its keys.
    var name: String { get }
    /// The trained tensors in the order torch registers them (`named_parameters`), which is the order they enter
    /// the optimizer's parameter groups.
    var parameters: [Parameter] { get }
    /// The scalars a file holds beside the parameters, by key suffix: `alpha` (kohya, LoCon, LoHa, LoKr), or
    /// `on_input` ((IA)^3, which has no alpha).
    var fileScalars: [(suffix: String, value: Float)] { get }
    /// LyCORIS's `scalar` buffer where the module has one its max-norm rule moves (LoCon, LoHa), with the parameter
    /// a file holds multiplied by it; nil for the others.
    var lycorisScalar: (scalar: ModuleScalar, savedInto: Parameter)? { get }
}

extension TrainedModule {
    public var lycorisScalar: (scalar: ModuleScalar, savedInto: Parameter)? { nil }
}

/// LyCORIS's `scalar` (lycoris/modules/locon.py, loha.py, lokr.py; lycoris_lora 3.2.0.post2): a factor on the module's
/// ΔW. A buffer at 1 until `--scale_weight_norms` shrinks it in place of the trained factors (which keep their values
/// and optimizer state, so their later gradients carry it); with use_scalar a trained Parameter `<name>.scalar`
/// starting at 0 (`parameter`). Files hold it multiplied into one factor (`lora_up`, `hada_w1_a`, `lokr_w1`), as
/// LyCORIS's custom_state_dict writes them. A reference: the network's modules and a tape's copies share it.
public final class ModuleScalar: @unchecked Sendable {
    /// use_scalar's trained scalar (shape [], as torch.tensor(0.0)); nil for the buffer.
    public let parameter: Parameter?
    private var buffer: Float

    public var value: Float {
        get { parameter?.values[0] ?? buffer }
        set { if let parameter { parameter.values[0] = newValue } else { buffer = newValue } }
    }

    public init(_ value: Float = 1) { (parameter, buffer) = (nil, value) }

    /// use_scalar: trained, under `<name>.scalar`, from `value` (LyCORIS starts it at 0).
    public init(trainedAs name: String, value: Float = 0) {
        (parameter, buffer) = (Parameter(key: name + ".scalar", shape: [], values: [value]), 0)
    }

    /// The trained scalar as a parameter list (empty for the buffer).
    var parameters: [Parameter] { parameter.map { [$0] } ?? [] }
}

/// A module whose output is added to its layer's: y = layer(x) + module(x).
public protocol SidePathModule: TrainedModule {
    associatedtype Saved: Sendable
    func forward(_ x: Tensor, dropout: LoRADropout?) -> (output: Tensor, saved: Saved)
    func backward(_ saved: Saved, outputGradient dy: Tensor) -> Tensor
}

extension SidePathModule {
    /// The tape keeps every module's activations side by side; each module reads back its own kind.
    func backward(recorded saved: any Sendable, outputGradient dy: Tensor) -> Tensor {
        guard let own = saved as? Saved else { preconditionFailure("\(name): activations of another module kind on the tape") }
        return backward(own, outputGradient: dy)
    }
}

extension LoRAModule.Shape {
    /// The wrapped layer's output shape for input x.
    func outputShape(for x: Tensor) -> [Int] {
        switch self {
        case let .linear(_, outputs): return Array(x.shape.dropLast()) + [outputs]
        case let .conv(_, outputs, kernel, stride, padding):
            let h = (x.shape[2] + 2 * padding - kernel) / stride + 1, w = (x.shape[3] + 2 * padding - kernel) / stride + 1
            return [x.shape[0], outputs, h, w]
        }
    }

    /// Values of a weight of this shape: out × in (× kernel²).
    public var weightCount: Int {
        switch self {
        case let .linear(inputs, outputs): return inputs * outputs
        case let .conv(inputs, outputs, kernel, _, _): return inputs * outputs * kernel * kernel
        }
    }

    public var outputs: Int {
        switch self {
        case let .linear(_, outputs), let .conv(_, outputs, _, _, _): return outputs
        }
    }

    /// Columns of the weight as a matrix: in (× kernel²).
    public var columns: Int { weightCount / outputs }
}

/// A Linear or Conv2d of a module's shape running a weight the module holds (its factors, or its ΔW).
enum ModuleLayer {
    case linear(Linear)
    case conv(Conv2d)

    init(_ shape: LoRAModule.Shape, key: String, weight: [Float]) {
        switch shape {
        case let .linear(inputs, outputs):
            self = .linear(Linear(inFeatures: inputs, outFeatures: outputs, weight: weight, bias: nil, parts: [.init(key: key, biasKey: nil, rows: 0..<outputs)]))
        case let .conv(inputs, outputs, kernel, stride, padding):
            self = .conv(Conv2d(key: key, biasKey: "", inChannels: inputs, outChannels: outputs, kernel: kernel, stride: stride, padding: .same(padding),
                                weight: weight, bias: [Float](repeating: 0, count: outputs)))
        }
    }

    func forward(_ x: Tensor) -> Tensor {
        switch self {
        case .linear(let layer): return layer.forward(x)
        case .conv(let layer): return layer.forward(x)
        }
    }

    func backward(input x: Tensor, outputGradient dy: Tensor, weightGradient: Gradient?) -> Tensor {
        switch self {
        case .linear(let layer): return layer.backward(input: x, outputGradient: dy, weightGradient: weightGradient)
        case .conv(let layer): return layer.backward(input: x, outputGradient: dy, weightGradient: weightGradient)
        }
    }
}
