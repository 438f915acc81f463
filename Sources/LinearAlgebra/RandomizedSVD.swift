#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Truncated SVD: randomized (Halko, Martinsson & Tropp's range finder with
/// power iterations) when the target rank is far below the matrix size,
/// LAPACK's divide-and-conquer otherwise.
public enum TruncatedSVD {
    public struct Options: Sendable {
        /// Extra random directions beyond the target rank.
        public var oversampling = 10
        /// Subspace iterations; each sharpens the spectrum's decay.
        public var powerIterations = 2
        /// Always use LAPACK's exact SVD.
        public var exact = false
        public var seed: UInt64 = 0x5EED
        /// Above this σ_l/σ_k the spectrum is too flat for the sketch: go exact.
        public var flatSpectrumRatio: Float = 0.7
        public init(oversampling: Int = 10, powerIterations: Int = 2, exact: Bool = false, seed: UInt64 = 0x5EED) {
            self.oversampling = oversampling
            self.powerIterations = powerIterations
            self.exact = exact
            self.seed = seed
        }
    }

    public struct Result: Sendable {
        public var u: Matrix
        public var s: [Float]
        public var vt: Matrix
        /// Whether LAPACK's exact SVD was used (asked for, rank not small, or a flat spectrum).
        public var exact: Bool
    }

    /// The top-`rank` singular triplets: u (m×k), s (k), vt (k×n).
    public static func compute(_ a: Matrix, rank: Int, options: Options = .init()) throws(LinearAlgebraError) -> Result {
        try a.requireFinite()
        let smaller = min(a.rows, a.cols)
        let k = max(0, min(rank, smaller))
        let sketch = min(k + options.oversampling, smaller)
        if options.exact || sketch * 2 > smaller {
            let (u, s, vt) = try LinearAlgebra.svd(a)
            return Result(u: u.leadingColumns(k), s: Array(s.prefix(k)), vt: vt.leadingRows(k), exact: true)
        }
        // Range finder: Q spans A·Ω, refined by alternating with Aᵀ.
        var rng = GaussianSource(seed: options.seed)
        let omega = Matrix(rows: a.cols, cols: sketch, values: (0..<(a.cols * sketch)).map { _ in rng.next() })
        var q = try orthonormalize(LinearAlgebra.multiply(a, omega))
        for _ in 0..<options.powerIterations {
            let z = try orthonormalize(LinearAlgebra.multiply(a, q, transposeA: true))  // n×l
            q = try orthonormalize(LinearAlgebra.multiply(a, z))                         // m×l
        }
        // A ≈ Q·(Qᵀ·A); the small l×n factor's SVD gives the triplets.
        let b = LinearAlgebra.multiply(q, a, transposeA: true)
        let (ub, s, vt) = try LinearAlgebra.svd(b)
        // Power iterations converge like (σ_l / σ_k)^(2q+1): when the sketch
        // shows no decay past the cut and the energy there is not negligible,
        // the subspace is not pinned down and only the exact SVD keeps the
        // promised accuracy.
        let kept = s.prefix(k).reduce(0) { $0 + Double($1) * Double($1) }
        let atStake = s[k..<sketch].reduce(0) { $0 + Double($1) * Double($1) }
        if k > 0, s[k - 1] > 0, s[sketch - 1] / s[k - 1] > options.flatSpectrumRatio, atStake > 0.005 * kept {
            var exact = options
            exact.exact = true
            return try compute(a, rank: k, options: exact)
        }
        let u = LinearAlgebra.multiply(q, ub)
        return Result(u: u.leadingColumns(k), s: Array(s.prefix(k)), vt: vt.leadingRows(k), exact: false)
    }

    /// An orthonormal basis of a tall matrix's columns.
    static func orthonormalize(_ y: Matrix) throws(LinearAlgebraError) -> Matrix {
        try FactoredMatrix.orthonormalRows(y).0
    }
}

extension Matrix {
    func leadingColumns(_ k: Int) -> Matrix {
        if k == cols { return self }
        var out = Matrix(zeros: rows, k)
        for r in 0..<rows { for c in 0..<k { out.values[r * k + c] = values[r * cols + c] } }
        return out
    }

    func leadingRows(_ k: Int) -> Matrix {
        Matrix(rows: k, cols: cols, values: Array(values[0..<(k * cols)]))
    }
}

/// Deterministic standard normal values (SplitMix64 + Box–Muller), so
/// extractions are reproducible run to run.
struct GaussianSource {
    private var state: UInt64
    private var spare: Float?

    init(seed: UInt64) { state = seed }

    private mutating func uniform() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return (Double(z >> 11) + 0.5) / Double(1 << 53)
    }

    mutating func next() -> Float {
        if let s = spare { spare = nil; return s }
        let radius = (-2 * log(uniform())).squareRoot()
        let angle = 2 * Double.pi * uniform()
        spare = Float(radius * sin(angle))
        return Float(radius * cos(angle))
    }
}
