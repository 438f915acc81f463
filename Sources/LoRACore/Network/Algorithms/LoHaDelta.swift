import LinearAlgebra

/// LyCORIS LoHa: ΔW = (w1_a · w1_b) ⊙ (w2_a · w2_b), with Tucker cores for convs.
enum LoHaDelta {
    static func rebuild(_ module: NetworkModule) throws(ModelError) -> Matrix {
        guard let w1a = module["hada_w1_a"], let w1b = module["hada_w1_b"],
              let w2a = module["hada_w2_a"], let w2b = module["hada_w2_b"] else {
            throw ModelError(.invalid, "LoHa module without its four factors", key: module.name)
        }
        let first: Matrix, second: Matrix
        if let t1 = module["hada_t1"], let t2 = module["hada_t2"] {
            first = tucker(t1, w1a, w1b)
            second = tucker(t2, w2a, w2b)
        } else {
            first = LinearAlgebra.multiply(w1a.matrix(rows: w1a.shape[0]), w1b.matrix(rows: w1b.shape[0]))
            second = LinearAlgebra.multiply(w2a.matrix(rows: w2a.shape[0]), w2b.matrix(rows: w2b.shape[0]))
        }
        guard first.rows == second.rows, first.cols == second.cols else {
            throw ModelError(.invalid, "LoHa halves have different shapes", key: module.name)
        }
        var result = first
        for i in result.values.indices { result.values[i] *= second.values[i] }
        return result
    }

    /// W[p,q,h,w] = Σ_i Σ_j t[i,j,h,w] · a[i,p] · b[j,q] with a [r, out], b [r, in].
    static func tucker(_ t: TensorView, _ a: TensorView, _ b: TensorView) -> Matrix {
        let r = t.shape[0], kh = t.shape[2], kw = t.shape[3], area = kh * kw
        let am = a.matrix(rows: a.shape[0]), bm = b.matrix(rows: b.shape[0])
        let out = am.cols, inputs = bm.cols
        let core = t.floats()
        // First contract the b side: tb[i, q, hw] = Σ_j t[i,j,hw] b[j,q].
        var tb = [Float](repeating: 0, count: r * inputs * area)
        for i in 0..<r {
            for j in 0..<r {
                for q in 0..<inputs {
                    let bv = bm.values[j * inputs + q]
                    for p in 0..<area { tb[(i * inputs + q) * area + p] += core[(i * r + j) * area + p] * bv }
                }
            }
        }
        var result = Matrix(zeros: out, inputs * area)
        for i in 0..<r {
            for o in 0..<out {
                let av = am.values[i * out + o]
                if av == 0 { continue }
                for k in 0..<(inputs * area) { result.values[o * inputs * area + k] += av * tb[i * inputs * area + k] }
            }
        }
        return result
    }
}
