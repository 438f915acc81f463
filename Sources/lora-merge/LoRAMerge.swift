import ArgumentParser
import Foundation
import LoRACore
import ToolSupport

@main
struct LoRAMerge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora-merge",
        abstract: "Bake LoRAs into a Stable Diffusion checkpoint, or combine LoRAs into one.",
        discussion: """
        A LoRA is given as path[:ratio][:te=x][:unet=x][:lbw=weights]. The ratio scales the whole LoRA \
        (default 1); te= and unet= set separate text-encoder and U-Net ratios as in A1111's \
        <lora:name:te:unet>; lbw= takes LoRA Block Weight values: 17 numbers for SD1/SD2 (BASE, IN01 ... OUT11), \
        12 for SDXL, 20 or 26 for LyCORIS lists, or a preset (NONE, ALL, INS, IND, INALL, MIDD, OUTD, OUTS, OUTALL, ALL0.5).

        Examples:

          lora-merge --model base.safetensors --lora style.safetensors:0.8 --lora char.safetensors -o merged.safetensors
          lora-merge --model base.ckpt --lora char.safetensors:1:lbw=OUTALL --precision fp16 -o merged.safetensors
          lora-merge loras a.safetensors:0.6 b.safetensors:0.4 --rank 32 -o ab.safetensors
          lora-merge loras a.safetensors:0.5 b.safetensors:0.5 --concat -o ab_exact.safetensors

        \(ExitStatus.documentation)
        """,
        version: LoRATools.version,
        subcommands: [Bake.self, Combine.self],
        defaultSubcommand: Bake.self)

    static func main() { toolMain() }
}

struct CommonOptions: ParsableArguments {
    @Option(
        name: [.short, .long, .customLong("save_to")],
        help: ArgumentHelp("Output .safetensors file (written atomically; never an input). kohya: --save_to.", valueName: "path"),
            completion: .file(extensions: ["safetensors"]))
    var output: String

    @Flag(help: "Merge even if a LoRA contains NaN or Inf values.")
    var allowNan = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    @OptionGroup var kohyaFlags: KohyaAcceptedFlags

    @OptionGroup var kohyaLoRAs: KohyaLoRAList
}

struct Bake: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bake",
        abstract: "Bake LoRAs into a checkpoint: W' = W + Σ ratio · block weight · (alpha/rank) · ΔW.",
        discussion: """
        The checkpoint (SD1.x, SD2.x or SDXL, .safetensors or .ckpt) is memory-mapped and the result is written \
        tensor by tensor: changed weights are accumulated in fp32 and rounded once; other tensors are copied byte \
        for byte. Every module is checked against the checkpoint before anything is written.
        """)

    @Option(name: [.short, .long, .customLong("sd_model")], help: ArgumentHelp("The checkpoint to merge into. kohya: --sd_model.", valueName: "path"),
            completion: .file(extensions: ["safetensors", "ckpt", "pt"]))
    var model: String

    @Option(name: .shortAndLong, parsing: .singleValue,
            help: ArgumentHelp("A LoRA: path[:ratio][:unet ratio][:te=x][:unet=x][:lbw=weights]. Repeat for several.", valueName: "lora"),
            completion: .file(extensions: ["safetensors", "ckpt", "pt"]), transform: parseLoRASpec)
    var lora: [LoRASpec] = []

    @Option(name: [.long, .customLong("save_precision")],
        help: ArgumentHelp(
            "Output precision of float tensors (default: each tensor's own). kohya: --save_precision (float = fp32).", valueName: "fp16|bf16|fp32"))
    var precision: Precision?

    @Flag(help: "Skip LoRA modules that match no weight of the checkpoint instead of failing (they are listed either way).")
    var allowUnmatched = false

    @OptionGroup var common: CommonOptions

    mutating func validate() throws {
        lora += common.kohyaLoRAs.specs
        guard !lora.isEmpty else { throw ValidationError("give at least one --lora") }
    }

    func run() throws {
        ToolEnvironment.prepare()
        let bar = ProgressBar(label: "merging", enabled: !common.quiet)
        let report = try ToolRun.perform(json: common.json, bar: bar) {
            try CheckpointBaker.bake(base: model, loras: lora, output: common.output,
                                     options: .init(precision: precision?.dtype, allowUnmatched: allowUnmatched, allowNaN: common.allowNan),
                                     progress: bar.callback)
        }
        if common.json {
            print(try JSONOutput.string(report))
            return
        }
        let say = ToolRun.say
        warnNonFinite(report.nonFiniteTensors, wrote: "the weights they touch are now NaN/Inf and those layers will render black or noise")
        say("merged into \(report.family) checkpoint \(report.base)")
        for entry in report.loras {
            say("  \(entry.spec)  [\(entry.hash)]  \(entry.applied) of \(entry.modules) modules applied")
        }
        if !report.unmatched.isEmpty {
            say("skipped \(report.unmatched.count) unmatched module(s):")
            for u in report.unmatched.prefix(20) { say("  \((u.file as NSString).lastPathComponent): \(u.module) (\(u.reason))") }
            if report.unmatched.count > 20 { say("  … \(report.unmatched.count - 20) more") }
        }
        say("\(report.changedTensors) tensors changed, \(report.copiedTensors) copied unchanged")
        if report.float8ChangedTensors > 0 {
            printError("note: \(report.float8ChangedTensors) changed tensors are stored as float8, the base's own dtype: with 3 mantissa bits "
                       + "the smaller changes round away (--precision fp16 keeps them)")
        }
        say("wrote \(report.output) (\(ReportText.byteSize(report.outputBytes))) in \(String(format: "%.2f", report.seconds)) s")
    }
}

struct Combine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loras",
        abstract: "Combine LoRAs into one kohya-format LoRA, exactly (--concat) or by SVD to a rank (--rank).",
        discussion: """
        --concat stacks the factors: the result reproduces the weighted sum exactly and its rank is the sum of \
        the ranks. --rank truncates the sum by SVD, computed on the factors (no full-size products), and reports \
        the relative error per module and overall. Like svd_merge_lora.py, factors are clamped at the 0.99 \
        quantile by default (--clamp-quantile 1 turns it off).
        """)

    @Argument(help: ArgumentHelp("LoRAs: path[:ratio][:unet ratio][:te=x][:unet=x][:lbw=weights].", valueName: "lora"),
              completion: .file(extensions: ["safetensors", "ckpt", "pt"]), transform: parseLoRASpec)
    var loras: [LoRASpec] = []

    @Flag(help: "Exact combination: ranks add up (the default when no --rank is given).")
    var concat = false

    @Option(name: [.long, .customLong("new_rank")], help: ArgumentHelp("Target rank for SVD merging. kohya: --new_rank.", valueName: "n"))
    var rank: Int?

    @Option(
        name: [.long, .customLong("new_conv_rank")],
        help: ArgumentHelp("Target rank of 3x3 conv modules (default: --rank). kohya: --new_conv_rank.", valueName: "n"))
    var convRank: Int?

    @Option(name: [.long, .customLong("clamp_quantile")], help: ArgumentHelp("Clamp factors at this quantile of their values, as kohya does.", valueName: "q"))
    var clampQuantile: Double = 0.99

    @Option(
        name: [.long, .customLong("save_precision")],
        help: ArgumentHelp("Output precision (default: the inputs'). kohya: --save_precision.", valueName: "fp16|bf16|fp32"))
    var precision: Precision?

    @Flag(help: "List every module's rank and relative error.")
    var modules = false

    @OptionGroup var common: CommonOptions

    mutating func validate() throws {
        loras += common.kohyaLoRAs.specs
        guard !loras.isEmpty else { throw ValidationError("give at least one LoRA") }
        if concat && rank != nil { throw ValidationError("--concat and --rank exclude each other") }
        if let rank, rank < 1 { throw ValidationError("--rank must be at least 1") }
        if let convRank, convRank < 1 { throw ValidationError("--conv-rank must be at least 1") }
        guard clampQuantile > 0 && clampQuantile <= 1 else { throw ValidationError("--clamp-quantile must be in (0, 1]") }
    }

    func run() throws {
        ToolEnvironment.prepare()
        let mode: LoRACombiner.Mode = rank.map { .svd(rank: $0, convRank: convRank ?? $0, clampQuantile: clampQuantile) } ?? .concat
        let bar = ProgressBar(label: "combining", unit: .items, enabled: !common.quiet)
        let report = try ToolRun.perform(json: common.json, bar: bar) {
            try LoRACombiner.combine(loras, mode: mode, output: common.output, precision: precision?.dtype,
                                     allowNaN: common.allowNan, progress: bar.callback)
        }
        if common.json {
            print(try JSONOutput.string(report))
            return
        }
        let print = ToolRun.say
        warnNonFinite(report.nonFiniteTensors, wrote: "the combined LoRA holds NaN/Inf too")
        print("combined \(loras.count) \(report.family) LoRA(s), \(report.mode): \(report.modules.count) modules")
        let worst = report.modules.sorted { $0.relativeError > $1.relativeError }
        if modules {
            for m in report.modules { print("  \(m.name)  rank \(m.rank)  error \(String(format: "%.4f", m.relativeError))") }
        } else if mode != .concat {
            for m in worst.prefix(5) { print("  worst: \(m.name)  rank \(m.rank)  error \(String(format: "%.4f", m.relativeError))") }
        }
        print("relative error overall: \(String(format: "%.5f", report.overallRelativeError))")
        print("wrote \(report.output) [\(report.hash)] in \(String(format: "%.2f", report.seconds)) s")
    }
}

/// --allow-nan did what it says; say what that means.
func warnNonFinite(_ tensors: [String], wrote consequence: String) {
    guard let first = tensors.first else { return }
    printError(TerminalText.escape("warning: merged \(tensors.count) LoRA tensor(s) holding NaN or Inf (--allow-nan), first \(first): \(consequence)"))
}
