@testable import Diffusion
import Foundation
import LoRACore
import XCTest

/// Text conditioning, U-Net and VAE against diffusers/transformers (wrapped in
/// A1111's own prompt code) on tiny SD1-, SD2- and SDXL-shaped models.
/// Tolerance: 1e-4 of each tensor's largest magnitude (float32 throughout;
/// the differences are summation order in GEMMs and attention).
final class ModelGoldenTests: XCTestCase {
    nonisolated(unsafe) static var models: [String: StableDiffusionModel] = [:]
    static let lock = NSLock()

    static func model(_ family: String) throws -> StableDiffusionModel {
        lock.lock()
        defer { lock.unlock() }
        if let model = models[family] { return model }
        let path = try EngineGolden.fixture("\(family)_engine.safetensors")
        let model = try StableDiffusionModel(checkpoint: path, tokenizer: EngineGolden.tokenizer, options: .init(loadEncoder: true))
        models[family] = model
        return model
    }

    func testConfigIsReadFromTheWeights() throws {
        for (name, family) in [("sd1", Family.sd1), ("sd2", .sd2), ("sdxl", .sdxl)] {
            XCTAssertEqual(try Self.model(name).config, ArchitectureConfig.engineTiny(family), name)
        }
    }

    func testTextConditioningMatchesA1111() throws {
        let golden = EngineGolden.golden("text")
        for case let entry as [String: Any] in EngineGolden.info["text"] as! [Any] {
            let name = entry["name"] as! String
            var text = try Self.model(entry["family"] as! String).text
            text.clipSkip = entry["clip_skip"] as! Int
            let result = try text.encode(entry["prompt"] as! String, isNegative: entry["negative"] as! Bool)
            let expected = golden[name]!
            XCTAssertEqual(result.context.shape, [1] + expected.shape, name)
            XCTAssertLessThan(EngineGolden.relativeError(result.context.values, expected.floats()), 1e-4, name)
            if let pooled = golden[name + "_pooled"] {
                XCTAssertLessThan(EngineGolden.relativeError(result.pooled?.values ?? [], pooled.floats()), 1e-4, name + " pooled")
            }
        }
    }

    func testUNetMatchesDiffusers() throws {
        let golden = EngineGolden.golden("unet")
        for family in ["sd1", "sd2", "sdxl"] {
            let model = try Self.model(family)
            let x = tensor(golden, "\(family)_x"), context = tensor(golden, "\(family)_context")
            let t = golden["\(family)_t"]!.floats()
            var vector: Tensor?
            if family == "sdxl" {
                let pooled = tensor(golden, "sdxl_pooled"), ids = golden["sdxl_time_ids"]!.floats()
                var rows: [Float] = []
                for b in 0..<2 {
                    let p = Tensor(shape: [1, 128], values: Array(pooled.values[(b * 128)..<((b + 1) * 128)]))
                    let s = ids[(b * 6)..<((b + 1) * 6)].map { Int($0) }
                    rows += TextConditioner.sdxlVector(pooled: p, originalSize: (s[0], s[1]), crop: (s[2], s[3]), targetSize: (s[4], s[5])).values
                }
                vector = Tensor(shape: [2, rows.count / 2], values: rows)
            }
            let out = model.unet.forward(x, timesteps: t, context: context, vector: vector)
            XCTAssertLessThan(EngineGolden.relativeError(out.values, golden["\(family)_out"]!.floats()), 1e-4, family)
        }
    }

    /// A1111 renders sides that are multiples of 8, not only of 64: where the
    /// decoder path comes back larger than the skip it is resized to the skip
    /// by nearest neighbour (its torch.cat hijack). Here: the resize is torch's
    /// nearest rule, and odd latent sizes run through every family's U-Net.
    func testSidesThatAreMultiplesOf8Render() throws {
        // torch: src = floor(dst * (in / out)) with the scale in float32.
        let x = Tensor(shape: [1, 2, 5, 7], values: (0..<70).map(Float.init))
        let y = resizeNearest(x, height: 3, width: 4)
        var expected: [Float] = []
        for c in 0..<2 { for r in 0..<3 { for q in 0..<4 {
            let sr = Int((Float(r) * (Float(5) / 3)).rounded(.down)), sc = Int((Float(q) * (Float(7) / 4)).rounded(.down))
            expected.append(Float(c * 35 + sr * 7 + sc))
        } } }
        XCTAssertEqual(y.shape, [1, 2, 3, 4])
        XCTAssertEqual(y.values, expected)
        for family in ["sd1", "sd2", "sdxl"] {
            let model = try Self.model(family)
            let pipeline = Pipeline(model: model)
            var parameters = GenerationParameters(prompt: "a cat", seed: 3, steps: 1, sampler: SamplerChoice(.euler))
            (parameters.width, parameters.height) = (72, 104)
            let conditions = try pipeline.conditions(prompt: parameters.prompt, negative: "")
            let latents = try pipeline.sample(parameters, conditions: conditions)
            XCTAssertEqual(latents.shape, [1, model.config.latentChannels, 13, 9], family)
            XCTAssertTrue(latents.values.allSatisfy(\.isFinite), family)
            XCTAssertThrowsError(try pipeline.latentSize(width: 70, height: 64), "\(family): not a multiple of 8")
        }
    }

    func testVAEMatchesDiffusers() throws {
        let golden = EngineGolden.golden("vae")
        let model = try Self.model("sd1")
        let decoded = model.decoder!.decode(tensor(golden, "decode_in"))
        XCTAssertLessThan(EngineGolden.relativeError(decoded.values, golden["decode_out"]!.floats()), 1e-4)
        let (mean, logVariance) = model.encoder!.moments(tensor(golden, "encode_in"))
        XCTAssertLessThan(EngineGolden.relativeError(mean.values, golden["encode_mean"]!.floats()), 1e-4)
        XCTAssertLessThan(EngineGolden.relativeError(logVariance.values, golden["encode_logvar"]!.floats()), 1e-4)
    }

    func tensor(_ file: ModelFile, _ name: String) -> Tensor {
        let t = file[name]!
        return Tensor(shape: t.shape, values: t.floats())
    }
}
