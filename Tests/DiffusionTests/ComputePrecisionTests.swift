@testable import Diffusion
import Foundation
import LinearAlgebra
import LoRACore
import XCTest

/// bf16 compute: close to fp32's images, not equal, and never silently
/// claimed on a CPU without bf16 units. The emulated bf16 GEMM (operands
/// rounded to bf16, fp32 products: the same arithmetic up to summation order)
/// runs on every host, so the image difference is measured everywhere;
/// oneDNN's AMX/AVX512-BF16 kernels are compared with it where the CPU has them.
final class ComputePrecisionTests: XCTestCase {
    func testResolutionSaysWhenTheCPUHasNoBF16Units() {
        XCTAssertEqual(ComputePrecision.bf16.resolved(units: .faster).precision, .bf16)
        XCTAssertNil(ComputePrecision.bf16.resolved(units: .faster).note)
        let fallback = ComputePrecision.bf16.resolved(units: .none)
        XCTAssertEqual(fallback.precision, .fp32)
        XCTAssertTrue(fallback.note?.contains("no bf16 matrix units") ?? false)
        let slower = ComputePrecision.bf16.resolved(units: .slowerThanFP32)
        XCTAssertEqual(slower.precision, .fp32, "AVX512-BF16 without AMX multiplies slower than fp32: fp32 runs")
        XCTAssertTrue(slower.note?.contains("slower than its fp32 units") ?? false)
        for units in [ComputePrecision.BF16Units.none, .slowerThanFP32, .faster] {
            XCTAssertEqual(ComputePrecision.fp32.resolved(units: units).precision, .fp32)
            XCTAssertNil(ComputePrecision.fp32.resolved(units: units).note)
        }
        XCTAssertEqual(Pipeline(model: try! model()).precision, .fp32)
        // On this host, as the tools would resolve it; an explicit bf16 routing (tests, lora-bench) runs bf16.
        XCTAssertEqual(ComputePrecision.bf16.resolved().precision, LinearAlgebra.bf16Faster ? .bf16 : .fp32)
        for arithmetic in [GEMMArithmetic.bf16, .bf16Emulated] {
            LinearAlgebra.withRouting(GEMMRouting(parallel: .oneDNN, singleThreaded: .oneDNN, arithmetic: arithmetic)) {
                XCTAssertEqual(ComputePrecision.bf16.resolved().precision, .bf16)
            }
        }
    }

    func model() throws -> StableDiffusionModel {
        try StableDiffusionModel(checkpoint: try EngineGolden.fixture("sd1_engine.safetensors"), tokenizer: EngineGolden.tokenizer)
    }

    /// 128×128: 16×16 latents, so the U-Net's first level takes the Winograd path.
    func render(_ pipeline: Pipeline) throws -> RGBImage {
        var parameters = GenerationParameters(prompt: "a red cube on a table", negativePrompt: "blurry", seed: 7, steps: 4, cfgScale: 7,
                                              sampler: SamplerChoice(.dpmpp2m))
        parameters.width = 128
        parameters.height = 128
        return try pipeline.render(parameters)
    }

    static func meanAbsoluteDifference(_ a: RGBImage, _ b: RGBImage) -> Double {
        zip(a.pixels, b.pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(a.pixels.count)
    }

    func testBF16ImagesAreCloseToFP32NotEqual() throws {
        let model = try model()
        let fp32 = try render(Pipeline(model: model))
        XCTAssertEqual(try render(Pipeline(model: model)), fp32, "fp32 is reproducible bit for bit")
        let emulated = try LinearAlgebra.withRouting(GEMMRouting(parallel: .oneDNN, singleThreaded: .oneDNN, arithmetic: .bf16Emulated)) {
            let pipeline = Pipeline(model: model, precision: .bf16)
            XCTAssertEqual(pipeline.precision, .bf16)
            return try render(pipeline)
        }
        let difference = Self.meanAbsoluteDifference(fp32, emulated)
        print(String(format: "bf16 (emulated) vs fp32, engine fixture 128²: mean |Δpixel| %.3f of 255", difference))
        XCTAssertGreaterThan(difference, 0, "bf16 must change the arithmetic")
        // Measured 1.1 (AMD host, 2026-12-01; 3.1 while bf16 also took the Winograd convolutions): bf16 keeps 8 bits
        // of mantissa and this tiny model has random weights.
        // A broken bf16 path (wrong operands, scaling, layout) gives differences of tens of levels.
        XCTAssertLessThan(difference, 8, "bf16 must stay close to fp32")
        guard LinearAlgebra.bf16Available else {
            print("no bf16 units here (oneDNN bf16 kernel: none): only the emulated bf16 path ran")
            return
        }
        // bf16 magnifies summation order: an fp32 difference of one ulp can round an operand to the neighbouring
        // bf16 value, and four CFG steps carry it into the pixels. So oneDNN's kernels (the emulated arithmetic up
        // to summation order, GEMMRoutingTests) are held to the spread that summation order alone makes in bf16:
        // the emulated path on OpenBLAS instead of oneDNN. Measured on the Intel AVX512-BF16 host (2026-12-03):
        // native vs emulated 1.25, OpenBLAS vs oneDNN emulated 1.38, native vs fp32 1.07 (emulated 0.97);
        // in fp32 the two libraries differ by 0.0003.
        // oneDNN's units forced (on a CPU whose bf16 units are slower than fp32, the tools compute in fp32).
        let native = try LinearAlgebra.withRouting(GEMMRouting(parallel: .oneDNN, singleThreaded: .oneDNN, arithmetic: .bf16)) {
            try render(Pipeline(model: model, precision: .bf16))
        }
        let openBLAS = try LinearAlgebra.withRouting(GEMMRouting(parallel: .openBLAS, singleThreaded: .openBLAS, arithmetic: .bf16Emulated)) {
            try render(Pipeline(model: model, precision: .bf16))
        }
        let nativeDifference = Self.meanAbsoluteDifference(native, emulated), orderSpread = Self.meanAbsoluteDifference(openBLAS, emulated)
        let nativeFromFP32 = Self.meanAbsoluteDifference(native, fp32)
        print(String(format: "bf16 (oneDNN %@) vs emulated: mean |Δpixel| %.3f (emulated on OpenBLAS vs oneDNN: %.3f); vs fp32 %.3f",
                     LinearAlgebra.oneDNNKernels.bf16, nativeDifference, orderSpread, nativeFromFP32))
        XCTAssertLessThan(nativeDifference, 2 * max(orderSpread, 0.5), "oneDNN's bf16 is the emulated arithmetic up to summation order")
        XCTAssertGreaterThan(nativeFromFP32, 0)
        XCTAssertLessThan(nativeFromFP32, 2 * max(difference, 0.5), "as near fp32 as the emulated bf16")
    }
}
