import Diffusion
import LoRACore

/// kohya's LoRA network (sd-scripts networks/lora.py `create_network`) over
/// the one architecture walk: `ModelLayout.targets` of set `.attention` are
/// the modules kohya creates for Linear and 1×1 Conv2d layers inside
/// Transformer2DModel (U-Net: proj_in, proj_out, attn1/attn2 to_q, to_k, to_v,
/// to_out.0, ff.net.0.proj, ff.net.2; 192 for SD1) and the text encoders'
/// attention and MLP layers; `conv_dim` adds the `.resnet` set (LoCon/C3Lier:
/// ResBlock convs, time-embedding projections, shortcuts, samplers).
public struct LoRANetwork: Sendable {
    /// kohya's LoRAModule (LoRA, LoCon, LyCORIS's LoCon), or LyCORIS's LoHa, LoKr or (IA)^3 (`LoRANetwork+LyCORIS.swift`).
    public let modules: [any TrainedModule]
    /// The target each module wraps (same order).
    public let targets: [LoRATarget]
    /// Whose `--scale_weight_norms` rule applies (LoRANetwork+MaxNorm.swift): kohya's networks.lora or LyCORIS's.
    public let maxNormRule: MaxNormRule

    public init(modules: [any TrainedModule], targets: [LoRATarget], maxNormRule: MaxNormRule = .kohya) {
        precondition(modules.count == targets.count)
        self.modules = modules
        self.targets = targets
        self.maxNormRule = maxNormRule
    }

    /// The module shape for a target: linear, or a conv with the layer's own
    /// kernel, stride (downsamplers' `op`: 2) and padding.
    public static func shape(of target: LoRATarget) -> LoRAModule.Shape {
        switch target.kind {
        case .conv(let kernel):
            let stride = target.checkpointKey.hasSuffix(".op.weight") ? 2 : 1
            return .conv(in: target.shape[1], out: target.shape[0], kernel: kernel, stride: stride, padding: kernel / 2)
        case .linear, .norm:
            return .linear(in: target.shape[1], out: target.shape[0])
        }
    }

    /// kohya's module set for a model: U-Net (and text encoder) attention
    /// modules with `dim`/`alpha`, and, when `convDim` is given, the resnet
    /// set — its 3×3 convolutions with `convDim`/`convAlpha`, its Linear and
    /// 1×1 layers (time-embedding projections, shortcuts) with `dim`/`alpha`,
    /// as kohya's create_modules decides by layer kind. `blocks` (kohya's
    /// `block_dims`/`block_alphas`/`conv_block_dims`/`conv_block_alphas`)
    /// sets them per U-Net block instead; a dim of 0 leaves the module out.
    /// Weights: kohya's initialisation from `uniform`.
    public static func kohya(_ layout: ModelLayout, dim: Int, alpha: Float, convDim: Int? = nil, convAlpha: Float = 1,
                             unet: Bool = true, textEncoder: Bool = true, blocks: BlockDims? = nil,
                             fromWeights: [String: (rank: Int, alpha: Float)]? = nil, uniform: () -> Float) -> LoRANetwork {
        kohya(plan: kohyaPlan(layout, dim: dim, alpha: alpha, convDim: convDim, convAlpha: convAlpha, unet: unet, textEncoder: textEncoder,
                              blocks: blocks, fromWeights: fromWeights), uniform: uniform)
    }

    /// The modules of a `kohyaPlan`, initialised as kohya does, in its order.
    public static func kohya(plan: [(target: LoRATarget, rank: Int, alpha: Float)], uniform: () -> Float) -> LoRANetwork {
        let modules = plan.map {
            LoRAModule.kohyaInitialized(name: $0.target.kohyaName, shape: shape(of: $0.target), rank: $0.rank, alpha: $0.alpha, uniform: uniform)
        }
        return LoRANetwork(modules: modules, targets: plan.map(\.target))
    }

    /// sd-scripts' LoRA-FA (networks/lora_fa.py) on a `kohyaPlan`: kohya's modules with a frozen, normal-drawn down.
    public static func loraFA(plan: [(target: LoRATarget, rank: Int, alpha: Float)], normal: (Int) -> [Float]) -> LoRANetwork {
        let modules = plan.map {
            LoRAModule.loraFAInitialized(name: $0.target.kohyaName, shape: shape(of: $0.target), rank: $0.rank, alpha: $0.alpha, normal: normal)
        }
        return LoRANetwork(modules: modules, targets: plan.map(\.target))
    }

    /// The modules `kohya(...)` creates — each target with its rank and alpha — without allocating them.
    public static func kohyaPlan(_ layout: ModelLayout, dim: Int, alpha: Float, convDim: Int? = nil, convAlpha: Float = 1,
                                 unet: Bool = true, textEncoder: Bool = true, blocks: BlockDims? = nil,
                                 fromWeights: [String: (rank: Int, alpha: Float)]? = nil) -> [(target: LoRATarget, rank: Int, alpha: Float)] {
        var plan: [(target: LoRATarget, rank: Int, alpha: Float)] = []
        for target in layout.targets {
            let isUNet = target.component == .unet
            guard isUNet ? unet : textEncoder else { continue }
            guard target.set == .attention || (target.set == .resnet && isUNet) else { continue }
            // kohya's --dim_from_weights (create_network_from_weights): exactly the file's modules, each with its rank and alpha.
            if let fromWeights {
                guard let (rank, moduleAlpha) = fromWeights[target.kohyaName] else { continue }
                plan.append((target, rank, moduleAlpha))
                continue
            }
            // kohya searches the resnets only with conv_dim (or conv_block_dims).
            if target.set == .resnet && convDim == nil && blocks?.convDims == nil { continue }
            let spatial: Bool = { if case .conv(let k) = target.kind { return k > 1 } else { return false } }()
            var rank: Int?, moduleAlpha: Float = alpha
            if isUNet, let blocks, let index = LoRANetwork.blockIndex(kohyaName: target.kohyaName) {
                if !spatial { (rank, moduleAlpha) = (blocks.dims[index], blocks.alphas[index]) } else if let conv = blocks.convDims {
                    (rank, moduleAlpha) = (conv[index], blocks.convAlphas?[index] ?? convAlpha)
                }
            } else if !spatial {
                (rank, moduleAlpha) = (dim, alpha)
            } else if let convDim {
                (rank, moduleAlpha) = (convDim, convAlpha)
            }
            guard let r = rank, r > 0 else { continue }
            plan.append((target, r, moduleAlpha))
        }
        return plan
    }

    /// The values a module of `rank` on `target` holds (down and up).
    public static func parameterCount(_ target: LoRATarget, rank: Int) -> Int {
        switch shape(of: target) {
        case let .linear(inputs, outputs): return rank * (inputs + outputs)
        case let .conv(inputs, outputs, kernel, _, _): return rank * (inputs * kernel * kernel + outputs)
        }
    }

    /// kohya's per-block settings for SD1/SD2 (25 slots: 0 unused, down 1–11, mid 12, up 13–24).
    public struct BlockDims: Sendable, Equatable {
        public var dims: [Int]
        public var alphas: [Float]
        public var convDims: [Int]?
        public var convAlphas: [Float]?
        public static let count = 25
        public init(dims: [Int], alphas: [Float], convDims: [Int]? = nil, convAlphas: [Float]? = nil) {
            (self.dims, self.alphas, self.convDims, self.convAlphas) = (dims, alphas, convDims, convAlphas)
        }
    }

    /// kohya's `get_block_index` for SD1/SD2 module names: down_blocks.i's resnet/attention j → 1 + 3i + j
    /// (its downsampler 1 + 3i + 2), the mid block 12, up_blocks.i → 13 + 3i + j (upsampler 13 + 3i + 2); nil elsewhere.
    public static func blockIndex(kohyaName name: String) -> Int? {
        if name.contains("mid_block_") { return 12 }
        let parts = name.split(separator: "_").map(String.init)
        for (n, part) in parts.enumerated() where (part == "down" || part == "up") && n + 4 < parts.count && parts[n + 1] == "blocks" {
            guard let i = Int(parts[n + 2]), let j = Int(parts[n + 4]) else { return nil }
            let index: Int
            switch parts[n + 3] {
            case "resnets", "attentions": index = 3 * i + j
            case "upsamplers", "downsamplers": index = 3 * i + 2
            default: return nil
            }
            return part == "down" ? 1 + index : 13 + index
        }
        return nil
    }

    /// The modules that are kohya's LoRAModule (all of them unless LyCORIS's LoHa, LoKr or (IA)^3 trains).
    public var loraModules: [LoRAModule] { modules.compactMap { $0 as? LoRAModule } }

    /// Every trained tensor.
    public var parameters: [Parameter] { modules.flatMap(\.parameters) }

    /// The trained tensors of one part of the model (kohya's parameter groups: text encoder, U-Net).
    public func parameters(of components: Set<Component>) -> [Parameter] {
        zip(modules, targets).filter { components.contains($0.1.component) }.flatMap { $0.0.parameters }
    }

    /// What a network file holds: each module's parameters under their keys, then its scalars (kohya's
    /// lora_down/lora_up/alpha, LyCORIS's hada_*/lokr_*/alpha, (IA)^3's weight/on_input), in module order; a
    /// LyCORIS scalar multiplied into its factor as LyCORIS saves it (`multiplyingScalars`; a training state keeps
    /// the factors as the optimizer holds them and the scalars apart).
    public func fileTensors(multiplyingScalars: Bool = true) -> [KohyaLoRAWriter.NamedTensor] {
        modules.flatMap { module in
            // A trained scalar (use_scalar) is folded like the buffer, so the file holds no `.scalar` (LyCORIS's neither).
            module.parameters.filter { !multiplyingScalars || $0 !== module.lycorisScalar?.scalar.parameter }.map { p in
                var values = p.values
                if multiplyingScalars, let (scalar, target) = module.lycorisScalar, target === p, scalar.value != 1 {
                    for i in values.indices { values[i] *= scalar.value }
                }
                return KohyaLoRAWriter.NamedTensor(name: p.key, shape: p.shape, values: values)
            } + module.fileScalars.map { KohyaLoRAWriter.NamedTensor(name: module.name + "." + $0.suffix, shape: [], values: [$0.value]) }
        }
    }

    /// The text-encoder block a target sits in (`…layers.N.` in Hugging Face
    /// layout, `…resblocks.N.` in OpenCLIP's), nil for the U-Net.
    public static func textEncoderBlock(of target: LoRATarget) -> Int? {
        guard target.component != .unet else { return nil }
        for marker in ["layers.", "resblocks."] {
            guard let range = target.checkpointKey.range(of: marker) else { continue }
            return Int(target.checkpointKey[range.upperBound...].prefix { $0.isNumber })
        }
        return nil
    }

    /// The modules attached to the layers of `model` that read each target's
    /// weight (only those of `components` when given: the U-Net and the text
    /// encoder run their passes with separate tapes).
    public func tape(for model: StableDiffusionModel, components: Set<Component>? = nil) -> TrainingTape {
        var attachments: [String: [TrainingTape.Attachment]] = [:]
        for (key, module, target) in placed(in: model) where components?.contains(target.component) ?? true {
            attachments[key, default: []].append(TrainingTape.Attachment(module, rows: target.rows))
        }
        return TrainingTape(modules: attachments)
    }

    /// The modules as they are now, as run-time adapters for the inference
    /// engine (sample images during training), at `multiplier`: LoRA modules
    /// as low-rank side paths (a Tucker core composed into down), LoHa, LoKr,
    /// (IA)^3 and DoRA folded into their layer's weight (W + multiplier·ΔW, as
    /// LyCORIS's forward runs them), norm modules into γ and β.
    public func adapters(for model: StableDiffusionModel, multiplier: Float = 1) throws(ModelError) -> AdapterSet {
        var lowRank: [String: [AdapterSet.LowRank]] = [:], replacements: [String: [Float]] = [:]
        for (key, module, target) in placed(in: model) {
            if let lora = module as? LoRAModule {
                lowRank[key, default: []].append(AdapterSet.LowRank(down: lora.composedDown, up: lora.up.values, rank: lora.rank,
                                                                     scale: lora.effectiveScale * multiplier, rows: target.rows))
            } else if let norm = module as? NormModule {
                guard let gamma = model.bakedWeights[target.checkpointKey] ?? model.file[target.checkpointKey]?.floats(), let biasKey = target.biasKey,
                      let beta = model.bakedWeights[biasKey] ?? model.file[biasKey]?.floats() else {
                    throw ModelError(.mismatch, "the model has no \(target.checkpointKey) and bias for \(module.name)", file: model.path)
                }
                var scaled = norm
                scaled.multiplier = norm.multiplier * multiplier
                let (g, b) = scaled.shifted(gamma: gamma, beta: beta)
                (replacements[key], replacements[biasKey]) = (g, b)
            } else if let dense = module as? any WeightDeltaModule {
                if replacements[key] == nil { replacements[key] = try LoRANetwork.weight(of: target, in: model, rows: false) }
                let width = dense.shape.columns, offset = (target.rows?.lowerBound ?? 0) * width
                let delta = dense.delta(base: Array(replacements[key]![offset..<(offset + dense.shape.weightCount)]))
                replacements[key]!.withUnsafeMutableBufferPointer { w in
                    for i in delta.indices { w[offset + i] += multiplier * delta[i] }
                }
            }
        }
        return AdapterSet(lowRank: lowRank, replacements: replacements)
    }

    /// The frozen weight a target wraps, [out, in·kh·kw] (as the model will run it: merged weights first); with `rows`,
    /// only a packed part's rows the target covers.
    public static func weight(of target: LoRATarget, in model: StableDiffusionModel, rows: Bool = true) throws(ModelError) -> [Float] {
        guard let weight = model.bakedWeights[target.checkpointKey] ?? model.file[target.checkpointKey]?.floats() else {
            throw ModelError(.mismatch, "the model has no \(target.checkpointKey) for \(target.kohyaName)", file: model.path)
        }
        guard rows, let part = target.rows else { return weight }
        let columns = target.shape.dropFirst().reduce(1, *)
        return Array(weight[(part.lowerBound * columns)..<(part.upperBound * columns)])
    }

    /// Each module with the key the engine's layer reads its target's weight under.
    private func placed(in model: StableDiffusionModel) -> [(key: String, module: any TrainedModule, target: LoRATarget)] {
        var layerKey: [String: String] = [:]
        for (key, name) in model.layerKeys { layerKey[name] = key }
        return zip(modules, targets).map { (layerKey[$0.1.checkpointKey] ?? $0.1.checkpointKey, $0.0, $0.1) }
    }
}

extension LoRANetwork {
    /// kohya's create_network_from_weights: each module's rank (its lora_down's first dimension) and alpha (its
    /// `.alpha`, or the rank for LoRAs saved without one) in a kohya LoRA file.
    public static func moduleDims(inKohyaFile path: String) throws(ModelError) -> [String: (rank: Int, alpha: Float)] {
        let file = try ModelFile.open(path)
        var dims: [String: (rank: Int, alpha: Float)] = [:]
        for tensor in file.tensors where tensor.name.hasSuffix(".lora_down.weight") {
            let name = String(tensor.name.dropLast(".lora_down.weight".count))
            guard let rank = tensor.shape.first, rank > 0 else { throw ModelError(.invalid, "a lora_down without rows", file: path, key: tensor.name) }
            let alpha = file[name + ".alpha"]?.floats().first ?? Float(rank)
            dims[name] = (rank, alpha)
        }
        guard !dims.isEmpty else { throw ModelError(.mismatch, "no kohya LoRA modules (lora_down weights) in the file", file: path) }
        return dims
    }
}
