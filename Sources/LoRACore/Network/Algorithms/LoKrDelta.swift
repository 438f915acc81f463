import LinearAlgebra

/// LyCORIS LoKr: ΔW = w1 ⊗ w2, each factor full or a low-rank product.
enum LoKrDelta {
    static func factor1(_ module: NetworkModule) throws(ModelError) -> Matrix {
        if let w1 = module["lokr_w1"] { return w1.matrix(rows: w1.shape[0]) }
        guard let a = module["lokr_w1_a"], let b = module["lokr_w1_b"] else {
            throw ModelError(.invalid, "LoKr module without w1", key: module.name)
        }
        return LinearAlgebra.multiply(a.matrix(rows: a.shape[0]), b.matrix(rows: b.shape[0]))
    }

    /// w2 as [c, d·kh·kw].
    static func factor2(_ module: NetworkModule) throws(ModelError) -> Matrix {
        if let w2 = module["lokr_w2"] { return w2.matrix(rows: w2.shape[0]) }
        guard let a = module["lokr_w2_a"], let b = module["lokr_w2_b"] else {
            throw ModelError(.invalid, "LoKr module without w2", key: module.name)
        }
        if let t2 = module["lokr_t2"] { return LoHaDelta.tucker(t2, a, b) }
        return LinearAlgebra.multiply(a.matrix(rows: a.shape[0]), b.matrix(rows: b.shape[0]))
    }

    static func rebuild(_ module: NetworkModule) throws(ModelError) -> Matrix {
        let w1 = try factor1(module)
        let w2 = try factor2(module)
        let area = module.kernel * module.kernel
        let d = w2.cols / max(area, 1)
        // ΔW[(i·c + p), (j·d + q), hw] = w1[i, j] · w2[p, q, hw]
        let rows = w1.rows * w2.rows, cols = w1.cols * w2.cols
        var result = Matrix(zeros: rows, cols)
        for i in 0..<w1.rows {
            for j in 0..<w1.cols {
                let s = w1[i, j]
                if s == 0 { continue }
                for p in 0..<w2.rows {
                    let dst = (i * w2.rows + p) * cols + j * d * area
                    let src = p * w2.cols
                    for k in 0..<(d * area) { result.values[dst + k] = s * w2.values[src + k] }
                }
            }
        }
        return result
    }

    /// ‖w1 ⊗ w2‖_F = ‖w1‖_F · ‖w2‖_F.
    static func norm(_ module: NetworkModule) throws(ModelError) -> Double {
        try factor1(module).frobeniusNorm * factor2(module).frobeniusNorm
    }
}
