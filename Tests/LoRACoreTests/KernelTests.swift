import Foundation
import CKernels
import LoRACore
import XCTest

/// The C kernels against independent references: Swift's own Float16,
/// scalar models and known SHA-256 vectors. Each test runs every kernel path
/// this host has (the portable C always, AVX2/SHA-NI where the CPU has them,
/// and the AVX-512 ceiling, under which these kernels stay on AVX2), so
/// results that must not depend on the CPU (conversions, hashes, counts) are
/// proven equal on an AVX2-only and an AVX-512 host alike: the only AVX-512
/// kernels are the attention tiles' exponentials (DiffusionTests, KernelPath).
final class KernelTests: XCTestCase {
    /// Runs `body` on each kernel path, naming the path in failures.
    func onEachPath(_ body: (String) throws -> Void) rethrows {
        var checked: [String] = []
        try KernelPaths.forEachPath { _ in
            let name = KernelPaths.description
            checked.append(name)
            try body(name)
        }
        print("\(name): kernel paths checked: \(checked.joined(separator: " | ")) (host: \(CPUFeatures.host.cpuClass))")
    }

    /// The paths each machine CPU runs, decided from its features on any host; and the ceiling a test sets is the
    /// one the C kernels see, and is restored.
    func testKernelPathsOfEachMachineCPU() {
        XCTAssertEqual(KernelPath.available(on: .intelXeonAMX), [.portable, .avx2, .avx512])
        XCTAssertEqual(KernelPath.available(on: .amdEPYCAVX2), [.portable, .avx2])
        XCTAssertEqual(KernelPath.available(on: .x86Baseline), [.portable])
        let before = KernelPaths.ceiling
        var seen: [KernelPath] = []
        KernelPaths.forEachPath { path in
            XCTAssertEqual(KernelPaths.ceiling, path)
            XCTAssertEqual(lt_kernels_use_avx512() != 0, path == .avx512)
            XCTAssertEqual(lt_kernels_use_avx2() != 0, path != .portable)
            seen.append(path)
        }
        XCTAssertEqual(seen, KernelPath.available(on: .host))
        XCTAssertEqual(KernelPaths.ceiling, before)
    }

    func testHalfToFloatMatchesSwiftFloat16ForAllBitPatterns() {
        let bits = (0...UInt16.max).map { $0 }
        onEachPath { path in
            var out = [Float](repeating: 0, count: bits.count)
            lt_f16_to_f32(bits, &out, bits.count)
            for (i, pattern) in bits.enumerated() {
                let reference = Float(Float16(bitPattern: pattern))
                if reference.isNaN {
                    XCTAssertTrue(out[i].isNaN, path)
                } else {
                    XCTAssertEqual(out[i].bitPattern, reference.bitPattern, "half 0x\(String(pattern, radix: 16)), \(path)")
                }
            }
        }
    }

    func testFloatToHalfRoundsToNearestEvenLikeSwift() {
        var rng = SeededGenerator(seed: 11)
        var values: [Float] = [0, -0, 1, 65504, 65519.99, 65520, 1e-8, 6e-8, 5.96e-8, 2.98e-8, 2.9802322e-8, -3.5, .infinity, -.infinity,
                               Float(Float16.leastNonzeroMagnitude), Float(Float16.leastNormalMagnitude) * 0.75]
        for _ in 0..<200_000 { values.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))) }
        onEachPath { path in
            var out = [UInt16](repeating: 0, count: values.count)
            lt_f32_to_f16(values, &out, values.count)
            for (i, v) in values.enumerated() where !v.isNaN {
                XCTAssertEqual(out[i], Float16(v).bitPattern, "\(v), \(path)")
            }
        }
    }

    func testBFloat16RoundTripAndRounding() {
        onEachPath { path in checkBFloat16(path) }
    }

    private func checkBFloat16(_ path: String) {
        // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to even (1.0).
        let values: [Float] = [1, 1 + 1.0 / 256, 1 + 3.0 / 256, -2.5, 3.4e38, .nan, Float(bitPattern: 0x0001_16C2)]  // 1e-40, a subnormal
        var packed = [UInt16](repeating: 0, count: values.count)
        lt_f32_to_bf16(values, &packed, values.count)
        XCTAssertEqual(packed[0], 0x3F80, path)
        XCTAssertEqual(packed[1], 0x3F80)
        XCTAssertEqual(packed[2], 0x3F82)
        XCTAssertEqual(packed[3], 0xC020)
        var back = [Float](repeating: 0, count: values.count)
        lt_bf16_to_f32(packed, &back, values.count)
        XCTAssertTrue(back[5].isNaN)
        XCTAssertEqual(back[3], -2.5)
        // Long vector: the vector path and the tail agree with a scalar model.
        var long = (0..<1037).map { Float($0) * 0.0137 - 7 }
        var rng = SeededGenerator(seed: 5)
        for _ in 0..<100_000 { long.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))) }
        var packedLong = [UInt16](repeating: 0, count: long.count)
        lt_f32_to_bf16(long, &packedLong, long.count)
        var unpacked = [Float](repeating: 0, count: long.count)
        lt_bf16_to_f32(packedLong, &unpacked, long.count)
        for (i, v) in long.enumerated() {
            let u = v.bitPattern
            if v.isNaN {
                XCTAssertTrue(unpacked[i].isNaN, "NaN stays NaN, \(path)")
                continue
            }
            let expected = UInt16((u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
            XCTAssertEqual(packedLong[i], expected, "\(v), \(path)")
            XCTAssertEqual(unpacked[i].bitPattern, UInt32(expected) << 16, path)
        }
    }

    /// float32 → float8 as torch's `.to()` (Fixtures/golden/make_float8_golden.py): ties, subnormals,
    /// e4m3fn's saturation and e5m2's overflow to inf, byte for byte; and every float8 value survives
    /// our decoder and encoder unchanged. Scalar C on every host: no CPU path to force.
    func testFloat8EncodingMatchesTorch() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Repo.golden("float8/float8.json")))
        let golden = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let inputs = try XCTUnwrap(golden["input_bits"] as? [UInt32]).map { Float(bitPattern: $0) }
        XCTAssertGreaterThan(inputs.count, 2000)
        for (dtype, key) in [(DType.f8e4m3, "e4m3fn"), (.f8e5m2, "e5m2")] {
            let expected = try XCTUnwrap(golden[key] as? [UInt8])
            var bytes = [UInt8](repeating: 0, count: inputs.count)
            try inputs.withUnsafeBufferPointer { src in
                try bytes.withUnsafeMutableBytes { try Conversion.fromFloat(src, to: dtype, into: $0) }
            }
            let wrong = zip(inputs, zip(bytes, expected)).filter { $1.0 != $1.1 }
            XCTAssertTrue(wrong.isEmpty, "\(dtype.rawValue): \(wrong.count) differ from torch, e.g. \(wrong.prefix(5).map { "\($0.0) -> \($0.1.0) not \($0.1.1)" })")
            // Every byte decodes and encodes back to itself (NaNs to the canonical NaN of their sign).
            let all = [UInt8](0...255)
            var decoded = [Float](repeating: 0, count: 256)
            all.withUnsafeBytes { raw in decoded.withUnsafeMutableBufferPointer { Conversion.toFloat(raw, dtype: dtype, count: 256, into: $0) } }
            var again = [UInt8](repeating: 0, count: 256)
            try decoded.withUnsafeBufferPointer { src in try again.withUnsafeMutableBytes { try Conversion.fromFloat(src, to: dtype, into: $0) } }
            for byte in all {
                let value = decoded[Int(byte)]
                XCTAssertEqual(again[Int(byte)], value.isNaN ? (byte & 0x80) | 0x7F : byte, "\(dtype.rawValue) byte \(byte) (\(value))")
            }
        }
    }

    func testSHA256KnownVectors() {
        func hex(_ s: String) -> String { Array(s.utf8).withUnsafeBytes { SHA256.hex($0) } }
        XCTAssertEqual(hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var h = SHA256()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { h.update(chunk) }
        XCTAssertEqual(h.finalize().hexString, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testSHA256KnownVectorsOnEveryPath() {
        onEachPath { _ in testSHA256KnownVectors() }
    }

    func testSHANIAndPortablePathsAgreeOnEveryLength() {
        var rng = SeededGenerator(seed: 3)
        let data = (0..<5000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for length in [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4999] {
            let slice = Array(data[0..<length])
            let portable = KernelPaths.withPortable { slice.withUnsafeBytes { SHA256.hex($0) } }
            // Feed in odd pieces to exercise buffering.
            var h = SHA256()
            var i = 0
            while i < length { let n = min(17, length - i); h.update(Array(slice[i..<(i + n)])); i += n }
            XCTAssertEqual(h.finalize().hexString, portable, "length \(length), \(KernelPaths.description)")
        }
    }

    func testStatsKernelMatchesNaiveLoop() {
        onEachPath { path in checkStats(path) }
    }

    private func checkStats(_ path: String) {
        var values: [Float] = (0..<10_001).map { Float($0 % 97) - 40.5 }
        values[17] = .nan; values[300] = .infinity; values[301] = -.infinity; values[5000] = 0; values[9999] = -0.0
        for kind in 0..<3 {
            var bytes = [UInt8]()
            switch kind {
            case 0: bytes = values.withUnsafeBytes { Array($0) }
            case 1: var h = [UInt16](repeating: 0, count: values.count); lt_f32_to_f16(values, &h, values.count); bytes = h.withUnsafeBytes { Array($0) }
            default: var h = [UInt16](repeating: 0, count: values.count); lt_f32_to_bf16(values, &h, values.count); bytes = h.withUnsafeBytes { Array($0) }
            }
            var decoded = [Float](repeating: 0, count: values.count)
            bytes.withUnsafeBytes { raw in
                let dtype: DType = kind == 0 ? .f32 : (kind == 1 ? .f16 : .bf16)
                decoded.withUnsafeMutableBufferPointer { Conversion.toFloat(raw, dtype: dtype, count: values.count, into: $0) }
            }
            var s = lt_stats()
            lt_stats_init(&s)
            bytes.withUnsafeBytes { lt_stats_accumulate(&s, $0.baseAddress, values.count, Int32(kind)) }
            let finite = decoded.filter(\.isFinite)
            // Counts and extremes are exact on every path; the sums differ in order of addition only.
            XCTAssertEqual(Int(s.nan_count), decoded.filter(\.isNaN).count, path)
            XCTAssertEqual(Int(s.inf_count), decoded.filter(\.isInfinite).count, path)
            XCTAssertEqual(Int(s.zero_count), decoded.filter { $0 == 0 }.count, path)
            XCTAssertClose(s.sum, finite.reduce(0.0) { $0 + Double($1) }, relative: 1e-6, absolute: 1e-3)
            XCTAssertClose(s.sum_squares, finite.reduce(0.0) { $0 + Double($1) * Double($1) }, relative: 1e-6)
            XCTAssertEqual(s.min, finite.min(), path)
            XCTAssertEqual(s.max, finite.max(), path)
        }
    }
}

/// Deterministic generator for tests (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
