import CEngineKernels
import LoRACore

extension Activation {
    /// dx = dy · f'(x), x the forward's input (CEngineKernels/nn_backward.c,
    /// on the forward's exp/erf approximations):
    ///   silu:      σ(x)·(1 + x·(1 − σ(x)))
    ///   gelu:      Φ(x) + x·φ(x)               (erf form)
    ///   quickGELU: s + 1.702·x·s·(1 − s),  s = σ(1.702x)
    public func backward(input x: Tensor, outputGradient dy: Tensor) -> Tensor {
        EngineProfile.measure(.elementwiseBackward) { run(input: x, outputGradient: dy) }
    }

    private func run(input x: Tensor, outputGradient dy: Tensor) -> Tensor {
        precondition(x.count == dy.count)
        var dx = Tensor.uninitialized(x.shape)
        let kind: Int32 = self == .silu ? 0 : self == .gelu ? 1 : 2
        x.withPointer { xp in dy.withPointer { dyp in dx.withMutablePointer { dxp in
            let target = UncheckedSendable(dxp)
            Parallel.forRanges(x.count, cost: 32) { range in
                lt_activation_backward(xp + range.lowerBound, dyp + range.lowerBound, target.value + range.lowerBound, range.count, kind)
            }
        } } }
        return dx
    }
}

/// GEGLU backward: x = [a | g] per row ([rows, 2h]), y = a·gelu(g), dy: [rows, h].
///   da = dy·gelu(g),  dg = dy·a·gelu'(g)
func gegluBackward(input x: Tensor, outputGradient dy: Tensor) -> Tensor {
    EngineProfile.measure(.elementwiseBackward) { gegluBackwardRun(input: x, outputGradient: dy) }
}

private func gegluBackwardRun(input x: Tensor, outputGradient dy: Tensor) -> Tensor {
    let hidden = x.shape.last! / 2
    let rows = x.count / (2 * hidden)
    precondition(dy.count == rows * hidden)
    var dx = Tensor.uninitialized(x.shape)
    x.withPointer { xp in dy.withPointer { dyp in dx.withMutablePointer { dxp in
        let target = UncheckedSendable(dxp)
        Parallel.forRanges(rows, cost: hidden * 64) { range in
            lt_geglu_backward(xp + range.lowerBound * 2 * hidden, dyp + range.lowerBound * hidden, target.value + range.lowerBound * 2 * hidden,
                              range.count, hidden)
        }
    } } }
    return dx
}
