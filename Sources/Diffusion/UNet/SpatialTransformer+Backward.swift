import LoRACore

extension SpatialTransformer {
    /// From layers (tests, and the tiny model trained from scratch).
    init(channels: Int, heads: Int, norm: GroupNorm, projectIn: Projection, blocks: [Block], projectOut: Projection) {
        self.channels = channels
        self.heads = heads
        self.norm = norm
        self.projectIn = projectIn
        self.blocks = blocks
        self.projectOut = projectOut
    }

    /// One transformer block's activations (b = batch, t = pixels as tokens, c = channels, T = text tokens).
    struct BlockSaved: Sendable {
        let input: Tensor          // x0            [b, t, c]
        let norm1: Tensor          // norm1(x0)     [b, t, c]
        let qkv: Tensor            // packed        [b, t, 3c]
        let selfAttention: Attention.Saved   // a1 = .output [b, t, c]
        let afterSelf: Tensor      // x1 = x0 + o1  [b, t, c]
        let norm2: Tensor          // norm2(x1)     [b, t, c]
        let crossQ: Tensor         // q             [b, t, c]
        let crossKV: Tensor        // packed k, v   [b, T, 2c]
        let crossAttention: Attention.Saved  // a2 = .output [b, t, c]
        let afterCross: Tensor     // x2 = x1 + o2  [b, t, c]
        let norm3: Tensor          // norm3(x2)     [b, t, c]
        let feedForward: Tensor    // ff.net.0.proj [b, t, 8c]
        let gated: Tensor          // GEGLU         [b, t, 4c]
    }

    struct Saved: Sendable {
        let input: Tensor          // x             [b, c, h, w]
        let normed: Tensor         // norm(x)       [b, c, h, w]
        let context: Tensor        //               [b, T, contextDim]
        let blockInputs: [BlockSaved]
        let tokensOut: Tensor      // after the blocks [b, t, c]
    }

    func forwardSaving(_ x: Tensor, context: Tensor, tape: TrainingTape? = nil) -> (Tensor, Saved) {
        let batch = x.shape[0], pixels = x.shape[2] * x.shape[3]
        let normed = norm.forward(x, tape: tape)
        var tokens: Tensor
        switch projectIn {
        case .conv(let conv): tokens = transposeLastTwo(conv.forward(normed, tape: tape), rows: channels, cols: pixels)
        case .linear(let linear): tokens = linear.forward(transposeLastTwo(normed, rows: channels, cols: pixels), tape: tape)
        }
        tokens = tokens.reshaped([batch, pixels, channels])
        var saved: [BlockSaved] = []
        for block in blocks {
            let (next, blockSaved) = forwardSaving(block, tokens, context: context, tape: tape)
            saved.append(blockSaved)
            tokens = next
        }
        var out: Tensor
        switch projectOut {
        case .conv(let conv): out = conv.forward(transposeLastTwo(tokens, rows: pixels, cols: channels).reshaped(x.shape), tape: tape)
        case .linear(let linear): out = transposeLastTwo(linear.forward(tokens, tape: tape), rows: pixels, cols: channels).reshaped(x.shape)
        }
        addInPlace(&out, x)
        return (out, Saved(input: x, normed: normed, context: context, blockInputs: saved, tokensOut: tokens))
    }

    /// Input gradients through the frozen transformer: dx and d(context).
    func backward(_ saved: Saved, outputGradient dy: Tensor, tape: TrainingTape? = nil) -> (input: Tensor, context: Tensor) {
        let shape = saved.input.shape, batch = shape[0], pixels = shape[2] * shape[3]
        var dTokens: Tensor
        switch projectOut {
        case .conv(let conv):
            let projected = transposeLastTwo(saved.tokensOut, rows: pixels, cols: channels).reshaped(shape)
            dTokens = transposeLastTwo(conv.backward(input: projected, outputGradient: dy, tape: tape), rows: channels, cols: pixels)
        case .linear(let linear):
            dTokens = linear.backward(input: saved.tokensOut, outputGradient: transposeLastTwo(dy, rows: channels, cols: pixels), tape: tape)
        }
        dTokens = dTokens.reshaped([batch, pixels, channels])
        var dContext = Tensor(zeros: saved.context.shape)
        for (block, blockSaved) in zip(blocks, saved.blockInputs).reversed() {
            let (dInput, dBlockContext) = backward(block, blockSaved, context: saved.context, outputGradient: dTokens, tape: tape)
            dTokens = dInput
            addInPlace(&dContext, dBlockContext)
        }
        var dNormed: Tensor
        switch projectIn {
        case .conv(let conv):
            dNormed = conv.backward(input: saved.normed, outputGradient: transposeLastTwo(dTokens, rows: pixels, cols: channels).reshaped(shape), tape: tape)
        case .linear(let linear):
            let normedTokens = transposeLastTwo(saved.normed, rows: channels, cols: pixels)
            dNormed = transposeLastTwo(linear.backward(input: normedTokens, outputGradient: dTokens, tape: tape), rows: pixels, cols: channels).reshaped(shape)
        }
        var dx = norm.backward(input: saved.input, outputGradient: dNormed, tape: tape)
        addInPlace(&dx, dy)
        return (dx, dContext)
    }

    // MARK: One block

    private func forwardSaving(_ block: Block, _ x0: Tensor, context: Tensor, tape: TrainingTape?) -> (Tensor, BlockSaved) {
        let batch = x0.shape[0], tokens = x0.shape[1], c = channels, textTokens = context.shape[1], d = c / heads
        let n1 = block.norm1.forward(x0, tape: tape)
        let qkv = block.selfQKV.forward(n1, tape: tape)                                                  // [b, t, 3c]
        let a1 = Attention.forwardSaving(q: packedColumns(qkv, 0, of: 3), k: packedColumns(qkv, 1, of: 3), v: packedColumns(qkv, 2, of: 3),
                                         items: batch, queries: tokens, keys: tokens, heads: heads, headDim: d)
        var x1 = x0
        addInPlace(&x1, block.selfOut.forward(a1.output, tape: tape))
        let n2 = block.norm2.forward(x1, tape: tape)
        let q = block.crossQ.forward(n2, tape: tape)                                                     // [b, t, c]
        let kv = block.crossKV.forward(context, tape: tape)                                              // [b, T, 2c]
        let a2 = Attention.forwardSaving(q: q, k: packedColumns(kv, 0, of: 2), v: packedColumns(kv, 1, of: 2), items: batch, queries: tokens,
                                         keys: textTokens, heads: heads, headDim: d)
        var x2 = x1
        addInPlace(&x2, block.crossOut.forward(a2.output, tape: tape))
        let n3 = block.norm3.forward(x2, tape: tape)
        let f = block.feedForwardIn.forward(n3, tape: tape)                                              // [b, t, 8c]
        let g = geglu(f)                                                                     // [b, t, 4c]
        var x3 = x2
        addInPlace(&x3, block.feedForwardOut.forward(g, tape: tape))
        return (x3, BlockSaved(input: x0, norm1: n1, qkv: qkv, selfAttention: a1, afterSelf: x1, norm2: n2, crossQ: q, crossKV: kv,
                               crossAttention: a2, afterCross: x2, norm3: n3, feedForward: f, gated: g))
    }

    private func backward(_ block: Block, _ s: BlockSaved, context: Tensor, outputGradient dy: Tensor, tape: TrainingTape?) -> (input: Tensor, context: Tensor) {
        let batch = dy.shape[0], tokens = dy.shape[1], textTokens = context.shape[1], d = channels / heads
        // Feed-forward: x3 = x2 + ffOut(geglu(ffIn(norm3(x2)))).
        let dGated = block.feedForwardOut.backward(input: s.gated, outputGradient: dy, tape: tape)
        let dNorm3 = block.feedForwardIn.backward(input: s.norm3, outputGradient: gegluBackward(input: s.feedForward, outputGradient: dGated), tape: tape)
        var dx2 = block.norm3.backward(input: s.afterCross, outputGradient: dNorm3, tape: tape)
        addInPlace(&dx2, dy)
        // Cross-attention: x2 = x1 + crossOut(attend(crossQ(norm2(x1)), kv(context))).
        let dA2 = block.crossOut.backward(input: s.crossAttention.output, outputGradient: dx2, tape: tape)
        let cross = Attention.backward(q: s.crossQ, k: packedColumns(s.crossKV, 0, of: 2), v: packedColumns(s.crossKV, 1, of: 2),
                                       saved: s.crossAttention, outputGradient: dA2, items: batch, queries: tokens, keys: textTokens, heads: heads, headDim: d)
        let dContext = block.crossKV.backward(input: context, outputGradient: packColumns([cross.k, cross.v]), tape: tape)
        let dNorm2 = block.crossQ.backward(input: s.norm2, outputGradient: cross.q, tape: tape)
        var dx1 = block.norm2.backward(input: s.afterSelf, outputGradient: dNorm2, tape: tape)
        addInPlace(&dx1, dx2)
        // Self-attention: x1 = x0 + selfOut(attend(qkv(norm1(x0)))).
        let dA1 = block.selfOut.backward(input: s.selfAttention.output, outputGradient: dx1, tape: tape)
        let attention = Attention.backward(q: packedColumns(s.qkv, 0, of: 3), k: packedColumns(s.qkv, 1, of: 3), v: packedColumns(s.qkv, 2, of: 3),
                                           saved: s.selfAttention, outputGradient: dA1, items: batch, queries: tokens, keys: tokens, heads: heads, headDim: d)
        let dNorm1 = block.selfQKV.backward(input: s.norm1, outputGradient: packColumns([attention.q, attention.k, attention.v]), tape: tape)
        var dx0 = block.norm1.backward(input: s.input, outputGradient: dNorm1, tape: tape)
        addInPlace(&dx0, dx1)
        return (dx0, dContext)
    }
}

/// Part `index` of `parts` equal column blocks of [.., rows, parts·w]: [.., rows, w].
func packedColumns(_ t: Tensor, _ index: Int, of parts: Int) -> Tensor {
    let total = t.shape.last!, width = total / parts, rows = t.count / total
    var out = Tensor.uninitialized(Array(t.shape.dropLast()) + [width])
    t.withPointer { tp in out.withMutablePointer { op in
        for r in 0..<rows { (op + r * width).update(from: tp + r * total + index * width, count: width) }
    } }
    return out
}

/// The inverse of packedColumns: [.., rows, w] parts side by side.
func packColumns(_ parts: [Tensor]) -> Tensor {
    let width = parts[0].shape.last!, rows = parts[0].count / width, total = width * parts.count
    var out = Tensor.uninitialized(Array(parts[0].shape.dropLast()) + [total])
    out.withMutablePointer { op in
        for (index, part) in parts.enumerated() {
            part.withPointer { pp in
                for r in 0..<rows { (op + r * total + index * width).update(from: pp + r * width, count: width) }
            }
        }
    }
    return out
}
