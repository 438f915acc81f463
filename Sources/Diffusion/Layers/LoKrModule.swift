import LinearAlgebra
import LoRACore

/// LyCORIS's LoKr (lycoris/modules/lokr.py, lycoris_lora 3.2.0.post2):
///   ΔW = w1 ⊗ w2 · scale       w1 [a, c]: full (`lokr_w1`) or lokr_w1_a [a, r]·lokr_w1_b [r, c]
///                              w2 [b, d·kh·kw]: full (`lokr_w2`, stored [b, d(, kh, kw)]) or lokr_w2_a [b, r]·lokr_w2_b [r, d·kh·kw],
///                              or with a Tucker core (use_tucker, a kernel wider than 1×1) lokr_t2 [r, r, kh, kw],
///                              lokr_w2_a [r, b], lokr_w2_b [r, d] (`WeightFactor.tucker`)
/// with out = a·b, in = c·d: ΔW[i·b + p, j·(d·kh·kw) + q] = scale · w1[i, j] · w2[p, q], which is the [out, in, kh, kw]
/// weight of torch.kron over w1 [a, c, 1, 1] and w2 [b, d, kh, kw]. scale = alpha/rank (1 when both factors are full:
/// LyCORIS then sets alpha to the rank). The factors' gradients, with G = dΔW read as [a, b, c, d·kh·kw]:
///   dw1[i, j] = scale · Σ_{p,q} G[i, p, j, q] · w2[p, q]       dw2[p, q] = scale · Σ_{i,j} G[i, p, j, q] · w1[i, j]
/// and from dw1, dw2 each factor's tensors' gradients (`WeightFactor`). LyCORIS multiplies ΔW by its `scalar` too (1
/// unless use_scalar trains it: then dw1, dw2 carry it, and dscalar = Σ_ij dw1[i, j]·w1[i, j] with dw1 taken before it).
public struct LoKrModule: WeightDeltaModule {
    public let name: String
    public let shape: LoRAModule.Shape
    public let rank: Int
    public let alpha: Float
    /// The two sides of the Kronecker product (w1 full or low-rank; w2 also a Tucker product).
    public let w1: WeightFactor
    public let w2: WeightFactor
    /// LyCORIS's scalar on ΔW: a buffer at 1 (its max norm scales the factors instead), trained with use_scalar.
    public let scalar: ModuleScalar

    public var scale: Float { alpha / Float(rank) }
    public var fileScalars: [(suffix: String, value: Float)] { [("alpha", alpha)] }
    /// LyCORIS registers w1's tensors before w2's, a trained scalar last.
    public var parameters: [Parameter] { w1.parameters + w2.parameters + scalar.parameters }
    /// A trained scalar, saved multiplied into w1's first tensor (`lokr_w1` or `lokr_w1_a`) as LyCORIS saves it.
    public var lycorisScalar: (scalar: ModuleScalar, savedInto: Parameter)? { scalar.parameter == nil ? nil : (scalar, w1.parameters[0]) }

    public init(name: String, shape: LoRAModule.Shape, rank: Int, alpha: Float, w1: WeightFactor, w2: WeightFactor,
                scalar: ModuleScalar = ModuleScalar()) {
        (self.name, self.shape, self.rank, self.alpha, self.w1, self.w2, self.scalar) = (name, shape, rank, alpha, w1, w2, scalar)
    }

    /// Rows of ΔW split over the cores (each row o = i·b + p is w1's row i times w2's row p).
    public func addDelta(into weight: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>) {
        let m1 = w1.matrix, m2 = w2.matrix, s = scale * scalar.value
        let (b, c, width) = (m2.rows, m1.cols, m2.cols), columns = c * width
        precondition(m1.rows * b == shape.outputs && columns == shape.columns, "\(name): w1 ⊗ w2 does not have the layer's shape")
        m1.values.withUnsafeBufferPointer { v1 in m2.values.withUnsafeBufferPointer { v2 in
            let (o, v1, v2) = (UncheckedSendable(weight), v1.baseAddress!, v2.baseAddress!)
            Parallel.forRanges(shape.outputs, cost: columns) { rows in
                for row in rows {
                    let (i, p) = row.quotientAndRemainder(dividingBy: b)
                    for j in 0..<c {
                        let v = v1[i * c + j] * s, target = o.value + row * columns + j * width, source = v2 + p * width
                        for q in 0..<width { target[q] += v * source[q] }
                    }
                }
            }
        } }
    }

    /// dw1 split over w1's rows, dw2 over w2's rows: each gradient element is summed by one thread in a fixed order.
    public func accumulateGradients(delta gradient: UnsafeBufferPointer<Float>, base: UnsafePointer<Float>) {
        // d1 first without the scalar (∂scalar = Σ d1 ⊙ w1 with it), then both factors' with it.
        let m1 = w1.matrix, m2 = w2.matrix, s = scale
        let (a, b, c, width) = (m1.rows, m2.rows, m1.cols, m2.cols), columns = c * width
        var d1 = Matrix(zeros: a, c), d2 = Matrix(zeros: b, width)
        m1.values.withUnsafeBufferPointer { v1 in m2.values.withUnsafeBufferPointer { v2 in
            let (g, v1, v2) = (gradient.baseAddress!, v1.baseAddress!, v2.baseAddress!)
            d1.values.withUnsafeMutableBufferPointer { d in
                let d = UncheckedSendable(d.baseAddress!)
                Parallel.forRanges(a, cost: b * columns) { rows in
                    for i in rows {
                        for j in 0..<c {
                            var sum: Float = 0
                            for p in 0..<b {
                                let row = g + (i * b + p) * columns + j * width, source = v2 + p * width
                                for q in 0..<width { sum += row[q] * source[q] }
                            }
                            d.value[i * c + j] = sum * s
                        }
                    }
                }
            }
            d2.values.withUnsafeMutableBufferPointer { d in
                let d = UncheckedSendable(d.baseAddress!)
                Parallel.forRanges(b, cost: a * columns) { rows in
                    for p in rows {
                        let target = d.value + p * width
                        for i in 0..<a {
                            for j in 0..<c {
                                let v = v1[i * c + j] * s, row = g + (i * b + p) * columns + j * width
                                for q in 0..<width { target[q] += row[q] * v }
                            }
                        }
                    }
                }
            }
        } }
        if let trained = scalar.parameter {
            let sum = zip(d1.values, m1.values).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            trained.gradient.withPointer { $0[0] += Float(sum) }
        }
        let k = scalar.value
        if k != 1 {
            for i in d1.values.indices { d1.values[i] *= k }
            for i in d2.values.indices { d2.values[i] *= k }
        }
        w1.accumulate(d1)
        w2.accumulate(d2)
    }
}
