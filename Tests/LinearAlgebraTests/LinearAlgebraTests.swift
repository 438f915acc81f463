import LinearAlgebra
import XCTest

/// BLAS/LAPACK wrappers against naive loops and known decompositions.
final class LinearAlgebraTests: XCTestCase {
    private func random(_ rows: Int, _ cols: Int, seed: UInt64) -> Matrix {
        var state = seed
        let values = (0..<(rows * cols)).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        }
        return Matrix(rows: rows, cols: cols, values: values)
    }

    private func naiveMultiply(_ a: Matrix, _ b: Matrix) -> Matrix {
        var c = Matrix(zeros: a.rows, b.cols)
        for i in 0..<a.rows {
            for j in 0..<b.cols {
                var s = 0.0
                for k in 0..<a.cols { s += Double(a[i, k]) * Double(b[k, j]) }
                c[i, j] = Float(s)
            }
        }
        return c
    }

    func testMultiplyMatchesNaiveLoopsWithTransposes() {
        let a = random(37, 19, seed: 1), b = random(19, 23, seed: 2)
        let reference = naiveMultiply(a, b)
        let variants = [LinearAlgebra.multiply(a, b),
                        LinearAlgebra.multiply(a.transposed, b, transposeA: true),
                        LinearAlgebra.multiply(a, b.transposed, transposeB: true),
                        LinearAlgebra.multiply(a.transposed, b.transposed, transposeA: true, transposeB: true)]
        for c in variants {
            for (x, y) in zip(c.values, reference.values) { XCTAssertEqual(x, y, accuracy: 1e-4) }
        }
    }

    func testSingularValuesOfAKnownMatrix() throws {
        // U·diag(s)·Vᵀ with orthogonal U, V built from Givens rotations.
        let s: [Float] = [9, 4, 1, 0.25]
        var m = Matrix(zeros: 4, 4)
        for i in 0..<4 { m[i, i] = s[i] }
        func rotate(_ m: Matrix, _ p: Int, _ q: Int, _ angle: Float, left: Bool) -> Matrix {
            var r = Matrix(zeros: 4, 4)
            for i in 0..<4 { r[i, i] = 1 }
            r[p, p] = cos(angle); r[q, q] = cos(angle); r[p, q] = -sin(angle); r[q, p] = sin(angle)
            return left ? LinearAlgebra.multiply(r, m) : LinearAlgebra.multiply(m, r)
        }
        m = rotate(rotate(m, 0, 2, 0.7, left: true), 1, 3, -1.1, left: false)
        let sv = try LinearAlgebra.singularValues(m)
        for (a, b) in zip(sv, s) { XCTAssertEqual(a, b, accuracy: 1e-4) }
        let (u, sigma, vt) = try LinearAlgebra.svd(m)
        var rebuilt = u
        for r in 0..<4 { for c in 0..<4 { rebuilt[r, c] *= sigma[c] } }
        rebuilt = LinearAlgebra.multiply(rebuilt, vt)
        for (a, b) in zip(rebuilt.values, m.values) { XCTAssertEqual(a, b, accuracy: 1e-4) }
    }

    func testProductSpectrumWithoutFormingTheProduct() throws {
        let up = random(300, 6, seed: 3), down = random(6, 200, seed: 4)
        let direct = try LinearAlgebra.singularValues(LinearAlgebra.multiply(up, down))
        let factored = try LinearAlgebra.productSingularValues(up: up, down: down)
        XCTAssertEqual(factored.count, 6)
        for i in 0..<6 { XCTAssertEqual(factored[i], direct[i], accuracy: 1e-3 * direct[0]) }
    }

    func testQRFactorPreservesTheGramMatrix() throws {
        let a = random(50, 7, seed: 5)
        let r = try LinearAlgebra.qrR(a)
        let lhs = LinearAlgebra.multiply(r, r, transposeA: true)
        let rhs = LinearAlgebra.multiply(a, a, transposeA: true)
        for (x, y) in zip(lhs.values, rhs.values) { XCTAssertEqual(x, y, accuracy: 1e-3) }
        for i in 0..<7 { for j in 0..<i { XCTAssertEqual(r[i, j], 0) } }
    }

    /// The pointer-level GEMM every caller shares: transposes, leading
    /// dimensions (a column slice of a wider buffer), alpha/beta and k = 0.
    func testPointerGEMMWithSlicesTransposesAndEmptyInnerDimension() {
        let m = 3, n = 4, k = 5, lda = 7, ldb = 9, ldc = 6
        let a = (0..<(k * lda)).map { Float($0 % 11) - 5 }, b = (0..<(k * ldb)).map { Float($0 % 7) - 3 }
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            var c = [Float](repeating: 2, count: m * ldc)
            LinearAlgebra.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb, beta: 3, c: &c, ldc: ldc)
            for i in 0..<m {
                for j in 0..<n {
                    var sum: Float = 0
                    for p in 0..<k { sum += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]) }
                    XCTAssertEqual(c[i * ldc + j], 0.5 * sum + 6, accuracy: 1e-4, "\(ta) \(tb) [\(i), \(j)]")
                }
                for j in n..<ldc { XCTAssertEqual(c[i * ldc + j], 2, "outside the slice stays") }
            }
        }
        var c = [Float](repeating: 2, count: 4)
        LinearAlgebra.gemm(m: 2, n: 2, k: 0, a: a, lda: 1, b: b, ldb: 2, beta: 0.5, c: &c, ldc: 2)
        XCTAssertEqual(c, [1, 1, 1, 1], "k = 0: beta·C")
        LinearAlgebra.gemm(m: 2, n: 2, k: 0, a: a, lda: 1, b: b, ldb: 2, c: &c, ldc: 2)
        XCTAssertEqual(c, [0, 0, 0, 0])
    }

    /// LAPACKE's NaN checks are off; every factorisation refuses NaN/Inf itself.
    func testFactorisationsRefuseNonFiniteInput() {
        for bad in [Float.nan, .infinity, -.infinity] {
            var a = Matrix(rows: 3, cols: 4, values: (0..<12).map { Float($0) })
            a.values[5] = bad
            let attempts: [(String, () throws -> Void)] = [
                ("singularValues", { _ = try LinearAlgebra.singularValues(a) }), ("svd", { _ = try LinearAlgebra.svd(a) }),
                ("qrR", { _ = try LinearAlgebra.qrR(a) }), ("qr", { _ = try LinearAlgebra.qr(a) }),
                ("truncated SVD", { _ = try TruncatedSVD.compute(a, rank: 1) }),
                ("product", { _ = try LinearAlgebra.productSingularValues(up: a.transposed, down: a) }),
            ]
            for (name, attempt) in attempts {
                XCTAssertThrowsError(try attempt(), "\(name) \(bad)") { error in
                    guard case LinearAlgebraError.nonFinite = error else { return XCTFail("\(name): \(error)") }
                }
            }
        }
    }

    func testSumOfSquaresIsAccurate() {
        let values = [Float](repeating: 0.1, count: 1_000_003)
        XCTAssertEqual(LinearAlgebra.sumOfSquares(values), Double(Float(0.1)) * Double(Float(0.1)) * 1_000_003, accuracy: 1e-6)
    }
}

final class LowRankTests: XCTestCase {
    func testQuantileMatchesSortedInterpolation() {
        var state: UInt64 = 9
        for n in [1, 2, 3, 10, 101, 1000] {
            let values = (0..<n).map { _ -> Float in state = state &* 6364136223846793005 &+ 1; return Float(Int64(bitPattern: state) % 1000) / 7 }
            let sorted = values.sorted()
            for q in [0.0, 0.25, 0.5, 0.99, 1.0] {
                let pos = q * Double(n - 1), lo = Int(pos), hi = min(lo + 1, n - 1)
                let expected = sorted[lo] + (sorted[hi] - sorted[lo]) * Float(pos - Double(lo))
                XCTAssertEqual(LinearAlgebra.quantile(values, q), expected, accuracy: 1e-5, "n \(n) q \(q)")
            }
        }
    }

    func testTruncationFromFactorsEqualsTruncationOfTheProduct() throws {
        var state: UInt64 = 5
        func random(_ r: Int, _ c: Int) -> Matrix {
            Matrix(
                rows: r, cols: c,
                values: (0..<(r * c)).map { _ in
                    state = state &* 6364136223846793005 &+ 1; return Float(Int64(bitPattern: state >> 11) % 2001) / 1000
                })
        }
        let u = random(40, 8), v = random(8, 30)
        let viaFactors = try LinearAlgebra.truncate(u: u, v: v, rank: 3)
        let viaProduct = try LinearAlgebra.truncate(LinearAlgebra.multiply(u, v), rank: 3)
        let a = LinearAlgebra.multiply(viaFactors.up, viaFactors.down), b = LinearAlgebra.multiply(viaProduct.up, viaProduct.down)
        for (x, y) in zip(a.values, b.values) { XCTAssertEqual(x, y, accuracy: 1e-3 * (b.values.map(abs).max() ?? 1)) }
        // The factor-space distance equals the dense one.
        let dense = zip(LinearAlgebra.multiply(u, v).values, a.values).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        XCTAssertEqual(LinearAlgebra.squaredDistance(ua: u, va: v, ub: viaFactors.up, vb: viaFactors.down), dense, accuracy: 1e-3 * dense)
    }
}

/// Randomized SVD against LAPACK's exact truncation: the energy it keeps
/// (Σσ̂² over the kept rank, i.e. ‖A‖² − error²) within 1% of the optimum.
final class RandomizedSVDTests: XCTestCase {
    /// A = U·diag(σ)·Vᵀ with random orthonormal U, V and a chosen spectrum.
    private func matrix(rows: Int, cols: Int, spectrum: (Int) -> Float, seed: UInt64) throws -> Matrix {
        var state = seed
        func random(_ r: Int, _ c: Int) -> Matrix {
            Matrix(rows: r, cols: c, values: (0..<(r * c)).map { _ in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Float(Int64(bitPattern: state >> 11) % 20001) / 10000
            })
        }
        let k = min(rows, cols)
        let u = try LinearAlgebra.qr(random(rows, k)).q
        let v = try LinearAlgebra.qr(random(cols, k)).q
        var us = u
        for r in 0..<rows { for c in 0..<k { us.values[r * k + c] *= spectrum(c) } }
        return LinearAlgebra.multiply(us, v, transposeB: true)
    }

    private func keptEnergy(_ a: Matrix, _ u: Matrix, _ s: [Float], _ vt: Matrix) -> Double {
        var us = u
        for r in 0..<u.rows { for c in 0..<u.cols { us.values[r * u.cols + c] *= s[c] } }
        let approx = LinearAlgebra.multiply(us, vt)
        let error = zip(a.values, approx.values).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        return a.squaredNorm - error
    }

    func testRandomizedMatchesExactOnFlatAndDecayingSpectra() throws {
        let cases: [(String, (Int) -> Float)] = [
            ("flat", { _ in 1 }),
            ("noisy flat", { i in 1 + Float(i % 7) * 0.01 }),
            ("exponential", { i in Float(pow(0.9, Double(i))) }),
            ("power law", { i in 1 / Float(i + 1) }),
            ("low rank + noise", { i in i < 16 ? 10 / Float(i + 1) : 0.01 }),
        ]
        for (name, spectrum) in cases {
            let a = try matrix(rows: 320, cols: 768, spectrum: spectrum, seed: 11)
            for rank in [8, 32] {
                let exact = try TruncatedSVD.compute(a, rank: rank, options: .init(exact: true))
                let randomized = try TruncatedSVD.compute(a, rank: rank)
                let best = keptEnergy(a, exact.u, exact.s, exact.vt)
                let got = keptEnergy(a, randomized.u, randomized.s, randomized.vt)
                XCTAssertGreaterThanOrEqual(got, best * 0.99, "\(name) rank \(rank): kept \(got) vs optimal \(best)")
                XCTAssertLessThanOrEqual(got, best * (1 + 1e-4), "\(name): cannot beat the optimum")
                if !name.contains("flat") { XCTAssertFalse(randomized.exact, "\(name): decaying spectra take the randomized path") }
                print("randomized SVD \(name) rank \(rank): \(String(format: "%.4f", got / best)) of the optimal energy")
            }
        }
    }
}
