import ArgumentParser
import Diffusion
import Foundation
import LinearAlgebra
import LoRACore
import ToolSupport
#if canImport(Glibc)
import Glibc
#endif

/// The diffusion engine on an SD-sized checkpoint: load, text encoding, one
/// sampling step with CFG (U-Net on a batch of 2), VAE decode, peak memory,
/// and where the time goes. Benchmarks/engine_reference.py measures diffusers
/// on the same shapes; Benchmarks/README.md has the stable-diffusion.cpp recipe.
struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "engine", abstract: "Time the diffusion engine on an SD-sized checkpoint.")

    @Option(help: "An SD1/SD2/SDXL checkpoint (make one: lora-bench make-model --family sd1 /tmp/sd15.safetensors).")
    var model: String

    @Option(help: "CLIP tokenizer (merges file or folder).")
    var tokenizer = "Fixtures/tokenizer/clip_bpe_merges.txt.gz"

    @Option(help: "Image size in pixels (square).")
    var size = 512

    @Option(help: "Timed CFG steps (the median is reported).")
    var steps = 3

    @Option(help: "Weight storage: automatic, f32 or f16 (fp16 tensors kept as fp16, widened per layer).")
    var weights: String = "automatic"

    @Option(name: .customLong("precision"), help: "Compute precision: fp32, or bf16 (operands rounded to bfloat16, fp32 accumulation), on oneDNN's bf16 units (AMX, or AVX512-BF16 forced).")
    var computePrecision: String = "fp32"

    @Flag(help: "Skip the VAE decode.")
    var noDecode = false

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        ToolEnvironment.prepare()
        if ProcessInfo.processInfo.environment["LT_NO_ALLOC"] == nil { EngineAllocator.configure() }
        var results: [String: Double] = [:]
        let compute = try Measure.precision(computePrecision, quiet: json)
        // Before the model is loaded: the GEMM peak of a quiet, warm library.
        let bestGEMMs = Measure.bestGEMMRates(compute)
        results["best_gemm_gflops"] = bestGEMMs[compute]!
        results["best_fp32_gemm_gflops"] = bestGEMMs[.fp32]!
        let loadStart = Date()
        let tokenizerFile = try BPETokenizer.load(tokenizer)
        guard let precision = WeightPrecision(rawValue: weights) else { throw ValidationError("--weights: automatic, f32 or f16") }
        let sd = try StableDiffusionModel(checkpoint: model, tokenizer: tokenizerFile, options: .init(weightPrecision: precision))
        results["load_seconds"] = Date().timeIntervalSince(loadStart)
        results["rss_after_load_mb"] = currentRSS()
        let pipeline = Pipeline(model: sd, precision: compute)

        let textStart = Date()
        let conditions = try pipeline.conditions(prompt: "a photo of a cat sitting on a windowsill, detailed, sunlight",
                                                 negative: "blurry, lowres")
        results["text_seconds"] = Date().timeIntervalSince(textStart)

        let (noise, _) = try pipeline.initialNoise(seed: 1, width: size, height: size)
        var vector: (Tensor, Tensor)?
        if sd.family == .sdxl, let c = conditions.cond.pooled, let u = conditions.uncond.pooled {
            vector = (TextConditioner.sdxlVector(pooled: c, originalSize: (size, size), targetSize: (size, size)),
                      TextConditioner.sdxlVector(pooled: u, originalSize: (size, size), targetSize: (size, size)))
        }
        let denoiser = GuidedDenoiser(unet: sd.unet, schedule: sd.schedule, prediction: sd.prediction, cond: conditions.cond,
                                      uncond: conditions.uncond, condVector: vector?.0, uncondVector: vector?.1, scale: 7)
        var times: [Double] = []
        EngineProfile.enabled = true
        for step in 0..<steps {
            EngineProfile.reset()
            let start = Date()
            _ = compute.run { denoiser.denoised(noise, sigma: sd.schedule.sigmaMax) }
            times.append(Date().timeIntervalSince(start))
            if !json { print(String(format: "step %d: %.2f s", step + 1, times.last!)) }
        }
        let profile = EngineProfile.snapshot()
        results["step_seconds_median"] = times.sorted()[times.count / 2]
        results["step_seconds_min"] = times.min()
        // The step's arithmetic over its last run's time: how close to the GEMM limit.
        let stepFlops = profile.reduce(0) { $0 + $1.flops }
        results["step_gflop"] = stepFlops / 1e9
        results["step_gflops_rate"] = stepFlops / 1e9 / times.last!
        if !noDecode {
            EngineProfile.reset()
            let start = Date()
            _ = try pipeline.decode(noise)
            results["decode_seconds"] = Date().timeIntervalSince(start)
        }
        let decodeProfile = EngineProfile.snapshot()
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        results["peak_rss_mb"] = Double(usage.ru_maxrss) / 1024
        if json {
            var object = results.mapValues { $0 as Any }
            object["precision"] = compute.rawValue
            object["gemm"] = LinearAlgebra.routing.description
            object["step_profile"] = Dictionary(uniqueKeysWithValues: profile.map { ($0.category.rawValue, $0.seconds) })
            object["decode_profile"] = Dictionary(uniqueKeysWithValues: decodeProfile.map { ($0.category.rawValue, $0.seconds) })
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print(String(format: "%@ %dx%d: load %.1f s, text %.2f s, CFG step %.2f s (median of %d), decode %.2f s, peak RSS %.0f MB",
                     sd.family.rawValue, size, size, results["load_seconds"]!, results["text_seconds"]!, results["step_seconds_median"]!,
                     steps, results["decode_seconds"] ?? 0, results["peak_rss_mb"]!))
        // Winograd does a quarter of the multiplications it is credited with, so the ratio can pass 100%.
        print(String(format: "precision %@, GEMM %@: step %.0f GFLOP (direct-algorithm count) at %.1f GFLOP/s = %.0f%% of this host's best GEMM in that arithmetic (%.1f GFLOP/s, 2048²)",
                     compute.rawValue, LinearAlgebra.routing.parallel.rawValue, results["step_gflop"]!, results["step_gflops_rate"]!,
                     100 * results["step_gflops_rate"]! / results["best_gemm_gflops"]!, results["best_gemm_gflops"]!))
        for (label, entries) in [("step", profile), ("decode", decodeProfile)] {
            let total = entries.filter { !$0.category.isBreakdown }.reduce(0) { $0 + $1.seconds }
            print("\(label) profile:")
            for entry in entries where entry.seconds > 0 {
                let label = entry.category.rawValue.padding(toLength: 30, withPad: " ", startingAt: 0)
                let rate = entry.flops > 0 ? String(format: "  %6.1f GFLOP/s", entry.flops / 1e9 / entry.seconds) : ""
                print("  " + label + String(format: " %7.2f s  %5.1f%%  (%d calls)", entry.seconds,
                                            100 * entry.seconds / max(total, 1e-9), entry.calls) + rate)
            }
        }
    }

    func currentRSS() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = text.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }
}
