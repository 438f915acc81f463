import LoRACore

/// GroupNorm and LayerNorm under a training tape: LyCORIS's NormModules on the layer's key (`train_norm`) run it with
/// γ + Σ w_norm and β + Σ b_norm and take its dγ and dβ as their gradients; a model's own γ and β (the tiny model trained
/// from scratch) get theirs when the tape has buffers for their keys. module_dropout and LyCORIS's rank dropout are
/// drawn in the forward and recorded, as for the weight-delta modules (TrainingTape.swift).
extension TrainingTape {
    /// The NormModules on `key` this pass runs.
    func forwardNorms(_ key: String) -> [NormModule] {
        var running: [NormModule] = []
        for attachment in modules[key] ?? [] {
            guard let module = attachment.module as? NormModule else { continue }
            let skipped = dropout?.skipsModule(module.name) ?? false
            let mask = skipped ? nil : dropout?.rowMask(module.name, rows: module.weight.count)
            record(key, FoldedModuleRecord(skipped: skipped, rowMask: mask))
            if !skipped { running.append(mask.map(module.droppingChannels) ?? module) }
        }
        return running
    }

    /// The NormModules on `key` that ran in the recorded pass.
    func backwardNorms(_ key: String) -> [NormModule] {
        zip(modules[key] ?? [], recorded(key)).compactMap { attachment, saved in
            guard let module = attachment.module as? NormModule, let record = saved as? FoldedModuleRecord, !record.skipped else { return nil }
            return record.rowMask.map(module.droppingChannels) ?? module
        }
    }

    /// The layer's dγ and dβ, into the modules that ran and the model's own buffers.
    fileprivate func distribute(gamma: Gradient, beta: Gradient, to norms: [NormModule], key: String, biasKey: String) {
        for module in norms { module.accumulate(gammaGradient: gamma, betaGradient: beta) }
        for (own, source) in [(gradient(key), gamma), (gradient(biasKey), beta)] {
            own?.withPointer { g in for i in source.values.indices { g[i] += source.values[i] } }
        }
    }
}

/// A normalization layer's affine part, γ (`weight`) and β (`bias`), which NormModules shift.
protocol AffineNormalization {
    var weight: [Float] { get set }
    var bias: [Float] { get set }
}

extension AffineNormalization {
    /// This layer with the modules' offsets added to γ and β.
    fileprivate func shifted(by norms: [NormModule]) -> Self {
        var layer = self
        for module in norms { (layer.weight, layer.bias) = module.shifted(gamma: layer.weight, beta: layer.bias) }
        return layer
    }
}

extension GroupNorm: AffineNormalization {
    public func forward(_ x: Tensor, silu: Bool = false, tape: TrainingTape?) -> Tensor {
        guard let tape, tape.modules[key] != nil else { return forward(x, silu: silu) }
        return shifted(by: tape.forwardNorms(key)).forward(x, silu: silu)
    }

    /// The backward with γ and β trained when the tape has their keys, and the tape's NormModules' gradients.
    public func backward(input x: Tensor, outputGradient dy: Tensor, silu: Bool = false, tape: TrainingTape?) -> Tensor {
        let norms = tape?.backwardNorms(key) ?? []
        guard let tape, !norms.isEmpty else {
            return backward(input: x, outputGradient: dy, silu: silu, weightGradient: tape?.gradient(key), biasGradient: tape?.gradient(biasKey))
        }
        let (gamma, beta) = (Gradient(count: channels), Gradient(count: channels))
        let dx = shifted(by: norms).backward(input: x, outputGradient: dy, silu: silu, weightGradient: gamma, biasGradient: beta)
        tape.distribute(gamma: gamma, beta: beta, to: norms, key: key, biasKey: biasKey)
        return dx
    }
}

extension LayerNorm: AffineNormalization {
    public func forward(_ x: Tensor, tape: TrainingTape?) -> Tensor {
        guard let tape, tape.modules[key] != nil else { return forward(x) }
        return shifted(by: tape.forwardNorms(key)).forward(x)
    }

    public func backward(input x: Tensor, outputGradient dy: Tensor, tape: TrainingTape?) -> Tensor {
        let norms = tape?.backwardNorms(key) ?? []
        guard let tape, !norms.isEmpty else {
            return backward(input: x, outputGradient: dy, weightGradient: tape?.gradient(key), biasGradient: tape?.gradient(biasKey))
        }
        let (gamma, beta) = (Gradient(count: width), Gradient(count: width))
        let dx = shifted(by: norms).backward(input: x, outputGradient: dy, weightGradient: gamma, biasGradient: beta)
        tape.distribute(gamma: gamma, beta: beta, to: norms, key: key, biasKey: biasKey)
        return dx
    }
}
