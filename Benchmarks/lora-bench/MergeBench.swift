import ArgumentParser
import Foundation
import LoRACore

/// lora-merge against kohya's merge_lora.py and svd_merge_lora.py on an
/// SD1.5-sized fp16 checkpoint and two rank-32 alpha-16 LoRAs.
struct MergeBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "merge", abstract: "Benchmark lora-merge against kohya's merge scripts.")

    @OptionGroup var options: KohyaComparisonOptions

    func run() throws {
        let (work, python, sdScripts, repeats) = (options.work, options.python, options.sdScripts, options.repeats)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let bench = URL(fileURLWithPath: CommandLine.arguments[0]).path
        let tools = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let merge = tools.appendingPathComponent("lora-merge").path
        let checkpoint = work + "/sd15_fp16.safetensors"
        let loraA = work + "/sd15_lora_r32.safetensors", loraB = work + "/sd15_lora_r32_b.safetensors"
        if !FileManager.default.fileExists(atPath: checkpoint) {
            _ = Measure.run("generate", [bench, "make-model", "--family", "sd1", checkpoint])
        }
        for (path, seed) in [(loraA, "1"), (loraB, "2")] where !FileManager.default.fileExists(atPath: path) {
            _ = Measure.run("generate", [bench, "make-model", "--family", "sd1", "--kind", "lora", "--rank", "32", "--alpha", "16", "--seed", seed, path])
        }
        var results: [Measurement] = []
        func report(_ m: Measurement) {
            results.append(m)
            print(String(format: "%-60@ %8.2f s  %9.1f MB peak RSS%@", m.label as NSString, m.seconds, m.peakRSSMB,
                         (m.status == 0 ? "" : "  (exit \(m.status))") as NSString))
        }
        let ours = work + "/merged_ours.safetensors", ours16 = work + "/ab16_ours.safetensors"
        report(Measure.settled("lora-merge bake r32 into SD1.5 fp16 (fp16 out)", [merge, "--model", checkpoint, "--lora", loraA + ":1.0",
                                                                        "--precision", "fp16", "-o", ours, "--quiet"], repeats: repeats))
        report(Measure.settled("lora-merge loras 2×r32 → r16 (SVD)", [merge, "loras", loraA + ":0.6", loraB + ":0.4", "--rank", "16", "-o", ours16, "--quiet"],
                       repeats: repeats))
        if let python, let sdScripts {
            let env = ["PYTHONPATH": sdScripts]
            let theirs = work + "/merged_kohya.safetensors", theirs16 = work + "/ab16_kohya.safetensors"
            report(Measure.settled("kohya merge_lora.py --save_precision fp16", [python, sdScripts + "/networks/merge_lora.py", "--sd_model", checkpoint,
                                                                         "--save_to", theirs, "--models", loraA, "--ratios", "1.0", "--save_precision", "fp16"],
                           repeats: 1, environment: env))
            report(Measure.settled("kohya svd_merge_lora.py --new_rank 16", [python, sdScripts + "/networks/svd_merge_lora.py", "--models", loraA, loraB,
                        "--ratios", "0.6", "0.4", "--new_rank", "16", "--save_to", theirs16, "--save_precision", "fp16",
                    ],
                           repeats: 1, environment: env))
            try compareCheckpoints(ours, theirs)
        }
        try JSONEncoder().encode(results).write(to: URL(fileURLWithPath: work + "/merge-results.json"))
    }

    /// How far our merged checkpoint is from kohya's, in fp16 ulps.
    func compareCheckpoints(_ a: String, _ b: String) throws {
        let x = try ModelFile.open(a), y = try ModelFile.open(b)
        var worst = 0, differing = 0, total = 0
        for t in x.tensors {
            guard let u = y[t.name], u.dtype == .f16, t.dtype == .f16 else { continue }
            let p = t.rawBytes, q = u.rawBytes
            for i in stride(from: 0, to: p.count, by: 2) {
                let s = Int16(bitPattern: UInt16(p[i]) | UInt16(p[i + 1]) << 8), r = Int16(bitPattern: UInt16(q[i]) | UInt16(q[i + 1]) << 8)
                func ordered(_ v: Int16) -> Int { v < 0 ? -Int(v & 0x7FFF) : Int(v) }
                let d = abs(ordered(s) - ordered(r))
                if d > 0 { differing += 1; worst = max(worst, d) }
                total += 1
            }
        }
        print(
            "merged checkpoint vs kohya: \(differing) of \(total) fp16 values differ, by at most \(worst) ulp; keys: \(x.tensors.count) vs \(y.tensors.count)")
    }
}
