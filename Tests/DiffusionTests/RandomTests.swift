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
        // The golden was made by torch's AVX2 kernel (engine.json: cpu_capability AVX2); forced here, so
        // this holds on any host. The same values were measured from torch 2.13 on an AVX-512 + AMX Xeon.
        XCTAssertEqual(EngineGolden.noiseVariant, .avx2)
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

    /// torch's kernel choice for each CPU this project's machines have, and the
    /// fallback: the AVX-512 + AMX Xeon gets the AVX2 kernel as torch gives it there.
    func testTorchsKernelChoicePerCPU() {
        XCTAssertEqual(TorchGenerator.Variant.torch(on: .amdEPYCAVX2), .avx2)
        XCTAssertEqual(TorchGenerator.Variant.torch(on: .intelXeonAMX), .avx2, "torch never dispatches normal to an AVX-512 kernel")
        XCTAssertEqual(TorchGenerator.Variant.torch(on: [.avx512f, .avx2, .fma, .f16c]), .avx2)
        XCTAssertEqual(TorchGenerator.Variant.torch(on: [.avx2]), .libm, "AVX2 without FMA is torch's AVX (not AVX2) capability")
        XCTAssertEqual(TorchGenerator.Variant.torch(on: .x86Baseline), .libm)
        // This host: whichever of the two machine CPUs (or another) it is, the default is torch's choice for it.
        let host = CPUFeatures.host
        let expected: TorchGenerator.Variant = host.contains([.avx2, .fma]) ? .avx2 : .libm
        XCTAssertEqual(TorchGenerator.Variant.native, expected, "host \(host.cpuClass): \(host)")
        XCTAssertEqual(TorchGenerator(seed: 1).variant, expected)
        XCTAssertEqual(GenerationParameters(prompt: "").noise, expected)
        print("noise kernel default on this host (\(host.cpuClass)): \(TorchGenerator.Variant.native.rawValue)")
    }

    /// Every kernel variant gives the same bits whatever CPU runs it: the
    /// AVX2 variant's FMAs are spelled out (fmaf), so the C kernel paths
    /// (forced portable or not) and the host do not change a single value.
    func testNoiseDoesNotDependOnTheKernelPathsOfThisHost() {
        for variant in TorchGenerator.Variant.allCases {
            var a = TorchGenerator(seed: 99, variant: variant)
            let fast = a.randn(4 * 64 * 64)
            let portable = KernelPaths.withPortable { () -> [Float] in
                var b = TorchGenerator(seed: 99, variant: variant)
                return b.randn(4 * 64 * 64)
            }
            XCTAssertEqual(fast.map(\.bitPattern), portable.map(\.bitPattern), variant.rawValue)
        }
    }

    func testKnownTorchValues() {
        // torch.manual_seed(0); torch.randn(4, 4) / torch.randn(2, 3): printed values every torch user has seen.
        var g = TorchGenerator(seed: 0, variant: .avx2)
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
