import Diffusion

/// The run's random source for data decisions (bucket order, flips, caption
/// shuffles and dropouts, timesteps): torch's Mersenne Twister (our
/// TorchGenerator, the scalar Box–Muller so noise is the same on every CPU),
/// seeded from `--seed`. kohya draws these from Python's `random` and torch's
/// global generator; a fixed seed gives a reproducible run, not kohya's draws.
/// What a data augmentation draws from: the run's `TrainingRandom`, or CPython's `random` (`PythonRandom`) when a
/// test replays kohya's own draws. `uniform()` is `random.random()`; `integer(below: n)` is `randrange(n)`.
public protocol DataRandom {
    mutating func uniform() -> Double
    mutating func integer(below bound: Int) -> Int
}

extension DataRandom {
    /// Python's `random.randint(a, b)`: both ends included.
    public mutating func integer(in range: ClosedRange<Int>) -> Int { range.lowerBound + integer(below: range.count) }
    /// Python's `random.uniform(a, b)`: a + (b − a)·random().
    public mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * uniform() }
}

public struct TrainingRandom: DataRandom, Sendable {
    var generator: TorchGenerator

    public init(seed: UInt64) { generator = TorchGenerator(seed: seed, variant: .libm) }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double {
        generator.nextRes53()
    }

    /// Uniform integer in 0..<bound (bound > 0), without modulo bias.
    public mutating func integer(below bound: Int) -> Int {
        precondition(bound > 0)
        return min(bound - 1, Int(uniform() * Double(bound)))
    }

    public mutating func normal(_ count: Int) -> [Float] { generator.randn(count) }

    public mutating func shuffle<T>(_ items: inout [T]) {
        guard items.count > 1 else { return }
        for i in stride(from: items.count - 1, to: 0, by: -1) { items.swapAt(i, integer(below: i + 1)) }
    }
}
