import LoRACore

/// The U-Net's residual block: GroupNorm→SiLU→conv, plus the projected time
/// embedding, GroupNorm→SiLU→conv, plus the input (1×1 conv when the width changes).
struct ResBlock: Sendable {
    let norm1: GroupNorm
    let conv1: Conv2d
    let embedding: Linear
    let norm2: GroupNorm
    let conv2: Conv2d
    let skip: Conv2d?

    init(_ weights: Weights, _ prefix: String, in inChannels: Int, out outChannels: Int, embedding: Int) throws(ModelError) {
        norm1 = try GroupNorm(weights, prefix + ".in_layers.0", channels: inChannels, epsilon: 1e-5)
        conv1 = try Conv2d(weights, prefix + ".in_layers.2", in: inChannels, out: outChannels, kernel: 3)
        self.embedding = try Linear(weights, prefix + ".emb_layers.1", in: embedding, out: outChannels)
        norm2 = try GroupNorm(weights, prefix + ".out_layers.0", channels: outChannels, epsilon: 1e-5)
        conv2 = try Conv2d(weights, prefix + ".out_layers.3", in: outChannels, out: outChannels, kernel: 3)
        skip = inChannels == outChannels ? nil
            : try Conv2d(weights, prefix + ".skip_connection", in: inChannels, out: outChannels, kernel: 1)
    }

    /// - Parameter activatedEmbedding: SiLU(time embedding), [batch, embedding].
    func forward(_ x: Tensor, activatedEmbedding: Tensor, adapters: AdapterSet) -> Tensor {
        var h = conv1.forward(norm1.forward(x, silu: true, adapters: adapters), adapters: adapters)
        ResBlock.addEmbedding(embedding.forward(activatedEmbedding, adapters: adapters), to: &h)
        var out = conv2.forward(norm2.forward(h, silu: true, adapters: adapters), adapters: adapters)
        addInPlace(&out, skip?.forward(x, adapters: adapters) ?? x)
        return out
    }

    /// h[b, c, :, :] += e[b, c]: the projected time embedding, broadcast over the pixels.
    static func addEmbedding(_ e: Tensor, to h: inout Tensor) {
        let spatial = h.shape[2] * h.shape[3], planes = h.shape[0] * h.shape[1]
        h.withMutablePointer { hp in
            Parallel.forEach(planes, cost: spatial) { plane in
                let v = e.values[plane]
                let p = hp + plane * spatial
                for i in 0..<spatial { p[i] += v }
            }
        }
    }
}
