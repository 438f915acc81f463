import LinearAlgebra

extension NetworkModule {
    /// ΔW (scaled) written exactly as U·V, when the algorithm allows it:
    /// LoRA (without a Tucker core) as up·down; LoHa through the face-splitting
    /// identity (A₁B₁)⊙(A₂B₂) = (A₁•A₂)(B₁•B₂) with rank r₁r₂; LoKr through
    /// kron(A, B·C) = kron(A, B)·kron(I, C). nil for everything else.
    public func lowRankForm() throws(ModelError) -> (u: Matrix, v: Matrix)? {
        let s = Float(scale)
        switch algorithm {
        case .lora where parts["mid"] == nil:
            var (up, down) = try LoRADelta.factors(self)
            for i in up.values.indices { up.values[i] *= s }
            return (up, down)
        case .loha where parts["hada_t1"] == nil:
            guard let w1a = self["hada_w1_a"], let w1b = self["hada_w1_b"], let w2a = self["hada_w2_a"], let w2b = self["hada_w2_b"] else { return nil }
            let a1 = w1a.matrix(rows: w1a.shape[0]), a2 = w2a.matrix(rows: w2a.shape[0])
            let b1 = w1b.matrix(rows: w1b.shape[0]), b2 = w2b.matrix(rows: w2b.shape[0])
            let r1 = a1.cols, r2 = a2.cols, out = a1.rows, cols = b1.cols
            var u = Matrix(zeros: out, r1 * r2), v = Matrix(zeros: r1 * r2, cols)
            for o in 0..<out { for i in 0..<r1 { for j in 0..<r2 { u.values[o * r1 * r2 + i * r2 + j] = s * a1[o, i] * a2[o, j] } } }
            for i in 0..<r1 { for j in 0..<r2 { for c in 0..<cols { v.values[(i * r2 + j) * cols + c] = b1[i, c] * b2[j, c] } } }
            return (u, v)
        case .lokr where parts["lokr_t2"] == nil:
            let w1 = try LoKrDelta.factor1(self)
            // w2 = B·C with B (c×r) and C (r×d·area), or w2 = w2·I when stored full.
            let b: Matrix, c: Matrix
            if let a = self["lokr_w2_a"], let bb = self["lokr_w2_b"] {
                b = a.matrix(rows: a.shape[0]); c = bb.matrix(rows: bb.shape[0])
            } else if let w2 = self["lokr_w2"] {
                let full = w2.matrix(rows: w2.shape[0])
                b = full
                c = Matrix.identity(full.cols)
            } else { return nil }
            var w1s = w1
            for i in w1s.values.indices { w1s.values[i] *= s }
            return (kron(w1s, b), kron(Matrix.identity(w1.cols), c))
        default:
            return nil
        }
    }
}

extension Matrix {
    public static func identity(_ n: Int) -> Matrix {
        var m = Matrix(zeros: n, n)
        for i in 0..<n { m.values[i * n + i] = 1 }
        return m
    }
}

/// Kronecker product.
func kron(_ a: Matrix, _ b: Matrix) -> Matrix {
    var out = Matrix(zeros: a.rows * b.rows, a.cols * b.cols)
    for i in 0..<a.rows { for j in 0..<a.cols {
        let s = a[i, j]
        if s == 0 { continue }
        for p in 0..<b.rows { for q in 0..<b.cols {
            out.values[(i * b.rows + p) * out.cols + j * b.cols + q] = s * b[p, q]
        } }
    } }
    return out
}
