/// The kind of layer a weight belongs to, which decides how ΔW is shaped.
public enum LayerKind: Sendable, Equatable, Codable {
    case linear
    case conv(kernel: Int)
    case norm

    public var isConv: Bool {
        if case .conv = self { return true }
        return false
    }
}

/// Which trainer convention targets a module.
public enum TargetSet: String, Sendable, Codable {
    /// kohya's default LoRA ("LierLa"): attention and projection layers, text-encoder MLPs.
    case attention
    /// Added by kohya's `conv_dim` (LoRA-C3Lier / LoCon): resnet convs, time-embedding
    /// projections, shortcuts, down/up-samplers.
    case resnet
    /// LyCORIS-only modules: conv_in, conv_out, time embedding.
    case extra
    /// Norm layers (LyCORIS `train_norm`).
    case norm
}

/// One tensor of a single-file checkpoint.
public struct TensorSpec: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var dtype: DType?  // nil: the checkpoint's float type
}

/// One module a LoRA can modify, with every name it goes by.
public struct LoRATarget: Sendable, Equatable {
    /// The name kohya's sd-scripts gives it for this family (SD1/SD2 use
    /// diffusers paths, SDXL uses LDM paths).
    public let kohyaName: String
    /// Other names meaning the same module (the other path style, `lora_te1_` for
    /// a single text encoder), accepted on input as ComfyUI and A1111 accept them.
    public let alternateNames: [String]
    public let component: Component
    /// The dotted diffusers/transformers path (`down_blocks.0.attentions.0.proj_in`,
    /// `text_model.encoder.layers.0.self_attn.q_proj`), as diffusers/PEFT files name it.
    public let diffusersPath: String
    /// The checkpoint key of the weight this module changes.
    public let checkpointKey: String
    /// Rows of a packed OpenCLIP `in_proj_weight` (q, k or v), if any.
    public let rows: Range<Int>?
    /// Shape of the weight (of the row slice for packed q/k/v).
    public let shape: [Int]
    public let kind: LayerKind
    public let block: BlockID?
    public let set: TargetSet
    /// The bias key next to the weight, if the layer has one.
    public let biasKey: String?
}

/// Every tensor of a checkpoint and every LoRA target, derived from an
/// `ArchitectureConfig` by walking the network the way LDM builds it.
public struct ModelLayout: Sendable {
    public let config: ArchitectureConfig
    public private(set) var tensors: [TensorSpec] = []
    public private(set) var targets: [LoRATarget] = []

    public static let unetPrefix = "model.diffusion_model."
    public static let vaePrefix = "first_stage_model."

    public init(_ config: ArchitectureConfig) {
        self.config = config
        buildUNet()
        for (index, te) in config.textEncoders.enumerated() {
            buildTextEncoder(te, index: index)
        }
        buildVAE()
        if config.family != .sdxl {
            for name in ["alphas_cumprod", "alphas_cumprod_prev", "betas", "log_one_minus_alphas_cumprod",
                         "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
                         "posterior_variance", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
                         "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod"] {
                tensors.append(TensorSpec(name: name, shape: [1000], dtype: nil))
            }
            tensors.append(TensorSpec(name: "model_ema.decay", shape: [], dtype: nil))
            tensors.append(TensorSpec(name: "model_ema.num_updates", shape: [], dtype: .i32))
        }
    }

    // MARK: U-Net

    private struct Path {
        var ldm: String
        var diffusers: String
    }

    private mutating func param(_ name: String, _ shape: [Int], dtype: DType? = nil) {
        tensors.append(TensorSpec(name: name, shape: shape, dtype: dtype))
    }

    /// A U-Net layer: adds its weight (and bias) and registers it as a LoRA target.
    private mutating func unetLayer(_ path: Path, _ shape: [Int], kind: LayerKind, block: BlockID?, set: TargetSet, bias: Bool = true) {
        let key = ModelLayout.unetPrefix + path.ldm
        param(key + ".weight", shape)
        if bias { param(key + ".bias", [shape[0]]) }
        let ldmName = "lora_unet_" + path.ldm.replacingDots()
        let diffusersName = "lora_unet_" + path.diffusers.replacingDots()
        let sgm = config.family == .sdxl
        targets.append(LoRATarget(kohyaName: sgm ? ldmName : diffusersName,
                                  alternateNames: ldmName == diffusersName ? [] : [sgm ? diffusersName : ldmName],
                                  component: .unet, diffusersPath: path.diffusers, checkpointKey: key + ".weight", rows: nil,
                                  shape: kind == .norm ? [shape[0]] : shape, kind: kind, block: block, set: set,
                                  biasKey: bias ? key + ".bias" : nil))
    }

    private mutating func norm(_ path: Path, _ channels: Int, block: BlockID?) {
        unetLayer(path, [channels], kind: .norm, block: block, set: .norm)
    }

    private mutating func resBlock(_ path: Path, in inChannels: Int, out outChannels: Int, block: BlockID) {
        func sub(_ ldm: String, _ diffusers: String) -> Path { Path(ldm: path.ldm + "." + ldm, diffusers: path.diffusers + "." + diffusers) }
        norm(sub("in_layers.0", "norm1"), inChannels, block: block)
        unetLayer(sub("in_layers.2", "conv1"), [outChannels, inChannels, 3, 3], kind: .conv(kernel: 3), block: block, set: .resnet)
        unetLayer(sub("emb_layers.1", "time_emb_proj"), [outChannels, config.timeEmbedDim], kind: .linear, block: block, set: .resnet)
        norm(sub("out_layers.0", "norm2"), outChannels, block: block)
        unetLayer(sub("out_layers.3", "conv2"), [outChannels, outChannels, 3, 3], kind: .conv(kernel: 3), block: block, set: .resnet)
        if inChannels != outChannels {
            unetLayer(sub("skip_connection", "conv_shortcut"), [outChannels, inChannels, 1, 1], kind: .conv(kernel: 1), block: block, set: .resnet)
        }
    }

    private mutating func transformer(_ path: Path, channels c: Int, depth: Int, block: BlockID) {
        func sub(_ name: String) -> Path { Path(ldm: path.ldm + "." + name, diffusers: path.diffusers + "." + name) }
        norm(sub("norm"), c, block: block)
        let projShape = config.linearProjection ? [c, c] : [c, c, 1, 1]
        let projKind: LayerKind = config.linearProjection ? .linear : .conv(kernel: 1)
        unetLayer(sub("proj_in"), projShape, kind: projKind, block: block, set: .attention)
        for d in 0..<depth {
            let t = "transformer_blocks.\(d)."
            for attn in ["attn1", "attn2"] {
                let kv = attn == "attn1" ? c : config.contextDim
                unetLayer(sub(t + attn + ".to_q"), [c, c], kind: .linear, block: block, set: .attention, bias: false)
                unetLayer(sub(t + attn + ".to_k"), [c, kv], kind: .linear, block: block, set: .attention, bias: false)
                unetLayer(sub(t + attn + ".to_v"), [c, kv], kind: .linear, block: block, set: .attention, bias: false)
                unetLayer(sub(t + attn + ".to_out.0"), [c, c], kind: .linear, block: block, set: .attention)
            }
            unetLayer(sub(t + "ff.net.0.proj"), [c * 8, c], kind: .linear, block: block, set: .attention)
            unetLayer(sub(t + "ff.net.2"), [c, c * 4], kind: .linear, block: block, set: .attention)
            for n in ["norm1", "norm2", "norm3"] { norm(sub(t + n), c, block: block) }
        }
        unetLayer(sub("proj_out"), projShape, kind: projKind, block: block, set: .attention)
    }

    private mutating func buildUNet() {
        let mc = config.modelChannels
        let levels = config.channelMultipliers.count
        let temb = config.timeEmbedDim
        unetLayer(Path(ldm: "time_embed.0", diffusers: "time_embedding.linear_1"), [temb, mc], kind: .linear, block: nil, set: .extra)
        unetLayer(Path(ldm: "time_embed.2", diffusers: "time_embedding.linear_2"), [temb, temb], kind: .linear, block: nil, set: .extra)
        if let adm = config.additionalEmbeddingInput {
            unetLayer(Path(ldm: "label_emb.0.0", diffusers: "add_embedding.linear_1"), [temb, adm], kind: .linear, block: nil, set: .extra)
            unetLayer(Path(ldm: "label_emb.0.2", diffusers: "add_embedding.linear_2"), [temb, temb], kind: .linear, block: nil, set: .extra)
        }
        unetLayer(Path(ldm: "input_blocks.0.0", diffusers: "conv_in"), [mc, config.latentChannels, 3, 3],
                  kind: .conv(kernel: 3), block: .input(0), set: .extra)

        var skipChannels = [mc]
        var channels = mc
        var k = 0
        for level in 0..<levels {
            let out = mc * config.channelMultipliers[level]
            for j in 0..<config.resBlocksPerLevel {
                k += 1
                resBlock(Path(ldm: "input_blocks.\(k).0", diffusers: "down_blocks.\(level).resnets.\(j)"),
                         in: channels, out: out, block: .input(k))
                channels = out
                if let depth = config.attentionDepth[level] {
                    transformer(Path(ldm: "input_blocks.\(k).1", diffusers: "down_blocks.\(level).attentions.\(j)"),
                                channels: channels, depth: depth, block: .input(k))
                }
                skipChannels.append(channels)
            }
            if level != levels - 1 {
                k += 1
                unetLayer(Path(ldm: "input_blocks.\(k).0.op", diffusers: "down_blocks.\(level).downsamplers.0.conv"),
                          [channels, channels, 3, 3], kind: .conv(kernel: 3), block: .input(k), set: .resnet)
                skipChannels.append(channels)
            }
        }

        resBlock(Path(ldm: "middle_block.0", diffusers: "mid_block.resnets.0"), in: channels, out: channels, block: .middle)
        transformer(Path(ldm: "middle_block.1", diffusers: "mid_block.attentions.0"), channels: channels,
                    depth: config.middleDepth, block: .middle)
        resBlock(Path(ldm: "middle_block.2", diffusers: "mid_block.resnets.1"), in: channels, out: channels, block: .middle)

        k = 0
        for level in stride(from: levels - 1, through: 0, by: -1) {
            let up = levels - 1 - level
            let out = mc * config.channelMultipliers[level]
            for j in 0...config.resBlocksPerLevel {
                let skip = skipChannels.removeLast()
                resBlock(Path(ldm: "output_blocks.\(k).0", diffusers: "up_blocks.\(up).resnets.\(j)"),
                         in: channels + skip, out: out, block: .output(k))
                channels = out
                var next = 1
                if let depth = config.attentionDepth[level] {
                    transformer(Path(ldm: "output_blocks.\(k).1", diffusers: "up_blocks.\(up).attentions.\(j)"),
                                channels: channels, depth: depth, block: .output(k))
                    next = 2
                }
                if level != 0 && j == config.resBlocksPerLevel {
                    unetLayer(Path(ldm: "output_blocks.\(k).\(next).conv", diffusers: "up_blocks.\(up).upsamplers.0.conv"),
                              [channels, channels, 3, 3], kind: .conv(kernel: 3), block: .output(k), set: .resnet)
                }
                k += 1
            }
        }
        norm(Path(ldm: "out.0", diffusers: "conv_norm_out"), mc, block: nil)
        unetLayer(Path(ldm: "out.2", diffusers: "conv_out"), [config.latentChannels, mc, 3, 3],
                  kind: .conv(kernel: 3), block: nil, set: .extra)
    }

    // MARK: text encoders

    /// Checkpoint prefix of text encoder `index` for this family.
    public func textEncoderPrefix(_ index: Int) -> String {
        switch (config.family, index) {
        case (.sd1, _): return "cond_stage_model.transformer."
        case (.sd2, _): return "cond_stage_model.model."
        case (.sdxl, 0): return "conditioner.embedders.0.transformer."
        default: return "conditioner.embedders.1.model."
        }
    }

    /// kohya's prefix for text encoder `index`, and the alternatives readers accept.
    private func kohyaTextPrefixes(_ index: Int) -> (String, [String]) {
        if config.family == .sdxl { return index == 0 ? ("lora_te1_", []) : ("lora_te2_", []) }
        // diffusers' kohya conversion writes `lora_te1_` for the single encoder.
        return ("lora_te_", ["lora_te1_"])
    }

    private mutating func buildTextEncoder(_ te: ArchitectureConfig.TextEncoder, index: Int) {
        let prefix = textEncoderPrefix(index)
        let component: Component = index == 0 ? .textEncoder1 : .textEncoder2
        let (kohyaPrefix, alternates) = kohyaTextPrefixes(index)
        let w = te.width, m = te.mlpWidth

        func target(_ hfPath: String, key: String, rows: Range<Int>? = nil, shape: [Int], kind: LayerKind,
                    set: TargetSet, bias: String?) {
            let name = kohyaPrefix + hfPath.replacingDots()
            targets.append(LoRATarget(kohyaName: name, alternateNames: alternates.map { $0 + hfPath.replacingDots() },
                                      component: component, diffusersPath: hfPath, checkpointKey: key, rows: rows, shape: shape, kind: kind,
                                      block: .base, set: set, biasKey: bias))
        }

        switch te.layout {
        case .huggingFace:
            let p = prefix + "text_model."
            param(p + "embeddings.position_embedding.weight", [te.positions, w])
            param(p + "embeddings.position_ids", [1, te.positions], dtype: .i64)
            param(p + "embeddings.token_embedding.weight", [te.vocabulary, w])
            for layer in 0..<te.layers {
                let lp = "encoder.layers.\(layer)."
                for norm in ["layer_norm1", "layer_norm2"] {
                    param(p + lp + norm + ".bias", [w])
                    param(p + lp + norm + ".weight", [w])
                    if layer < te.loraLayers {
                        target("text_model." + lp + norm, key: p + lp + norm + ".weight", shape: [w], kind: .norm,
                               set: .norm, bias: p + lp + norm + ".bias")
                    }
                }
                for (name, shape) in [("mlp.fc1", [m, w]), ("mlp.fc2", [w, m]), ("self_attn.k_proj", [w, w]),
                                      ("self_attn.out_proj", [w, w]), ("self_attn.q_proj", [w, w]), ("self_attn.v_proj", [w, w])] {
                    param(p + lp + name + ".bias", [shape[0]])
                    param(p + lp + name + ".weight", shape)
                    if layer < te.loraLayers {
                        target("text_model." + lp + name, key: p + lp + name + ".weight", shape: shape, kind: .linear,
                               set: .attention, bias: p + lp + name + ".bias")
                    }
                }
            }
            param(p + "final_layer_norm.bias", [w])
            param(p + "final_layer_norm.weight", [w])
            if te.hasProjection { param(prefix + "text_projection.weight", [w, w]) }
        case .openCLIP:
            param(prefix + "positional_embedding", [te.positions, w])
            param(prefix + "token_embedding.weight", [te.vocabulary, w])
            param(prefix + "ln_final.weight", [w])
            param(prefix + "ln_final.bias", [w])
            if te.hasProjection { param(prefix + "text_projection", [w, w]) }
            param(prefix + "logit_scale", [])
            for layer in 0..<te.layers {
                let lp = prefix + "transformer.resblocks.\(layer)."
                let hf = "text_model.encoder.layers.\(layer)."
                let lora = layer < te.loraLayers
                for (open, hfName) in [("ln_1", "layer_norm1"), ("ln_2", "layer_norm2")] {
                    param(lp + open + ".weight", [w])
                    param(lp + open + ".bias", [w])
                    if lora { target(hf + hfName, key: lp + open + ".weight", shape: [w], kind: .norm, set: .norm, bias: lp + open + ".bias") }
                }
                param(lp + "attn.in_proj_weight", [3 * w, w])
                param(lp + "attn.in_proj_bias", [3 * w])
                param(lp + "attn.out_proj.weight", [w, w])
                param(lp + "attn.out_proj.bias", [w])
                param(lp + "mlp.c_fc.weight", [m, w])
                param(lp + "mlp.c_fc.bias", [m])
                param(lp + "mlp.c_proj.weight", [w, m])
                param(lp + "mlp.c_proj.bias", [w])
                if lora {
                    for (i, qkv) in ["q_proj", "k_proj", "v_proj"].enumerated() {
                        target(hf + "self_attn." + qkv, key: lp + "attn.in_proj_weight", rows: (i * w)..<((i + 1) * w),
                               shape: [w, w], kind: .linear, set: .attention, bias: nil)
                    }
                    target(
                        hf + "self_attn.out_proj", key: lp + "attn.out_proj.weight", shape: [w, w], kind: .linear, set: .attention,
                        bias: lp + "attn.out_proj.bias")
                    target(hf + "mlp.fc1", key: lp + "mlp.c_fc.weight", shape: [m, w], kind: .linear, set: .attention, bias: lp + "mlp.c_fc.bias")
                    target(hf + "mlp.fc2", key: lp + "mlp.c_proj.weight", shape: [w, m], kind: .linear, set: .attention, bias: lp + "mlp.c_proj.bias")
                }
            }
        }
    }

    // MARK: VAE

    private mutating func buildVAE() {
        let p = ModelLayout.vaePrefix
        let ch = config.vaeChannels
        let mult = config.vaeMultipliers
        let z = config.latentChannels
        func normParam(_ name: String, _ c: Int) { param(name + ".bias", [c]); param(name + ".weight", [c]) }
        func conv(_ name: String, _ out: Int, _ inC: Int, _ k: Int) { param(name + ".bias", [out]); param(name + ".weight", [out, inC, k, k]) }
        func resnet(_ name: String, _ inC: Int, _ out: Int) {
            conv(name + ".conv1", out, inC, 3)
            conv(name + ".conv2", out, out, 3)
            if inC != out { conv(name + ".nin_shortcut", out, inC, 1) }
            normParam(name + ".norm1", inC)
            normParam(name + ".norm2", out)
        }
        func middle(_ name: String, _ c: Int) {
            for qkv in ["k", "proj_out", "q", "v"] { conv(name + ".attn_1." + qkv, c, c, 1) }
            normParam(name + ".attn_1.norm", c)
            resnet(name + ".block_1", c, c)
            resnet(name + ".block_2", c, c)
        }
        let top = ch * (mult.last ?? 1)
        // Decoder
        conv(p + "decoder.conv_in", top, z, 3)
        conv(p + "decoder.conv_out", 3, ch, 3)
        middle(p + "decoder.mid", top)
        normParam(p + "decoder.norm_out", ch)
        var blockIn = top
        for level in stride(from: mult.count - 1, through: 0, by: -1) {
            let out = ch * mult[level]
            for j in 0...config.vaeResBlocks {
                resnet(p + "decoder.up.\(level).block.\(j)", blockIn, out)
                blockIn = out
            }
            if level != 0 { conv(p + "decoder.up.\(level).upsample.conv", out, out, 3) }
        }
        // Encoder
        conv(p + "encoder.conv_in", ch, 3, 3)
        conv(p + "encoder.conv_out", 2 * z, top, 3)
        middle(p + "encoder.mid", top)
        normParam(p + "encoder.norm_out", top)
        var encIn = ch
        for level in 0..<mult.count {
            let out = ch * mult[level]
            for j in 0..<config.vaeResBlocks {
                resnet(p + "encoder.down.\(level).block.\(j)", encIn, out)
                encIn = out
            }
            if level != mult.count - 1 { conv(p + "encoder.down.\(level).downsample.conv", out, out, 3) }
        }
        conv(p + "post_quant_conv", z, z, 1)
        conv(p + "quant_conv", 2 * z, 2 * z, 1)
    }
}

extension String {
    func replacingDots() -> String { String(map { $0 == "." ? "_" : $0 }) }
}

extension LoRATarget {
    /// The q/k/v row slice in an actual packed `in_proj_weight`, whatever its
    /// width (`rows` is given for the released model's width).
    public func rows(inPackedRows count: Int) -> Range<Int>? {
        guard let rows else { return nil }
        let part = rows.lowerBound / max(rows.count, 1)
        let width = count / 3
        return (part * width)..<((part + 1) * width)
    }
}
