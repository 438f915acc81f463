import Diffusion
import Foundation
import LoRACore
import XCTest

/// Four-step sampling runs against k-diffusion (and A1111's DDIM) driving
/// diffusers' U-Net, with noise from the same seeds: every sampler, eps and v
/// prediction, SD1/SD2/SDXL. Tolerance 1e-4 of the latents' scale: four
/// chained U-Net evaluations with CFG 7 amplify the ~1e-6 per-call differences.
/// The noise is compared bit for bit with torch's, with the kernel the golden
/// was made by forced (EngineGolden.noiseVariant), never the host's default.
final class SamplerGoldenTests: XCTestCase {
    func testScheduleMatchesKDiffusion() {
        let schedule = NoiseSchedule.standard
        let alphas = (EngineGolden.info["alphas_cumprod"] as! [NSNumber]).map(\.floatValue)
        XCTAssertEqual(schedule.alphasCumprod, alphas)
        let uniform = (EngineGolden.info["sigmas_uniform_20"] as! [NSNumber]).map(\.floatValue)
        let karras = (EngineGolden.info["sigmas_karras_20"] as! [NSNumber]).map(\.floatValue)
        XCTAssertLessThan(EngineGolden.relativeError(schedule.uniformSigmas(steps: 20), uniform), 1e-6)
        XCTAssertLessThan(EngineGolden.relativeError(schedule.karrasSigmas(steps: 20), karras), 1e-6)
        for case let pair as [NSNumber] in EngineGolden.info["sigma_to_t"] as! [Any] {
            XCTAssertEqual(schedule.timestep(sigma: pair[0].floatValue), pair[1].floatValue, accuracy: 1e-3)
        }
        XCTAssertEqual(SamplerChoice.ddimTimesteps(steps: 4), [1, 251, 501, 751])
        XCTAssertEqual(SamplerChoice.ddimTimesteps(steps: 30).count, 31, "range(0, 1000, 33) has 31 entries: A1111 runs 30 steps")
    }

    func testSamplerNames() {
        XCTAssertEqual(SamplerChoice(name: "DPM++ 2M Karras"), SamplerChoice(.dpmpp2m, schedule: .karras))
        XCTAssertEqual(SamplerChoice(name: "DPM++ 2M"), SamplerChoice(.dpmpp2m, schedule: .karras), "A1111 1.9+: Automatic = Karras")
        XCTAssertEqual(SamplerChoice(name: "euler_a"), SamplerChoice(.eulerAncestral))
        XCTAssertEqual(SamplerChoice(name: "k_dpmpp_sde_karras"), SamplerChoice(.dpmppSDE, schedule: .karras))
        XCTAssertEqual(SamplerChoice(name: "Euler Karras")?.schedule, .karras)
        XCTAssertNil(SamplerChoice(name: "UniPC"))
        XCTAssertEqual(SamplerChoice(.dpmpp2m, schedule: .karras).description, "DPM++ 2M Karras")
        XCTAssertEqual(SamplerChoice(.eulerAncestral).description, "Euler a")
    }

    /// On each kernel path of this host (fused AVX2 attention and vector
    /// activations, then the portable C an AVX2-less CPU runs).
    func testSamplersMatchKDiffusion() throws {
        try KernelPaths.forEachPath { _ in try checkSamplers(path: KernelPaths.description) }
    }

    private func checkSamplers(path: String) throws {
        let golden = EngineGolden.golden("samplers")
        var models: [String: StableDiffusionModel] = [:]
        for case let run as [String: Any] in EngineGolden.info["samplers"] as! [Any] {
            let name = run["name"] as! String, family = run["family"] as! String
            let prediction: Prediction = run["prediction"] as! String == "v" ? .v : .epsilon
            let key = family + "-" + prediction.rawValue
            if models[key] == nil {
                models[key] = try StableDiffusionModel(checkpoint: try EngineGolden.fixture("\(family)_engine.safetensors"),
                                                      tokenizer: EngineGolden.tokenizer, options: .init(prediction: prediction))
            }
            let pipeline = Pipeline(model: models[key]!)
            let samplerName = run["sampler"] as! String
            var choice = SamplerChoice(name: samplerName)!
            if !samplerName.hasSuffix("Karras") { choice.schedule = .uniform }
            var parameters = GenerationParameters(prompt: run["prompt"] as! String, negativePrompt: run["negative"] as! String,
                                                  seed: (run["seed"] as! NSNumber).uint64Value, steps: run["steps"] as! Int,
                                                  cfgScale: (run["cfg"] as! NSNumber).floatValue, sampler: choice,
                                                  noise: EngineGolden.noiseVariant)
            parameters.width = run["size"] as! Int
            parameters.height = parameters.width
            let (noise, _) = try pipeline.initialNoise(seed: parameters.seed, width: parameters.width, height: parameters.height,
                                                       variant: parameters.noise)
            XCTAssertEqual(noise.values.map(\.bitPattern), golden[name + "_initial"]!.floats().map(\.bitPattern),
                           name + " initial noise (\(parameters.noise.rawValue) kernel)")
            let conditions = try pipeline.conditions(prompt: parameters.prompt, negative: parameters.negativePrompt)
            let latents = try pipeline.sample(parameters, conditions: conditions)
            let error = EngineGolden.relativeError(latents.values, golden[name]!.floats())
            XCTAssertLessThan(error, 1e-4, "\(name): relative error \(error), kernels \(path)")
            print("sampler golden \(name) (kernels \(path)): relative error \(error)")
            if let image = golden[name + "_image"] {
                let decoded = pipeline.model.decoder!.decode(latents)
                XCTAssertLessThan(EngineGolden.relativeError(decoded.values, image.floats()), 1e-4, name + " decoded")
            }
        }
    }
}
