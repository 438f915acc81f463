import LoRACore

/// LDM's SpatialTransformer: GroupNorm, proj_in (1×1 conv in SD1, linear in
/// SD2/SDXL), `depth` transformer blocks over the pixels as tokens, proj_out,
/// plus the input.
struct SpatialTransformer: Sendable {
    struct Block: Sendable {
        let norm1: LayerNorm
        /// to_q, to_k, to_v packed into one projection.
        let selfQKV: Linear
        let selfOut: Linear
        let norm2: LayerNorm
        let crossQ: Linear
        /// to_k, to_v of the cross-attention, packed, applied to the text context.
        let crossKV: Linear
        let crossOut: Linear
        let norm3: LayerNorm
        let feedForwardIn: Linear
        let feedForwardOut: Linear
    }

    enum Projection: Sendable {
        case conv(Conv2d)
        case linear(Linear)
    }

    let channels: Int
    let heads: Int
    let norm: GroupNorm
    let projectIn: Projection
    let blocks: [Block]
    let projectOut: Projection

    init(_ weights: Weights, _ prefix: String, channels c: Int, depth: Int, contextDim: Int, heads: Int, linear: Bool) throws(ModelError) {
        guard heads >= 1, c % heads == 0 else {
            throw ModelError(.unsupported, "\(prefix): \(c) channels do not split into \(heads) attention heads", file: weights.path)
        }
        channels = c
        self.heads = heads
        norm = try GroupNorm(weights, prefix + ".norm", channels: c, epsilon: 1e-6)
        func projection(_ name: String) throws(ModelError) -> Projection {
            linear ? .linear(try Linear(weights, prefix + "." + name, in: c, out: c))
                : .conv(try Conv2d(weights, prefix + "." + name, in: c, out: c, kernel: 1))
        }
        projectIn = try projection("proj_in")
        var blocks: [Block] = []
        for d in 0..<depth {
            let p = prefix + ".transformer_blocks.\(d)."
            func keys(_ attention: String, _ names: [String]) -> [String] { names.map { p + attention + "." + $0 + ".weight" } }
            blocks.append(Block(
                norm1: try LayerNorm(weights, p + "norm1", width: c),
                selfQKV: try Linear(weights, keys: keys("attn1", ["to_q", "to_k", "to_v"]), biasKeys: nil, in: c, outs: [c, c, c]),
                selfOut: try Linear(weights, p + "attn1.to_out.0", in: c, out: c),
                norm2: try LayerNorm(weights, p + "norm2", width: c),
                crossQ: try Linear(weights, p + "attn2.to_q", in: c, out: c, bias: false),
                crossKV: try Linear(weights, keys: keys("attn2", ["to_k", "to_v"]), biasKeys: nil, in: contextDim, outs: [c, c]),
                crossOut: try Linear(weights, p + "attn2.to_out.0", in: c, out: c),
                norm3: try LayerNorm(weights, p + "norm3", width: c),
                feedForwardIn: try Linear(weights, p + "ff.net.0.proj", in: c, out: 8 * c),
                feedForwardOut: try Linear(weights, p + "ff.net.2", in: 4 * c, out: c)))
        }
        self.blocks = blocks
        projectOut = try projection("proj_out")
    }

    /// - Parameter context: [batch, text tokens, contextDim].
    func forward(_ x: Tensor, context: Tensor, adapters: AdapterSet) -> Tensor {
        let batch = x.shape[0], height = x.shape[2], width = x.shape[3], pixels = height * width
        let normed = norm.forward(x, adapters: adapters)
        var tokens: Tensor
        switch projectIn {
        case .conv(let conv): tokens = transposeLastTwo(conv.forward(normed, adapters: adapters), rows: channels, cols: pixels)
        case .linear(let linear): tokens = linear.forward(transposeLastTwo(normed, rows: channels, cols: pixels), adapters: adapters)
        }
        tokens = tokens.reshaped([batch, pixels, channels])
        for block in blocks { tokens = forward(block, tokens, context: context, adapters: adapters) }
        var out: Tensor
        switch projectOut {
        case .conv(let conv): out = conv.forward(transposeLastTwo(tokens, rows: pixels, cols: channels).reshaped(x.shape), adapters: adapters)
        case .linear(let linear): out = transposeLastTwo(linear.forward(tokens, adapters: adapters), rows: pixels, cols: channels).reshaped(x.shape)
        }
        addInPlace(&out, x)
        return out
    }

    private func forward(_ block: Block, _ x: Tensor, context: Tensor, adapters: AdapterSet) -> Tensor {
        let batch = x.shape[0], tokens = x.shape[1], c = channels
        let textTokens = context.shape[1]
        var x = x
        // Self-attention.
        let qkv = block.selfQKV.forward(block.norm1.forward(x, adapters: adapters), adapters: adapters)
        var attended = Tensor.uninitialized([batch, tokens, c])
        qkv.withPointer { p in
            attended.withMutablePointer { o in
                let item = tokens * 3 * c
                Attention.forward(q: .init(pointer: p, stride: 3 * c, itemStride: item), k: .init(pointer: p + c, stride: 3 * c, itemStride: item),
                                  v: .init(pointer: p + 2 * c, stride: 3 * c, itemStride: item), into: o, outStride: c, outItemStride: tokens * c,
                                  items: batch, queries: tokens, keys: tokens, heads: heads, headDim: c / heads)
            }
        }
        addInPlace(&x, block.selfOut.forward(attended, adapters: adapters))
        // Cross-attention to the text.
        let q = block.crossQ.forward(block.norm2.forward(x, adapters: adapters), adapters: adapters)
        let kv = block.crossKV.forward(context, adapters: adapters)
        q.withPointer { qp in
            kv.withPointer { kvp in
                attended.withMutablePointer { o in
                    let text = textTokens * 2 * c
                    Attention.forward(q: .init(pointer: qp, stride: c, itemStride: tokens * c), k: .init(pointer: kvp, stride: 2 * c, itemStride: text),
                                      v: .init(pointer: kvp + c, stride: 2 * c, itemStride: text), into: o, outStride: c, outItemStride: tokens * c,
                                      items: batch, queries: tokens, keys: textTokens, heads: heads, headDim: c / heads)
                }
            }
        }
        addInPlace(&x, block.crossOut.forward(attended, adapters: adapters))
        // GEGLU feed-forward.
        let hidden = geglu(block.feedForwardIn.forward(block.norm3.forward(x, adapters: adapters), adapters: adapters))
        addInPlace(&x, block.feedForwardOut.forward(hidden, adapters: adapters))
        return x
    }
}
