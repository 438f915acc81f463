import Diffusion

/// CPython's `random` module where sd-scripts' dataset code draws from it and the result must be
/// kohya's own (not merely reproducible): `random.seed(int)` (init_by_array over the seed's 32-bit
/// words, Modules/_randommodule.c), `getrandbits`, `_randbelow` (rejection on getrandbits, no
/// modulo bias) and `shuffle` (Fisher–Yates from the end). The twister is TorchGenerator's MT19937;
/// only the seeding differs. Checked against CPython 3.11 in Fixtures/golden/make_python_random_golden.py.
public struct PythonRandom: DataRandom, Sendable {
    private var generator: TorchGenerator

    /// `random.seed(seed)` for a non-negative int: its little-endian 32-bit words (0 → one word).
    public init(seed: UInt64) {
        var key: [UInt32] = []
        var rest = seed
        repeat {
            key.append(UInt32(truncatingIfNeeded: rest))
            rest >>= 32
        } while rest != 0
        generator = TorchGenerator(seed: 19_650_218, variant: .libm)
        var state = generator.snapshot.words
        // init_by_array (mt19937ar.c, as CPython carries it).
        var i = 1, j = 0
        for _ in 0..<max(624, key.count) {
            let previous = state[i - 1]
            state[i] = (state[i] ^ ((previous ^ (previous >> 30)) &* 1_664_525)) &+ key[j] &+ UInt32(j)
            i += 1; j += 1
            if i >= 624 { state[0] = state[623]; i = 1 }
            if j >= key.count { j = 0 }
        }
        for _ in 0..<623 {
            let previous = state[i - 1]
            state[i] = (state[i] ^ ((previous ^ (previous >> 30)) &* 1_566_083_941)) &- UInt32(i)
            i += 1
            if i >= 624 { state[0] = state[623]; i = 1 }
        }
        state[0] = 0x8000_0000
        try! generator.restore(.init(words: state, index: 624, cachedNormal: nil))
    }

    /// `getrandbits(k)` for 1 ≤ k ≤ 32: the top k bits of one word.
    public mutating func bits(_ k: Int) -> UInt32 {
        precondition((1...32).contains(k))
        return generator.nextUInt32() >> UInt32(32 - k)
    }

    /// `_randbelow(n)`: k = n.bit_length() bits, drawn again until below n.
    public mutating func below(_ n: Int) -> Int {
        precondition(n > 0 && n <= Int(UInt32.max))
        let k = Int.bitWidth - n.leadingZeroBitCount
        while true {
            let r = Int(bits(k))
            if r < n { return r }
        }
    }

    /// `random.random()`: 53 bits from two words (genrand_res53), as TrainingRandom draws them.
    public mutating func uniform() -> Double {
        generator.nextRes53()
    }

    public mutating func integer(below bound: Int) -> Int { below(bound) }

    /// `random.shuffle(items)`.
    public mutating func shuffle<T>(_ items: inout [T]) {
        guard items.count > 1 else { return }
        for i in stride(from: items.count - 1, to: 0, by: -1) { items.swapAt(i, below(i + 1)) }
    }
}
