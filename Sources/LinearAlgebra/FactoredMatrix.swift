import CBLAS
import CLAPACKE

/// A matrix given as U·V (m×k times k×n, k small) rewritten as Q_u·C·Q_vᵀ with
/// orthonormal Q_u (m×k'), Q_v (n×k'') and a small core C. Everything a LoRA
/// merge or resize needs — singular values, truncation, norms and distances —
/// then costs O((m + n)·k²) instead of O(m·n·k).
public struct FactoredMatrix: Sendable {
    /// Q_u, m×ku, row-major.
    public let qu: Matrix
    /// Q_v, n×kv, row-major.
    public let qv: Matrix
    /// C = R_u·R_vᵀ, ku×kv.
    public let core: Matrix
    public let singularValues: [Float]
    private let coreU: Matrix
    private let coreVt: Matrix

    public var rows: Int { qu.rows }
    public var cols: Int { qv.rows }

    public init(u: Matrix, v: Matrix) throws(LinearAlgebraError) {
        guard u.cols == v.rows else { throw .shape("factors do not multiply: \(u.rows)x\(u.cols) · \(v.rows)x\(v.cols)") }
        // QR(U) as the LQ factorisation of Uᵀ: U's row-major buffer *is* Uᵀ in
        // column-major order, so LAPACK works on it without any transposition
        // (LAPACKE's row-major path would transpose every matrix twice).
        let (qu, ru) = try FactoredMatrix.orthonormalRows(u)
        // QR(Vᵀ): V's row-major buffer is Vᵀ in column-major order.
        let (qv, rv) = try FactoredMatrix.orthonormalColumns(v)
        self.qu = qu
        self.qv = qv
        core = LinearAlgebra.multiply(ru, rv, transposeB: true)
        let (uc, s, vct) = try LinearAlgebra.svd(core)
        singularValues = s
        coreU = uc
        coreVt = vct
    }

    /// U (m×k) = Q (m×k') · R (k'×k) via LQ of the column-major view Uᵀ.
    static func orthonormalRows(_ u: Matrix) throws(LinearAlgebraError) -> (Matrix, Matrix) {
        let m = u.rows, k = u.cols, kk = min(m, k)
        var work = u.values // column-major k×m = Uᵀ
        var tau = [Float](repeating: 0, count: max(kk, 1))
        guard kk > 0 else { return (Matrix(zeros: m, 0), Matrix(zeros: 0, k)) }
        var info = LAPACKE_sgelqf(LAPACK_COL_MAJOR, Int32(k), Int32(m), &work, Int32(k), &tau)
        guard info == 0 else { throw .lapack(routine: "sgelqf", info: info) }
        // L (k×kk, lower) is Rᵀ: R[i][j] = L[j][i] = work[j + i*k] (column-major).
        var r = Matrix(zeros: kk, k)
        for i in 0..<kk { for j in i..<k { r.values[i * k + j] = work[j + i * k] } }
        // Q' (kk×m, column-major) from the reflectors; as row-major it is Q (m×kk).
        var q = [Float](repeating: 0, count: kk * m)
        for col in 0..<m { for row in 0..<kk { q[row + col * kk] = work[row + col * k] } }
        info = LAPACKE_sorglq(LAPACK_COL_MAJOR, Int32(kk), Int32(m), Int32(kk), &q, Int32(kk), &tau)
        guard info == 0 else { throw .lapack(routine: "sorglq", info: info) }
        return (Matrix(rows: m, cols: kk, values: q), r)
    }

    /// Vᵀ (n×k) = Q (n×k') · R (k'×k) via QR of the column-major view of V.
    static func orthonormalColumns(_ v: Matrix) throws(LinearAlgebraError) -> (Matrix, Matrix) {
        let k = v.rows, n = v.cols, kk = min(n, k)
        var work = v.values // column-major n×k = Vᵀ
        var tau = [Float](repeating: 0, count: max(kk, 1))
        guard kk > 0 else { return (Matrix(zeros: n, 0), Matrix(zeros: 0, k)) }
        var info = LAPACKE_sgeqrf(LAPACK_COL_MAJOR, Int32(n), Int32(k), &work, Int32(n), &tau)
        guard info == 0 else { throw .lapack(routine: "sgeqrf", info: info) }
        var r = Matrix(zeros: kk, k)
        for i in 0..<kk { for j in i..<k { r.values[i * k + j] = work[i + j * n] } }
        var q = Array(work[0..<(n * kk)]) // column-major n×kk
        info = LAPACKE_sorgqr(LAPACK_COL_MAJOR, Int32(n), Int32(kk), Int32(kk), &q, Int32(n), &tau)
        guard info == 0 else { throw .lapack(routine: "sorgqr", info: info) }
        // Column-major n×kk → row-major n×kk.
        var rowMajor = Matrix(zeros: n, kk)
        for i in 0..<n { for j in 0..<kk { rowMajor.values[i * kk + j] = q[i + j * n] } }
        return (rowMajor, r)
    }

    /// The best rank-`rank` factors: up = Q_u·U_c·S (m×r), down = V_cᵀ·Q_vᵀ (r×n).
    public func truncated(rank: Int) throws(LinearAlgebraError) -> (up: Matrix, down: Matrix) {
        let r = max(0, min(rank, singularValues.count))
        var ucr = Matrix(zeros: coreU.rows, r)
        for i in 0..<coreU.rows { for j in 0..<r { ucr.values[i * r + j] = coreU.values[i * coreU.cols + j] * singularValues[j] } }
        let vcr = Matrix(rows: r, cols: coreVt.cols, values: Array(coreVt.values[0..<(r * coreVt.cols)]))
        return (LinearAlgebra.multiply(qu, ucr), LinearAlgebra.multiply(vcr, qv, transposeB: true))
    }

    /// ‖U·V‖_F² = Σσ².
    public var squaredNorm: Double { singularValues.reduce(0) { $0 + Double($1) * Double($1) } }

    /// ‖U·V − up·down‖_F², through the core: ‖C‖² − 2⟨C, Q_uᵀ·up·down·Q_v⟩ + ‖up·down‖².
    public func squaredDistance(up: Matrix, down: Matrix) -> Double {
        let left = LinearAlgebra.multiply(qu, up, transposeA: true)     // ku×r
        let right = LinearAlgebra.multiply(down, qv)                    // r×kv
        let projected = LinearAlgebra.multiply(left, right)             // ku×kv
        var inner = 0.0
        for i in core.values.indices { inner += Double(core.values[i]) * Double(projected.values[i]) }
        let gu = LinearAlgebra.multiply(up, up, transposeA: true), gd = LinearAlgebra.multiply(down, down, transposeB: true)
        var bNorm = 0.0
        for i in gu.values.indices { bNorm += Double(gu.values[i]) * Double(gd.values[i]) }
        return max(0, squaredNorm - 2 * inner + bNorm)
    }

    /// Σ_{i ≥ rank} σ_i²: the error of the unclamped rank-`rank` truncation, exactly.
    public func truncationError(rank: Int) -> Double {
        singularValues.dropFirst(rank).reduce(0) { $0 + Double($1) * Double($1) }
    }
}

extension LinearAlgebra {
    /// LAPACKE scans every input for NaN unless told not to; the tools check
    /// their inputs once up front, so the scan is pure overhead.
    public static func disableLAPACKENaNChecks() { LAPACKE_set_nancheck(0) }
}
