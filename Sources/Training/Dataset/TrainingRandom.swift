import Diffusion

/// The run's random source for data decisions (bucket order, flips, caption
/// shuffles and dropouts, timesteps): torch's Mersenne Twister (our
/// TorchGenerator, the scalar Box–Muller so noise is the same on every CPU),
/// seeded from `--seed`. kohya draws these from Python's `random` and torch's
/// global generator; a fixed seed gives a reproducible run, not kohya's draws.
public struct TrainingRandom: Sendable {
    var generator: TorchGenerator

    public init(seed: UInt64) { generator = TorchGenerator(seed: seed, variant: .libm) }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double {
        let high = UInt64(generator.nextUInt32() >> 5), low = UInt64(generator.nextUInt32() >> 6)
        return Double(high << 26 | low) / Double(1 << 53)
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
