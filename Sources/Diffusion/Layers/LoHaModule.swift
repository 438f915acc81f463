import LinearAlgebra
import LoRACore

/// LyCORIS's LoHa (lycoris/modules/loha.py, lycoris_lora 3.2.0.post2 as kohya_ss pins it):
///   ΔW = P1 ⊙ P2 · alpha/rank · scalar      P1 = w1_a·w1_b, P2 = w2_a·w2_b: w1_a, w2_a [out, rank]; w1_b, w2_b [rank, in·kh·kw]
/// or, with Tucker cores (`use_tucker` on a kernel wider than 1×1), P1[o, c, k] = Σ_i,j w1_a[i, o]·t1[i, j, k]·w1_b[j, c]
/// with w1_a [rank, out], w1_b [rank, in], t1 [rank, rank, kh, kw] (LyCORIS's einsum "i j ..., j r, i p -> p r ..."), the
/// same for P2. Keys: `<name>.hada_w1_a`, `.hada_w1_b`, `.hada_w2_a`, `.hada_w2_b` (`.hada_t1`, `.hada_t2`), `.alpha`
/// (lora-merge's LoHaDelta reads them). The factors' gradients (as LyCORIS's HadaWeight and HadaWeightTucker backward):
///   dP1 = scale·scalar · dΔW ⊙ P2        dw1_a = dP1·w1_bᵀ        dw1_b = w1_aᵀ·dP1
///   dP2 = scale·scalar · dΔW ⊙ P1        dw2_a = dP2·w2_bᵀ        dw2_b = w2_aᵀ·dP2
/// and through a core, with M[i, (c, k)] = Σ_j t[i, j, k]·w_b[j, c] (so P = w_aᵀ·M):
///   dw_a = M·dPᵀ    dM = w_a·dP    dt[i, j, k] = Σ_c dM[i, (c, k)]·w_b[j, c]    dw_b[j, c] = Σ_i,k t[i, j, k]·dM[i, (c, k)]
public struct LoHaModule: WeightDeltaModule {
    public let name: String
    public let shape: LoRAModule.Shape
    public let rank: Int
    public let alpha: Float
    public let w1a: Parameter, w1b: Parameter, w2a: Parameter, w2b: Parameter
    /// The Tucker cores, [rank, rank, kh, kw] (nil without Tucker).
    public let t1: Parameter?, t2: Parameter?
    /// LyCORIS's scalar, moved by its max-norm rule: ΔW and the gradients carry scale·scalar.
    public let scalar = ModuleScalar()

    public var scale: Float { alpha / Float(rank) }
    public var lycorisScalar: (scalar: ModuleScalar, savedInto: Parameter)? { (scalar, w1a) }
    public var fileScalars: [(suffix: String, value: Float)] { [("alpha", alpha)] }
    /// LyCORIS's registration order.
    public var parameters: [Parameter] {
        if let t1, let t2 { return [t1, w1a, w1b, t2, w2a, w2b] }
        return [w1a, w1b, w2a, w2b]
    }

    public init(name: String, shape: LoRAModule.Shape, rank: Int, alpha: Float, w1a: [Float], w1b: [Float], w2a: [Float], w2b: [Float]) {
        (self.name, self.shape, self.rank, self.alpha) = (name, shape, rank, alpha)
        let (out, columns) = (shape.outputs, shape.columns)
        self.w1a = Parameter(key: name + ".hada_w1_a", shape: [out, rank], values: w1a)
        self.w1b = Parameter(key: name + ".hada_w1_b", shape: [rank, columns], values: w1b)
        self.w2a = Parameter(key: name + ".hada_w2_a", shape: [out, rank], values: w2a)
        self.w2b = Parameter(key: name + ".hada_w2_b", shape: [rank, columns], values: w2b)
        (t1, t2) = (nil, nil)
    }

    /// With Tucker cores: a convolution's module, t1/t2 [rank, rank, kh, kw], w?_a [rank, out], w?_b [rank, in].
    public init(name: String, shape: LoRAModule.Shape, rank: Int, alpha: Float,
                tucker: (t1: [Float], w1a: [Float], w1b: [Float], t2: [Float], w2a: [Float], w2b: [Float])) {
        guard case let .conv(inputs, outputs, kernel, _, _) = shape else { preconditionFailure("\(name): Tucker cores are for convolutions") }
        (self.name, self.shape, self.rank, self.alpha) = (name, shape, rank, alpha)
        t1 = Parameter(key: name + ".hada_t1", shape: [rank, rank, kernel, kernel], values: tucker.t1)
        w1a = Parameter(key: name + ".hada_w1_a", shape: [rank, outputs], values: tucker.w1a)
        w1b = Parameter(key: name + ".hada_w1_b", shape: [rank, inputs], values: tucker.w1b)
        t2 = Parameter(key: name + ".hada_t2", shape: [rank, rank, kernel, kernel], values: tucker.t2)
        w2a = Parameter(key: name + ".hada_w2_a", shape: [rank, outputs], values: tucker.w2a)
        w2b = Parameter(key: name + ".hada_w2_b", shape: [rank, inputs], values: tucker.w2b)
    }

    /// P1 and P2 [out, in·kh·kw], and with Tucker the M each was made from.
    private var products: (Matrix, Matrix, cores: (Matrix, Matrix)?) {
        guard let t1, let t2 else {
            return (LinearAlgebra.multiply(w1a.matrix, w1b.matrix), LinearAlgebra.multiply(w2a.matrix, w2b.matrix), nil)
        }
        let m1 = Self.coreProduct(t1, w1b), m2 = Self.coreProduct(t2, w2b)
        return (LinearAlgebra.multiply(w1a.matrix, m1, transposeA: true), LinearAlgebra.multiply(w2a.matrix, m2, transposeA: true), (m1, m2))
    }

    /// M [rank, in·K]: M[i, c·K + k] = Σ_j t[i, j, k]·b[j, c] (K = kh·kw), the weight layout's column order.
    private static func coreProduct(_ t: Parameter, _ b: Parameter) -> Matrix {
        let (r, inputs) = (b.shape[0], b.shape[1]), k = t.count / (r * r)
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

    /// A factor pair's gradients from dP: (a, b) plain, or (a, b, t) through the core M.
    private static func accumulate(_ dP: Matrix, a: Parameter, b: Parameter, core: (t: Parameter, m: Matrix)?) {
        guard let (t, m) = core else {
            a.gradient.add(LinearAlgebra.multiply(dP, b.matrix, transposeB: true))
            b.gradient.add(LinearAlgebra.multiply(a.matrix, dP, transposeA: true))
            return
        }
        a.gradient.add(LinearAlgebra.multiply(m, dP, transposeB: true))
        let dM = LinearAlgebra.multiply(a.matrix, dP)
        let (r, inputs) = (b.shape[0], b.shape[1]), k = t.count / (r * r)
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

    /// The element-wise products split over the threads (the two products are BLAS GEMMs).
    public func addDelta(into weight: UnsafeMutablePointer<Float>, base: UnsafePointer<Float>) {
        let (p1, p2, _) = products, s = scale * scalar.value
        p1.values.withUnsafeBufferPointer { a in p2.values.withUnsafeBufferPointer { b in
            let (a, b, w) = (a.baseAddress!, b.baseAddress!, UncheckedSendable(weight))
            Parallel.forRanges(p1.values.count, cost: 2) { range in
                for i in range { w.value[i] += a[i] * b[i] * s }
            }
        } }
    }

    public func accumulateGradients(delta gradient: UnsafeBufferPointer<Float>, base: UnsafePointer<Float>) {
        let (p1, p2, cores) = products, s = scale * scalar.value
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
        Self.accumulate(d1, a: w1a, b: w1b, core: cores.map { (t1!, $0.0) })
        Self.accumulate(d2, a: w2a, b: w2b, core: cores.map { (t2!, $0.1) })
    }
}
