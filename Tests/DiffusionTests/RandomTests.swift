import Diffusion
import Foundation
import LoRACore
import XCTest

/// Noise bit-identical to torch.randn with a CPU generator (golden from torch).
final class RandomTests: XCTestCase {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    func testMatchesTorchRandnBitForBit() throws {
        let golden = try ModelFile.open(Self.root + "/Fixtures/golden/engine/noise.safetensors")
        // The golden was made by torch's AVX2 kernel (see engine.json).
        var checked = 0
        for tensor in golden.tensors where tensor.name.hasSuffix("_first") {
            let parts = tensor.name.split(separator: "_")
            let seed = UInt64(parts[0].dropFirst(4))!
            let count = tensor.elementCount
            var generator = TorchGenerator(seed: seed, variant: .avx2)
            let first = generator.randn(count)
            let second = generator.randn(count)
            XCTAssertEqual(first.map(\.bitPattern), tensor.floats().map(\.bitPattern), tensor.name)
            XCTAssertEqual(second.map(\.bitPattern), golden[tensor.name.replacingOccurrences(of: "_first", with: "_second")]!.floats().map(\.bitPattern),
                           tensor.name + " (continued stream)")
            checked += 1
        }
        XCTAssertEqual(checked, 19)
    }

    func testKnownTorchValues() {
        // torch.manual_seed(0); torch.randn(4, 4) / torch.randn(2, 3): printed values every torch user has seen.
        var g = TorchGenerator(seed: 0)
        let block = g.randn(16)
        XCTAssertEqual(block[0], -1.1258, accuracy: 1e-4)
        XCTAssertEqual(block[7], -2.1152, accuracy: 1e-4)
        var h = TorchGenerator(seed: 0)
        let small = h.randn(6)
        XCTAssertEqual(small.map { ($0 * 10000).rounded() / 10000 }, [1.5410, -0.2934, -2.1788, 0.5684, -1.0845, -1.3986])
    }

    func testLibmVariantAgreesToAFewUlps() {
        var a = TorchGenerator(seed: 7, variant: .avx2), b = TorchGenerator(seed: 7, variant: .libm)
        let x = a.randn(4096), y = b.randn(4096)
        // Cephes is accurate to a few 1e-7 relative, with larger ulp counts near zero crossings.
        for (p, q) in zip(x, y) { XCTAssertEqual(p, q, accuracy: 2e-6 * max(1, abs(q))) }
    }
}
