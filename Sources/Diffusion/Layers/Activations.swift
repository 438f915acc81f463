import LoRACore
import CEngineKernels

/// Element-wise activations (vectorised C kernels, split over the cores).
public enum Activation: Sendable {
    case silu
    /// GELU with erf (OpenCLIP, the U-Net's GEGLU gate).
    case gelu
    /// x·sigmoid(1.702x) (OpenAI CLIP, SD1 and SDXL's CLIP-L).
    case quickGELU

    public func apply(_ x: inout Tensor) {
        EngineProfile.measure(.elementwise) { run(&x) }
    }

    private func run(_ x: inout Tensor) {
        let kind = self
        let count = x.count
        x.withMutablePointer { p in
            Parallel.forRanges(count, cost: 16) { range in
                let start = p + range.lowerBound
                switch kind {
                case .silu: lt_silu(start, start, range.count)
                case .gelu: lt_gelu(start, start, range.count)
                case .quickGELU: lt_quick_gelu(start, start, range.count)
                }
            }
        }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var y = x
        apply(&y)
        return y
    }
}

/// GEGLU: [rows, 2h] → [rows, h], a·gelu(g) for each row [a | g].
func geglu(_ x: Tensor) -> Tensor {
    EngineProfile.measure(.elementwise) { gegluRun(x) }
}

private func gegluRun(_ x: Tensor) -> Tensor {
    let hidden = x.shape.last! / 2
    let rows = x.count / (2 * hidden)
    var y = Tensor.uninitialized(Array(x.shape.dropLast()) + [hidden])
    x.withPointer { xp in
        y.withMutablePointer { yp in
            Parallel.forRanges(rows, cost: hidden * 16) { range in
                lt_geglu(xp + range.lowerBound * 2 * hidden, yp + range.lowerBound * hidden, range.count, hidden)
            }
        }
    }
    return y
}

/// Element-wise a += b.
func addInPlace(_ a: inout Tensor, _ b: Tensor) {
    EngineProfile.measure(.elementwise) { addRun(&a, b) }
}

private func addRun(_ a: inout Tensor, _ b: Tensor) {
    precondition(a.count == b.count)
    let n = a.count
    a.withMutablePointer { ap in
        b.withPointer { bp in
            Parallel.forRanges(n, cost: 1) { range in
                for i in range { ap[i] += bp[i] }
            }
        }
    }
}
