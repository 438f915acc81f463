import LinearAlgebra

/// OFT (kohya / LyCORIS Diag-OFT): W' = R·W with R block-diagonal, each block
/// the Cayley transform of a skew-symmetric matrix; ΔW = W' − W.
enum OFTDelta {
    static func rebuild(_ module: NetworkModule, base: Matrix?) throws(ModelError) -> Matrix {
        guard let base else { throw ModelError(.mismatch, "OFT needs the base weight to form ΔW", key: module.name) }
        guard module.algorithm == .oft, let blocks = module["oft_blocks"] ?? module["oft_diag"], blocks.shape.count == 3 else {
            throw ModelError(.unsupported, "BOFT modules are not supported yet", key: module.name)
        }
        let n = blocks.shape[0], b = blocks.shape[1]
        guard blocks.shape[2] == b, n * b == base.rows else {
            throw ModelError(.mismatch, "OFT blocks \(blocks.shape) do not tile \(base.rows) output rows", key: module.name)
        }
        let raw = blocks.floats()
        var result = Matrix(zeros: base.rows, base.cols)
        for k in 0..<n {
            var rotation = Matrix(zeros: b, b)
            let block = Array(raw[(k * b * b)..<((k + 1) * b * b)])
            if module["oft_diag"] != nil {
                rotation.values = block // old LyCORIS files store R directly
            } else {
                rotation = try cayley(block, b, constraint: module.alpha ?? 0, outDim: base.rows, key: module.name)
            }
            // W'_k = Rᵀ · W_k (LyCORIS einsum "k n m, k n ... -> k m ...").
            let wk = Matrix(rows: b, cols: base.cols, values: Array(base.values[(k * b * base.cols)..<((k + 1) * b * base.cols)]))
            let rotated = LinearAlgebra.multiply(rotation, wk, transposeA: true)
            for i in 0..<(b * base.cols) { result.values[k * b * base.cols + i] = rotated.values[i] - wk.values[i] }
        }
        return result
    }

    /// R = (I + Q)(I − Q)⁻¹ with Q = B − Bᵀ, optionally norm-constrained.
    static func cayley(_ block: [Float], _ b: Int, constraint: Double, outDim: Int, key: String) throws(ModelError) -> Matrix {
        var q = [Double](repeating: 0, count: b * b)
        for i in 0..<b { for j in 0..<b { q[i * b + j] = Double(block[i * b + j]) - Double(block[j * b + i]) } }
        if constraint > 0 {
            let norm = q.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let limit = constraint * Double(outDim)
            if norm > limit { for i in q.indices { q[i] *= limit / norm } }
        }
        // Solve (I − Q) X = (I + Q) ... then R = (I + Q)(I − Q)^-1 = ((I − Q)^-T (I + Q)^T)^T.
        // Since Q is skew-symmetric, (I − Q)ᵀ = I + Q, so R = ((I + Q)^-1 (I − Q))ᵀ; solve by Gauss-Jordan.
        var a = [Double](repeating: 0, count: b * b), rhs = [Double](repeating: 0, count: b * b)
        for i in 0..<b {
            for j in 0..<b {
                a[i * b + j] = (i == j ? 1 : 0) + q[i * b + j]
                rhs[i * b + j] = (i == j ? 1 : 0) - q[i * b + j]
            }
        }
        for col in 0..<b {
            var pivot = col
            for r in col..<b where abs(a[r * b + col]) > abs(a[pivot * b + col]) { pivot = r }
            guard abs(a[pivot * b + col]) > 1e-12 else { throw ModelError(.invalid, "OFT block is singular", key: key) }
            if pivot != col {
                for j in 0..<b { a.swapAt(col * b + j, pivot * b + j); rhs.swapAt(col * b + j, pivot * b + j) }
            }
            let inv = 1 / a[col * b + col]
            for j in 0..<b { a[col * b + j] *= inv; rhs[col * b + j] *= inv }
            for r in 0..<b where r != col {
                let f = a[r * b + col]
                if f == 0 { continue }
                for j in 0..<b { a[r * b + j] -= f * a[col * b + j]; rhs[r * b + j] -= f * rhs[col * b + j] }
            }
        }
        var r = Matrix(zeros: b, b)
        for i in 0..<b { for j in 0..<b { r.values[i * b + j] = Float(rhs[j * b + i]) } }
        return r
    }
}
