import ArgumentParser
import Foundation
import LoRACore
import ToolSupport

@main
struct LoRAInspect: ParsableCommand {
    static func main() { toolMain() }

    static let configuration = CommandConfiguration(
        commandName: "lora-inspect",
        abstract: "Audit LoRAs and Stable Diffusion checkpoints: format, base model, rank and alpha, blocks, training metadata, hashes and health.",
        discussion: """
        Reads .safetensors files and PyTorch .ckpt/.pt/.pth/.bin files. Pickle files are read by a \
        restricted interpreter that knows only what a state dict needs and never runs code: a file that \
        references anything else is reported as dangerous and not loaded.

        For a LoRA (kohya LoRA/LoCon, LyCORIS LoHa/LoKr/(IA)^3/full, DyLoRA, diffusers/PEFT) the report gives \
        the network type, the base family it targets (SD1.x, SD2.x, SDXL, or "unknown"), module counts, \
        ranks and alphas, a per-block table in LoRA Block Weight order, the training metadata and the most \
        frequent caption tags. For a checkpoint it gives the family, components, EMA, precision and parameter counts.

        Examples:

          lora-inspect my_lora.safetensors
          lora-inspect my_lora.safetensors --json
          lora-inspect model.ckpt
          lora-inspect *.safetensors --summary
          lora-inspect my_lora.safetensors --svd --modules

        \(ExitStatus.documentation) With several files the highest status wins.
        """,
        version: LoRATools.version)

    @Argument(help: ArgumentHelp("Files to inspect.", valueName: "file"),
              completion: .file(extensions: ["safetensors", "ckpt", "pt", "pth", "bin"]))
    var files: [String]

    @Flag(help: "Print JSON for scripts: one object for one file, an array for several.")
    var json = false

    @Flag(help: "One line per file: kind, family, type, rank/alpha, modules, size, hash, findings.")
    var summary = false

    @Flag(name: .customLong("hash"), inversion: .prefixedNo,
          help: ArgumentHelp("Compute SHA-256, AutoV2 and AutoV3 (default: on for LoRAs and files under 64 MB).",
                             discussion: "Hashing reads the whole file; a 7 GB checkpoint takes a few seconds."))
    var hash: Bool?

    @Flag(inversion: .prefixedNo,
          help: "Scan every value for NaN, Inf and all-zero tensors (default: on for LoRAs, off for checkpoints).")
    var scan: Bool?

    @Flag(help: "Add the effective rank of each ΔW: the rank holding 90% and 99% of its energy.")
    var svd = false

    @Flag(help: "List every module (name, algorithm, rank, alpha, shape, ‖ΔW‖, block).")
    var modules = false

    @Flag(help: "Print all metadata keys and values.")
    var metadata = false

    @Option(help: ArgumentHelp("Exit with status 1 when a finding is at least this severe.", valueName: "severity"))
    var failOn: Severity = .error

    @Option(help: ArgumentHelp("How many caption tags to show.", valueName: "n"))
    var tags: Int = 20

    @Flag(name: .shortAndLong, help: "No progress bars.")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Also print which CPU kernels are in use.")
    var verbose = false

    mutating func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one file") }
        guard tags >= 0 else { throw ValidationError("--tags must not be negative") }
    }

    func run() throws {
        ToolEnvironment.prepare()
        if verbose { printError(ToolEnvironment.kernelDescription) }
        let options = Inspector.Options(hashes: hash, scanValues: scan, effectiveRank: svd, topTags: tags)
        var reports: [InspectionReport] = []
        for file in files {
            let bar = ProgressBar(label: (file as NSString).lastPathComponent, enabled: !quiet)
            let report = Inspector.inspect(path: file, options: options, progress: bar.callback)
            bar.finish()
            reports.append(report)
            if !json && !summary {
                if reports.count > 1 { print("") }
                print(ReportText.full(report, style: .init(showModules: modules, showMetadata: metadata,
                                                             color: ToolEnvironment.stdoutIsTerminal)))
            }
        }
        if json {
            print(reports.count == 1 ? try JSONOutput.string(reports[0]) : try JSONOutput.string(reports))
        } else if summary {
            print(ReportText.table([ReportText.summaryHeader] + reports.map(ReportText.summaryRow)))
        }
        let status = reports.map { $0.exitCode(failOn: failOn) }.max() ?? 0
        if status != 0 { throw ExitCode(status) }
    }
}
