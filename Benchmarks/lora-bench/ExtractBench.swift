import ArgumentParser
import Foundation
import LoRACore

/// lora-extract against kohya's extract_lora_from_models.py (rank 32, with and
/// without conv rank 32) and resize_lora.py (rank 32 → 8) on SD1.5-sized models.
struct ExtractBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "extract", abstract: "Benchmark lora-extract against kohya's extract and resize scripts.")

    @OptionGroup var options: KohyaComparisonOptions

    @Flag(help: "Skip kohya's conv extraction (about 6 minutes).")
    var skipKohyaConv = false

    func run() throws {
        let (work, python, sdScripts, repeats) = (options.work, options.python, options.sdScripts, options.repeats)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let bench = URL(fileURLWithPath: CommandLine.arguments[0]).path
        let extract = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("lora-extract").path
        let base = work + "/sd15_fp16.safetensors", tuned = work + "/sd15_tuned_fp16.safetensors", lora = work + "/sd15_lora_r32.safetensors"
        if !FileManager.default.fileExists(atPath: base) { _ = Measure.run("generate", [bench, "make-model", "--family", "sd1", base]) }
        if !FileManager.default.fileExists(atPath: tuned) {
            print("generating \(tuned): the base with rank-8 changes planted in every attention and resnet module...")
            _ = Measure.run("generate", [bench, "make-model", "--family", "sd1", "--plant", "all", tuned])
        }
        if !FileManager.default.fileExists(atPath: lora) {
            _ = Measure.run("generate", [bench, "make-model", "--family", "sd1", "--kind", "lora", "--rank", "32", "--alpha", "16", lora])
        }
        var results: [Measurement] = []
        func report(_ m: Measurement, note: String = "") {
            results.append(m)
            print(String(format: "%-58@ %8.2f s  %9.1f MB peak RSS%@%@", m.label as NSString, m.seconds, m.peakRSSMB,
                         (m.status == 0 ? "" : "  (exit \(m.status))") as NSString, note as NSString))
        }
        let oursLinear = work + "/extract_ours_r32.safetensors", oursConv = work + "/extract_ours_r32_conv.safetensors"
        let oursResized = work + "/resize_ours_r8.safetensors"
        report(
            Measure.settled(
                "lora-extract rank 32", [extract, "--base", base, "--tuned", tuned, "--rank", "32", "-o", oursLinear, "--quiet"], repeats: repeats),
               note: try errorNote(oursLinear, base: base, tuned: tuned))
        report(Measure.settled("lora-extract rank 32, conv rank 32", [extract, "--base", base, "--tuned", tuned, "--rank", "32", "--conv-rank", "32",
                                                              "-o", oursConv, "--quiet"], repeats: repeats),
               note: try errorNote(oursConv, base: base, tuned: tuned))
        report(Measure.settled("lora-extract resize r32 → r8", [extract, "resize", lora, "--rank", "8", "-o", oursResized, "--quiet"], repeats: repeats))
        if let python, let sdScripts {
            let env = ["PYTHONPATH": sdScripts]
            let theirsLinear = work + "/extract_kohya_r32.safetensors", theirsConv = work + "/extract_kohya_r32_conv.safetensors"
            report(Measure.settled("kohya extract_lora_from_models.py --dim 32", [python, sdScripts + "/networks/extract_lora_from_models.py",
                                                                         "--model_org", base, "--model_tuned", tuned, "--save_to", theirsLinear,
                                                                         "--dim", "32", "--save_precision", "fp16"], repeats: 1, environment: env),
                   note: try errorNote(theirsLinear, base: base, tuned: tuned))
            if !skipKohyaConv {
                report(Measure.settled("kohya extract … --dim 32 --conv_dim 32", [python, sdScripts + "/networks/extract_lora_from_models.py",
                                                                          "--model_org", base, "--model_tuned", tuned, "--save_to", theirsConv,
                                                                          "--dim", "32", "--conv_dim", "32", "--save_precision", "fp16"],
                               repeats: 1, environment: env),
                       note: try errorNote(theirsConv, base: base, tuned: tuned))
            }
            report(Measure.settled("kohya resize_lora.py --new_rank 8", [python, sdScripts + "/networks/resize_lora.py", "--model", lora,
                                                                 "--save_to", work + "/resize_kohya_r8.safetensors", "--new_rank", "8",
                                                                 "--save_precision", "fp16"], repeats: 1, environment: env))
        }
        try JSONEncoder().encode(results).write(to: URL(fileURLWithPath: work + "/extract-results.json"))
    }

    /// How well an extracted LoRA reconstructs tuned − base: computed by a
    /// child process so this one stays small (see Measure).
    func errorNote(_ path: String, base: String, tuned: String) throws -> String {
        guard FileManager.default.fileExists(atPath: path) else { return "" }
        let bench = URL(fileURLWithPath: CommandLine.arguments[0]).path
        let output = options.work + "/error-note.txt"
        _ = Measure.run("error", [bench, "extract-error", path, "--base", base, "--tuned", tuned], outputPath: output)
        return (try? String(contentsOfFile: output, encoding: .utf8))?.trimmingCharacters(in: .newlines) ?? ""
    }
}

/// The reconstruction error of an extracted LoRA against tuned − base.
struct ExtractError: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "extract-error", abstract: "Relative error of an extracted LoRA against tuned − base.")

    @Argument var lora: String
    @Option var base: String
    @Option var tuned: String

    func run() throws {
        print(try Self.note(lora, base: base, tuned: tuned))
    }

    static func note(_ path: String, base: String, tuned: String) throws -> String {
        let network = try NetworkFile(model: ModelFile.open(path))
        let b = try ModelFile.open(base), t = try ModelFile.open(tuned)
        var error = 0.0, norm = 0.0
        for module in network.modules {
            guard let target = KeyMap.sd1.target(forModule: module.name), let x = b[target.checkpointKey], let y = t[target.checkpointKey] else { continue }
            let columns = x.shape.dropFirst().reduce(1, *)
            let rows = target.rows(inPackedRows: x.shape[0]) ?? 0..<x.shape[0]
            let xs = x.floats(), ys = y.floats(), d = try module.delta()
            for (n, i) in ((rows.lowerBound * columns)..<(rows.upperBound * columns)).enumerated() {
                let exact = Double(ys[i]) - Double(xs[i])
                error += (exact - Double(d.values[n])) * (exact - Double(d.values[n]))
                norm += exact * exact
            }
        }
        return String(format: "  relative error %.4f", norm > 0 ? (error / norm).squareRoot() : 0)
    }
}
