import COneDNN
import Dispatch
import LinearAlgebra
import XCTest

/// Every route of LinearAlgebra.gemm against a double-precision naive product:
/// each library, multi- and single-threaded, the matmul primitive that bf16
/// runs on (checked here with float32 operands, so it runs on any CPU), the
/// bf16 emulation against products of rounded operands, and oneDNN's bf16
/// kernels where this CPU has them.
final class GEMMRoutingTests: XCTestCase {
    struct Case {
        let ta: Bool, tb: Bool, m: Int, n: Int, k: Int, lda: Int, ldb: Int, ldc: Int
        let alpha: Float, beta: Float
    }

    /// Shapes with slices (leading dimensions wider than the rows), both
    /// transposes, alpha/beta, and one big enough to take oneDNN's blocked kernels.
    static let cases: [Case] = [
        Case(ta: false, tb: false, m: 3, n: 4, k: 5, lda: 7, ldb: 9, ldc: 6, alpha: 0.5, beta: 3),
        Case(ta: true, tb: false, m: 17, n: 9, k: 33, lda: 20, ldb: 9, ldc: 11, alpha: 1, beta: 0),
        Case(ta: false, tb: true, m: 64, n: 77, k: 40, lda: 320, ldb: 320, ldc: 77, alpha: 1, beta: 1),
        Case(ta: true, tb: true, m: 31, n: 29, k: 19, lda: 40, ldb: 21, ldc: 30, alpha: -2, beta: 0.25),
        Case(ta: false, tb: true, m: 200, n: 160, k: 96, lda: 96, ldb: 96, ldc: 160, alpha: 1, beta: 1),
    ]

    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 997
        }
    }

    /// alpha·op(A)·op(B) + beta·C in double over `round`ed operands, as float, in C's layout (outside the slice: C).
    static func naiveProduct(_ t: Case, a: [Float], b: [Float], c: [Float], round: (Float) -> Float) -> [Float] {
        var out = c
        for i in 0..<t.m {
            for j in 0..<t.n {
                var sum = 0.0
                for p in 0..<t.k {
                    let x: Float = round(t.ta ? a[p * t.lda + i] : a[i * t.lda + p])
                    let y: Float = round(t.tb ? b[j * t.ldb + p] : b[p * t.ldb + j])
                    sum += Double(x) * Double(y)
                }
                let scaled: Double = Double(t.alpha) * sum + Double(t.beta) * Double(c[i * t.ldc + j])
                out[i * t.ldc + j] = Float(scaled)
            }
        }
        return out
    }

    /// Runs `gemm` on a case and compares with the naive product of `round`ed operands.
    func check(_ label: String, tolerance: Float, round: (Float) -> Float = { $0 },
               gemm: (Case, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        for (index, t) in Self.cases.enumerated() {
            let a = Self.values((t.ta ? t.k : t.m) * t.lda, seed: UInt64(index) + 1)
            let b = Self.values((t.tb ? t.n : t.k) * t.ldb, seed: UInt64(index) + 100)
            let start = Self.values(t.m * t.ldc, seed: UInt64(index) + 200)
            var c = start
            a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                gemm(t, pa.baseAddress!, pb.baseAddress!, pc.baseAddress!)
            } } }
            let expected = Self.naiveProduct(t, a: a, b: b, c: start, round: round)
            var worst: Float = 0
            for i in 0..<t.m {
                for j in 0..<t.n { worst = max(worst, abs(c[i * t.ldc + j] - expected[i * t.ldc + j])) }
                for j in t.n..<t.ldc { XCTAssertEqual(c[i * t.ldc + j], start[i * t.ldc + j], "\(label): outside the slice stays") }
            }
            XCTAssertLessThan(worst, tolerance, "\(label), case \(index) (\(t.m)x\(t.n)x\(t.k))")
        }
    }

    func testEveryLibraryAndThreadingRoute() {
        for backend in GEMMBackend.allCases {
            for threads in [2, 1] {
                let saved = LinearAlgebra.blasThreads
                LinearAlgebra.blasThreads = threads
                defer { LinearAlgebra.blasThreads = saved }
                LinearAlgebra.withRouting(.only(backend)) {
                    check("\(backend.rawValue), \(threads) thread(s)", tolerance: 1e-4) { t, a, b, c in
                        LinearAlgebra.gemm(transposeA: t.ta, transposeB: t.tb, m: t.m, n: t.n, k: t.k, alpha: t.alpha, a: a, lda: t.lda,
                                           b: b, ldb: t.ldb, beta: t.beta, c: c, ldc: t.ldc)
                    }
                }
            }
        }
    }

    /// The primitive path bf16 takes (packing, strides for transposes, output
    /// scale for alpha, sum post-op for beta, the shape cache hit twice), with
    /// float32 operands so that every CPU runs it.
    func testMatmulPrimitivePathWithFloat32Operands() {
        for pass in 0..<2 {
            check("oneDNN matmul f32, pass \(pass)", tolerance: 1e-4) { t, a, b, c in
                let status = lt_onednn_matmul(Int32(LT_ONEDNN_F32), t.ta ? 1 : 0, t.tb ? 1 : 0, t.m, t.n, t.k, t.alpha, a, t.lda, b, t.ldb,
                                              t.beta, c, t.ldc, 2)
                XCTAssertEqual(status, Int32(LT_ONEDNN_OK))
            }
        }
    }

    static func bf16(_ x: Float) -> Float { Float(bitPattern: (x.bitPattern &+ 0x7fff &+ ((x.bitPattern >> 16) & 1)) & 0xffff0000) }

    func testBF16EmulationEqualsProductsOfRoundedOperands() {
        XCTAssertEqual(Self.bf16(1 + 1.0 / 256), 1, "a tie rounds to even")
        XCTAssertEqual(Self.bf16(1 + 3.0 / 256), 1 + 4.0 / 256)
        LinearAlgebra.withRouting(GEMMRouting(parallel: .oneDNN, singleThreaded: .oneDNN, arithmetic: .bf16Emulated)) {
            check("bf16 emulated", tolerance: 1e-4, round: Self.bf16) { t, a, b, c in
                LinearAlgebra.gemm(transposeA: t.ta, transposeB: t.tb, m: t.m, n: t.n, k: t.k, alpha: t.alpha, a: a, lda: t.lda,
                                   b: b, ldb: t.ldb, beta: t.beta, c: c, ldc: t.ldc)
            }
        }
    }

    /// oneDNN's bf16 kernels (AMX, AVX512-BF16) where the CPU has them; on
    /// other CPUs the probe must say so, which is what makes the engine fall
    /// back to float32 and tell the user.
    func testBF16KernelsWhereTheCPUHasThem() throws {
        let kernels = LinearAlgebra.oneDNNKernels
        print("oneDNN matmul kernels here: f32 \(kernels.fp32), bf16 \(kernels.bf16.isEmpty ? "none (no bf16 units)" : kernels.bf16)")
        XCTAssertFalse(kernels.fp32.isEmpty)
        guard LinearAlgebra.bf16Available else {
            let status = [Float](repeating: 1, count: 4).withUnsafeBufferPointer { p in
                var c = [Float](repeating: 0, count: 4)
                return lt_onednn_matmul(Int32(LT_ONEDNN_BF16), 0, 0, 2, 2, 2, 1, p.baseAddress!, 2, p.baseAddress!, 2, 0, &c, 2, 1)
            }
            XCTAssertEqual(status, Int32(LT_ONEDNN_UNIMPLEMENTED), "no bf16 kernel: unimplemented, not a crash or a wrong answer")
            throw XCTSkip("this CPU has no bf16 matrix units; the emulated bf16 path ran instead")
        }
        LinearAlgebra.withRouting(GEMMRouting(parallel: .oneDNN, singleThreaded: .oneDNN, arithmetic: .bf16)) {
            check("bf16 oneDNN", tolerance: 1e-3, round: Self.bf16) { t, a, b, c in
                LinearAlgebra.gemm(transposeA: t.ta, transposeB: t.tb, m: t.m, n: t.n, k: t.k, alpha: t.alpha, a: a, lda: t.lda,
                                   b: b, ldb: t.ldb, beta: t.beta, c: c, ldc: t.ldc)
            }
        }
    }

    /// One cached primitive run by several threads at once, as the attention heads
    /// run their equal-shaped products: each result must be its own inputs' product.
    /// With oneDNN's library scratchpad (Debian's build shares it) the kernels that
    /// copy a transposed operand there read other threads' copies: garbage, NaN in
    /// bf16 training gradients on an AVX512-BF16 host. The shapes are the
    /// attention backward's (transposed A, beta 1, 77 keys).
    func testMatmulPrimitivesRunFromSeveralThreadsAtOnce() {
        var types = [(Int32(LT_ONEDNN_F32), "f32", Float(1e-4), { (x: Float) in x })]
        if LinearAlgebra.bf16Available { types.append((Int32(LT_ONEDNN_BF16), "bf16", 1e-3, Self.bf16)) }
        let shapes = [Case(ta: true, tb: false, m: 8, n: 77, k: 64, lda: 64, ldb: 77, ldc: 77, alpha: 1, beta: 1),
                      Case(ta: true, tb: false, m: 16, n: 96, k: 128, lda: 320, ldb: 96, ldc: 96, alpha: 1, beta: 1),
                      Case(ta: false, tb: true, m: 64, n: 77, k: 40, lda: 320, ldb: 320, ldc: 77, alpha: 0.5, beta: 0)]
        for (type, name, tolerance, round) in types {
            for (index, t) in shapes.enumerated() {
                let jobs = 8, rounds = 16
                let aCount = (t.ta ? t.k : t.m) * t.lda, bCount = (t.tb ? t.n : t.k) * t.ldb
                let inputs: [(a: [Float], b: [Float], c: [Float])] = (0..<jobs).map { job in
                    let seed = UInt64(job * 3)
                    return (Self.values(aCount, seed: seed + 1), Self.values(bCount, seed: seed + 2), Self.values(t.m * t.ldc, seed: seed + 3))
                }
                // The naive products of the rounded operands, once per job.
                let expected: [[Float]] = inputs.map { Self.naiveProduct(t, a: $0.a, b: $0.b, c: $0.c, round: round) }
                let size = t.m * t.ldc
                let results = UnsafeMutableBufferPointer<Float>.allocate(capacity: jobs * size)
                defer { results.deallocate() }
                var worst: Float = 0
                for _ in 0..<rounds {
                    for job in 0..<jobs { for i in 0..<size { results[job * size + i] = inputs[job].c[i] } }
                    nonisolated(unsafe) let outputs = results.baseAddress!   // each job writes its own slice
                    DispatchQueue.concurrentPerform(iterations: jobs) { job in
                        let status = inputs[job].a.withUnsafeBufferPointer { a in inputs[job].b.withUnsafeBufferPointer { b in
                            lt_onednn_matmul(type, t.ta ? 1 : 0, t.tb ? 1 : 0, t.m, t.n, t.k, t.alpha, a.baseAddress!, t.lda, b.baseAddress!, t.ldb,
                                             t.beta, outputs + job * size, t.ldc, 1)
                        } }
                        precondition(status == Int32(LT_ONEDNN_OK))
                    }
                    for job in 0..<jobs {
                        for i in 0..<size {
                            let got = results[job * size + i]
                            worst = got.isFinite ? max(worst, abs(got - expected[job][i])) : .infinity
                        }
                    }
                }
                XCTAssertLessThan(worst, tolerance, "\(name) matmul, shape \(index), \(jobs) jobs at once")
            }
        }
    }
}
