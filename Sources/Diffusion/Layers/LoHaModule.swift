import LinearAlgebra
import LoRACore

/// LyCORIS's LoHa (lycoris/modules/loha.py, lycoris_lora 3.2.0.post2 as kohya_ss pins it):
///   ΔW = P1 ⊙ P2 · alpha/rank · scalar      P1 = w1_a·w1_b, P2 = w2_a·w2_b: w1_a, w2_a [out, rank]; w1_b, w2_b [rank, in·kh·kw]
/// or, with Tucker cores (`use_tucker` on a kernel wider than 1×1), P1[o, c, k] = Σ_i,j w1_a[i, o]·t1[i, j, k]·w1_b[j, c]
/// with w1_a [rank, out], w1_b [rank, in], t1 [rank, rank, kh, kw] (LyCORIS's einsum "i j ..., j r, i p -> p r ..."), the
/// same for P2. Keys: `<name>.hada_w1_a`, `.hada_w1_b`, `.hada_w2_a`, `.hada_w2_b` (`.hada_t1`, `.hada_t2`), `.alpha`
/// (lora-merge's LoHaDelta reads them). The products' gradients (as LyCORIS's HadaWeight backward; each factor's
/// from them as `WeightFactor` says, exact through a core where LyCORIS's HadaWeightTucker is not):
///   dP1 = scale·scalar · dΔW ⊙ P2        dP2 = scale·scalar · dΔW ⊙ P1        (use_scalar) dscalar = scale · Σ dΔW ⊙ P1 ⊙ P2
public struct LoHaModule: WeightDeltaModule {
    public let name: String
    public let shape: LoRAModule.Shape
    public let rank: Int
    public let alpha: Float
    public let w1a: Parameter, w1b: Parameter, w2a: Parameter, w2b: Parameter
    /// The Tucker cores, [rank, rank, kh, kw] (nil without Tucker).
    public let t1: Parameter?, t2: Parameter?
    /// LyCORIS's scalar, moved by its max-norm rule (trained with use_scalar): ΔW and the gradients carry scale·scalar.
    public let scalar: ModuleScalar

    public var scale: Float { alpha / Float(rank) }
    public var lycorisScalar: (scalar: ModuleScalar, savedInto: Parameter)? { (scalar, w1a) }
    public var fileScalars: [(suffix: String, value: Float)] { [("alpha", alpha)] }
    /// LyCORIS's registration order.
    public var parameters: [Parameter] {
        let (f1, f2) = factors
        return f1.parameters + f2.parameters + scalar.parameters
    }

    public init(name: String, shape: LoRAModule.Shape, rank: Int, alpha: Float, w1a: [Float], w1b: [Float], w2a: [Float], w2b: [Float],
                scalar: ModuleScalar = ModuleScalar()) {
        (self.name, self.shape, self.rank, self.alpha, self.scalar) = (name, shape, rank, alpha, scalar)
        let (out, columns) = (shape.outputs, shape.columns)
        self.w1a = Parameter(key: name + ".hada_w1_a", shape: [out, rank], values: w1a)
        self.w1b = Parameter(key: name + ".hada_w1_b", shape: [rank, columns], values: w1b)
        self.w2a = Parameter(key: name + ".hada_w2_a", shape: [out, rank], values: w2a)
        self.w2b = Parameter(key: name + ".hada_w2_b", shape: [rank, columns], values: w2b)
        (t1, t2) = (nil, nil)
    }

    /// With Tucker cores: a convolution's module, t1/t2 [rank, rank, kh, kw], w?_a [rank, out], w?_b [rank, in].
    public init(name: String, shape: LoRAModule.Shape, rank: Int, alpha: Float,
                tucker: (t1: [Float], w1a: [Float], w1b: [Float], t2: [Float], w2a: [Float], w2b: [Float]), scalar: ModuleScalar = ModuleScalar()) {
        guard case let .conv(inputs, outputs, kernel, _, _) = shape else { preconditionFailure("\(name): Tucker cores are for convolutions") }
        (self.name, self.shape, self.rank, self.alpha, self.scalar) = (name, shape, rank, alpha, scalar)
        t1 = Parameter(key: name + ".hada_t1", shape: [rank, rank, kernel, kernel], values: tucker.t1)
        w1a = Parameter(key: name + ".hada_w1_a", shape: [rank, outputs], values: tucker.w1a)
        w1b = Parameter(key: name + ".hada_w1_b", shape: [rank, inputs], values: tucker.w1b)
        t2 = Parameter(key: name + ".hada_t2", shape: [rank, rank, kernel, kernel], values: tucker.t2)
        w2a = Parameter(key: name + ".hada_w2_a", shape: [rank, outputs], values: tucker.w2a)
        w2b = Parameter(key: name + ".hada_w2_b", shape: [rank, inputs], values: tucker.w2b)
    }

    /// P1's and P2's factors (WeightFactor: a low-rank product, or a Tucker product through a core).
    private var factors: (WeightFactor, WeightFactor) {
        guard let t1, let t2 else { return (.lowRank(w1a, w1b), .lowRank(w2a, w2b)) }
        return (.tucker(core: t1, a: w1a, b: w1b), .tucker(core: t2, a: w2a, b: w2b))
    }

    /// P1 and P2 [out, in·kh·kw].
    private var products: (Matrix, Matrix) {
        let (f1, f2) = factors
        return (f1.matrix, f2.matrix)
    }

    /// The element-wise products split over the threads (the two products are BLAS GEMMs).
    public func addDelta(into weight: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>) {
        let (p1, p2) = products, s = scale * scalar.value
        p1.values.withUnsafeBufferPointer { a in p2.values.withUnsafeBufferPointer { b in
            let (a, b, w) = (a.baseAddress!, b.baseAddress!, UncheckedSendable(weight))
            Parallel.forRanges(p1.values.count, cost: 2) { range in
                for i in range { w.value[i] += a[i] * b[i] * s }
            }
        } }
    }

    public func accumulateGradients(delta gradient: UnsafeBufferPointer<Float>, base: UnsafePointer<Float>) {
        let (p1, p2) = products, s = scale * scalar.value
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
        let (f1, f2) = factors
        f1.accumulate(d1)
        f2.accumulate(d2)
        if let trained = scalar.parameter {
            // ∂scalar = scale · Σ dΔW ⊙ P1 ⊙ P2.
            var sum = 0.0
            for i in 0..<gradient.count { sum += Double(gradient[i]) * Double(p1.values[i]) * Double(p2.values[i]) }
            trained.gradient.withPointer { $0[0] += Float(sum * Double(scale)) }
        }
    }
}
