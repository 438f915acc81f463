import Diffusion
import LoRACore

/// LyCORIS's LoCon (`--network_module lycoris.kohya`, algo locon, preset "full"; lycoris_lora 3.2.0.post2 as kohya_ss
/// pins it, the GUI's "LyCORIS/LoCon"). Its modules are kohya's LoRAModule in all but placement and the forward's order
/// (it adds up·down·scale to the weight before the layer runs, the same product to rounding), and its files hold the
/// same keys (`lora_down.weight`, `lora_up.weight`, `alpha`), so it trains on `LoRAModule`. The "full" preset places
/// them on every Linear and Conv2d of each Transformer2DModel, ResnetBlock2D, Downsample2D and Upsample2D, on
/// conv_in and conv_out, and on the time embedding's two layers (`TargetSet.extra`); in the text encoder on
/// CLIPAttention and CLIPMLP, as kohya's. Linear and 1×1 layers take dim/alpha, larger kernels conv_dim/conv_alpha
/// (conv_dim defaults to dim; 0 leaves those layers out).
extension LoRANetwork {
    public static func lycorisPlan(_ layout: ModelLayout, dim: Int, alpha: Float, convDim: Int, convAlpha: Float,
                                   unet: Bool = true, textEncoder: Bool = true,
                                   fromWeights: [String: (rank: Int, alpha: Float)]? = nil) -> [(target: LoRATarget, rank: Int, alpha: Float)] {
        var plan: [(target: LoRATarget, rank: Int, alpha: Float)] = []
        for target in layout.targets {
            let isUNet = target.component == .unet
            guard isUNet ? unet : textEncoder else { continue }
            // SDXL's label embedding is an `extra` target too, outside the preset's names.
            guard target.set == .attention || (isUNet && target.set == .resnet)
                    || (isUNet && target.set == .extra && !target.diffusersPath.hasPrefix("add_embedding")) else { continue }
            if let fromWeights {
                guard let (rank, moduleAlpha) = fromWeights[target.kohyaName] else { continue }
                plan.append((target, rank, moduleAlpha))
                continue
            }
            let spatial: Bool = { if case .conv(let k) = target.kind { return k > 1 } else { return false } }()
            // LoConModule: an alpha of 0 means the rank (scale 1).
            let (rank, moduleAlpha) = spatial ? (convDim, convAlpha) : (dim, alpha)
            guard rank > 0 else { continue }
            plan.append((target, rank, moduleAlpha == 0 ? Float(rank) : moduleAlpha))
        }
        return plan
    }
}
