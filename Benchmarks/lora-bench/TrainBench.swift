import ArgumentParser
import Diffusion
import Foundation
import LinearAlgebra
import LoRACore
import ToolSupport
import Training
#if canImport(Glibc)
import Glibc
#endif

/// One LoRA training step on an SD-sized U-Net, latents cached (so no VAE):
/// the U-Net forward with kohya's attention modules, the loss, the backward
/// through the frozen U-Net into the modules, and an AdamW update. The
/// reference on the same machine: `python3 Benchmarks/train_reference.py`
/// (diffusers' U-Net with sd-scripts' LoRAModule, torch CPU).
struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Time one LoRA training step on an SD-sized checkpoint.")

    @Option(help: "An SD1/SD2 checkpoint (lora-bench make-model --family sd1 PATH).")
    var model: String

    @Option(help: "CLIP tokenizer (merges file or folder).")
    var tokenizer = "Fixtures/tokenizer/clip_bpe_merges.txt.gz"

    @Option(help: "Image size in pixels (square; latents are size/8).")
    var size = 512

    @Option(help: "Network dim (rank) and alpha.")
    var dim = 32

    @Option(help: "Network alpha.")
    var alpha: Float = 16

    @Option(help: "Timed optimizer steps (the median is reported).")
    var steps = 3

    @Flag(help: "Gradient checkpointing (the U-Net's blocks recompute their activations in the backward).")
    var gradientCheckpointing = false

    @Option(help: ArgumentHelp("kohya's LoRA on the 192 attention modules (lora), its LoRA-FA (lora-fa: lora_down frozen), or LyCORIS's locon, "
                               + "loha or lokr on the same modules (preset attn-mlp)."))
    var algo = "lora"

    @Option(help: "rank_dropout: kohya's (rank channels) with lora and lora-fa, LyCORIS's (rows of ΔW) with locon, loha and lokr.")
    var rankDropout: Double?

    @Flag(help: "LyCORIS's dora_wd (weight decomposition) around the locon, loha or lokr modules.")
    var dora = false

    @Option(help: "LoKr's factor (-1: the most balanced split); decompose_both as the kohya_ss GUI writes it (which LyCORIS reads as true).")
    var factor = -1

    @Option(help: "--scale_weight_norms after each step, by the network's rule (LyCORIS's for loha and lokr).")
    var scaleWeightNorms: Double?

    @Option(name: .customLong("precision"), help: "fp32, or bf16 (lora-train --mixed-precision bf16: bf16 GEMM operands, fp32 sums), on oneDNN's bf16 units (AMX, or AVX512-BF16 forced).")
    var computePrecision = "fp32"

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        ToolEnvironment.prepare()
        let precision = try Measure.precision(computePrecision, quiet: json)
        if ProcessInfo.processInfo.environment["LT_NO_ALLOC"] == nil { EngineAllocator.configure() }
        // Before the model is loaded: the GEMM peak of a quiet, warm library, which the step's rate is set beside.
        let bestGEMMs = Measure.bestGEMMRates(precision), bestGEMM = bestGEMMs[precision]!
        let sd = try StableDiffusionModel(checkpoint: model, tokenizer: try BPETokenizer.load(tokenizer))
        guard sd.family != .sdxl else { throw ValidationError("SDXL training is not supported yet") }
        var seed: UInt64 = 1
        func uniform() -> Float {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Float(seed >> 40) / Float(1 << 24)
        }
        let algorithm: LyCORISAlgorithm
        switch algo {
        case "lora", "lora-fa", "locon": algorithm = .locon
        case "loha": algorithm = .loha
        case "lokr": algorithm = .lokr(factor: factor, decomposeBoth: true, fullMatrix: false)
        default: throw ValidationError("--algo: lora, lora-fa, locon, loha or lokr")
        }
        let kohya = algo == "lora" || algo == "lora-fa"
        if dora && kohya { throw ValidationError("--dora is LyCORIS's: with --algo locon, loha or lokr") }
        // LyCORIS's attn-mlp preset places kohya's 192 U-Net attention modules.
        let plan = kohya ? LoRANetwork.kohyaPlan(ModelLayout(sd.config), dim: dim, alpha: alpha, textEncoder: false)
            : LoRANetwork.lycorisPlan(ModelLayout(sd.config), preset: .attnMLP, dim: dim, alpha: alpha, convDim: dim, convAlpha: alpha, textEncoder: false)
        var normals = TorchGenerator(seed: 2)
        let network = algo == "lora" ? LoRANetwork.kohya(plan: plan, uniform: uniform)
            : algo == "lora-fa" ? LoRANetwork.loraFA(plan: plan, normal: { normals.randn($0) })
            : try LoRANetwork.lycoris(plan: plan, algorithm: algorithm, dora: dora ? { (target) throws(ModelError) in try LoRANetwork.weight(of: target, in: sd) } : nil,
                                      uniform: uniform, normal: { normals.randn($0) })
        let tape = network.tape(for: sd)
        if let p = rankDropout {
            tape.dropout = LoRADropout(neuron: nil, rank: p, module: nil, seed: 4, rankDropout: kohya ? .rankChannels : .weightRows)
        }
        let trained = network.parameters.filter { !$0.isFrozen }
        var generator = TorchGenerator(seed: 3)
        let latent = size / 8
        let latents = Tensor(shape: [1, 4, latent, latent], values: generator.randn(4 * latent * latent))
        let noise = Tensor(shape: [1, 4, latent, latent], values: generator.randn(4 * latent * latent))
        let context = Tensor(shape: [1, 77, sd.config.contextDim], values: generator.randn(77 * sd.config.contextDim))
        var optimizer = AdamW()
        var times: [Double] = []
        var loss = 0.0
        EngineProfile.enabled = true
        for step in 0..<steps {
            EngineProfile.reset()
            let start = Date()
            for p in network.parameters { p.gradient.zero() }
            tape.dropout?.pass = UInt64(step)
            loss = precision.run { unetTrainingStep(sd.unet, tape: tape, objective: DiffusionObjective(), latents: latents, noise: noise,
                                                    timesteps: [500], context: context, checkpointing: gradientCheckpointing).loss }
            optimizer.update([ParameterGroup(name: "unet", parameters: trained, learningRate: 1e-4)])
            if let maximum = scaleWeightNorms { network.applyMaxNorm(maximum) }
            times.append(Date().timeIntervalSince(start))
            if !json { print(String(format: "step %d: %.2f s (loss %.5f)", step + 1, times.last!, loss)) }
        }
        let profile = EngineProfile.snapshot()
        // The last step's arithmetic (direct-algorithm count: Winograd is credited with im2col's multiplications, and
        // with checkpointing the recomputed forward counts again) over its time.
        let stepGFLOP = profile.reduce(0) { $0 + $1.flops } / 1e9
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let result: [String: Any] = [
            "algo": algo, "modules": network.modules.count, "parameters": network.parameters.reduce(0) { $0 + $1.count },
            "step_seconds": times, "step_seconds_median": times.sorted()[times.count / 2],
            "peak_rss_mb": Double(usage.ru_maxrss) / 1024, "size": size, "dim": dim, "dora": dora, "rank_dropout": rankDropout ?? 0, "gradient_checkpointing": gradientCheckpointing, "scale_weight_norms": scaleWeightNorms ?? 0, "precision": precision.rawValue, "gemm": LinearAlgebra.routing.description,
            "best_gemm_gflops": bestGEMM, "best_fp32_gemm_gflops": bestGEMMs[.fp32]!, "step_gflop": stepGFLOP, "step_gflops_rate": stepGFLOP / times.last!,
            "step_profile": Dictionary(uniqueKeysWithValues: profile.map { ($0.category.rawValue, $0.seconds) }),
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self))
            return
        }
        print(String(format: "%@ %d², %d %@ modules (dim %d), %@: %.2f s per optimizer step (median of %d), peak RSS %.0f MB",
                     sd.family.rawValue, size, network.modules.count, algo + (dora ? " + DoRA" : "") + (rankDropout.map { " + rank_dropout \($0)" } ?? ""), dim, precision.rawValue, result["step_seconds_median"] as! Double, steps,
                     result["peak_rss_mb"] as! Double))
        print(String(format: "last step: %.0f GFLOP (direct-algorithm count) at %.1f GFLOP/s = %.0f%% of this host's best %@ GEMM (%.1f GFLOP/s, 2048², %@)%@",
                     stepGFLOP, stepGFLOP / times.last!, 100 * stepGFLOP / times.last! / bestGEMM, precision.rawValue, bestGEMM,
                     LinearAlgebra.routing.parallel.rawValue, precision == .bf16 ? String(format: "; fp32 GEMM %.1f GFLOP/s", bestGEMMs[.fp32]!) : ""))
        print("last step's profile (forward layers, then backward):")
        for entry in profile where entry.seconds > 0 && !entry.category.isBreakdown {
            let rate = entry.flops > 0 ? String(format: "  %6.1f GFLOP/s", entry.flops / 1e9 / entry.seconds) : ""
            print("  " + entry.category.rawValue.padding(toLength: 32, withPad: " ", startingAt: 0)
                  + String(format: " %7.2f s  (%d calls)", entry.seconds, entry.calls) + rate)
        }
    }
}
