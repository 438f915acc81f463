import CBLAS
import CLAPACKE

extension LinearAlgebra {
    /// Thin QR: A (m×n) = Q (m×k) · R (k×n), k = min(m, n).
    public static func qr(_ a: Matrix) throws(LinearAlgebraError) -> (q: Matrix, r: Matrix) {
        let m = a.rows, n = a.cols, k = min(m, n)
        guard k > 0 else { return (Matrix(zeros: m, 0), Matrix(zeros: 0, n)) }
        try a.requireFinite()
        var work = a.values
        var tau = [Float](repeating: 0, count: k)
        var info = LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, Int32(m), Int32(n), &work, Int32(n), &tau)
        guard info == 0 else { throw .lapack(routine: "sgeqrf", info: info) }
        var r = Matrix(zeros: k, n)
        for i in 0..<k { for j in i..<n { r.values[i * n + j] = work[i * n + j] } }
        // Q from the reflectors: the first k columns of A's storage.
        var q = Matrix(zeros: m, k)
        for i in 0..<m { for j in 0..<k { q.values[i * k + j] = work[i * n + j] } }
        info = LAPACKE_sorgqr(LAPACK_ROW_MAJOR, Int32(m), Int32(k), Int32(k), &q.values, Int32(k), &tau)
        guard info == 0 else { throw .lapack(routine: "sorgqr", info: info) }
        return (q, r)
    }

    /// The best rank-`rank` approximation of U·V (U: m×k, V: k×n) without
    /// forming the m×n product: QR both factors, SVD the small k×k core.
    /// Returns up (m×r) = Q_u·U_c·S and down (r×n) = V_cᵀ·Q_vᵀ, as kohya stores
    /// LoRA factors (singular values in `up`), and all singular values of U·V.
    public static func truncate(u: Matrix, v: Matrix, rank: Int) throws(LinearAlgebraError) -> (up: Matrix, down: Matrix, singularValues: [Float]) {
        let factored = try FactoredMatrix(u: u, v: v)
        let (up, down) = try factored.truncated(rank: rank)
        return (up, down, factored.singularValues)
    }

    /// The best rank-`rank` approximation of a dense matrix by LAPACK's SVD.
    public static func truncate(_ a: Matrix, rank: Int) throws(LinearAlgebraError) -> (up: Matrix, down: Matrix, singularValues: [Float]) {
        let (u, s, vt) = try svd(a)
        let r = max(0, min(rank, s.count))
        var up = Matrix(zeros: a.rows, r)
        for i in 0..<a.rows { for j in 0..<r { up.values[i * r + j] = u.values[i * u.cols + j] * s[j] } }
        let down = Matrix(rows: r, cols: a.cols, values: Array(vt.values[0..<(r * a.cols)]))
        return (up, down, s)
    }

    /// torch.quantile (linear interpolation) of the values, by selection
    /// (linear time) rather than a full sort.
    public static func quantile(_ values: [Float], _ q: Double) -> Float {
        guard !values.isEmpty else { return 0 }
        var work = values
        let position = q * Double(work.count - 1)
        let lower = Int(position.rounded(.down))
        let upper = min(lower + 1, work.count - 1)
        let fraction = Float(position - Double(lower))
        let low = select(&work, lower)
        // Everything after `lower` is ≥ it: the next order statistic is their minimum.
        let high = upper == lower ? low : work[(lower + 1)...].min() ?? low
        return low + (high - low) * fraction
    }

    /// The k-th smallest value (0-based), partially ordering `values` around it.
    static func select(_ values: inout [Float], _ k: Int) -> Float {
        var left = 0, right = values.count - 1
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        while left < right {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let pivot = values[left + Int(state >> 33) % (right - left + 1)]
            var i = left, j = right
            while i <= j {
                while values[i] < pivot { i += 1 }
                while values[j] > pivot { j -= 1 }
                if i <= j { values.swapAt(i, j); i += 1; j -= 1 }
            }
            if k <= j { right = j } else if k >= i { left = i } else { return values[k] }
        }
        return values[k]
    }

    /// ‖A − B‖_F² for A = Ua·Va and B = Ub·Vb, in factor space and double
    /// precision (small errors would drown in float cancellation):
    /// ‖A‖² + ‖B‖² − 2⟨A, B⟩ with ⟨A, B⟩ = tr((Uaᵀ Ub)(Vb Vaᵀ)).
    public static func squaredDistance(ua: Matrix, va: Matrix, ub: Matrix, vb: Matrix) -> Double {
        let (Ua, Va, Ub, Vb) = (DoubleMatrix(ua), DoubleMatrix(va), DoubleMatrix(ub), DoubleMatrix(vb))
        func inner(_ u1: DoubleMatrix, _ v1: DoubleMatrix, _ u2: DoubleMatrix, _ v2: DoubleMatrix) -> Double {
            let left = u1.multiply(u2, transposeSelf: true)         // k1×k2
            let right = v2.multiply(v1, transposeOther: true)       // k2×k1
            var s = 0.0
            for i in 0..<left.rows { for j in 0..<left.cols { s += left.values[i * left.cols + j] * right.values[j * right.cols + i] } }
            return s
        }
        return max(0, inner(Ua, Va, Ua, Va) + inner(Ub, Vb, Ub, Vb) - 2 * inner(Ua, Va, Ub, Vb))
    }
}

/// A row-major Double matrix for the few places that need the precision.
struct DoubleMatrix {
    var rows: Int
    var cols: Int
    var values: [Double]

    init(_ m: Matrix) {
        rows = m.rows
        cols = m.cols
        values = m.values.map(Double.init)
    }

    init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
        values = [Double](repeating: 0, count: rows * cols)
    }

    func multiply(_ other: DoubleMatrix, transposeSelf: Bool = false, transposeOther: Bool = false) -> DoubleMatrix {
        let m = transposeSelf ? cols : rows, k = transposeSelf ? rows : cols
        let n = transposeOther ? other.rows : other.cols
        var c = DoubleMatrix(rows: m, cols: n)
        guard m > 0, n > 0, k > 0 else { return c }
        values.withUnsafeBufferPointer { a in
            other.values.withUnsafeBufferPointer { b in
                c.values.withUnsafeMutableBufferPointer { out in
                    cblas_dgemm(CblasRowMajor, transposeSelf ? CblasTrans : CblasNoTrans, transposeOther ? CblasTrans : CblasNoTrans,
                                blasint(m), blasint(n), blasint(k), 1, a.baseAddress, blasint(cols), b.baseAddress, blasint(other.cols),
                                0, out.baseAddress, blasint(n))
                }
            }
        }
        return c
    }
}
