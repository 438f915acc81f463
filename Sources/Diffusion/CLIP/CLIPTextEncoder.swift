import LoRACore

/// A CLIP text transformer: OpenAI's CLIP-L in Hugging Face layout (SD1,
/// SDXL's first encoder) or OpenCLIP's ViT-H/bigG with packed q/k/v (SD2,
/// SDXL's second). Pre-LayerNorm blocks with causal self-attention.
public struct CLIPTextEncoder: Sendable {
    public let config: ArchitectureConfig.TextEncoder
    public let prefix: String
    let tokenEmbedding: [Float]
    let positionEmbedding: [Float]
    let layers: [Block]
    let finalNorm: LayerNorm
    /// OpenCLIP's text_projection, applied as x·P (pooled output).
    let projection: [Float]?

    struct Block: Sendable {
        let norm1: LayerNorm
        /// q, k and v in one [3W, W] projection.
        let qkv: Linear
        let out: Linear
        let norm2: LayerNorm
        let fc1: Linear
        let fc2: Linear
    }

    public struct Output: Sendable {
        /// [batch, tokens, width] at the requested layer.
        public var hidden: Tensor
        /// [batch, width]: the final-LayerNorm output at each sequence's end token,
        /// projected when the model has a projection.
        public var pooled: Tensor?
    }

    /// - Parameter prefix: the encoder's key prefix in the checkpoint
    ///   (`cond_stage_model.transformer.`, `conditioner.embedders.1.model.`, …).
    public init(_ weights: Weights, prefix: String, config: ArchitectureConfig.TextEncoder) throws(ModelError) {
        try StableDiffusionModel.checkHeads(config, path: weights.path)
        self.config = config
        self.prefix = prefix
        let w = config.width, m = config.mlpWidth
        var blocks: [Block] = []
        switch config.layout {
        case .huggingFace:
            let p = prefix + "text_model."
            tokenEmbedding = try weights.load(p + "embeddings.token_embedding.weight", shape: [config.vocabulary, w])
            positionEmbedding = try weights.load(p + "embeddings.position_embedding.weight", shape: [config.positions, w])
            for i in 0..<config.layers {
                let l = p + "encoder.layers.\(i)."
                let a = l + "self_attn."
                blocks.append(Block(
                    norm1: try LayerNorm(weights, l + "layer_norm1", width: w),
                    qkv: try Linear(weights, keys: [a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"],
                                    biasKeys: [a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias"], in: w, outs: [w, w, w]),
                    out: try Linear(weights, a + "out_proj", in: w, out: w),
                    norm2: try LayerNorm(weights, l + "layer_norm2", width: w),
                    fc1: try Linear(weights, l + "mlp.fc1", in: w, out: m),
                    fc2: try Linear(weights, l + "mlp.fc2", in: m, out: w)))
            }
            finalNorm = try LayerNorm(weights, p + "final_layer_norm", width: w)
            projection = nil
        case .openCLIP:
            tokenEmbedding = try weights.load(prefix + "token_embedding.weight", shape: [config.vocabulary, w])
            positionEmbedding = try weights.load(prefix + "positional_embedding", shape: [config.positions, w])
            for i in 0..<config.layers {
                let l = prefix + "transformer.resblocks.\(i)."
                blocks.append(Block(
                    norm1: try LayerNorm(weights, l + "ln_1", width: w),
                    qkv: try Linear(packed: weights, weightKey: l + "attn.in_proj_weight", biasKey: l + "attn.in_proj_bias", in: w, out: 3 * w),
                    out: try Linear(weights, l + "attn.out_proj", in: w, out: w),
                    norm2: try LayerNorm(weights, l + "ln_2", width: w),
                    fc1: try Linear(weights, l + "mlp.c_fc", in: w, out: m),
                    fc2: try Linear(weights, l + "mlp.c_proj", in: m, out: w)))
            }
            finalNorm = try LayerNorm(weights, prefix + "ln_final", width: w)
            projection = config.hasProjection ? try weights.loadIfPresent(prefix + "text_projection", shape: [w, w]) : nil
        }
        layers = blocks
    }

    /// Run the first `layerCount` blocks on each 77-id sequence.
    /// - Parameters:
    ///   - finalNorm: apply the final LayerNorm to the returned hidden states.
    ///   - pooled: also compute the pooled output (runs every block).
    public func encode(_ ids: [[Int]], layerCount: Int, finalNorm applyNorm: Bool, pooled wantPooled: Bool = false,
                       adapters: AdapterSet = .empty) throws(ModelError) -> Output {
        let w = config.width, tokens = ids.first?.count ?? 0
        guard tokens <= config.positions, ids.allSatisfy({ $0.count == tokens }) else {
            throw ModelError(.mismatch, "token sequences must all have the same length, at most \(config.positions)")
        }
        if let bad = ids.joined().first(where: { $0 < 0 || $0 >= config.vocabulary }) {
            throw ModelError(.mismatch, "token id \(bad) is outside the text encoder's vocabulary of \(config.vocabulary)")
        }
        return try run(ids, tokens: tokens, width: w, layerCount: layerCount, applyNorm: applyNorm, wantPooled: wantPooled, adapters: adapters)
    }

    private func run(_ ids: [[Int]], tokens: Int, width w: Int, layerCount: Int, applyNorm: Bool, wantPooled: Bool,
                     adapters: AdapterSet) throws(ModelError) -> Output {
        let batch = ids.count
        var x = Tensor.uninitialized([batch, tokens, w])
        x.withMutablePointer { xp in
            for (b, sequence) in ids.enumerated() {
                for (t, id) in sequence.enumerated() {
                    let row = xp + (b * tokens + t) * w
                    for i in 0..<w { row[i] = tokenEmbedding[id * w + i] + positionEmbedding[t * w + i] }
                }
            }
        }
        let needed = wantPooled ? layers.count : min(max(layerCount, 0), layers.count)
        var hidden: Tensor?
        for (index, block) in layers.prefix(needed).enumerated() {
            if index == layerCount { hidden = x }
            x = forward(block, x, batch: batch, tokens: tokens, adapters: adapters)
        }
        if hidden == nil { hidden = x }
        var output = Output(hidden: applyNorm ? finalNorm.forward(hidden!, adapters: adapters) : hidden!, pooled: nil)
        if wantPooled {
            let normed = finalNorm.forward(x, adapters: adapters)
            var pooled = Tensor(zeros: [batch, w])
            for (b, sequence) in ids.enumerated() {
                // The end token has the largest id: its first occurrence marks the end.
                var end = 0
                for (i, id) in sequence.enumerated() where id > sequence[end] { end = i }
                let row = Array(normed.values[((b * tokens + end) * w)..<((b * tokens + end + 1) * w)])
                if let projection {
                    for j in 0..<w {
                        var sum: Float = 0
                        for i in 0..<w { sum += row[i] * projection[i * w + j] }
                        pooled.values[b * w + j] = sum
                    }
                } else {
                    pooled.values.replaceSubrange((b * w)..<((b + 1) * w), with: row)
                }
            }
            output.pooled = pooled
        }
        return output
    }

    private func forward(_ block: Block, _ x: Tensor, batch: Int, tokens: Int, adapters: AdapterSet) -> Tensor {
        let w = config.width
        var x = x
        let qkv = block.qkv.forward(block.norm1.forward(x, adapters: adapters), adapters: adapters)
        var attended = Tensor.uninitialized([batch, tokens, w])
        qkv.withPointer { p in
            attended.withMutablePointer { o in
                let item = tokens * 3 * w
                Attention.forward(q: .init(pointer: p, stride: 3 * w, itemStride: item), k: .init(pointer: p + w, stride: 3 * w, itemStride: item),
                                  v: .init(pointer: p + 2 * w, stride: 3 * w, itemStride: item), into: o, outStride: w, outItemStride: tokens * w,
                                  items: batch, queries: tokens, keys: tokens, heads: config.heads, headDim: config.headDim, causal: true)
            }
        }
        addInPlace(&x, block.out.forward(attended, adapters: adapters))
        var hidden = block.fc1.forward(block.norm2.forward(x, adapters: adapters), adapters: adapters)
        activation.apply(&hidden)
        addInPlace(&x, block.fc2.forward(hidden, adapters: adapters))
        return x
    }
}
