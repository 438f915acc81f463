import LinearAlgebra
import LoRACore

/// LyCORIS's LoHa (lycoris/modules/loha.py, lycoris_lora 3.2.0.post2 as kohya_ss pins it), without Tucker cores:
///   ΔW = (w1_a·w1_b) ⊙ (w2_a·w2_b) · alpha/rank      w1_a, w2_a [out, rank]; w1_b, w2_b [rank, in·kh·kw]
/// Keys: `<name>.hada_w1_a`, `.hada_w1_b`, `.hada_w2_a`, `.hada_w2_b`, `.alpha` (lora-merge's LoHaDelta reads them).
/// The factors' gradients (as LyCORIS's HadaWeight.backward), with P1 = w1_a·w1_b and P2 = w2_a·w2_b:
///   dP1 = scale · dΔW ⊙ P2        dw1_a = dP1·w1_bᵀ        dw1_b = w1_aᵀ·dP1
///   dP2 = scale · dΔW ⊙ P1        dw2_a = dP2·w2_bᵀ        dw2_b = w2_aᵀ·dP2
public struct LoHaModule: WeightDeltaModule {
    public let name: String
    public let shape: LoRAModule.Shape
    public let rank: Int
    public let alpha: Float
    public let w1a: Parameter, w1b: Parameter, w2a: Parameter, w2b: Parameter

    public var scale: Float { alpha / Float(rank) }
    public var fileScalars: [(suffix: String, value: Float)] { [("alpha", alpha)] }
    public var parameters: [Parameter] { [w1a, w1b, w2a, w2b] }

    public init(name: String, shape: LoRAModule.Shape, rank: Int, alpha: Float, w1a: [Float], w1b: [Float], w2a: [Float], w2b: [Float]) {
        (self.name, self.shape, self.rank, self.alpha) = (name, shape, rank, alpha)
        let (out, columns) = (shape.outputs, shape.columns)
        self.w1a = Parameter(key: name + ".hada_w1_a", shape: [out, rank], values: w1a)
        self.w1b = Parameter(key: name + ".hada_w1_b", shape: [rank, columns], values: w1b)
        self.w2a = Parameter(key: name + ".hada_w2_a", shape: [out, rank], values: w2a)
        self.w2b = Parameter(key: name + ".hada_w2_b", shape: [rank, columns], values: w2b)
    }

    private var products: (Matrix, Matrix) {
        (LinearAlgebra.multiply(w1a.matrix, w1b.matrix), LinearAlgebra.multiply(w2a.matrix, w2b.matrix))
    }

    /// The element-wise products split over the cores (the two products are BLAS GEMMs).
    public func addDelta(into weight: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>) {
        let (p1, p2) = products, s = scale
        p1.values.withUnsafeBufferPointer { a in p2.values.withUnsafeBufferPointer { b in
            let (a, b, w) = (a.baseAddress!, b.baseAddress!, UncheckedSendable(weight))
            Parallel.forRanges(p1.values.count, cost: 2) { range in
                for i in range { w.value[i] += a[i] * b[i] * s }
            }
        } }
    }

    public func accumulateGradients(delta gradient: UnsafeBufferPointer<Float>, base: UnsafePointer<Float>) {
        let (p1, p2) = products, s = scale
        var d1 = Matrix(zeros: p1.rows, p1.cols), d2 = d1
        d1.values.withUnsafeMutableBufferPointer { d1p in d2.values.withUnsafeMutableBufferPointer { d2p in
            p1.values.withUnsafeBufferPointer { a in p2.values.withUnsafeBufferPointer { b in
                let (a, b, g) = (a.baseAddress!, b.baseAddress!, gradient.baseAddress!)
                let (o1, o2) = (UncheckedSendable(d1p.baseAddress!), UncheckedSendable(d2p.baseAddress!))
                Parallel.forRanges(gradient.count, cost: 4) { range in
                    for i in range {
                        let v = g[i] * s
                        o1.value[i] = v * b[i]
                        o2.value[i] = v * a[i]
                    }
                }
            } }
        } }
        w1a.gradient.add(LinearAlgebra.multiply(d1, w1b.matrix, transposeB: true))
        w1b.gradient.add(LinearAlgebra.multiply(w1a.matrix, d1, transposeA: true))
        w2a.gradient.add(LinearAlgebra.multiply(d2, w2b.matrix, transposeB: true))
        w2b.gradient.add(LinearAlgebra.multiply(w2a.matrix, d2, transposeA: true))
    }
}
