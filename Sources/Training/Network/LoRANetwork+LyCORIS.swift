import Diffusion
import LoRACore

/// LyCORIS's networks (`--network_module lycoris.kohya`; lycoris_lora 3.2.0.post2 as kohya_ss pins it): the GUI's
/// "LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr" and "LyCORIS/iA3" (`LyCORISAlgorithm`). A preset (`LyCORISPreset`) places the
/// modules; within the blocks it names, every Linear and Conv2d: linear and 1×1 layers take dim/alpha, larger kernels
/// conv_dim/conv_alpha (conv_dim defaults to dim; 0, or a preset without convolutions, leaves them out).
/// LoCon's modules are kohya's LoRAModule in all but placement and the forward's order (it adds up·down·scale to the
/// weight before the layer runs, the same product to rounding), and its files hold the same keys (`lora_down.weight`,
/// `lora_up.weight`, `alpha`), so it trains on `LoRAModule`; LoHa, LoKr and (IA)^3 train on `LoHaModule`,
/// `LoKrModule` and `IA3Module`.
extension LoRANetwork {
    /// `trainNorm` (LyCORIS's train_norm): also the GroupNorm and LayerNorm layers inside the blocks the preset covers
    /// (ResnetBlock2D's norm1/norm2, Transformer2DModel's norm and its blocks' norm1–3), as NormModules (rank and alpha unused).
    public static func lycorisPlan(_ layout: ModelLayout, preset: LyCORISPreset = .full, dim: Int, alpha: Float, convDim: Int, convAlpha: Float,
                                   unet: Bool = true, textEncoder: Bool = true, trainNorm: Bool = false,
                                   fromWeights: [String: (rank: Int, alpha: Float)]? = nil) -> [(target: LoRATarget, rank: Int, alpha: Float)] {
        var plan: [(target: LoRATarget, rank: Int, alpha: Float)] = []
        for target in layout.targets {
            guard target.component == .unet ? unet : textEncoder else { continue }
            // --dim_from_weights: LyCORIS's create_network_from_weights takes every module the file has, whatever the preset.
            if let fromWeights {
                guard let (rank, moduleAlpha) = fromWeights[target.kohyaName] else { continue }
                plan.append((target, rank, moduleAlpha))
                continue
            }
            if target.kind == .norm {
                if trainNorm && preset.placesNorm(target) { plan.append((target, 0, 0)) }
                continue
            }
            guard preset.places(target) else { continue }
            let spatial: Bool = { if case .conv(let k) = target.kind { return k > 1 } else { return false } }()
            // LoConModule: an alpha of 0 means the rank (scale 1).
            let (rank, moduleAlpha) = spatial ? (preset.enablesConvolutions ? convDim : 0, convAlpha) : (dim, alpha)
            guard rank > 0 else { continue }
            plan.append((target, rank, moduleAlpha == 0 ? Float(rank) : moduleAlpha))
        }
        return plan
    }
}

/// lycoris.kohya's `algo` network arg, with the settings each algorithm reads.
public enum LyCORISAlgorithm: Sendable, Equatable {
    case locon
    case loha
    /// LoKr: `factor` (−1: the most balanced split), `decompose_both` (low-rank w1 where the rank is small enough),
    /// `full_matrix` (w2 always full), `unbalanced_factorization` (the output's two factors swapped: w1 the larger).
    case lokr(factor: Int, decomposeBoth: Bool, fullMatrix: Bool, unbalanced: Bool = false)
    /// (IA)^3 on the output side: one trained scale per output channel (rank and alpha unused, as in LyCORIS).
    case ia3

    /// The name LyCORIS logs and kohya records (`algo=`).
    public var name: String {
        switch self {
        case .locon: return "locon"
        case .loha: return "loha"
        case .lokr: return "lokr"
        case .ia3: return "ia3"
        }
    }
}

extension LoRANetwork {
    /// The modules of a `lycorisPlan` for `algorithm`, initialised as LyCORIS does. `uniform` gives U(0, 1) draws,
    /// `normal` N(0, 1) draws; LyCORIS's come from torch's generator, so the values differ, their distributions do not.
    /// `tucker` (LyCORIS's use_tucker): on kernels wider than 1×1, LoCon's down splits into a 1×1 down and the core
    /// lora_mid, LoHa's products get the cores hada_t1/hada_t2, LoKr's low-rank w2 the core lokr_t2 ((IA)^3 has none).
    /// `dora` (LyCORIS's dora_wd): each LoCon, LoHa and LoKr module inside a `DoRAModule`, its magnitude started at the
    /// row norms of the frozen weight `dora` gives for its target (LyCORIS's IA3Module and NormModule take no
    /// decomposition).
    /// `trainedScalar` (use_scalar): LoCon's, LoHa's and LoKr's scalar trained from 0, with the factors that start at
    /// zero otherwise drawn instead.
    public static func lycoris(plan: [(target: LoRATarget, rank: Int, alpha: Float)], algorithm: LyCORISAlgorithm, tucker: Bool = false,
                               trainedScalar: Bool = false, dora: ((LoRATarget) throws(ModelError) -> [Float])? = nil,
                               uniform: () -> Float, normal: (Int) -> [Float]) throws(ModelError) -> LoRANetwork {
        var modules: [any TrainedModule] = []
        for entry in plan {
            if entry.target.kind == .norm {
                modules.append(NormModule(name: entry.target.kohyaName, channels: entry.target.shape[0]))
                continue
            }
            let name = entry.target.kohyaName, shape = shape(of: entry.target)
            let module: any WeightDeltaModule
            switch algorithm {
            case .locon:
                let lora = LoRAModule.kohyaInitialized(name: name, shape: shape, rank: entry.rank, alpha: entry.alpha, tucker: tucker,
                                                       trainedScalar: trainedScalar, uniform: uniform)
                guard dora != nil else { modules.append(lora); continue }
                module = LoRAWeightDelta(lora)
            case .loha:
                module = LoHaModule.lycorisInitialized(name: name, shape: shape, rank: entry.rank, alpha: entry.alpha, tucker: tucker,
                                                       trainedScalar: trainedScalar, normal: normal)
            case let .lokr(factor, decomposeBoth, fullMatrix, unbalanced):
                let layout = LoKrLayout(shape, rank: entry.rank, factor: factor, decomposeBoth: decomposeBoth, fullMatrix: fullMatrix, tucker: tucker,
                                        unbalanced: unbalanced)
                module = LoKrModule.lycorisInitialized(name: name, shape: shape, layout: layout, rank: entry.rank, alpha: entry.alpha,
                                                       trainedScalar: trainedScalar, uniform: uniform)
            case .ia3:
                modules.append(IA3Module(name: name, shape: shape))
                continue
            }
            guard let dora else { modules.append(module); continue }
            modules.append(DoRAModule(module, magnitude: DoRAModule.rowNorms(try dora(entry.target), rows: shape.outputs)))
        }
        return LoRANetwork(modules: modules, targets: plan.map(\.target), maxNormRule: .lycoris)
    }

    /// The values a module of `algorithm` at `rank` on `target` holds.
    public static func parameterCount(_ target: LoRATarget, rank: Int, algorithm: LyCORISAlgorithm, tucker: Bool = false, dora: Bool = false,
                                      trainedScalar: Bool = false) -> Int {
        if target.kind == .norm { return 2 * target.shape[0] }
        let shape = shape(of: target)
        if (dora || trainedScalar) && algorithm != .ia3 {
            return (dora ? shape.outputs : 0) + (trainedScalar ? 1 : 0) + parameterCount(target, rank: rank, algorithm: algorithm, tucker: tucker)
        }
        switch algorithm {
        case .locon:
            if tucker, case let .conv(inputs, outputs, kernel, _, _) = shape, kernel > 1 { return rank * (inputs + rank * kernel * kernel + outputs) }
            return parameterCount(target, rank: rank)
        case .loha:
            if tucker, case let .conv(inputs, outputs, kernel, _, _) = shape, kernel > 1 {
                return 2 * rank * (rank * kernel * kernel + outputs + inputs)
            }
            return 2 * rank * (shape.outputs + shape.columns)
        case let .lokr(factor, decomposeBoth, fullMatrix, unbalanced):
            return LoKrLayout(shape, rank: rank, factor: factor, decomposeBoth: decomposeBoth, fullMatrix: fullMatrix, tucker: tucker,
                              unbalanced: unbalanced).parameterCount(rank: rank)
        case .ia3: return shape.outputs
        }
    }
}

/// LyCORIS's built-in presets the kohya_ss GUI offers (lycoris/config.py PRESET): which blocks its modules go in.
/// The U-Net's Transformer2DModel children are `TargetSet.attention`; ResnetBlock2D's, Downsample2D's and
/// Upsample2D's are `.resnet`; conv_in, conv_out and the time embedding are `.extra` (by name). The text encoder's
/// CLIPAttention and CLIPMLP layers are its `.attention` targets.
public enum LyCORISPreset: String, CaseIterable, Sendable {
    case full, fullLin = "full-lin", attnMLP = "attn-mlp", attnOnly = "attn-only", unetOnly = "unet-only"
    case unetTransformerOnly = "unet-transformer-only", unetConvblockOnly = "unet-convblock-only"

    /// `enable_conv`: without it, no kernel wider than 1×1 gets a module.
    public var enablesConvolutions: Bool { [.full, .unetOnly, .unetConvblockOnly].contains(self) }

    /// With train_norm, LyCORIS wraps every norm layer inside the modules the preset targets: ResnetBlock2D's where it
    /// takes the ResBlocks, Transformer2DModel's where it takes the transformers (conv_norm_out and the text encoder's
    /// layer norms sit outside every preset's target modules).
    public func placesNorm(_ target: LoRATarget) -> Bool {
        guard target.component == .unet, target.kind == .norm else { return false }
        let path = target.diffusersPath
        if path.contains(".resnets.") { return [.full, .fullLin, .unetOnly, .unetConvblockOnly].contains(self) }
        if path.contains(".attentions.") { return [.full, .fullLin, .attnMLP, .unetOnly, .unetTransformerOnly].contains(self) }
        return false
    }

    public func places(_ target: LoRATarget) -> Bool {
        let path = target.diffusersPath
        guard target.component == .unet else {
            guard target.set == .attention else { return false }
            switch self {
            case .full, .fullLin, .attnMLP: return true
            case .attnOnly: return !path.contains(".mlp.")   // CLIPAttention only
            case .unetOnly, .unetTransformerOnly, .unetConvblockOnly: return false
            }
        }
        let sampler = path.contains("downsamplers") || path.contains("upsamplers")
        let timeEmbedding = path.hasPrefix("time_embedding."), outerConv = path == "conv_in" || path == "conv_out"
        switch target.set {
        case .attention: return [.full, .fullLin, .attnMLP, .unetOnly, .unetTransformerOnly].contains(self)
        case .resnet: return sampler ? [.full, .unetOnly, .unetConvblockOnly].contains(self) : [.full, .fullLin, .unetOnly, .unetConvblockOnly].contains(self)
        case .extra:
            if timeEmbedding { return [.full, .fullLin, .unetOnly].contains(self) }
            return outerConv && [.full, .unetOnly, .unetConvblockOnly].contains(self)
        case .norm: return false
        }
    }
}
