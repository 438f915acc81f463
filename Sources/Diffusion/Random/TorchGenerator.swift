import CEngineKernels
import LoRACore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// torch's CPU generator: `torch.Generator('cpu').manual_seed(seed)` followed by
/// `torch.randn`, reproduced exactly (what diffusers with a CPU generator and
/// A1111 with "RNG source: CPU" use), so images can be reproduced from seeds.
///
/// MT19937 (as std::mt19937), float uniforms from the low 24 bits of one draw,
/// and torch's Box–Muller: for tensors of 16 or more elements all uniforms are
/// drawn first, then transformed in blocks of 16 (8 pairs), with a fresh block
/// for a ragged tail; smaller tensors use double uniforms one pair at a time
/// and keep the spare normal for the next call.
public struct TorchGenerator: Sendable {
    /// torch has two Box–Muller kernels for float tensors of 16 or more
    /// elements; their results differ in the last bits. Both are reproduced
    /// here on any CPU; which one a torch user got depends on their CPU only.
    public enum Variant: String, Sendable, Codable, CaseIterable {
        /// `normal_fill_AVX2` (Cephes log/sincos with FMA): torch on every
        /// x86-64 CPU with AVX2 and FMA, AVX-512 ones included. Measured bit for
        /// bit against torch 2.13 on an AVX-512 + AMX Xeon (whose
        /// `get_cpu_capability()` says AVX512) and torch 2.15 on an AVX2 EPYC;
        /// the source has kept normal_stub off the AVX-512 dispatch slot since
        /// AVX-512 dispatch was introduced (torch 1.10, 2021), and releases
        /// before that had no AVX-512 slot at all, so A1111's pinned torch
        /// versions (1.13, 2.0, 2.1, 2.3) all behave the same.
        case avx2
        /// Scalar `normal_fill` (libm log, sin, cos): torch on x86-64 CPUs
        /// without AVX2+FMA, with `ATEN_CPU_CAPABILITY=default`, and on ARM
        /// (Apple silicon). The last bits follow the platform's libm.
        case libm

        /// The kernel torch picks on a CPU with these features
        /// (aten/src/ATen/native/DispatchStub.cpp: AVX2 capability = avx2 && fma).
        public static func torch(on cpu: CPUFeatures) -> Variant {
            cpu.contains([.avx2, .fma]) ? .avx2 : .libm
        }

        /// What torch itself uses on this CPU.
        public static var native: Variant { torch(on: .host) }
    }

    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624
    private var cachedNormal: Double?
    public let variant: Variant

    public init(seed: UInt64, variant: Variant = .native) {
        self.variant = variant
        manualSeed(seed)
    }

    /// The generator's whole state (a training run saves it to resume exactly).
    public struct Snapshot: Sendable, Codable, Equatable {
        public var words: [UInt32]
        public var index: Int
        public var cachedNormal: Double?

        public init(words: [UInt32], index: Int, cachedNormal: Double? = nil) {
            (self.words, self.index, self.cachedNormal) = (words, index, cachedNormal)
        }
    }

    public var snapshot: Snapshot { Snapshot(words: state, index: index, cachedNormal: cachedNormal) }

    public mutating func restore(_ snapshot: Snapshot) throws(ModelError) {
        guard snapshot.words.count == 624, (0...624).contains(snapshot.index) else {
            throw ModelError(.invalid, "a generator state needs 624 words and an index in 0…624")
        }
        state = snapshot.words
        index = snapshot.index
        cachedNormal = snapshot.cachedNormal
    }

    public mutating func manualSeed(_ seed: UInt64) {
        // torch seeds the engine with the low 32 bits only.
        state[0] = UInt32(truncatingIfNeeded: seed)
        for j in 1..<624 {
            let previous = state[j - 1]
            state[j] = 1_812_433_253 &* (previous ^ (previous >> 30)) &+ UInt32(j)
        }
        index = 624
        cachedNormal = nil
    }

    private mutating func twist() {
        for i in 0..<624 {
            let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7FFF_FFFF)
            var next = state[(i + 397) % 624] ^ (y >> 1)
            if y & 1 != 0 { next ^= 0x9908_B0DF }
            state[i] = next
        }
        index = 0
    }

    /// One tempered 32-bit output of MT19937.
    public mutating func nextUInt32() -> UInt32 {
        if index >= 624 { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// torch's float uniform in [0, 1): 24 random bits.
    mutating func nextFloat() -> Float {
        Float(nextUInt32() & 0xFF_FFFF) * Float(1.0 / 16_777_216.0)
    }

    /// CPython's `random.random()` (genrand_res53): the top 27 and 26 bits of two draws, in [0, 1).
    public mutating func nextRes53() -> Double {
        let high = UInt64(nextUInt32() >> 5), low = UInt64(nextUInt32() >> 6)
        return Double(high << 26 | low) / Double(1 << 53)
    }

    /// torch's double uniform: 53 bits from two draws.
    mutating func nextDouble() -> Double {
        let high = UInt64(nextUInt32()), low = UInt64(nextUInt32())
        let bits = ((high << 32) | low) & ((1 << 53) - 1)
        return Double(bits) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `torch.randn(count)` (float32) continuing this generator's stream.
    public mutating func randn(_ count: Int) -> [Float] {
        guard count > 0 else { return [] }
        if count < 16 {
            // The scalar path: double uniforms, one Box–Muller pair per two outputs.
            return (0..<count).map { _ in Float(normalDouble()) }
        }
        var data = [Float](repeating: 0, count: count)
        for i in 0..<count { data[i] = nextFloat() }
        var start = 0
        while start + 16 <= count {
            transformBlock(&data, start)
            start += 16
        }
        if count % 16 != 0 {
            // The tail: 16 fresh uniforms over the last 16 positions, transformed again.
            let tail = count - 16
            for i in tail..<count { data[i] = nextFloat() }
            transformBlock(&data, tail)
        }
        return data
    }

    private func transformBlock(_ data: inout [Float], _ start: Int) {
        let kernel: Int32 = variant == .avx2 ? LT_TORCH_NORMAL_AVX2 : LT_TORCH_NORMAL_LIBM
        data.withUnsafeMutableBufferPointer { lt_torch_normal16($0.baseAddress! + start, kernel) }
    }

    private mutating func normalDouble() -> Double {
        if let cached = cachedNormal {
            cachedNormal = nil
            return cached
        }
        let u1 = nextDouble(), u2 = nextDouble()
        let radius = (-2 * log1p(-u2)).squareRoot()
        let theta = 2 * Double.pi * u1
        cachedNormal = radius * sin(theta)
        return radius * cos(theta)
    }
}
