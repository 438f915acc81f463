import LoRACore

/// Nearest ×2 upsampling backward: each input pixel gets the sum of the 2×2
/// output pixels it was copied to. dy: [n, c, 2h, 2w] → [n, c, h, w].
func upsampleNearest2xBackward(_ dy: Tensor) -> Tensor {
    let planes = dy.shape[0] * dy.shape[1], h = dy.shape[2] / 2, w = dy.shape[3] / 2
    var dx = Tensor.uninitialized([dy.shape[0], dy.shape[1], h, w])
    dy.withPointer { dyp in dx.withMutablePointer { dxp in
        let target = UncheckedSendable(dxp)
        Parallel.forEach(planes, cost: 4 * h * w) { p in
            let source = dyp + p * 4 * h * w, out = target.value + p * h * w
            for row in 0..<h {
                let top = source + 2 * row * 2 * w, bottom = top + 2 * w
                for col in 0..<w { out[row * w + col] = (top[2 * col] + top[2 * col + 1]) + (bottom[2 * col] + bottom[2 * col + 1]) }
            }
        }
    } }
    return dx
}

/// Channel concatenation backward: dy [n, ca + cb, h, w] split into the
/// gradients of a [n, ca, h, w] and b [n, cb, h, w]. (Training sizes are
/// multiples of 64, so the forward's nearest resize of `a` never happens there.)
func concatenateChannelsBackward(_ dy: Tensor, channelsA: Int) -> (a: Tensor, b: Tensor) {
    let batch = dy.shape[0], total = dy.shape[1], plane = dy.shape[2] * dy.shape[3], channelsB = total - channelsA
    var a = Tensor.uninitialized([batch, channelsA, dy.shape[2], dy.shape[3]])
    var b = Tensor.uninitialized([batch, channelsB, dy.shape[2], dy.shape[3]])
    dy.withPointer { dyp in a.withMutablePointer { ap in b.withMutablePointer { bp in
        for item in 0..<batch {
            let source = dyp + item * total * plane
            (ap + item * channelsA * plane).update(from: source, count: channelsA * plane)
            (bp + item * channelsB * plane).update(from: source + channelsA * plane, count: channelsB * plane)
        }
    } } }
    return (a, b)
}
