import LinearAlgebra
import LoRACore

/// A matrix LyCORIS builds a weight change from (lycoris_lora 3.2.0.post2): LoKr's w1 and w2, LoHa's P1 and P2.
///   full      F = w                                   (lokr_w1, lokr_w2)
///   lowRank   F = a·b        a [rows, r], b [r, columns]   (hada_w?_a/_b, lokr_w?_a/_b)
///   tucker    F[p, c·K + k] = Σ_i,j a[i, p]·t[i, j, k]·b[j, c]   a [r, rows], b [r, inputs], t [r, r, kh, kw]
/// The Tucker form is lycoris.functional.general.rebuild_tucker (einsum "i j ..., i p, j r -> p r ...", K = kh·kw, the
/// weight layout's column order), with the core product M[i, c·K + k] = Σ_j t[i, j, k]·b[j, c] so that F = aᵀ·M
/// (`coreProduct`; LoCon's lora_mid ∘ lora_down is the same M). Gradients from dF (as autograd through the einsum):
///   lowRank   da = dF·bᵀ        db = aᵀ·dF
///   tucker    da = M·dFᵀ        dM = a·dF        dt[i, j, k] = Σ_c dM[i, c·K + k]·b[j, c]        db[j, c] = Σ_i,k t[i, j, k]·dM[i, c·K + k]
public enum WeightFactor: Sendable {
    case full(Parameter)
    case lowRank(Parameter, Parameter)
    case tucker(core: Parameter, a: Parameter, b: Parameter)

    /// LyCORIS's registration order (the core before its factors).
    public var parameters: [Parameter] {
        switch self {
        case .full(let w): return [w]
        case let .lowRank(a, b): return [a, b]
        case let .tucker(t, a, b): return [t, a, b]
        }
    }

    /// F: rows × columns.
    var matrix: Matrix {
        switch self {
        case .full(let w): return w.matrix
        case let .lowRank(a, b): return LinearAlgebra.multiply(a.matrix, b.matrix)
        case let .tucker(t, a, b): return LinearAlgebra.multiply(a.matrix, Self.coreProduct(t, b), transposeA: true)
        }
    }

    /// F's values, row-major.
    public var product: [Float] { matrix.values }

    /// Adds the factor's tensors' gradients for dF into their buffers.
    func accumulate(_ d: Matrix) {
        switch self {
        case .full(let w): w.gradient.add(d)
        case let .lowRank(a, b):
            a.gradient.add(LinearAlgebra.multiply(d, b.matrix, transposeB: true))
            b.gradient.add(LinearAlgebra.multiply(a.matrix, d, transposeA: true))
        case let .tucker(t, a, b):
            a.gradient.add(LinearAlgebra.multiply(Self.coreProduct(t, b), d, transposeB: true))
            Self.accumulateCore(LinearAlgebra.multiply(a.matrix, d), core: t, b: b)
        }
    }

    /// M [r, inputs·K]: M[i, c·K + k] = Σ_j t[i, j, k]·b[j, c] for t [r, r, kh, kw] and b [r, inputs] (or [r, inputs, 1, 1]).
    static func coreProduct(_ t: Parameter, _ b: Parameter) -> Matrix {
        let r = b.shape[0], inputs = b.count / r, k = t.count / (r * r)
        var m = Matrix(zeros: r, inputs * k)
        for i in 0..<r {
            for j in 0..<r {
                for q in 0..<k {
                    let v = t.values[(i * r + j) * k + q], row = i * inputs * k
                    for c in 0..<inputs { m.values[row + c * k + q] += v * b.values[j * inputs + c] }
                }
            }
        }
        return m
    }

    /// t's and b's gradients for dM (the gradient at `coreProduct(t, b)`).
    static func accumulateCore(_ dM: Matrix, core t: Parameter, b: Parameter) {
        let r = b.shape[0], inputs = b.count / r, k = t.count / (r * r)
        var dT = [Float](repeating: 0, count: t.count), dB = [Float](repeating: 0, count: b.count)
        for i in 0..<r {
            for j in 0..<r {
                for q in 0..<k {
                    let v = t.values[(i * r + j) * k + q], row = i * inputs * k
                    var sum: Float = 0
                    for c in 0..<inputs {
                        let g = dM.values[row + c * k + q]
                        sum += g * b.values[j * inputs + c]
                        dB[j * inputs + c] += v * g
                    }
                    dT[(i * r + j) * k + q] = sum
                }
            }
        }
        t.gradient.add(Matrix(rows: r, cols: t.count / r, values: dT))
        b.gradient.add(Matrix(rows: r, cols: inputs, values: dB))
    }
}
