import CBLAS
import COneDNN
import CLAPACKE

/// BLAS and LAPACK over plain row-major buffers.
public enum LinearAlgebra {
    /// C = alpha·op(A)·op(B) + beta·C on row-major float buffers: the one GEMM
    /// every caller goes through, on the library and arithmetic `routing` says (merging, extraction, the engine's layers and,
    /// next, their backward passes). Leading dimensions let callers multiply
    /// column slices in place (one head of a [tokens, width] matrix, one part of
    /// a packed projection) without copies. k = 0 gives beta·C (BLAS would leave
    /// C untouched: the product of empty matrices is zero).
    @inline(__always)
    public static func gemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : c[i * ldc + j] * beta } }
            return
        }
        dispatch(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                 beta: beta, c: c, ldc: ldc)
    }

    /// C = op(A)·op(B), single precision (see `routing` for the library).
    public static func multiply(_ a: Matrix, _ b: Matrix, transposeA: Bool = false, transposeB: Bool = false) -> Matrix {
        let m = transposeA ? a.cols : a.rows
        let k = transposeA ? a.rows : a.cols
        let kb = transposeB ? b.cols : b.rows
        let n = transposeB ? b.rows : b.cols
        precondition(k == kb, "inner dimensions differ: \(k) vs \(kb)")
        var c = Matrix(zeros: m, n)
        guard m > 0, n > 0, k > 0 else { return c }
        a.values.withUnsafeBufferPointer { pa in
            b.values.withUnsafeBufferPointer { pb in
                c.values.withUnsafeMutableBufferPointer { pc in
                    gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                         a: pa.baseAddress!, lda: a.cols, b: pb.baseAddress!, ldb: b.cols, c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return c
    }

    /// C += alpha · op(A)·op(B) on raw row-major buffers (the hot path of merging).
    public static func gemmAccumulate(m: Int, n: Int, k: Int, alpha: Float,
                                      a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
                                      b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                                      c: UnsafeMutablePointer<Float>, ldc: Int) {
        gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: 1, c: c, ldc: ldc)
    }

    /// Sum of squares accumulated in double precision.
    public static func sumOfSquares(_ values: [Float]) -> Double {
        values.withUnsafeBufferPointer { sumOfSquares($0) }
    }

    public static func sumOfSquares(_ values: UnsafeBufferPointer<Float>) -> Double {
        // Four independent double accumulators: accurate and vectorisable.
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var i = 0
        let n = values.count
        while i + 4 <= n {
            let a = Double(values[i]), b = Double(values[i + 1]), c = Double(values[i + 2]), d = Double(values[i + 3])
            s0 += a * a; s1 += b * b; s2 += c * c; s3 += d * d
            i += 4
        }
        while i < n { let a = Double(values[i]); s0 += a * a; i += 1 }
        return (s0 + s1) + (s2 + s3)
    }

    /// Singular values, largest first (LAPACK sgesdd without vectors).
    public static func singularValues(_ a: Matrix) throws(LinearAlgebraError) -> [Float] {
        let k = min(a.rows, a.cols)
        guard k > 0 else { return [] }
        try a.requireFinite()
        var work = a.values
        var s = [Float](repeating: 0, count: k)
        var dummyU: Float = 0, dummyVt: Float = 0
        let info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "N")), Int32(a.rows), Int32(a.cols),
                                  &work, Int32(a.cols), &s, &dummyU, Int32(max(1, a.rows)), &dummyVt, Int32(max(1, a.cols)))
        guard info == 0 else { throw .lapack(routine: "sgesdd", info: info) }
        return s
    }

    /// Thin SVD: A = U·diag(S)·Vᵀ with U rows×k, Vt k×cols, k = min(rows, cols).
    public static func svd(_ a: Matrix) throws(LinearAlgebraError) -> (u: Matrix, s: [Float], vt: Matrix) {
        try a.requireFinite()
        let k = min(a.rows, a.cols)
        var work = a.values
        var s = [Float](repeating: 0, count: k)
        var u = Matrix(zeros: a.rows, k)
        var vt = Matrix(zeros: k, a.cols)
        let info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "S")), Int32(a.rows), Int32(a.cols),
                                  &work, Int32(a.cols), &s, &u.values, Int32(k), &vt.values, Int32(a.cols))
        guard info == 0 else { throw .lapack(routine: "sgesdd", info: info) }
        return (u, s, vt)
    }

    /// The R factor of A = Q·R (min(rows, cols) × cols, upper triangular).
    public static func qrR(_ a: Matrix) throws(LinearAlgebraError) -> Matrix {
        let k = min(a.rows, a.cols)
        guard k > 0 else { return Matrix(zeros: 0, a.cols) }
        try a.requireFinite()
        var work = a.values
        var tau = [Float](repeating: 0, count: k)
        let info = LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, Int32(a.rows), Int32(a.cols), &work, Int32(a.cols), &tau)
        guard info == 0 else { throw .lapack(routine: "sgeqrf", info: info) }
        var r = Matrix(zeros: k, a.cols)
        for i in 0..<k {
            for j in i..<a.cols { r.values[i * a.cols + j] = work[i * a.cols + j] }
        }
        return r
    }

    /// Singular values of up·down (out×r times r×in) without forming the
    /// out×in product: QR both factors and take the SVD of the small r×r core.
    public static func productSingularValues(up: Matrix, down: Matrix) throws(LinearAlgebraError) -> [Float] {
        guard up.cols == down.rows else { throw .shape("up is \(up.rows)x\(up.cols) but down is \(down.rows)x\(down.cols)") }
        if up.cols >= min(up.rows, down.cols) {
            return try singularValues(multiply(up, down))
        }
        let ru = try qrR(up)              // r×r
        let rd = try qrR(down.transposed) // r×r
        return try singularValues(multiply(ru, rd, transposeB: true))
    }
}

extension LinearAlgebra {
    /// The process-wide GEMM thread count (OpenBLAS's, and what oneDNN's calls
    /// are given) outside single-threaded scopes. It starts at OpenBLAS's own
    /// count at load (the cores, or OPENBLAS_NUM_THREADS).
    public static var blasThreads: Int {
        get { processThreads }
        set {
            processThreads = max(1, newValue)
            openblas_set_num_threads(Int32(processThreads))
        }
    }
    nonisolated(unsafe) private static var processThreads = Int(openblas_get_num_threads())

    /// The GEMM thread count a scope set on this thread (nil: none, the
    /// process-wide count applies). Per thread: `withSingleThreadedBLAS` on one
    /// thread leaves another thread's GEMMs as they were, so work on two
    /// threads at once (a batch prepared beside a training step) computes what
    /// it computes alone. `Parallel` hands the caller's value to its jobs.
    public static var threadsHere: Int? {
        get { let n = Int(lt_gemm_threads_here()); return n > 0 ? n : nil }
        set { lt_set_gemm_threads_here(Int32(newValue ?? 0)) }
    }

    /// The thread count a GEMM called here runs on.
    static var gemmThreads: Int { threadsHere ?? processThreads }

    /// Run `body` with single-threaded GEMMs on this thread (and in the
    /// `Parallel` jobs it starts), restoring the previous setting. Work split
    /// over modules or heads uses it so that module threads and GEMM threads
    /// do not oversubscribe the cores. OpenBLAS's own count, which LAPACK
    /// reads, is process-wide and set to 1 too; OpenBLAS splits a GEMM's rows
    /// and columns only, so another thread's OpenBLAS calls meanwhile run
    /// slower but compute the same.
    public static func withSingleThreadedBLAS<T>(_ body: () throws -> T) rethrows -> T {
        let previous = threadsHere, count = processThreads
        threadsHere = 1
        openblas_set_num_threads(1)
        defer {
            threadsHere = previous
            openblas_set_num_threads(Int32(previous ?? count))
        }
        return try body()
    }

    /// The kernel set OpenBLAS picked at load time (e.g. "Haswell", "Prescott").
    public static var blasCoreName: String { String(cString: openblas_get_corename()) }
    public static var blasConfig: String { String(cString: openblas_get_config()) }
}
