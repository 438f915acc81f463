import LoRACore

// Backward passes of the autoencoder's blocks (training the tiny model's VAE
// from scratch; the rule in Diffusion/Layers/Gradient.swift). The tape's
// `parameterGradients` choose which weights get gradients.

extension VAEResBlock {
    struct Saved: Sendable {
        let input: Tensor        // x                  [b, in, h, w]
        let conv1Input: Tensor   // silu(norm1(x))     [b, in, h, w]
        let hidden: Tensor       // conv1(…)           [b, out, h, w]
        let conv2Input: Tensor   // silu(norm2(hidden)) [b, out, h, w]
    }

    func forwardSaving(_ x: Tensor, tape: TrainingTape?) -> (Tensor, Saved) {
        let conv1Input = norm1.forward(x, silu: true)
        let hidden = conv1.forward(conv1Input, tape: tape)          // [b, out, h, w]
        let conv2Input = norm2.forward(hidden, silu: true)
        var out = conv2.forward(conv2Input, tape: tape)             // [b, out, h, w]
        addInPlace(&out, shortcut?.forward(x, tape: tape) ?? x)
        return (out, Saved(input: x, conv1Input: conv1Input, hidden: hidden, conv2Input: conv2Input))
    }

    func backward(_ saved: Saved, outputGradient dy: Tensor, tape: TrainingTape?) -> Tensor {
        let dConv2Input = conv2.backward(input: saved.conv2Input, outputGradient: dy, tape: tape)
        let dHidden = norm2.backward(input: saved.hidden, outputGradient: dConv2Input, silu: true, tape: tape)
        let dConv1Input = conv1.backward(input: saved.conv1Input, outputGradient: dHidden, tape: tape)
        var dx = norm1.backward(input: saved.input, outputGradient: dConv1Input, silu: true, tape: tape)
        addInPlace(&dx, shortcut?.backward(input: saved.input, outputGradient: dy, tape: tape) ?? dy)
        return dx
    }
}

extension VAEAttention {
    /// q, k and v are kept as tokens ([b, pixels, c]: one head of width c), the
    /// layout the shared attention backward takes.
    struct Saved: Sendable {
        let input: Tensor        // x                  [b, c, h, w]
        let normed: Tensor       // norm(x)            [b, c, h, w]
        let q: Tensor            //                    [b, pixels, c]
        let k: Tensor            //                    [b, pixels, c]
        let v: Tensor            //                    [b, pixels, c]
        let attention: Attention.Saved  // .output: proj_out's input as tokens [b, pixels, c]
    }

    func forwardSaving(_ x: Tensor, tape: TrainingTape?) -> (Tensor, Saved) {
        let batch = x.shape[0], c = x.shape[1], pixels = x.shape[2] * x.shape[3]
        let normed = norm.forward(x)
        func tokens(_ conv: Conv2d) -> Tensor { transposeLastTwo(conv.forward(normed, tape: tape), rows: c, cols: pixels) }
        let qs = tokens(q), ks = tokens(k), vs = tokens(v)                                                 // [b, pixels, c]
        let attention = Attention.forwardSaving(q: qs, k: ks, v: vs, items: batch, queries: pixels, keys: pixels, heads: 1, headDim: c)
        let attended = transposeLastTwo(attention.output, rows: pixels, cols: c).reshaped(x.shape)          // [b, c, h, w]
        var result = out.forward(attended, tape: tape)
        addInPlace(&result, x)
        return (result, Saved(input: x, normed: normed, q: qs, k: ks, v: vs, attention: attention))
    }

    func backward(_ saved: Saved, outputGradient dy: Tensor, tape: TrainingTape?) -> Tensor {
        let shape = saved.input.shape, batch = shape[0], c = shape[1], pixels = shape[2] * shape[3]
        let attended = transposeLastTwo(saved.attention.output, rows: pixels, cols: c).reshaped(shape)      // [b, c, h, w]
        let dAttended = out.backward(input: attended, outputGradient: dy, tape: tape)
        let d = Attention.backward(q: saved.q, k: saved.k, v: saved.v, saved: saved.attention, outputGradient: transposeLastTwo(dAttended, rows: c, cols: pixels),
                                   items: batch, queries: pixels, keys: pixels, heads: 1, headDim: c)
        func planes(_ t: Tensor) -> Tensor { transposeLastTwo(t, rows: pixels, cols: c).reshaped(shape) }
        var dNormed = q.backward(input: saved.normed, outputGradient: planes(d.q), tape: tape)
        addInPlace(&dNormed, k.backward(input: saved.normed, outputGradient: planes(d.k), tape: tape))
        addInPlace(&dNormed, v.backward(input: saved.normed, outputGradient: planes(d.v), tape: tape))
        var dx = norm.backward(input: saved.input, outputGradient: dNormed, tape: tape)
        addInPlace(&dx, dy)
        return dx
    }
}
