import CBLAS
import COneDNN
import Foundation

/// The library a GEMM runs on. Both dispatch by CPU at run time (OpenBLAS by
/// core type, oneDNN by ISA: AVX2, AVX-512, AMX), so the choice is about
/// speed only; Benchmarks/README.md has the measurements behind the defaults.
public enum GEMMBackend: String, CaseIterable, Sendable {
    case openBLAS = "openblas"
    case oneDNN = "onednn"
}

/// The arithmetic of a GEMM. bf16 rounds both operands to bfloat16 and
/// accumulates in float32, as torch's CPU autocast does.
public enum GEMMArithmetic: String, Sendable {
    case fp32
    /// oneDNN's bf16 matmul (AMX or AVX512-BF16 units); needs `LinearAlgebra.bf16Available`.
    /// Set explicitly (tests, `lora-bench --precision bf16`), it also runs on
    /// units slower than fp32, which the tools otherwise decline (ComputePrecision).
    case bf16
    /// The same rounding of the operands, then a float32 GEMM: equal to
    /// `bf16` up to summation order on any CPU (tests and measurements).
    case bf16Emulated = "bf16-emulated"
}

/// How `LinearAlgebra.gemm` runs: which library for which kind of call, and
/// in what arithmetic. Process-wide, like OpenBLAS's thread count it sits
/// beside; `LORA_TOOLS_GEMM=openblas|onednn` forces one library for a run.
public struct GEMMRouting: Sendable, Equatable, CustomStringConvertible {
    /// Calls that use all cores themselves (linear layers, im2col convolutions).
    public var parallel: GEMMBackend
    /// Calls made from the engine's own parallel loops on one thread each
    /// (Winograd's 16 products, attention heads): thin products where the
    /// library's per-call overhead and small-k kernels decide.
    public var singleThreaded: GEMMBackend
    public var arithmetic: GEMMArithmetic

    public init(parallel: GEMMBackend, singleThreaded: GEMMBackend, arithmetic: GEMMArithmetic = .fp32) {
        self.parallel = parallel
        self.singleThreaded = singleThreaded
        self.arithmetic = arithmetic
    }

    /// The measured choice (Benchmarks/README.md, "Compute backend").
    public static let measured = GEMMRouting(parallel: .oneDNN, singleThreaded: .oneDNN)

    public static func only(_ backend: GEMMBackend) -> GEMMRouting { GEMMRouting(parallel: backend, singleThreaded: backend) }

    /// `measured`, or one library forced by LORA_TOOLS_GEMM.
    public static var fromEnvironment: GEMMRouting {
        if let name = ProcessInfo.processInfo.environment["LORA_TOOLS_GEMM"], let forced = GEMMBackend(rawValue: name.lowercased()) {
            return only(forced)
        }
        return measured
    }

    public var description: String {
        let libraries = parallel == singleThreaded ? parallel.rawValue : "\(parallel.rawValue) (parallel), \(singleThreaded.rawValue) (per thread)"
        return "\(libraries), \(arithmetic.rawValue)"
    }
}

extension LinearAlgebra {
    nonisolated(unsafe) public static var routing = GEMMRouting.fromEnvironment

    /// Runs `body` with `routing` in force, restoring the previous one after.
    public static func withRouting<T>(_ routing: GEMMRouting, _ body: () throws -> T) rethrows -> T {
        let saved = self.routing
        self.routing = routing
        defer { self.routing = saved }
        return try body()
    }

    /// This CPU has bf16 matrix units oneDNN uses (AMX or AVX512-BF16).
    public static var bf16Available: Bool { lt_onednn_bf16_available() != 0 }

    /// oneDNN's bf16 matmul here multiplies faster than its fp32 one: AMX's
    /// tiles. AVX512-BF16 alone is slower: on a Xeon with AVX512-BF16 and no
    /// AMX, oneDNN 2.6's bf16 matmul ran at 0.5–0.6× its fp32 matmul with the
    /// operands already bf16 and the weights pre-packed (Benchmarks/README.md,
    /// "bf16"), and torch's bf16 autocast step was slower than its fp32 step too.
    public static var bf16Faster: Bool { oneDNNKernels.bf16.contains("amx") }

    /// The instruction set oneDNN's kernels use in this process.
    public static var oneDNNISA: String { String(cString: lt_onednn_isa()) }

    /// oneDNN's kernel for a float32 and a bf16 matmul here ("" = none).
    public static var oneDNNKernels: (fp32: String, bf16: String) {
        (String(cString: lt_onednn_matmul_kernel(Int32(LT_ONEDNN_F32))), String(cString: lt_onednn_matmul_kernel(Int32(LT_ONEDNN_BF16))))
    }

    /// The arithmetic's route. bf16 never falls back to fp32 silently: a bf16
    /// request on a CPU without the units fails here (callers resolve first).
    @usableFromInline
    static func dispatch(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                         a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                         beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let threads = gemmThreads
        switch routing.arithmetic {
        case .fp32:
            float32(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                    beta: beta, c: c, ldc: ldc, threads: threads)
        case .bf16:
            let status = lt_onednn_matmul(Int32(LT_ONEDNN_BF16), transposeA ? 1 : 0, transposeB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb,
                                          beta, c, ldc, Int32(threads))
            precondition(status == Int32(LT_ONEDNN_OK), "bf16 GEMM \(m)x\(n)x\(k) failed (status \(status)); callers check bf16Available")
        case .bf16Emulated:
            // Rounded copies of op(A) and op(B)'s stored rows; then float32.
            let aRows = transposeA ? k : m, aCols = transposeA ? m : k
            let bRows = transposeB ? n : k, bCols = transposeB ? k : n
            var ra = [Float](repeating: 0, count: aRows * aCols), rb = [Float](repeating: 0, count: bRows * bCols)
            for r in 0..<aRows { lt_round_to_bf16(a + r * lda, &ra[r * aCols], aCols) }
            for r in 0..<bRows { lt_round_to_bf16(b + r * ldb, &rb[r * bCols], bCols) }
            // (The routing is not switched to fp32 for this: other threads read it concurrently.)
            float32(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: ra, lda: aCols, b: rb, ldb: bCols,
                    beta: beta, c: c, ldc: ldc, threads: threads)
        }
    }

    /// A float32 GEMM on the library the routing names for this kind of call.
    private static func float32(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int) {
        let backend = threads > 1 ? routing.parallel : routing.singleThreaded
        if backend == .oneDNN {
            let status = lt_onednn_sgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Int32(threads))
            if status == Int32(LT_ONEDNN_OK) { return }
            // dnnl_sgemm fails only on arguments BLAS accepts too; fall through.
        }
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }
}
