import LoRACore

/// The text encoder's training pass: what each block's backward needs, and
/// the gradients of the trained modules on its linear layers (kohya's text-
/// encoder LoRA: q/k/v/out projections and the MLP). The embeddings and every
/// frozen weight get none, so the pass stops at the first block's input.
/// Shapes: b sequences, t tokens, w width, m MLP width.
extension CLIPTextEncoder {
    struct BlockSaved: Sendable {
        let input: Tensor          // x0                  [b, t, w]
        let norm1: Tensor          // norm1(x0)           [b, t, w]
        let qkv: Tensor            // packed q, k, v      [b, t, 3w]
        let attention: Attention.Saved  // causal, .output [b, t, w]
        let afterAttention: Tensor // x1 = x0 + out(a)    [b, t, w]
        let norm2: Tensor          // norm2(x1)           [b, t, w]
        let hidden: Tensor         // fc1(norm2)          [b, t, m]  (before the activation)
        let activated: Tensor      // (quick-)GELU        [b, t, m]
    }

    public struct Saved: Sendable {
        let blocks: [BlockSaved]
        /// The input of the final LayerNorm when it was applied.
        let normInput: Tensor?
    }

    /// The hidden states after `layerCount` blocks (the final LayerNorm
    /// applied when asked), the trained modules on the tape adding their part,
    /// and what `backward` needs.
    public func forwardSaving(_ ids: [[Int]], layerCount: Int, finalNorm applyNorm: Bool, tape: TrainingTape?) -> (Tensor, Saved) {
        let batch = ids.count, tokens = ids.first?.count ?? 0, w = config.width
        var x = Tensor.uninitialized([batch, tokens, w])
        for (b, sequence) in ids.enumerated() {
            for (t, id) in sequence.enumerated() {
                for i in 0..<w { x.values[(b * tokens + t) * w + i] = tokenEmbedding[id * w + i] + positionEmbedding[t * w + i] }
            }
        }
        var saved: [BlockSaved] = []
        for block in layers.prefix(min(max(layerCount, 0), layers.count)) {
            let n1 = block.norm1.forward(x)
            let qkv = block.qkv.forward(n1, tape: tape)                                                        // [b, t, 3w]
            let a = Attention.forwardSaving(q: packedColumns(qkv, 0, of: 3), k: packedColumns(qkv, 1, of: 3), v: packedColumns(qkv, 2, of: 3),
                                            items: batch, queries: tokens, keys: tokens, heads: config.heads, headDim: config.headDim, causal: true)
            var x1 = x
            addInPlace(&x1, block.out.forward(a.output, tape: tape))
            let n2 = block.norm2.forward(x1)
            let h = block.fc1.forward(n2, tape: tape)                                                          // [b, t, m]
            var activated = h
            activation.apply(&activated)
            var x2 = x1
            addInPlace(&x2, block.fc2.forward(activated, tape: tape))
            saved.append(BlockSaved(input: x, norm1: n1, qkv: qkv, attention: a, afterAttention: x1, norm2: n2, hidden: h, activated: activated))
            x = x2
        }
        guard applyNorm else { return (x, Saved(blocks: saved, normInput: nil)) }
        return (finalNorm.forward(x), Saved(blocks: saved, normInput: x))
    }

    /// Backward from the gradient at the returned hidden states: the modules'
    /// gradients are added into their buffers (the rule in Gradient.swift).
    public func backward(_ saved: Saved, outputGradient dy: Tensor, tape: TrainingTape?) {
        var dx = saved.normInput.map { finalNorm.backward(input: $0, outputGradient: dy) } ?? dy
        let batch = dy.shape[0], tokens = dy.shape[1]
        for (index, (block, s)) in zip(layers, saved.blocks).enumerated().reversed() {
            // MLP: x2 = x1 + fc2(act(fc1(norm2(x1)))).
            let dActivated = block.fc2.backward(input: s.activated, outputGradient: dx, tape: tape)
            let dNorm2 = block.fc1.backward(input: s.norm2, outputGradient: activation.backward(input: s.hidden, outputGradient: dActivated), tape: tape)
            var dx1 = block.norm2.backward(input: s.afterAttention, outputGradient: dNorm2)
            addInPlace(&dx1, dx)
            // Causal self-attention: x1 = x0 + out(attend(qkv(norm1(x0)))).
            let dA = block.out.backward(input: s.attention.output, outputGradient: dx1, tape: tape)
            let d = Attention.backward(q: packedColumns(s.qkv, 0, of: 3), k: packedColumns(s.qkv, 1, of: 3), v: packedColumns(s.qkv, 2, of: 3),
                                       saved: s.attention, outputGradient: dA, items: batch, queries: tokens, keys: tokens, heads: config.heads, headDim: config.headDim,
                                       causal: true)
            let dNorm1 = block.qkv.backward(input: s.norm1, outputGradient: packColumns([d.q, d.k, d.v]), tape: tape)
            guard index > 0 else { break } // nothing below the first block is trained
            dx = block.norm1.backward(input: s.input, outputGradient: dNorm1)
            addInPlace(&dx, dx1)
        }
    }

    var activation: Activation { config.usesQuickGELU ? .quickGELU : .gelu }
}
