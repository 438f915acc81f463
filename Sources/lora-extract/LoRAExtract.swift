import ArgumentParser
import Foundation
import LoRACore
import ToolSupport

@main
struct LoRAExtract: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora-extract",
        abstract: "Distil a LoRA from the difference of two checkpoints, or shrink a LoRA's rank, by truncated SVD.",
        discussion: """
        Examples:

          lora-extract --base sd15.safetensors --tuned myfinetune.safetensors --rank 64 -o distilled.safetensors
          lora-extract --base sd15.safetensors --tuned myfinetune.ckpt --rank 64 --conv-rank 32 -o distilled_locon.safetensors
          lora-extract --base sdxl_base.safetensors --tuned sdxl_ft.safetensors --rank auto --fro 0.9 -o xl.safetensors
          lora-extract resize big.safetensors --rank 16 -o small.safetensors
          lora-extract resize big.safetensors --dynamic sv_fro=0.95 -o small.safetensors

        Dynamic ranks follow resize_lora.py: sv_ratio=N keeps singular values above σ₀/N, sv_fro=F keeps \
        enough for a fraction F of the Frobenius norm, sv_cumulative=F enough for a fraction F of Σσ; the \
        rank given with --rank (or --max-rank with --rank auto) caps them.

        \(ExitStatus.documentation)
        """,
        version: LoRATools.version,
        subcommands: [Extract.self, Resize.self],
        defaultSubcommand: Extract.self)

    static func main() { toolMain() }
}

/// `--rank N|auto` with `--dynamic method=value` / `--fro F` shared by both commands.
struct RankOptions: ParsableArguments {
    @Option(name: [.long, .customLong("dim"), .customLong("new_rank")],
        help: ArgumentHelp(
            "Rank of each module, or 'auto' to choose it per module (with --fro or --dynamic); with a dynamic rule it is the cap (default: --max-rank when "
                + "extracting, each module's own rank when resizing). kohya: --dim, --new_rank.",
                               valueName: "n|auto"))
    var rank: String?

    @Option(name: [.long, .customLong("conv_dim"), .customLong("new_conv_rank")],
        help: ArgumentHelp(
            "Rank of 3x3 conv modules (LoCon); also turns on the resnet and conv modules when extracting. kohya: --conv_dim, --new_conv_rank.",
                               valueName: "n|auto"))
    var convRank: String?

    @Option(help: ArgumentHelp("Choose ranks per module: sv_ratio=N, sv_fro=F or sv_cumulative=F; --rank then caps them.", valueName: "method=value"))
    var dynamic: String?

    @Option(name: .customLong("dynamic_method"), help: ArgumentHelp("kohya's resize_lora.py spelling of --dynamic: the method (with --dynamic_param).",
                                                                     valueName: "sv_ratio|sv_fro|sv_cumulative"),
            completion: .list(["sv_ratio", "sv_fro", "sv_cumulative"]))
    var dynamicMethod: String?

    @Option(name: .customLong("dynamic_param"), help: ArgumentHelp("kohya's --dynamic_param: the value for --dynamic_method.", valueName: "value"))
    var dynamicParam: String?

    @Option(help: ArgumentHelp("Shorthand for --dynamic sv_fro=F.", valueName: "F"))
    var fro: Double?

    @Option(help: ArgumentHelp("Largest rank when --rank is 'auto'.", valueName: "n"))
    var maxRank: Int = 128

    /// - Parameter uncapped: the cap when no --rank is given with a dynamic rule.
    func rules(uncapped: Int) throws -> (RankRule, RankRule?) {
        if (dynamicMethod == nil) != (dynamicParam == nil) {
            throw ValidationError("--dynamic_method and --dynamic_param go together (or use --dynamic method=value)")
        }
        let kohyaDynamic = dynamicMethod.flatMap { method in dynamicParam.map { "\(method)=\($0)" } }
        if kohyaDynamic != nil && (dynamic != nil || fro != nil) {
            throw ValidationError("give the dynamic rule once: --dynamic, --fro or --dynamic_method/--dynamic_param")
        }
        let dynamicText = dynamic ?? kohyaDynamic ?? fro.map { "sv_fro=\($0)" }
        func rule(_ text: String) throws -> RankRule {
            let cap: Int
            if text == "auto" {
                guard dynamicText != nil else { throw ValidationError("--rank auto needs --fro F or --dynamic method=value") }
                cap = maxRank
            } else {
                guard let n = Int(text), n >= 1 else { throw ValidationError("rank '\(text)' is not a positive number or 'auto'") }
                cap = n
            }
            guard let dynamicText else { return .fixed(cap) }
            do { return try RankRule.parseDynamic(dynamicText, maxRank: cap) } catch { throw ValidationError(error.message) }
        }
        guard let rank else {
            guard let dynamicText else { throw ValidationError("give --rank N, or a dynamic rule (--fro F or --dynamic method=value)") }
            do {
                let main = try RankRule.parseDynamic(dynamicText, maxRank: uncapped)
                return (main, try convRank.map(rule))
            } catch let error as ModelError {
                throw ValidationError(error.message)
            }
        }
        return (try rule(rank), try convRank.map(rule))
    }
}

struct OutputOptions: ParsableArguments {
    @Option(
        name: [.short, .long, .customLong("save_to")],
        help: ArgumentHelp("Output .safetensors file (written atomically; never an input). kohya: --save_to.", valueName: "path"),
            completion: .file(extensions: ["safetensors"]))
    var output: String

    @Option(
        name: [.long, .customLong("save_precision")],
        help: ArgumentHelp("Output precision. kohya: --save_precision (float = fp32).", valueName: "fp16|bf16|fp32"))
    var precision: Precision?

    @Flag(help: "List every module's rank, kept norm and error.")
    var modules = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    func print(_ report: LoRAExtractor.Report, verb: String) throws {
        if json {
            Swift.print(try JSONOutput.string(report))
            return
        }
        let ranks = Dictionary(grouping: report.modules, by: \.rank).map { ($0.key, $0.value.count) }.sorted { $0.0 < $1.0 }
        ToolRun.say("\(verb) \(report.modules.count) \(report.family) modules (\(report.rule)\(report.convRule.map { "; conv \($0)" } ?? ""))")
        if report.textEncoder != "-" { ToolRun.say("text encoder: \(report.textEncoder)") }
        ToolRun.say("ranks: " + ranks.prefix(12).map { "\($0.0) ×\($0.1)" }.joined(separator: ", ") + (ranks.count > 12 ? ", …" : ""))
        if !report.skipped.isEmpty { ToolRun.say("skipped \(report.skipped.count) module(s)") }
        if modules {
            for m in report.modules {
                ToolRun.say(
                    "  \(m.name)  rank \(m.rank)  kept \(String(format: "%.1f%%", 100 * m.keptFraction))  error \(String(format: "%.4f", m.relativeError))  "
                        + "(\(m.method))"
                )
            }
        } else {
            for m in report.modules.sorted(by: { $0.relativeError > $1.relativeError }).prefix(5) {
                ToolRun.say(
                    "  worst: \(m.name)  rank \(m.rank)  kept \(String(format: "%.1f%%", 100 * m.keptFraction))  error "
                        + "\(String(format: "%.4f", m.relativeError))"
                )
            }
        }
        ToolRun.say(String(format: "norm kept %.2f%%, relative error %.5f overall", 100 * report.overallKeptFraction, report.overallRelativeError))
        ToolRun.say("wrote \(report.output) [\(report.hash)] in \(String(format: "%.2f", report.seconds)) s")
    }
}

struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Extract a LoRA: ΔW = tuned − base for every module kohya's LoRA targets, factored by SVD.",
        discussion: """
        Both checkpoints must be the same family (SD1.x, SD2.x or SDXL) with the same shapes; .safetensors and \
        .ckpt are accepted. Text encoders whose largest change is below --min-diff are left out, as kohya does. \
        Factors are clamped at the 0.99 quantile by default, as kohya's extract_lora_from_models.py does \
        (--clamp-quantile 1 disables it). Randomized SVD is used when the rank is far below the matrix size, \
        LAPACK's exact SVD otherwise or with --exact.
        """)

    @Option(name: [.long, .customLong("model_org")], help: ArgumentHelp("The original model. kohya: --model_org.", valueName: "path"),
            completion: .file(extensions: ["safetensors", "ckpt"]))
    var base: String

    @Option(name: [.long, .customLong("model_tuned")], help: ArgumentHelp("The fine-tuned model. kohya: --model_tuned.", valueName: "path"),
            completion: .file(extensions: ["safetensors", "ckpt"]))
    var tuned: String

    @OptionGroup var ranks: RankOptions

    @Option(name: [.long, .customLong("clamp_quantile")], help: ArgumentHelp("Clamp factor values at this quantile. kohya: --clamp_quantile.", valueName: "q"))
    var clampQuantile: Double = 0.99

    @Option(name: [.long, .customLong("min_diff")],
            help: ArgumentHelp("Leave the text encoder out unless some weight changed by more than this. kohya: --min_diff.", valueName: "d"))
    var minDiff: Double = 0.01

    @OptionGroup var kohya: KohyaAcceptedFlags

    @Option(help: ArgumentHelp("alpha of every module (default: the rank, i.e. scale 1).", valueName: "a"))
    var alpha: Double?

    @Flag(help: "Leave out U-Net modules that did not change at all (kohya writes them as zeros).")
    var skipUnchanged = false

    @Flag(help: "Use LAPACK's exact SVD for every module.")
    var exact = false

    @OptionGroup var output: OutputOptions

    mutating func validate() throws {
        _ = try ranks.rules(uncapped: ranks.maxRank)
        guard clampQuantile > 0 && clampQuantile <= 1 else { throw ValidationError("--clamp-quantile must be in (0, 1]") }
        if let alpha, alpha <= 0 { throw ValidationError("--alpha must be positive") }
    }

    func run() throws {
        ToolEnvironment.prepare()
        var options = LoRAExtractor.Options()
        (options.rank, options.convRank) = try ranks.rules(uncapped: ranks.maxRank)
        options.clampQuantile = clampQuantile < 1 ? clampQuantile : nil
        options.minDiff = minDiff
        options.alpha = alpha
        options.skipUnchanged = skipUnchanged
        options.svd.exact = exact
        options.precision = output.precision?.dtype ?? .f16
        let bar = ProgressBar(label: "extracting", unit: .items, enabled: !output.quiet)
        let report = try ToolRun.perform(json: output.json, bar: bar) {
            try LoRAExtractor.extract(base: base, tuned: tuned, output: output.output, options: options, progress: bar.callback)
        }
        try output.print(report, verb: "extracted")
    }
}

struct Resize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resize",
        abstract: "Reduce a LoRA's rank (fixed or dynamic), keeping its effect's scale.",
        discussion: """
        The new alpha is old_alpha/old_rank × new_rank, so the LoRA keeps its strength. up·down is never \
        formed: both factors are QR-factored and only the small core is decomposed. LoHa and LoKr inputs are \
        rewritten as plain LoRA.
        """)

    @Argument(help: ArgumentHelp("The LoRA to resize.", valueName: "lora"), completion: .file(extensions: ["safetensors", "ckpt", "pt"]))
    var input: String?

    @Option(name: .customLong("model"), help: ArgumentHelp("kohya's resize_lora.py spelling of the LoRA to resize.", valueName: "lora"),
            completion: .file(extensions: ["safetensors", "ckpt", "pt"]))
    var kohyaModel: String?

    @OptionGroup var kohya: KohyaAcceptedFlags

    var lora: String { input ?? kohyaModel ?? "" }

    @OptionGroup var ranks: RankOptions

    @OptionGroup var output: OutputOptions

    mutating func validate() throws {
        guard (input == nil) != (kohyaModel == nil) else { throw ValidationError("give the LoRA to resize once (as an argument, or kohya's --model)") }
        _ = try ranks.rules(uncapped: Int.max)
    }

    func run() throws {
        ToolEnvironment.prepare()
        var options = LoRAResizer.Options()
        (options.rank, options.convRank) = try ranks.rules(uncapped: Int.max)
        options.precision = output.precision?.dtype
        let bar = ProgressBar(label: "resizing", unit: .items, enabled: !output.quiet)
        let report = try ToolRun.perform(json: output.json, bar: bar) {
            try LoRAResizer.resize(lora, output: output.output, options: options, progress: bar.callback)
        }
        try output.print(report, verb: "resized")
    }
}
