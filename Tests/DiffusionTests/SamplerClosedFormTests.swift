@testable import Diffusion
import Foundation
import LoRACore
import XCTest

/// LMS, Heun, DPM2 and DPM2 a against k-diffusion's own functions, DDIM and
/// PLMS against A1111's (Fixtures/golden/make_sampler_golden.py), on Gaussian
/// data, whose ideal denoiser is known in closed form, so the samplers'
/// arithmetic is checked alone: the same σ list or timesteps, initial latents
/// and ancestral noise. Float32 on
/// both sides; the tolerance allows a few roundings per step (torch's log/exp
/// of the midpoint σ, fused multiply-adds), not a wrong term.
final class SamplerClosedFormTests: XCTestCase {
    struct Golden: Decodable {
        let shape: [Int], mu: [Float], s: Float, sigmas: [Float], x0: [Float]
        let ancestral_noise: [[Float]], lms_coefficients: [[Double]], results: [String: [Float]]
        let noise: [Float], steps: Int, timesteps: [Int], timestep_results: [String: [Float]], timestep_calls: [String: [Int]]
    }

    /// The same data in the variance-preserving form A1111's timestep samplers use, x_t = √ᾱ x0 + √(1 − ᾱ) ε:
    /// the ideal noise prediction, with the timesteps it was asked at.
    final class GaussianEpsilon: Denoiser, @unchecked Sendable {
        let mu: [Float], s: Float, alphas: [Float]
        var calls: [Int] = []
        init(mu: [Float], s: Float, alphas: [Float]) { (self.mu, self.s, self.alphas) = (mu, s, alphas) }
        func denoised(_ x: Tensor, sigma: Float) -> Tensor { fatalError("timestep samplers ask for ε") }
        func epsilon(_ x: Tensor, timestep: Int) -> Tensor {
            calls.append(timestep)
            let a = alphas[timestep], root = a.squareRoot()
            return Tensor(shape: x.shape, values: zip(x.values, mu).map { x, m in
                let x0 = m + root * s * s * (x - root * m) / (a * s * s + 1 - a)
                return (x - root * x0) / (1 - a).squareRoot()
            })
        }
    }

    struct Gaussian: Denoiser {
        let mu: [Float], s: Float
        func denoised(_ x: Tensor, sigma: Float) -> Tensor {
            Tensor(shape: x.shape, values: zip(x.values, mu).map { x, m in (x * s * s + m * sigma * sigma) / (s * s + sigma * sigma) })
        }
        func epsilon(_ x: Tensor, timestep: Int) -> Tensor { fatalError("k-diffusion samplers ask for denoised") }
    }

    struct Recorded: NoiseSource {
        var queue: [[Float]]
        mutating func noise(like x: Tensor, sigma: Float, sigmaNext: Float) -> Tensor { Tensor(shape: x.shape, values: queue.removeFirst()) }
    }

    func testSamplersMatchKDiffusionOnAClosedFormDenoiser() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: EngineGolden.folder + "/samplers_closed_form.json"))
        let golden = try JSONDecoder().decode(Golden.self, from: data)
        let model = Gaussian(mu: golden.mu, s: golden.s), x0 = Tensor(shape: golden.shape, values: golden.x0)
        var noise = Recorded(queue: golden.ancestral_noise)
        let ours: [String: Tensor] = [
            "lms": KDiffusion.lms(model, x: x0, sigmas: golden.sigmas),
            "heun": KDiffusion.heun(model, x: x0, sigmas: golden.sigmas),
            "dpm2": KDiffusion.dpm2(model, x: x0, sigmas: golden.sigmas),
            "dpm2_ancestral": KDiffusion.dpm2Ancestral(model, x: x0, sigmas: golden.sigmas, noise: &noise),
        ]
        XCTAssertTrue(noise.queue.isEmpty, "DPM2 a draws noise once per step but the last, as k-diffusion")
        for (name, expected) in golden.results.sorted(by: { $0.key < $1.key }) {
            let result = try XCTUnwrap(ours[name]).values
            let worst = zip(result, expected).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThan(worst, 2e-5, name)
        }
        // The samplers differ from each other and from Euler on this run (a mix-up would not pass twice).
        let euler = KDiffusion.euler(model, x: x0, sigmas: golden.sigmas).values
        for (name, result) in ours { XCTAssertGreaterThan(zip(result.values, euler).map { abs($0 - $1) }.max() ?? 0, 1e-3, name) }
        // LMS's weights: the Lagrange integrals scipy's quad gives (its integrand runs in float32: NumPy 2 keeps
        // the float32 σ's type against Python floats, so 1e-6, not exact).
        for (i, row) in golden.lms_coefficients.enumerated() {
            for (j, c) in row.enumerated() {
                XCTAssertEqual(KDiffusion.multistepCoefficient(order: row.count, sigmas: golden.sigmas, step: i, term: j), c, accuracy: 1e-6 * max(1, abs(c)))
            }
        }
    }

    func testTimestepSamplersMatchA1111OnAClosedFormDenoiser() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: EngineGolden.folder + "/samplers_closed_form.json"))
        let golden = try JSONDecoder().decode(Golden.self, from: data)
        XCTAssertEqual(SamplerChoice.ddimTimesteps(steps: golden.steps), golden.timesteps)
        let alphas = NoiseSchedule.standard.alphasCumprod, start = Tensor(shape: golden.shape, values: golden.noise)
        var none = Recorded(queue: [])
        var results: [String: [Float]] = [:]
        for name in ["ddim", "plms"] {
            let model = GaussianEpsilon(mu: golden.mu, s: golden.s, alphas: alphas)
            results[name] = (name == "ddim" ? KDiffusion.ddim(model, x: start, timesteps: golden.timesteps, alphasCumprod: alphas, noise: &none)
                                            : KDiffusion.plms(model, x: start, timesteps: golden.timesteps, alphasCumprod: alphas)).values
            XCTAssertEqual(model.calls, golden.timestep_calls[name], "\(name): the timesteps the model is asked at")
            let expected = try XCTUnwrap(golden.timestep_results[name])
            let worst = zip(results[name]!, expected).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThan(worst, 2e-5, name)
        }
        // PLMS is not DDIM with another name: its multistep moves the result well beyond the tolerance.
        XCTAssertGreaterThan(zip(results["plms"]!, results["ddim"]!).map { abs($0 - $1) }.max() ?? 0, 1e-2)
        XCTAssertEqual(SamplerChoice(name: "PLMS"), SamplerChoice(.plms))
        XCTAssertEqual(SamplerChoice(.plms).description, "PLMS")
    }

    struct DiffusersGolden: Decodable {
        struct Run: Decodable { let calls: [Int], orders: [Int], result: [Float] }
        let shape: [Int], mu: [Float], s: Float, noise: [Float], alphas_cumprod: [Float]
        let dpm_singlestep: [String: Run], dpm_singlestep_timesteps: [String: [Int]]
    }

    /// kohya's dpmsingle against diffusers' DPMSolverSinglestepScheduler (make_diffusers_sampler_golden.py): its
    /// timesteps for 1–60 steps, its order lists, and runs of 7 and 8 steps on the closed-form ε with its ᾱ.
    func testDPMSolverSinglestepMatchesDiffusersOnAClosedFormDenoiser() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: EngineGolden.folder + "/diffusers_samplers_closed_form.json"))
        let golden = try JSONDecoder().decode(DiffusersGolden.self, from: data)
        for (steps, expected) in golden.dpm_singlestep_timesteps {
            XCTAssertEqual(SamplerChoice(.dpmpp2s).timesteps(steps: Int(steps)!), expected, "\(steps) steps")
        }
        let start = Tensor(shape: golden.shape, values: golden.noise)
        var results: [Tensor] = []
        for (steps, run) in golden.dpm_singlestep.sorted(by: { $0.key < $1.key }) {
            XCTAssertEqual(KDiffusion.singlestepOrders(steps: Int(steps)!), run.orders, "\(steps) steps")
            let model = GaussianEpsilon(mu: golden.mu, s: golden.s, alphas: golden.alphas_cumprod)
            let result = KDiffusion.dpmSolverSinglestep(model, x: start, timesteps: SamplerChoice.singlestepTimesteps(steps: Int(steps)!),
                                                        alphasCumprod: golden.alphas_cumprod)
            XCTAssertEqual(model.calls, run.calls, "\(steps) steps: the timesteps the model is asked at")
            let worst = zip(result.values, run.result).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThan(worst, 2e-5, "\(steps) steps")
            results.append(result)
        }
        // Not DDIM on the same timesteps under another name: the second-order steps move the result well beyond the tolerance.
        let model = GaussianEpsilon(mu: golden.mu, s: golden.s, alphas: golden.alphas_cumprod)
        var none = Recorded(queue: [])
        let firstOrder = KDiffusion.ddim(model, x: start, timesteps: [0] + SamplerChoice.singlestepTimesteps(steps: 8).reversed(),
                                         alphasCumprod: golden.alphas_cumprod, noise: &none)
        XCTAssertGreaterThan(zip(results[1].values, firstOrder.values).map { abs($0 - $1) }.max() ?? 0, 1e-2)
        XCTAssertEqual(SamplerChoice(name: "DPM++ 2S"), SamplerChoice(.dpmpp2s))
        XCTAssertEqual(SamplerChoice(.dpmpp2s, schedule: .karras).description, "DPM++ 2S", "no σ schedule to name")
        XCTAssertEqual(SamplerChoice(.ddim, schedule: .karras).description, "DDIM")
    }

    /// The pipeline runs each of them on the engine fixture: finite latents, the same from the same seed
    /// (DPM2 a's noise continues the image's generator), and each sampler its own result.
    func testPipelineRunsEachNewSampler() throws {
        let model = try StableDiffusionModel(checkpoint: try EngineGolden.fixture("sd1_engine.safetensors"), tokenizer: EngineGolden.tokenizer)
        let pipeline = Pipeline(model: model)
        func render(_ kind: SamplerKind) throws -> [Float] {
            var parameters = GenerationParameters(prompt: "a red cat", negativePrompt: "", seed: 5, steps: 3, cfgScale: 6, sampler: SamplerChoice(kind))
            (parameters.width, parameters.height) = (64, 64)
            let conditions = try pipeline.conditions(prompt: parameters.prompt, negative: parameters.negativePrompt, adapters: .empty)
            return try pipeline.sample(parameters, conditions: conditions, adapters: .empty).values
        }
        var results: [[Float]] = []
        for kind in [SamplerKind.lms, .heun, .dpm2, .dpm2Ancestral, .plms, .dpmpp2s] {
            let a = try render(kind)
            XCTAssertTrue(a.allSatisfy(\.isFinite), kind.rawValue)
            XCTAssertEqual(a, try render(kind), "\(kind.rawValue): the same seed, the same latents")
            results.append(a)
        }
        results.append(try render(.euler))
        XCTAssertEqual(Set(results.map { $0.map(\.bitPattern) }).count, results.count, "seven samplers, seven results")
    }

    /// A1111 runs DPM2 and DPM2 a on σ for steps + 1 with the one before the final 0 dropped
    /// (`discard_next_to_last_sigma`), the others on σ for the steps asked.
    func testDPM2DropsThePenultimateSigma() {
        let table = NoiseSchedule.standard
        let plain = table.uniformSigmas(steps: 11)
        XCTAssertEqual(SamplerChoice(.dpm2).sigmas(steps: 10, schedule: table), Array(plain.prefix(10)) + [0])
        XCTAssertEqual(SamplerChoice(.dpm2Ancestral, schedule: .karras).sigmas(steps: 10, schedule: table).count, 11)
        XCTAssertEqual(SamplerChoice(.heun).sigmas(steps: 10, schedule: table), table.uniformSigmas(steps: 10))
        XCTAssertEqual(SamplerChoice(name: "DPM2 a Karras"), SamplerChoice(.dpm2Ancestral, schedule: .karras))
        XCTAssertEqual(SamplerChoice(name: "k_dpm_2_a"), SamplerChoice(.dpm2Ancestral))
        XCTAssertEqual(SamplerChoice(name: "k_lms"), SamplerChoice(.lms))
        XCTAssertEqual(SamplerChoice(name: "Heun")?.description, "Heun")
    }
}
