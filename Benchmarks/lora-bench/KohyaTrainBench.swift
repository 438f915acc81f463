import ArgumentParser
import Foundation
import ToolSupport

/// lora-train against kohya's own train_network.py, one after the other on the same machine: the same
/// generated dataset folder (shapes, captioned, one repeat), the same command line in kohya's spellings, latents
/// cached, AdamW. Each tool's seconds per optimizer step come from the tool itself (lora-train's `--json`
/// stepSeconds; kohya through Benchmarks/kohya_train_timed.py's optimizer hook), peak RSS from wait4. The issue's
/// protocol: the median of steps 3 to the last (step 1 is set-up; kohya's has no start mark).
/// `lora-bench train` times our step alone beside train_reference.py (diffusers' U-Net with kohya's modules); this
/// runs the tools users run, with their data loaders, text encoders and epochs.
struct KohyaTrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kohya-train", abstract: "Time lora-train beside kohya's train_network.py on the same dataset and arguments.")

    @Option(help: "An SD1/SD2 checkpoint (lora-bench make-model --family sd1 PATH).")
    var model: String

    @Option(help: "Python with kohya's requirements and torchvision installed.")
    var python: String

    @Option(help: "A checkout of kohya-ss/sd-scripts.")
    var sdScripts: String

    @Option(help: "Folder for the dataset, outputs and logs (gitignored); its img/, kohya-out/ and lora-train-out/ are replaced.")
    var work = "Benchmarks/work/kohya-train"

    @Option(help: "CLIP merges: lora-train's --tokenizer, and what kohya's tokenizer is built from (no hub needed).")
    var tokenizer = "Fixtures/tokenizer/clip_bpe_merges.txt.gz"

    @Option(help: "Image side in pixels (--resolution).")
    var size = 512

    @Option(help: "Images in the dataset (one repeat each; an epoch is this many steps at batch 1).")
    var images = 4

    @Option(help: "Optimizer steps (--max_train_steps); the median is of steps 3 and on.")
    var steps = 6

    @Option(help: "--network_dim.")
    var dim = 32

    @Option(help: "--network_alpha.")
    var alpha = 16

    @Option(help: "--mixed_precision for both: no or bf16 (lora-train computes in fp32 where bf16 units are slower).")
    var mixedPrecision = "no"

    @Flag(help: "--gradient_checkpointing for both.")
    var gradientCheckpointing = false

    @Flag(help: "--sdpa for kohya (torch's scaled_dot_product_attention; kohya's default is its plain attention). lora-train accepts it and always computes attention blockwise.")
    var sdpa = false

    @Flag(help: "--network_train_unet_only for both (kohya's default trains the text encoder's modules too).")
    var unetOnly = false

    @Flag(help: "Print JSON.")
    var json = false

    struct Side: Encodable {
        var tool: String
        /// Seconds of each step, numbered from `firstStep`.
        var stepSeconds: [Double]
        var firstStep: Int
        var medianFromStep3: Double
        var peakRSSMB: Double
        var wallSeconds: Double
        var log: String
    }

    struct Report: Encodable {
        var host: [String]
        var arguments: [String]
        var sides: [Side]
    }

    func run() throws {
        ToolEnvironment.prepare()
        guard steps >= 3 else { throw ValidationError("--steps: at least 3 (the median is of steps 3 and on)") }
        guard ["no", "bf16"].contains(mixedPrecision) else { throw ValidationError("--mixed-precision: no or bf16") }
        // Only what this command writes is replaced (never --work itself; kohya's tokenizer cache is kept).
        let data = work + "/img"
        for folder in [data, work + "/kohya-out", work + "/lora-train-out"] { try? FileManager.default.removeItem(atPath: folder) }
        _ = try ShapesDataset.write(into: data, count: images, size: size, repeats: 1, seed: 11)
        var common = ["--pretrained_model_name_or_path", model, "--train_data_dir", data, "--resolution", String(size),
                      "--network_module", "networks.lora", "--network_dim", String(dim), "--network_alpha", String(alpha),
                      "--optimizer_type", "AdamW", "--learning_rate", "1e-4", "--max_train_steps", String(steps), "--train_batch_size", "1",
                      "--cache_latents", "--caption_extension", ".txt", "--mixed_precision", mixedPrecision, "--save_precision", "fp16",
                      "--seed", "0", "--output_name", "bench"]
        if gradientCheckpointing { common.append("--gradient_checkpointing") }
        if sdpa { common.append("--sdpa") }
        if unetOnly { common.append("--network_train_unet_only") }

        if !json { print("\(ToolEnvironment.hostReport.first ?? "")\nkohya train_network.py, then lora-train: \(common.joined(separator: " "))") }
        let kohyaTimes = work + "/kohya-steps.json", kohyaLog = work + "/kohya.log"
        let kohyaRun = Measure.run("kohya", [python, "Benchmarks/kohya_train_timed.py", "--sd-scripts", sdScripts, "--merges", tokenizer,
                                             "--tokenizer-cache", work + "/kohya-tokenizer", "--json-out", kohyaTimes, "--"]
                                       + common + ["--output_dir", work + "/kohya-out"], outputPath: kohyaLog, errorPath: kohyaLog)
        guard kohyaRun.status == 0, let kohyaSteps = try Self.document(kohyaTimes)["step_seconds"] as? [Double], kohyaSteps.count == steps - 1 else {
            throw ValidationError("kohya's train_network.py failed (exit \(kohyaRun.status)): see \(kohyaLog)")
        }
        let ours = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("lora-train").path
        let oursReport = work + "/lora-train.json", oursLog = work + "/lora-train.log"
        let oursRun = Measure.run("lora-train", [ours] + common + ["--tokenizer", tokenizer, "--output_dir", work + "/lora-train-out", "--json"],
                                  outputPath: oursReport, errorPath: oursLog)
        guard oursRun.status == 0, let oursSteps = try Self.document(oursReport)["stepSeconds"] as? [Double], oursSteps.count == steps else {
            throw ValidationError("lora-train failed (exit \(oursRun.status)): see \(oursLog)")
        }
        // Step n is index n - firstStep.
        func median(_ times: [Double], firstStep: Int) -> Double {
            let tail = Array(times.dropFirst(3 - firstStep)).sorted()
            return tail.count % 2 == 1 ? tail[tail.count / 2] : (tail[tail.count / 2 - 1] + tail[tail.count / 2]) / 2
        }
        let sides = [
            Side(tool: "kohya train_network.py", stepSeconds: kohyaSteps, firstStep: 2, medianFromStep3: median(kohyaSteps, firstStep: 2),
                 peakRSSMB: kohyaRun.peakRSSMB, wallSeconds: kohyaRun.seconds, log: kohyaLog),
            Side(tool: "lora-train", stepSeconds: oursSteps, firstStep: 1, medianFromStep3: median(oursSteps, firstStep: 1),
                 peakRSSMB: oursRun.peakRSSMB, wallSeconds: oursRun.seconds, log: oursLog),
        ]
        if json {
            print(try JSONOutput.string(Report(host: ToolEnvironment.hostReport, arguments: common, sides: sides)))
            return
        }
        for side in sides {
            let list = side.stepSeconds.map { String(format: "%.2f", $0) }.joined(separator: " / ")
            print(String(format: "%@: steps %d–%d %@ s; median of steps 3–%d %.2f s; peak RSS %.2f GB; %.0f s in all", side.tool, side.firstStep,
                         steps, list, steps, side.medianFromStep3, side.peakRSSMB / 1024, side.wallSeconds))
        }
        print(String(format: "lora-train per step: %.2f× kohya's speed, in %.0f%% of its memory", sides[0].medianFromStep3 / sides[1].medianFromStep3,
                     100 * sides[1].peakRSSMB / sides[0].peakRSSMB))
    }

    static func document(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path),
              let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        return object
    }
}
