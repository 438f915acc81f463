extension ArchitectureConfig {
    /// The widths and depths of a single-file checkpoint, read from its tensor
    /// shapes (so fine-tunes, pruned and tiny test models all work), starting
    /// from the released model of `family` for what shapes cannot tell
    /// (attention heads: 8 in SD1, 64-wide in SD2/SDXL and in CLIP).
    public static func infer(from model: ModelFile, family: Family) throws(ModelError) -> ArchitectureConfig {
        var config = ArchitectureConfig.real(family)
        let u = "model.diffusion_model."
        func shape(_ key: String) -> [Int]? {
            if let t = model[key] { return t.shape }
            let old = key.replacingOccurrences(of: "cond_stage_model.transformer.text_model.", with: "cond_stage_model.transformer.")
            return model[old]?.shape
        }
        func require(_ key: String) throws(ModelError) -> [Int] {
            guard let s = shape(key), !s.isEmpty else { throw ModelError(.mismatch, "the checkpoint has no \(key)", file: model.path) }
            return s
        }
        func has(_ prefix: String) -> Bool { model.tensors.contains { $0.name.hasPrefix(prefix) } }

        // U-Net
        let conv = try require(u + "input_blocks.0.0.weight")
        config.modelChannels = conv[0]
        config.latentChannels = conv[1]
        var multipliers: [Int] = []
        var attention: [Int: Int] = [:]
        var k = 0
        var level = 0
        while true {
            var width = 0
            for _ in 0..<config.resBlocksPerLevel {
                k += 1
                guard let s = shape(u + "input_blocks.\(k).0.out_layers.3.weight") else { break }
                width = s[0]
                var depth = 0
                while has(u + "input_blocks.\(k).1.transformer_blocks.\(depth).") { depth += 1 }
                if depth > 0 { attention[level] = depth }
            }
            guard width > 0 else { break }
            multipliers.append(width / config.modelChannels)
            k += 1
            if shape(u + "input_blocks.\(k).0.op.weight") == nil { break }
            level += 1
        }
        guard !multipliers.isEmpty else { throw ModelError(.mismatch, "cannot read the U-Net's structure", file: model.path) }
        config.channelMultipliers = multipliers
        config.attentionDepth = attention
        var middle = 0
        while has(u + "middle_block.1.transformer_blocks.\(middle).") { middle += 1 }
        config.middleDepth = max(middle, 1)
        if let level = attention.keys.min() {
            let key = u + "input_blocks.\(1 + level * (config.resBlocksPerLevel + 1)).1."
            if let toK = shape(key + "transformer_blocks.0.attn2.to_k.weight") { config.contextDim = toK[1] }
            if let proj = shape(key + "proj_in.weight") { config.linearProjection = proj.count == 2 }
        }
        config.additionalEmbeddingInput = shape(u + "label_emb.0.0.weight")?[1]

        // Text encoders
        let layout = ModelLayout(config)
        config.textEncoders = try config.textEncoders.enumerated().map { (index, te) throws(ModelError) in
            var te = te
            let prefix = layout.textEncoderPrefix(index)
            switch te.layout {
            case .huggingFace:
                let p = prefix + "text_model."
                let embedding = try require(p + "embeddings.token_embedding.weight")
                te.vocabulary = embedding[0]
                te.width = embedding[1]
                te.positions = try require(p + "embeddings.position_embedding.weight")[0]
                te.mlpWidth = try require(p + "encoder.layers.0.mlp.fc1.weight")[0]
                var layers = 0
                while shape(p + "encoder.layers.\(layers).mlp.fc1.weight") != nil { layers += 1 }
                te.layers = layers
            case .openCLIP:
                let embedding = try require(prefix + "token_embedding.weight")
                te.vocabulary = embedding[0]
                te.width = embedding[1]
                te.positions = try require(prefix + "positional_embedding")[0]
                te.mlpWidth = try require(prefix + "transformer.resblocks.0.mlp.c_fc.weight")[0]
                var layers = 0
                while shape(prefix + "transformer.resblocks.\(layers).mlp.c_fc.weight") != nil { layers += 1 }
                te.layers = layers
                te.hasProjection = shape(prefix + "text_projection") != nil
            }
            te.loraLayers = family == .sd2 ? te.layers - 1 : te.layers
            return te
        }
        if family == .sdxl, let adm = config.additionalEmbeddingInput, config.textEncoders.count == 2 {
            config.sizeEmbeddingDim = (adm - config.textEncoders[1].width) / 6
        }

        // VAE (decoder levels from the output side)
        let v = "first_stage_model.decoder."
        if let out = shape(v + "conv_out.weight") {
            config.vaeChannels = out[1]
            var levels: [Int] = []
            var blocks = 0
            while let s = shape(v + "up.\(levels.count).block.0.conv2.weight") {
                levels.append(s[0] / config.vaeChannels)
                if levels.count == 1 { while shape(v + "up.0.block.\(blocks).conv2.weight") != nil { blocks += 1 } }
            }
            if !levels.isEmpty {
                config.vaeMultipliers = levels
                config.vaeResBlocks = blocks - 1
            }
        }
        return config
    }
}

extension ArchitectureConfig {
    /// The structure to check a checkpoint's keys against: the released
    /// model's when the file has its widths (a file missing blocks is then
    /// reported as broken, not re-described), otherwise the one its own shapes
    /// describe — a small model in the same layout (the tiny shapes model:
    /// 64 wide, two CLIP layers, no skip conv where widths do not change).
    public static func keyStructure(of model: ModelFile, family: Family) -> ArchitectureConfig {
        let releasedWidth = model["model.diffusion_model.input_blocks.0.0.weight"].map { [320, 384].contains($0.shape.first ?? 0) } ?? true
        guard !releasedWidth, let inferred = try? ArchitectureConfig.infer(from: model, family: family) else { return .real(family) }
        return inferred
    }
}
