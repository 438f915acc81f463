/// SplitMix64: tiny, fast and identical on every platform, so generated
/// fixtures are byte-for-byte reproducible.
public struct SeededRandom: Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A generator for one named tensor, independent of generation order.
    public init(seed: UInt64, name: String) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 // FNV-1a of the name, mixed with the seed
        for byte in name.utf8 { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
        state = seed ^ h
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    public mutating func symmetric() -> Float {
        Float(next() >> 40) / Float(1 << 23) - 1
    }

    /// Fill with uniform values in [-scale, scale).
    public mutating func fill(_ buffer: UnsafeMutableBufferPointer<Float>, scale: Float) {
        for i in buffer.indices { buffer[i] = symmetric() * scale }
    }
}
