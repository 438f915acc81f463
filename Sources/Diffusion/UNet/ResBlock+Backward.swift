import LoRACore

extension ResBlock {
    /// From layers (tests, and the tiny model trained from scratch).
    init(norm1: GroupNorm, conv1: Conv2d, embedding: Linear, norm2: GroupNorm, conv2: Conv2d, skip: Conv2d?) {
        self.norm1 = norm1
        self.conv1 = conv1
        self.embedding = embedding
        self.norm2 = norm2
        self.conv2 = conv2
        self.skip = skip
    }

    /// What the backward needs: each layer's input (the norms' are x and h).
    struct Saved: Sendable {
        let input: Tensor                 // x            [batch, in, h, w]
        let activatedEmbedding: Tensor    // SiLU(emb)    [batch, embedding]
        let conv1Input: Tensor            // silu(norm1(x))
        let hidden: Tensor                // conv1(…) + emb projection   [batch, out, h, w]
        let conv2Input: Tensor            // silu(norm2(hidden))
    }

    /// The forward of `forward(_:activatedEmbedding:adapters:)` with the
    /// tape's trained modules instead of inference adapters, keeping its activations.
    func forwardSaving(_ x: Tensor, activatedEmbedding: Tensor, tape: TrainingTape? = nil) -> (Tensor, Saved) {
        let conv1Input = norm1.forward(x, silu: true, tape: tape)
        var h = conv1.forward(conv1Input, tape: tape)                                  // [batch, out, h, w]
        ResBlock.addEmbedding(embedding.forward(activatedEmbedding, tape: tape), to: &h)  // + e [batch, out]
        let conv2Input = norm2.forward(h, silu: true, tape: tape)
        var out = conv2.forward(conv2Input, tape: tape)                                // [batch, out, h, w]
        addInPlace(&out, skip?.forward(x, tape: tape) ?? x)
        return (out, Saved(input: x, activatedEmbedding: activatedEmbedding, conv1Input: conv1Input, hidden: h, conv2Input: conv2Input))
    }

    /// Input gradients through the frozen block: dx, and d(SiLU(emb)).
    func backward(_ saved: Saved, outputGradient dy: Tensor, tape: TrainingTape? = nil) -> (input: Tensor, activatedEmbedding: Tensor) {
        let dConv2Input = conv2.backward(input: saved.conv2Input, outputGradient: dy, tape: tape)
        let dHidden = norm2.backward(input: saved.hidden, outputGradient: dConv2Input, silu: true, tape: tape)
        // The embedding projection is broadcast over pixels: its gradient is the spatial sum.
        let batch = dHidden.shape[0], channels = dHidden.shape[1], spatial = dHidden.shape[2] * dHidden.shape[3]
        var dE = Tensor(zeros: [batch, channels])
        for plane in 0..<(batch * channels) {
            var sum = 0.0
            for i in 0..<spatial { sum += Double(dHidden.values[plane * spatial + i]) }
            dE.values[plane] = Float(sum)
        }
        let dEmbedding = embedding.backward(input: saved.activatedEmbedding, outputGradient: dE, tape: tape)
        let dConv1Input = conv1.backward(input: saved.conv1Input, outputGradient: dHidden, tape: tape)
        var dx = norm1.backward(input: saved.input, outputGradient: dConv1Input, silu: true, tape: tape)
        addInPlace(&dx, skip?.backward(input: saved.input, outputGradient: dy, tape: tape) ?? dy)
        return (dx, dEmbedding)
    }
}
