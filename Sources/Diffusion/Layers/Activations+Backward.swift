import Foundation
import LoRACore

extension Activation {
    /// dx = dy · f'(x), x the forward's input.
    ///   silu:      σ(x)·(1 + x·(1 − σ(x)))
    ///   gelu:      Φ(x) + x·φ(x)               (erf form)
    ///   quickGELU: s + 1.702·x·s·(1 − s),  s = σ(1.702x)
    public func backward(input x: Tensor, outputGradient dy: Tensor) -> Tensor {
        precondition(x.count == dy.count)
        var dx = Tensor.uninitialized(x.shape)
        let kind = self
        x.withPointer { xp in dy.withPointer { dyp in dx.withMutablePointer { dxp in
            Parallel.forRanges(x.count, cost: 32) { range in
                for i in range { dxp[i] = dyp[i] * kind.derivative(xp[i]) }
            }
        } } }
        return dx
    }

    @inline(__always)
    func derivative(_ v: Float) -> Float {
        switch self {
        case .silu:
            let s = 1 / (1 + exp(-v))
            return s * (1 + v * (1 - s))
        case .gelu:
            let cdf = 0.5 * (1 + erf(v / Float(2).squareRoot()))
            let pdf = exp(-0.5 * v * v) / Float(2 * Float.pi).squareRoot()
            return cdf + v * pdf
        case .quickGELU:
            let s = 1 / (1 + exp(-1.702 * v))
            return s + 1.702 * v * s * (1 - s)
        }
    }
}

/// GEGLU backward: x = [a | g] per row ([rows, 2h]), y = a·gelu(g), dy: [rows, h].
///   da = dy·gelu(g),  dg = dy·a·gelu'(g)
func gegluBackward(input x: Tensor, outputGradient dy: Tensor) -> Tensor {
    let hidden = x.shape.last! / 2
    let rows = x.count / (2 * hidden)
    precondition(dy.count == rows * hidden)
    var dx = Tensor.uninitialized(x.shape)
    x.withPointer { xp in dy.withPointer { dyp in dx.withMutablePointer { dxp in
        Parallel.forRanges(rows, cost: hidden * 64) { range in
            for r in range {
                let a = xp + r * 2 * hidden, g = a + hidden, d = dyp + r * hidden
                let da = dxp + r * 2 * hidden, dg = da + hidden
                for j in 0..<hidden {
                    let gate = 0.5 * g[j] * (1 + erf(g[j] / Float(2).squareRoot()))
                    da[j] = d[j] * gate
                    dg[j] = d[j] * a[j] * Activation.gelu.derivative(g[j])
                }
            }
        }
    } } }
    return dx
}
