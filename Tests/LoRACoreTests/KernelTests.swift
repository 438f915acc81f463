import CKernels
import LoRACore
import XCTest

/// The C kernels against independent references: Swift's own Float16 and
/// known SHA-256 vectors.
final class KernelTests: XCTestCase {
    func testHalfToFloatMatchesSwiftFloat16ForAllBitPatterns() {
        let bits = (0...UInt16.max).map { $0 }
        var fast = [Float](repeating: 0, count: bits.count)
        var portable = [Float](repeating: 0, count: bits.count)
        lt_f16_to_f32(bits, &fast, bits.count)
        lt_f16_to_f32_scalar(bits, &portable, bits.count)
        for (i, pattern) in bits.enumerated() {
            let reference = Float(Float16(bitPattern: pattern))
            if reference.isNaN {
                XCTAssertTrue(fast[i].isNaN && portable[i].isNaN)
            } else {
                XCTAssertEqual(fast[i].bitPattern, reference.bitPattern, "half 0x\(String(pattern, radix: 16))")
                XCTAssertEqual(portable[i].bitPattern, reference.bitPattern)
            }
        }
    }

    func testFloatToHalfRoundsToNearestEvenLikeSwift() {
        var rng = SystemRandomNumberGenerator()
        var values: [Float] = [0, -0, 1, 65504, 65519.99, 65520, 1e-8, 6e-8, 5.96e-8, 2.98e-8, 2.9802322e-8, -3.5, .infinity, -.infinity,
                               Float(Float16.leastNonzeroMagnitude), Float(Float16.leastNormalMagnitude) * 0.75]
        for _ in 0..<200_000 { values.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng))) }
        var fast = [UInt16](repeating: 0, count: values.count)
        var portable = [UInt16](repeating: 0, count: values.count)
        lt_f32_to_f16(values, &fast, values.count)
        lt_f32_to_f16_scalar(values, &portable, values.count)
        for (i, v) in values.enumerated() where !v.isNaN {
            let reference = Float16(v).bitPattern
            XCTAssertEqual(fast[i], reference, "\(v)")
            XCTAssertEqual(portable[i], reference, "\(v)")
        }
    }

    func testBFloat16RoundTripAndRounding() {
        // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to even (1.0).
        let values: [Float] = [1, 1 + 1.0 / 256, 1 + 3.0 / 256, -2.5, 3.4e38, .nan, 1e-40]
        var packed = [UInt16](repeating: 0, count: values.count)
        lt_f32_to_bf16(values, &packed, values.count)
        XCTAssertEqual(packed[0], 0x3F80)
        XCTAssertEqual(packed[1], 0x3F80)
        XCTAssertEqual(packed[2], 0x3F82)
        XCTAssertEqual(packed[3], 0xC020)
        var back = [Float](repeating: 0, count: values.count)
        lt_bf16_to_f32(packed, &back, values.count)
        XCTAssertTrue(back[5].isNaN)
        XCTAssertEqual(back[3], -2.5)
        // Long vector: the vector path and the tail agree with a scalar model.
        let long = (0..<1037).map { Float($0) * 0.0137 - 7 }
        var fast = [UInt16](repeating: 0, count: long.count)
        lt_f32_to_bf16(long, &fast, long.count)
        for (i, v) in long.enumerated() {
            let u = v.bitPattern
            let expected = UInt16((u &+ 0x7FFF &+ ((u >> 16) & 1)) >> 16)
            XCTAssertEqual(fast[i], expected)
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

    func testSHANIAndPortablePathsAgreeOnEveryLength() {
        var rng = SeededGenerator(seed: 3)
        let data = (0..<5000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for length in [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 4999] {
            let slice = Array(data[0..<length])
            lt_sha256_set_force_portable(1)
            let portable = slice.withUnsafeBytes { SHA256.hex($0) }
            lt_sha256_set_force_portable(0)
            // Feed in odd pieces to exercise buffering.
            var h = SHA256()
            var i = 0
            while i < length { let n = min(17, length - i); h.update(Array(slice[i..<(i + n)])); i += n }
            XCTAssertEqual(h.finalize().hexString, portable, "length \(length)")
        }
    }

    func testStatsKernelMatchesNaiveLoop() {
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
            XCTAssertEqual(Int(s.nan_count), decoded.filter(\.isNaN).count)
            XCTAssertEqual(Int(s.inf_count), decoded.filter(\.isInfinite).count)
            XCTAssertEqual(Int(s.zero_count), decoded.filter { $0 == 0 }.count)
            XCTAssertClose(s.sum, finite.reduce(0.0) { $0 + Double($1) }, relative: 1e-6, absolute: 1e-3)
            XCTAssertClose(s.sum_squares, finite.reduce(0.0) { $0 + Double($1) * Double($1) }, relative: 1e-6)
            XCTAssertEqual(s.min, finite.min())
            XCTAssertEqual(s.max, finite.max())
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
