import Diffusion

/// How LyCORIS's LokrModule.__init__ splits a layer (lycoris_lora 3.2.0.post2): out = a·b and in = c·d by
/// `factorization` (a ≤ b; a ≥ b with unbalanced_factorization, which swaps them), then w1 [a, c] full, or low-rank
/// [a, r]·[r, c] with decompose_both when the rank is below half of max(a, c) (and not full_matrix); w2 [b, d·kh·kw]
/// full when the rank is at least half of max(b, d) or with full_matrix (stored [b, d(, kh, kw)]), else low-rank
/// [b, r]·[r, d·kh·kw], or with use_tucker on a kernel wider than 1×1 the Tucker product of lokr_t2 [r, r, kh, kw],
/// lokr_w2_a [r, b] and lokr_w2_b [r, d].
public struct LoKrLayout: Sendable, Equatable {
    public let a: Int, b: Int, c: Int, d: Int
    /// kh·kw (1 for a linear layer).
    public let area: Int
    public let lowRankW1: Bool
    public let lowRankW2: Bool
    /// w2 is low-rank through a Tucker core.
    public let tuckerW2: Bool

    public init(_ shape: LoRAModule.Shape, rank: Int, factor: Int, decomposeBoth: Bool, fullMatrix: Bool, tucker: Bool = false,
                unbalanced: Bool = false) {
        let (inputs, area): (Int, Int) = {
            switch shape {
            case let .linear(inputs, _): return (inputs, 1)
            case let .conv(inputs, _, kernel, _, _): return (inputs, kernel * kernel)
            }
        }()
        (c, d) = LoKrLayout.factorization(inputs, factor: factor)
        let (small, large) = LoKrLayout.factorization(shape.outputs, factor: factor)
        (a, b) = unbalanced ? (large, small) : (small, large)
        self.area = area
        lowRankW1 = decomposeBoth && Double(rank) < Double(max(a, c)) / 2 && !fullMatrix
        lowRankW2 = Double(rank) < Double(max(b, d)) / 2 && !fullMatrix
        tuckerW2 = tucker && lowRankW2 && area > 1
    }

    /// The values the module holds at `rank`.
    public func parameterCount(rank r: Int) -> Int {
        (lowRankW1 ? r * (a + c) : a * c) + (tuckerW2 ? r * (r * area + b + d) : lowRankW2 ? r * (b + d * area) : b * d * area)
    }

    /// lycoris.functional.general.factorization: dimension = m·n with m ≤ n. A positive factor that divides the
    /// dimension is one side; otherwise m grows through the divisors while m + n shrinks and m stays within the
    /// factor (−1: no limit, the most balanced split).
    public static func factorization(_ dimension: Int, factor: Int) -> (Int, Int) {
        if factor > 0 && dimension % factor == 0 {
            let (m, n) = (factor, dimension / factor)
            return m > n ? (n, m) : (m, n)
        }
        let limit = factor < 0 ? dimension : factor
        var (m, n) = (1, dimension)
        let length = m + n
        while m < n {
            var next = m + 1
            while dimension % next != 0 { next += 1 }
            let other = dimension / next
            if next + other > length || next > limit { break }
            (m, n) = (next, other)
        }
        return m > n ? (n, m) : (m, n)
    }
}

extension LoKrModule {
    /// LyCORIS's LoKr initialisation (without use_scalar): w2 zeros (full), or w2_a Kaiming-uniform and w2_b zeros
    /// (with a Tucker core, t2 Kaiming-uniform first); then w1 (or w1_a and w1_b) Kaiming-uniform (`kaimingUniform`).
    /// Both factors full: LyCORIS sets alpha to the rank (scale 1); an alpha of 0 means the rank. `trainedScalar`
    /// (use_scalar): a trained scalar from 0, and w2 (or w2_b) Kaiming-uniform instead of zeros.
    static func lycorisInitialized(name: String, shape: LoRAModule.Shape, layout l: LoKrLayout, rank: Int, alpha: Float, trainedScalar: Bool = false,
                                   uniform: () -> Float) -> LoKrModule {
        func kaiming(_ rows: Int, _ columns: Int) -> [Float] { kaimingUniform(rows * columns, fanIn: columns, uniform: uniform) }
        func zerosUnlessScalar(_ rows: Int, _ columns: Int) -> [Float] { trainedScalar ? kaiming(rows, columns) : [Float](repeating: 0, count: rows * columns) }
        let kernel: [Int] = { if case let .conv(_, _, k, _, _) = shape { return [k, k] } else { return [] } }()
        let w2: WeightFactor
        if l.tuckerW2 {
            let core = rank * l.area
            w2 = .tucker(core: Parameter(key: name + ".lokr_t2", shape: [rank, rank] + kernel, values: kaiming(rank, core)),
                         a: Parameter(key: name + ".lokr_w2_a", shape: [rank, l.b], values: kaiming(rank, l.b)),
                         b: Parameter(key: name + ".lokr_w2_b", shape: [rank, l.d], values: zerosUnlessScalar(rank, l.d)))
        } else if l.lowRankW2 {
            w2 = .lowRank(Parameter(key: name + ".lokr_w2_a", shape: [l.b, rank], values: kaiming(l.b, rank)),
                          Parameter(key: name + ".lokr_w2_b", shape: [rank, l.d * l.area], values: zerosUnlessScalar(rank, l.d * l.area)))
        } else {
            w2 = .full(Parameter(key: name + ".lokr_w2", shape: [l.b, l.d] + kernel, values: zerosUnlessScalar(l.b, l.d * l.area)))
        }
        let w1: WeightFactor = l.lowRankW1
            ? .lowRank(Parameter(key: name + ".lokr_w1_a", shape: [l.a, rank], values: kaiming(l.a, rank)),
                       Parameter(key: name + ".lokr_w1_b", shape: [rank, l.c], values: kaiming(rank, l.c)))
            : .full(Parameter(key: name + ".lokr_w1", shape: [l.a, l.c], values: kaiming(l.a, l.c)))
        let moduleAlpha = !l.lowRankW1 && !l.lowRankW2 || alpha == 0 ? Float(rank) : alpha
        return LoKrModule(name: name, shape: shape, rank: rank, alpha: moduleAlpha, w1: w1, w2: w2,
                          scalar: trainedScalar ? ModuleScalar(trainedAs: name) : ModuleScalar())
    }
}
