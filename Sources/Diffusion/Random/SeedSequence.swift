/// numpy's `SeedSequence` (O'Neill's seed_seq hashing), which torchsde uses to
/// derive the seed of every node of its Brownian tree. Only `generate_state`
/// with 32-bit words is needed.
struct SeedSequence {
    private static let initA: UInt32 = 0x43b0_d7e5, multA: UInt32 = 0x931e_8875
    private static let initB: UInt32 = 0x8b51_f9dd, multB: UInt32 = 0x58f3_8ded
    private static let mixL: UInt32 = 0xca01_f9dd, mixR: UInt32 = 0x4973_f715

    private(set) var pool: [UInt32]

    /// - Parameters:
    ///   - entropy: the run's seed (a non-negative integer).
    ///   - spawnKey: non-negative integers identifying a child sequence.
    init(entropy: UInt64, spawnKey: [UInt64] = [], poolSize: Int = 4) {
        var run = SeedSequence.words(entropy)
        let spawn = spawnKey.flatMap(SeedSequence.words)
        if !spawn.isEmpty && run.count < poolSize { run += [UInt32](repeating: 0, count: poolSize - run.count) }
        pool = [UInt32](repeating: 0, count: poolSize)
        mix(run + spawn)
    }

    /// A Python int as little-endian 32-bit words (0 is one word).
    static func words(_ value: UInt64) -> [UInt32] {
        if value == 0 { return [0] }
        var out: [UInt32] = []
        var n = value
        while n > 0 {
            out.append(UInt32(truncatingIfNeeded: n))
            n >>= 32
        }
        return out
    }

    private static func hashmix(_ value: UInt32, _ constant: inout UInt32) -> UInt32 {
        var v = value ^ constant
        constant = constant &* multA
        v = v &* constant
        return v ^ (v >> 16)
    }

    private static func mix(_ x: UInt32, _ y: UInt32) -> UInt32 {
        let r = mixL &* x &- mixR &* y
        return r ^ (r >> 16)
    }

    private mutating func mix(_ entropy: [UInt32]) {
        var constant = SeedSequence.initA
        for i in pool.indices { pool[i] = SeedSequence.hashmix(i < entropy.count ? entropy[i] : 0, &constant) }
        for source in pool.indices {
            for target in pool.indices where source != target {
                pool[target] = SeedSequence.mix(pool[target], SeedSequence.hashmix(pool[source], &constant))
            }
        }
        if entropy.count > pool.count {
            for source in pool.count..<entropy.count {
                for target in pool.indices {
                    pool[target] = SeedSequence.mix(pool[target], SeedSequence.hashmix(entropy[source], &constant))
                }
            }
        }
    }

    func generateState(_ count: Int) -> [UInt32] {
        var constant = SeedSequence.initB
        return (0..<count).map { i in
            var v = pool[i % pool.count] ^ constant
            constant = constant &* SeedSequence.multB
            v = v &* constant
            return v ^ (v >> 16)
        }
    }
}
