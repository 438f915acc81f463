import LoRACore

/// A training pass's trained modules and their saved activations. Modules are
/// attached by the key of the layer (or packed part) they sit beside, as
/// inference adapters are (`AdapterSet.lowRank`); `rows` narrows a module to
/// rows of that part. The frozen layers' own activations live in their
/// blocks' typed `Saved` structs; the tape holds only the modules', by key,
/// in call order (a layer runs once per pass).
public final class TrainingTape: @unchecked Sendable {
    public struct Attachment: Sendable {
        public let module: any TrainedModule
        public let rows: Range<Int>?
        public init(_ module: any TrainedModule, rows: Range<Int>? = nil) {
            self.module = module
            self.rows = rows
        }
    }

    public let modules: [String: [Attachment]]
    /// Each module's `Saved`, of its own kind.
    private var saved: [String: [any Sendable]] = [:]
    /// kohya's module/neuron/rank dropouts for the modules on this tape (training only).
    public var dropout: LoRADropout?
    /// Training a model's own weights (the tiny model trained from scratch):
    /// a gradient buffer per checkpoint key, weights and biases alike. A
    /// layer whose keys have no buffer stays frozen and skips its weight GEMM.
    public let parameterGradients: [String: Gradient]

    public init(modules: [String: [Attachment]] = [:], parameterGradients: [String: Gradient] = [:]) {
        self.modules = modules
        self.parameterGradients = parameterGradients
    }

    /// The buffer of a checkpoint key, if that weight is trained.
    func gradient(_ key: String?) -> Gradient? {
        guard let key, !parameterGradients.isEmpty else { return nil }
        return parameterGradients[key]
    }

    /// Forget the last pass's activations (the modules stay).
    public func reset() { saved = [:] }

    /// Off while a checkpointed block runs its first forward: the modules add
    /// their outputs but keep nothing (the block's backward recomputes them).
    var recording = true

    func record(_ key: String, _ s: any Sendable) {
        if recording { saved[key, default: []].append(s) }
    }

    /// Runs `body` without recording.
    func withoutRecording<T>(_ body: () -> T) -> T {
        let previous = recording
        recording = false
        defer { recording = previous }
        return body()
    }

    /// The keys with recorded activations, and dropping those not in a set
    /// (a recomputed block's, once its backward has used them).
    var recordedKeys: Set<String> { Set(saved.keys) }
    func forgetAll(except keep: Set<String>) {
        for key in saved.keys where !keep.contains(key) { saved[key] = nil }
    }

    func recorded(_ key: String) -> [any Sendable] { saved[key] ?? [] }
}

/// Copies columns [offset, offset + count) of a [rows, width] matrix out, or adds a block into them.
private func columns(_ t: Tensor, width: Int, offset: Int, count: Int) -> Tensor {
    let rows = t.count / width
    var out = Tensor.uninitialized(Array(t.shape.dropLast()) + [count])
    t.withPointer { tp in out.withMutablePointer { op in
        for r in 0..<rows { (op + r * count).update(from: tp + r * width + offset, count: count) }
    } }
    return out
}

private func addColumns(_ block: Tensor, into t: inout Tensor, width: Int, offset: Int) {
    let count = block.shape.last!, rows = block.count / count
    block.withPointer { bp in t.withMutablePointer { tp in
        for r in 0..<rows {
            let target = tp + r * width + offset, source = bp + r * count
            for j in 0..<count { target[j] += source[j] }
        }
    } }
}

extension Linear {
    /// The forward plus the tape's modules on this layer's parts (their
    /// outputs added to the part's columns), recording what they need.
    public func forward(_ x: Tensor, tape: TrainingTape?) -> Tensor {
        var y = forward(x)
        guard let tape else { return y }
        for part in parts {
            for attachment in tape.modules[part.key] ?? [] {
                let (out, saved) = attachment.module.forward(x, dropout: tape.dropout)
                addColumns(out, into: &y, width: outFeatures, offset: part.rows.lowerBound + (attachment.rows?.lowerBound ?? 0))
                tape.record(part.key, saved)
            }
        }
        return y
    }

    /// dx through the weight and through each module (whose factor gradients
    /// it adds); the weight's own gradients when the tape trains its keys.
    public func backward(input x: Tensor, outputGradient dy: Tensor, tape: TrainingTape?) -> Tensor {
        guard let tape else { return backward(input: x, outputGradient: dy) }
        var dx: Tensor
        if parts.count == 1 {
            dx = backward(input: x, outputGradient: dy, weightGradient: tape.gradient(parts[0].key), biasGradient: tape.gradient(parts[0].biasKey))
        } else {
            dx = backward(input: x, outputGradient: dy)
            for part in parts { accumulatePartGradients(part, input: x, outputGradient: dy,
                                                        weight: tape.gradient(part.key), bias: tape.gradient(part.biasKey)) }
        }
        for part in parts {
            for (attachment, saved) in zip(tape.modules[part.key] ?? [], tape.recorded(part.key)) {
                let rows = attachment.rows.map { (part.rows.lowerBound + $0.lowerBound)..<(part.rows.lowerBound + $0.upperBound) } ?? part.rows
                let slice = columns(dy, width: outFeatures, offset: rows.lowerBound, count: rows.count)
                addInPlace(&dx, attachment.module.backward(recorded: saved, outputGradient: slice))
            }
        }
        return dx
    }
}

extension Conv2d {
    public func forward(_ x: Tensor, tape: TrainingTape?) -> Tensor {
        var y = forward(x)
        guard let tape else { return y }
        for attachment in tape.modules[key] ?? [] {
            let (out, saved) = attachment.module.forward(x, dropout: tape.dropout)
            addInPlace(&y, out)
            tape.record(key, saved)
        }
        return y
    }

    public func backward(input x: Tensor, outputGradient dy: Tensor, tape: TrainingTape?) -> Tensor {
        guard let tape else { return backward(input: x, outputGradient: dy) }
        var dx = backward(input: x, outputGradient: dy, weightGradient: tape.gradient(key), biasGradient: tape.gradient(biasKey))
        for (attachment, saved) in zip(tape.modules[key] ?? [], tape.recorded(key)) {
            addInPlace(&dx, attachment.module.backward(recorded: saved, outputGradient: dy))
        }
        return dx
    }
}

extension GroupNorm {
    /// The backward with γ and β trained when the tape has their keys.
    public func backward(input x: Tensor, outputGradient dy: Tensor, silu: Bool = false, tape: TrainingTape?) -> Tensor {
        backward(input: x, outputGradient: dy, silu: silu, weightGradient: tape?.gradient(key), biasGradient: tape?.gradient(biasKey))
    }
}

extension LayerNorm {
    public func backward(input x: Tensor, outputGradient dy: Tensor, tape: TrainingTape?) -> Tensor {
        backward(input: x, outputGradient: dy, weightGradient: tape?.gradient(key), biasGradient: tape?.gradient(biasKey))
    }
}
