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

/// What the tape records for a module folded into its layer's parameters (a weight-delta module, a NormModule) in a
/// pass: whether module_dropout dropped it, and LyCORIS's rank dropout mask of its rows (channels), so the backward
/// folds in what the forward did.
struct FoldedModuleRecord: Sendable {
    let skipped: Bool
    var rowMask: [Float]? = nil
}

/// LyCORIS's LoHa, LoKr and (IA)^3 (`WeightDeltaModule`) run inside their layer, as LyCORIS's forward runs them: the layer's
/// forward and its input gradient use W + ΣΔW (one GEMM each, not one for W and one per ΔW), and one weight gradient
/// dyᵀ·x of the layer gives every such module its dΔW (its rows of it). LoRA modules (`SidePathModule`) add their
/// outputs beside the layer's.
extension TrainingTape {
    typealias PlacedDelta = (module: any WeightDeltaModule, rows: Range<Int>)

    /// A forward pass's modules on `key` (a part of the layer's weight: `rows`), in attachment order, recording what
    /// each needs: the weight-delta modules to fold into the weight (less those module_dropout drops), and each
    /// LoRA module's output with the rows of the part it adds to.
    fileprivate func forwardModules(_ key: String, rows: Range<Int>, input x: Tensor) -> (deltas: [PlacedDelta], outputs: [(Tensor, Range<Int>?)]) {
        var deltas: [PlacedDelta] = [], outputs: [(Tensor, Range<Int>?)] = []
        for attachment in modules[key] ?? [] {
            if let module = attachment.module as? any WeightDeltaModule {
                let skipped = dropout?.skipsModule(module.name) ?? false
                let mask = skipped ? nil : dropout?.rowMask(module.name, rows: module.shape.outputs)
                record(key, FoldedModuleRecord(skipped: skipped, rowMask: mask))
                if !skipped { deltas.append((mask.map(module.droppingRows) ?? module, within(rows, attachment.rows))) }
            } else if let module = attachment.module as? any SidePathModule {
                let (out, saved) = module.forward(x, dropout: dropout)
                record(key, saved)
                outputs.append((out, attachment.rows))
            }
        }
        return (deltas, outputs)
    }

    /// The recorded pass's modules on `key`: the weight-delta modules that ran, and the LoRA modules with their activations.
    fileprivate func backwardModules(_ key: String, rows: Range<Int>)
        -> (deltas: [PlacedDelta], others: [(module: any SidePathModule, rows: Range<Int>?, saved: any Sendable)]) {
        var deltas: [PlacedDelta] = [], others: [(module: any SidePathModule, rows: Range<Int>?, saved: any Sendable)] = []
        for (attachment, saved) in zip(modules[key] ?? [], recorded(key)) {
            if let module = attachment.module as? any WeightDeltaModule {
                if let record = saved as? FoldedModuleRecord, !record.skipped {
                    deltas.append((record.rowMask.map(module.droppingRows) ?? module, within(rows, attachment.rows)))
                }
            } else if let module = attachment.module as? any SidePathModule {
                others.append((module, attachment.rows, saved))
            }
        }
        return (deltas, others)
    }

    /// Rows of a module within a part's rows.
    private func within(_ rows: Range<Int>, _ own: Range<Int>?) -> Range<Int> {
        own.map { (rows.lowerBound + $0.lowerBound)..<(rows.lowerBound + $0.upperBound) } ?? rows
    }
}

/// W + ΣΔW: the modules' deltas added into their rows of a copy of the weight ([out, columns]).
private func mergedWeight(_ weight: [Float], columns: Int, _ deltas: [TrainingTape.PlacedDelta], backward: Bool) -> [Float] {
    EngineProfile.measure(backward ? .weightDeltaBackward : .weightDelta) { addDeltas(weight, columns: columns, deltas) }
}

private func addDeltas(_ weight: [Float], columns: Int, _ deltas: [TrainingTape.PlacedDelta]) -> [Float] {
    var w = weight
    weight.withUnsafeBufferPointer { base in w.withUnsafeMutableBufferPointer { wp in
        for (module, rows) in deltas {
            precondition(module.shape.weightCount == rows.count * columns, "\(module.name): ΔW does not fit \(rows.count)×\(columns)")
            module.addDelta(into: wp.baseAddress! + rows.lowerBound * columns, base: base.baseAddress! + rows.lowerBound * columns)
        }
    } }
    return w
}

/// Each module's rows of the layer's weight gradient, as its dΔW (with its rows of the frozen weight).
private func distribute(_ gradient: Gradient, base weight: [Float], columns: Int, _ deltas: [TrainingTape.PlacedDelta]) {
    EngineProfile.measure(.weightDeltaBackward) {
        gradient.values.withUnsafeBufferPointer { g in weight.withUnsafeBufferPointer { base in
            for (module, rows) in deltas {
                module.accumulateGradients(delta: UnsafeBufferPointer(rebasing: g[(rows.lowerBound * columns)..<(rows.upperBound * columns)]),
                                           base: base.baseAddress! + rows.lowerBound * columns)
            }
        } }
    }
}

extension Linear {
    /// This layer with W + ΣΔW of the given modules (itself when there are none).
    fileprivate func merged(_ deltas: [TrainingTape.PlacedDelta], backward: Bool = false) -> Linear {
        guard !deltas.isEmpty else { return self }
        return Linear(inFeatures: inFeatures, outFeatures: outFeatures, weight: mergedWeight(store.floats(), columns: inFeatures, deltas, backward: backward),
                      bias: bias, parts: parts)
    }

    /// The forward with the tape's modules on this layer's parts: LoHa/LoKr/(IA)^3 in the weight, LoRA modules' outputs
    /// added to their columns, recording what each needs.
    public func forward(_ x: Tensor, tape: TrainingTape?) -> Tensor {
        guard let tape else { return forward(x) }
        let modules = parts.map { tape.forwardModules($0.key, rows: $0.rows, input: x) }
        var y = merged(modules.flatMap(\.deltas)).forward(x)
        for (part, placed) in zip(parts, modules) {
            for (out, rows) in placed.outputs { addColumns(out, into: &y, width: outFeatures, offset: part.rows.lowerBound + (rows?.lowerBound ?? 0)) }
        }
        return y
    }

    /// dx through the (merged) weight and through each LoRA module (whose factor gradients it adds); the
    /// weight-delta modules' gradients from the layer's weight gradient; the weight's own gradients when the tape
    /// trains its keys.
    public func backward(input x: Tensor, outputGradient dy: Tensor, tape: TrainingTape?) -> Tensor {
        guard let tape else { return backward(input: x, outputGradient: dy) }
        let modules = parts.map { tape.backwardModules($0.key, rows: $0.rows) }
        let deltas = modules.flatMap(\.deltas)
        var dx: Tensor
        if !deltas.isEmpty {
            let full = Gradient(count: outFeatures * inFeatures)
            dx = merged(deltas, backward: true).backward(input: x, outputGradient: dy, weightGradient: full)
            distribute(full, base: store.floats(), columns: inFeatures, deltas)
            for part in parts {
                if let own = tape.gradient(part.key) {
                    own.withPointer { g in for i in 0..<(part.rows.count * inFeatures) { g[i] += full.values[part.rows.lowerBound * inFeatures + i] } }
                }
                accumulatePartGradients(part, input: x, outputGradient: dy, weight: nil, bias: tape.gradient(part.biasKey))
            }
        } else if parts.count == 1 {
            dx = backward(input: x, outputGradient: dy, weightGradient: tape.gradient(parts[0].key), biasGradient: tape.gradient(parts[0].biasKey))
        } else {
            dx = backward(input: x, outputGradient: dy)
            for part in parts { accumulatePartGradients(part, input: x, outputGradient: dy,
                                                        weight: tape.gradient(part.key), bias: tape.gradient(part.biasKey)) }
        }
        for (part, placed) in zip(parts, modules) {
            for (module, own, saved) in placed.others {
                let rows = own.map { (part.rows.lowerBound + $0.lowerBound)..<(part.rows.lowerBound + $0.upperBound) } ?? part.rows
                let slice = columns(dy, width: outFeatures, offset: rows.lowerBound, count: rows.count)
                addInPlace(&dx, module.backward(recorded: saved, outputGradient: slice))
            }
        }
        return dx
    }
}

extension Conv2d {
    /// This layer with W + ΣΔW of the given modules (itself when there are none).
    fileprivate func merged(_ deltas: [TrainingTape.PlacedDelta], backward: Bool = false) -> Conv2d {
        guard !deltas.isEmpty else { return self }
        return Conv2d(key: key, biasKey: biasKey, inChannels: inChannels, outChannels: outChannels, kernel: kernel, stride: stride, padding: padding,
                      weight: mergedWeight(store.floats(), columns: inChannels * kernel * kernel, deltas, backward: backward), bias: bias)
    }

    public func forward(_ x: Tensor, tape: TrainingTape?) -> Tensor {
        guard let tape else { return forward(x) }
        let modules = tape.forwardModules(key, rows: 0..<outChannels, input: x)
        var y = merged(modules.deltas).forward(x)
        for (out, _) in modules.outputs { addInPlace(&y, out) }
        return y
    }

    public func backward(input x: Tensor, outputGradient dy: Tensor, tape: TrainingTape?) -> Tensor {
        guard let tape else { return backward(input: x, outputGradient: dy) }
        let modules = tape.backwardModules(key, rows: 0..<outChannels)
        var dx: Tensor
        if modules.deltas.isEmpty {
            dx = backward(input: x, outputGradient: dy, weightGradient: tape.gradient(key), biasGradient: tape.gradient(biasKey))
        } else {
            let full = Gradient(count: store.count)
            dx = merged(modules.deltas, backward: true).backward(input: x, outputGradient: dy, weightGradient: full, biasGradient: tape.gradient(biasKey))
            distribute(full, base: store.floats(), columns: inChannels * kernel * kernel, modules.deltas)
            if let own = tape.gradient(key) { own.withPointer { g in for i in full.values.indices { g[i] += full.values[i] } } }
        }
        for (module, _, saved) in modules.others { addInPlace(&dx, module.backward(recorded: saved, outputGradient: dy)) }
        return dx
    }
}
