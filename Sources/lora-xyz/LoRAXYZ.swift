import ArgumentParser
import Diffusion
import Foundation
import Imaging
import LoRACore
import ToolSupport
import XYZPlot

@main
struct LoRAXYZ: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora-xyz",
        abstract: "Render epoch × weight × seed/prompt comparison sheets of LoRAs with the native sampler.",
        discussion: """
        Every parameter takes a list; a list of more than one value becomes an axis. Unless --x/--y/--z say \
        otherwise, multi-valued parameters fill X, Y and Z in this order: lora, weight, seed, prompt, prompt-sr, \
        sampler, schedule, cfg, steps, lbw, checkpoint, vae, clip-skip (beyond three, the rest join Z). LoRA files are sorted by \
        epoch (ss_epoch, or the number kohya puts in the name) and labelled e4, e8, … In the prompt, <lora> \
        becomes A1111's <lora:name:weight> tag; cells carry A1111's `parameters` infotext, so a cell dropped into \
        A1111's PNG Info gives its settings back (RNG: CPU).

        Cells are cached by all their inputs in the --cache folder: an interrupted run resumes, and adding an epoch \
        file renders only the new cells. --shard i/n renders every n-th cell for job arrays; `lora-xyz assemble` \
        then draws the sheet from the shards' caches.

        Examples:

          lora-xyz --model sd15.safetensors --loras 'out/mychar-*.safetensors' --weights 0.4,0.6,0.8,1.0 \\
                   --prompt 'mychar, 1girl, smile, <lora>' --negative 'lowres, bad hands' \\
                   --seeds 1234,5678 --sampler 'DPM++ 2M Karras' --steps 20 --cfg 7 -o sheet.png
          lora-xyz ... --z prompt --prompts prompts.txt
          lora-xyz ... --prompt-sr 'smile,frown,angry'     (Prompt S/R: the first value is replaced by each)
          lora-xyz ... --dry-run
          lora-xyz ... --shard 2/4 --cache shared/cache && lora-xyz assemble --cache shared/cache -o sheet.png

        \(ExitStatus.documentation)
        """,
        version: LoRATools.version,
        subcommands: [Render.self, Assemble.self],
        defaultSubcommand: Render.self)

    static func main() { toolMain() }
}

struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Plan, render (what is not cached) and draw a comparison sheet (the default command).")

    @Option(name: .shortAndLong, parsing: .singleValue,
            help: ArgumentHelp("Checkpoint (SD1.x, SD2.x, SDXL; .safetensors or .ckpt). Repeat for a checkpoint axis.", valueName: "path"),
            completion: .file(extensions: ["safetensors", "ckpt"]))
    var model: [String]

    @Option(parsing: .singleValue,
            help: ArgumentHelp("A separate VAE (A1111's SD VAE), e.g. vae-ft-mse-840000-ema-pruned.safetensors. Repeat for a VAE axis.", valueName: "path"),
            completion: .file(extensions: ["safetensors", "ckpt", "pt"]))
    var vae: [String] = []

    @Option(parsing: .upToNextOption,
            help: ArgumentHelp("LoRA files or glob patterns (quoted), e.g. 'out/mychar-*.safetensors'.", valueName: "path|glob"),
            completion: .file(extensions: ["safetensors", "ckpt", "pt"]))
    var loras: [String] = []

    @Option(name: .customLong("with-lora"), parsing: .singleValue,
            help: ArgumentHelp("A LoRA on every cell besides the axis LoRA: path[:weight][:te=x][:unet=x][:lbw=...]. Repeatable.", valueName: "lora"),
            completion: .file(extensions: ["safetensors", "ckpt", "pt"]))
    var withLoRA: [String] = []

    // .unconditional: "-0.5" (a negative weight, as A1111 takes) is a value, not an option.
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("LoRA weights: 0.4,0.6,0.8,1 or ranges 0-1 (+0.25), 0-1 [5]; negative weights are allowed.", valueName: "list"))
    var weights: String = "1"

    @Option(help: ArgumentHelp("The prompt; <lora> marks where the LoRA tag goes (else it is appended).", valueName: "text"))
    var prompt: String = ""

    @Option(help: ArgumentHelp("A text file of prompts, one per line: a prompt axis.", valueName: "file"), completion: .file())
    var prompts: String?

    @Option(name: .customLong("prompt-sr"),
            help: ArgumentHelp("Prompt S/R: comma-separated; the first is searched for and replaced by each.", valueName: "list"))
    var promptSR: String?

    @Option(help: ArgumentHelp("Negative prompt.", valueName: "text"))
    var negative: String = ""

    @Option(parsing: .unconditional,
            help: ArgumentHelp("Seeds: 1234,5678 or a range 1-4. -1 picks a random seed (a new one each run, so the cells are not reused).", valueName: "list"))
    var seeds: String = "1234"

    @Option(help: ArgumentHelp("""
                Samplers, comma-separated: \(SamplerChoice.knownNames.joined(separator: ", ")) (or euler_a, dpmpp_2m_karras, …). \
                A name without a schedule uses A1111's Automatic one (1.9+): Karras for DPM++ 2M and DPM++ SDE, Uniform for Euler, Euler a, DDIM.
                """, valueName: "list"),
        completion: .list(SamplerChoice.knownNames.map { $0.lowercased().replacingOccurrences(of: "++", with: "pp").replacingOccurrences(of: " ", with: "_") }))
    var sampler: String = "DPM++ 2M Karras"

    @Option(
        help: ArgumentHelp(
            "A1111's Schedule type, comma-separated (an axis when several): \(ScheduleKind.allCases.map(\.rawValue).joined(separator: ", ")); overrides the "
                + "schedule a sampler's name implies.",
                               valueName: "list"),
            completion: .list(ScheduleKind.allCases.map(\.rawValue)))
    var schedule: String?

    @Option(help: ArgumentHelp("Sampling steps (list allowed).", valueName: "list"))
    var steps: String = "20"

    @Option(help: ArgumentHelp("CFG scale (list allowed).", valueName: "list"))
    var cfg: String = "7"

    @Option(name: .customLong("clip-skip"), help: ArgumentHelp("A1111's clip skip, SD1 only (list allowed).", valueName: "list"))
    var clipSkip: String = "1"

    @Option(parsing: .singleValue,
            help: ArgumentHelp("LoRA Block Weight preset (ALL, INS, OUTD, …) or list. Repeat for a block-weight axis.", valueName: "weights"),
            completion: .list(BlockWeights.presets.map(\.name)))
    var lbw: [String] = []

    @Option(help: ArgumentHelp("Image width.", valueName: "pixels"))
    var width: Int = 512

    @Option(help: ArgumentHelp("Image height.", valueName: "pixels"))
    var height: Int = 512

    @Option(name: .customLong("rng-variant"),
            help: ArgumentHelp("""
                torch's CPU noise kernel to reproduce (A1111's RNG source: CPU): avx2 (torch on any x86-64 CPU with AVX2, \
                AVX-512 ones included), libm (torch on ARM or older x86), auto (torch's choice on this CPU).
                """, valueName: "auto|avx2|libm"),
            completion: .list(["auto", "avx2", "libm"]))
    var rngVariant: String = "auto"

    @Option(help: ArgumentHelp("""
                Arithmetic of the engine's matrix products: fp32 (exact and reproducible), or bf16 (operands rounded to bfloat16, \
                fp32 accumulation, as torch's CPU autocast; on AMX units, several times faster there; images close to fp32's, \
                not equal). On a CPU without AMX (no bf16 units, or AVX512-BF16 alone, slower than fp32) bf16 computes in fp32 and says so.
                """, valueName: "fp32|bf16"),
            completion: .list(ComputePrecision.allCases.map(\.rawValue)))
    var precision: String = "fp32"

    @Option(help: ArgumentHelp("Parameters on X (comma-separated when several): \(AxisKind.allCases.map(\.rawValue).joined(separator: ", ")).",
                               valueName: "param"), completion: .list(AxisKind.allCases.map(\.rawValue)))
    var x: String?

    @Option(help: ArgumentHelp("Parameters on Y.", valueName: "param"), completion: .list(AxisKind.allCases.map(\.rawValue)))
    var y: String?

    @Option(help: ArgumentHelp("Parameters on Z: one grid per value.", valueName: "param"), completion: .list(AxisKind.allCases.map(\.rawValue)))
    var z: String?

    @OptionGroup var sheet: SheetOptions

    @Option(help: ArgumentHelp("Cell cache folder (default: next to the output, NAME.cache).", valueName: "folder"),
            completion: .directory)
    var cache: String?

    @Option(help: ArgumentHelp("CLIP tokenizer: a folder with vocab.json and merges.txt, or bpe_simple_vocab_16e6.txt.gz.", valueName: "path"),
            completion: .file())
    var tokenizer: String?

    @Option(help: ArgumentHelp("Render only shard i of n (1-based): every n-th cell.", valueName: "i/n"))
    var shard: String?

    @Flag(help: "Print the plan (axes, cells, cached, estimated time) and stop.")
    var dryRun = false

    mutating func validate() throws {
        if let shard, Shard(shard) == nil { throw ValidationError("--shard takes i/n with 1 ≤ i ≤ n, e.g. 2/4") }
        guard width > 0, height > 0, width <= 4096, height <= 4096 else { throw ValidationError("width and height must be 1…4096") }
        guard rngVariant == "auto" || TorchGenerator.Variant(rawValue: rngVariant) != nil else {
            throw ValidationError("--rng-variant takes auto, avx2 or libm (got '\(rngVariant)')")
        }
        guard ComputePrecision(rawValue: precision) != nil else { throw ValidationError("--precision takes fp32 or bf16 (got '\(precision)')") }
    }

    func run() throws {
        ToolEnvironment.prepare()
        try ToolRun.perform(json: sheet.json) { try execute() }
    }

    /// The command line as a plan request; a value that does not parse is a usage error (exit 64).
    func request() throws -> PlanRequest {
        do {
            return try parsedRequest()
        } catch let error as RequestError {
            throw ValidationError(error.message)
        }
    }

    /// The plan the command line asks for; a request that makes no plan is a usage error too.
    func plan() throws -> Plan {
        do {
            return try request().plan()
        } catch let error as RequestError {
            throw ValidationError(error.message)
        }
    }

    func parsedRequest() throws -> PlanRequest {
        var r = PlanRequest()
        r.checkpoints = model
        r.vaes = vae
        r.loras = LoRAEpochs.order(try Globbing.expand(loras), epochOf: LoRAEpochs.epoch(of:))
        r.weights = try ValueLists.numbers(weights, what: "--weights")
        r.seeds = try ValueLists.integers(seeds, what: "--seeds").map { s in
            if s == -1 { return UInt64.random(in: 0..<(1 << 32)) }
            guard s >= 0 else { throw RequestError("--seeds: \(s) is negative (only -1, for random, is allowed)") }
            return UInt64(s)
        }
        r.prompt = prompt
        if let prompts {
            guard let data = FileManager.default.contents(atPath: prompts) else { throw ModelError(.io, "cannot read the prompts file", file: prompts) }
            r.prompts = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !r.prompts.isEmpty else { throw ModelError(.mismatch, "no prompts in the file", file: prompts) }
        }
        if let promptSR {
            r.promptSR = ValueLists.strings(promptSR)
            guard r.promptSR.count >= 1 else { throw RequestError("--prompt-sr needs the text to replace, then its replacements") }
        }
        r.samplers = try ValueLists.strings(sampler).map { name in
            guard let choice = SamplerChoice(name: name) else {
                throw RequestError("unknown sampler '\(name)' (known: \(SamplerChoice.knownNames.joined(separator: ", ")))")
            }
            return choice
        }
        // Names that resolve to the same sampler and schedule ("DPM++ 2M", "DPM++ 2M Karras") are one value.
        r.samplers = r.samplers.reduce(into: []) { unique, s in if !unique.contains(s) { unique.append(s) } }
        if let schedule {
            r.schedules = try ValueLists.strings(schedule).map { name in
                guard let kind = ScheduleKind.allCases.first(where: { $0.rawValue.caseInsensitiveCompare(name) == .orderedSame }) else {
                    throw RequestError("unknown schedule type '\(name)' (supported: \(ScheduleKind.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return kind
            }.reduce(into: []) { unique, k in if !unique.contains(k) { unique.append(k) } }
        }
        r.steps = try ValueLists.integers(steps, what: "--steps")
        r.cfgs = try ValueLists.numbers(cfg, what: "--cfg")
        r.clipSkips = try ValueLists.integers(clipSkip, what: "--clip-skip")
        r.blockWeights = lbw.flatMap { $0.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
        for b in r.blockWeights { _ = try BlockWeights(parsing: b) }
        r.extraLoRAs = withLoRA
        r.negative = negative
        r.width = width
        r.height = height
        r.noise = TorchGenerator.Variant(rawValue: rngVariant) ?? .native
        let (resolved, note) = (ComputePrecision(rawValue: precision) ?? .fp32).resolved()
        if let note, !sheet.quiet { printError("note: --precision bf16: \(note)") }
        r.precision = resolved
        for (index, option) in [x, y, z].enumerated() {
            guard let option else { continue }
            r.axes[index] = try option.split(separator: ",").map { name in
                let trimmed = name.trimmingCharacters(in: .whitespaces).lowercased()
                guard let kind = AxisKind(rawValue: trimmed) ?? (trimmed == "seeds" ? .seed : trimmed == "loras" ? .lora : trimmed == "weights" ? .weight
                    : trimmed == "prompts" ? .prompt : trimmed == "samplers" ? .sampler : nil) else {
                    throw RequestError("'\(name)' is not an axis parameter (known: \(AxisKind.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return kind
            }
        }
        if r.loras.isEmpty && (r.weights != [1] || !r.blockWeights.isEmpty) {
            throw RequestError("--weights and --lbw need LoRA files (--loras)")
        }
        return r
    }

    func execute() throws {
        let plan = try plan()
        // Where the sheet goes is checked before any work.
        try AtomicOutput.checkDestination(sheet.output, inputs: model + loras)
        let cacheFolder = cache ?? (sheet.output as NSString).deletingPathExtension + ".cache"
        var options = Session.Options(cacheFolder: cacheFolder)
        options.shard = shard.flatMap(Shard.init)
        options.version = LoRATools.version
        options.readOnly = dryRun
        let verbose = !sheet.quiet && !sheet.json
        let session = try Session(plan: plan, options: options) { event in
            if case .checking(let what) = event, verbose, ToolEnvironment.stderrIsTerminal { printError(TerminalText.escape(what)) }
        }
        // The tokenizer and the font are checked before any rendering too.
        let tokenizer = try BPETokenizer.locate(explicit: self.tokenizer, near: model.first)
        let fontPath = try sheet.locateFont()
        if !dryRun {
            for (cell, reason) in session.dropDamagedCells() where !sheet.quiet {
                printError(
                    TerminalText.escape("note: cached cell \(cell.index + 1) (\(Self.describe(cell, plan: plan))) was damaged (\(reason)); rendering it again"))
            }
        }
        let pending = session.pending
        let estimate = session.estimate(pending)
        if dryRun {
            try printPlan(session, pending: pending, estimate: estimate)
            try Self.failIfNonFinite(session.planFile)
            return
        }
        if verbose {
            printError("\(plan.cells.count) cells" + (options.shard.map { ", shard \($0.description): \(session.shardCells.count)" } ?? "")
                       + ", \(pending.count) to render (~\(clock(estimate.seconds))\(estimate.measured ? "" : ", rough estimate"))"
                       + ", cache \(cacheFolder)")
        }
        ToolEnvironment.setInterruptNote("the cells finished so far are kept in \(cacheFolder): run the same command again to resume")
        let totalSteps = pending.reduce(0) { $0 + CellRenderer.samplerSteps($1.settings) }
        let bar = ProgressBar(label: "rendering", total: totalSteps, unit: .items, enabled: !sheet.quiet)
        do {
            try session.render(tokenizer: tokenizer) { event in
                switch event {
                case .step(let n): bar.advance(by: n)
                case .loading(let path) where verbose:
                    // Loading a checkpoint takes seconds to a minute; say so (clearing the bar's line on a terminal).
                    printError((ToolEnvironment.stderrIsTerminal ? "\r\u{1B}[2K" : "") + TerminalText.escape("loading \(path)"))
                case .cellFinished(let cell, let seconds) where verbose && !ToolEnvironment.stderrIsTerminal:
                    printError(TerminalText.escape(String(format: "cell %d (%@): %.1f s", cell.index + 1, Self.describe(cell, plan: plan), seconds)))
                default: break
                }
            }
        } catch {
            bar.finish()
            throw error
        }
        bar.finish()
        if options.shard != nil && session.pending.isEmpty && plan.cells.contains(where: { !session.cache.contains(session.planFile.keys[$0.index]) }) {
            // A shard's job is its cells; the sheet is drawn by `assemble` once all shards are done.
            if !sheet.json {
                ToolRun.say(
                    "shard \(options.shard!.description) done: \(session.renderSeconds.count) cells rendered into \(cacheFolder); when every shard is done, "
                        + "run lora-xyz assemble with each shard's --cache and -o \(sheet.output)"
                )
            }
            return
        }
        let result = try sheet.writer(fontPath: fontPath).write(session.planFile, caches: [session.cache], renderSeconds: session.renderSeconds)
        let rendered = session.renderSeconds.count, total = plan.cells.count
        try sheet.printResult(result, summary: "\(total) cells: \(rendered) rendered, \(total - rendered - result.missing - result.nonFinite) from the cache"
                                               + (result.missing > 0 ? ", \(result.missing) missing" : "")
                                               + (result.nonFinite > 0 ? ", \(result.nonFinite) marked '\(SheetWriter.nonFiniteMark)'" : ""))
        try Self.failIfNonFinite(session.planFile)
    }

    /// A sheet with diverged LoRAs is finished and written, then the run
    /// exits 1 naming them, so scripts notice.
    static func failIfNonFinite(_ planFile: PlanFile) throws {
        let bad = planFile.catalog.loras.values.filter { $0.nonFiniteTensor != nil }.sorted { $0.path < $1.path }
        guard !bad.isEmpty, planFile.plan.cells.contains(where: { planFile.catalog.nonFiniteLoRA($0.settings) != nil }) else { return }
        printError(TerminalText.escape("Error: " + bad.map { "\($0.path) holds NaN or Inf values (first in \($0.nonFiniteTensor!))" }.joined(separator: "; ")
                                       + ": its cells are marked '\(SheetWriter.nonFiniteMark)' on the sheet"))
        throw ExitCode(ExitStatus.failure)
    }

    static func describe(_ cell: PlannedCell, plan: Plan) -> String {
        [(plan.x, cell.x), (plan.y, cell.y), (plan.z, cell.z)].filter { !$0.0.kinds.isEmpty }.map { $0.0.label($0.1) }.joined(separator: ", ")
    }

    func printPlan(_ session: Session, pending: [PlannedCell], estimate: Session.Estimate) throws {
        let plan = session.planFile.plan
        let shardCells = session.shardCells
        let catalog = session.planFile.catalog
        let marked = shardCells.filter { catalog.nonFiniteLoRA($0.settings) != nil }.count
        let cached = shardCells.filter { catalog.nonFiniteLoRA($0.settings) == nil && session.cache.contains(session.planFile.keys[$0.index]) }.count
        let badLoRAs = catalog.loras.values.filter { $0.nonFiniteTensor != nil }.sorted { $0.path < $1.path }
        if sheet.json {
            struct DryRun: Encodable {
                var axes: [Manifest.AxisEntry]
                var cells: Int, shardCells: Int, cached: Int, toRender: Int, nonFinite: Int, nonFiniteLoRAs: [String], unetEvaluations: Int
                var estimatedSeconds: Double, estimateMeasured: Bool
                var legend: String
            }
            let value = DryRun(axes: Manifest.AxisEntry.list(plan), cells: plan.cells.count, shardCells: shardCells.count, cached: cached,
                               toRender: pending.count, nonFinite: marked, nonFiniteLoRAs: badLoRAs.map(\.path),
                               unetEvaluations: estimate.evaluations, estimatedSeconds: estimate.seconds,
                               estimateMeasured: estimate.measured, legend: session.planFile.legend)
            print(try JSONOutput.string(value))
            return
        }
        for (name, axis) in [("X", plan.x), ("Y", plan.y), ("Z", plan.z)] where !axis.kinds.isEmpty {
            ToolRun.say("\(name): \(axis.title) (\(axis.count)): " + (0..<axis.count).map(axis.label).joined(separator: " · "))
        }
        ToolRun.say("shared: \(session.planFile.legend)")
        var line = "\(plan.cells.count) cells"
        if let s = session.options.shard { line += ", shard \(s.description): \(shardCells.count)" }
        line += ", \(cached) cached, \(pending.count) to render (\(estimate.evaluations) U-Net evaluations)"
        if marked > 0 { line += ", \(marked) marked '\(SheetWriter.nonFiniteMark)'" }
        ToolRun.say(line)
        for lora in badLoRAs {
            ToolRun.say(
                "warning: \(lora.path) holds NaN or Inf values (first in \(lora.nonFiniteTensor!)): its cells will be drawn as "
                    + "'\(SheetWriter.nonFiniteMark)' and the run will exit 1"
            )
        }
        ToolRun.say(
            "estimated time: \(clock(estimate.seconds))" + (estimate.measured ? " (from this cache's timings)" : " (rough: no timings in this cache yet)"))
        let writer = sheet.writer(fontPath: "")
        ToolRun.say(
            "sheets: "
                + (plan.z.count > 1
                    ? "\(plan.z.count) grids (\((1...plan.z.count).map { SheetWriter.numbered(sheet.output, $0, of: plan.z.count) }.joined(separator: ", ")))"
                            + (sheet.combined ? " + combined \(sheet.output)" : "") : sheet.output) + ", manifest \(writer.manifestPath ?? "-")")
    }
}

func clock(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s / 60 % 60) : s >= 60 ? String(format: "%dm%02ds", s / 60, s % 60) : "\(s)s"
}

struct SheetOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: ArgumentHelp("The sheet (.png, or .jpg); with several Z values, one grid per value: NAME-z1.png, …", valueName: "path"))
    var output: String = "xyz.png"

    @Option(help: ArgumentHelp("Also save every cell as a PNG with its infotext in this folder.", valueName: "folder"))
    var cells: String?

    @Flag(help: "With several Z values, also write all grids on one sheet (the -o path).")
    var combined = false

    @Option(
        name: .customLong("cell-size"),
        help: ArgumentHelp("Longest side of a cell on the sheet (default: full size, shrunk to keep grids under 16384 px).", valueName: "pixels"))
    var cellSize: Int?

    @Option(help: ArgumentHelp("Manifest JSON (default: NAME.json next to the sheet).", valueName: "path"))
    var manifest: String?

    @Option(help: ArgumentHelp("Label font (default: DejaVu Sans; or $LORA_TOOLS_FONT).", valueName: "ttf"), completion: .file(extensions: ["ttf", "otf"]))
    var font: String?

    @Flag(help: "Print the result as JSON.")
    var json = false

    @Flag(name: .shortAndLong, help: "No progress bar or messages.")
    var quiet = false

    func locateFont() throws(ModelError) -> String {
        do { return try Font.locate(font) } catch { throw ModelError(.io, error.description) }
    }

    /// The result as JSON, or a summary line and what was written.
    func printResult(_ result: SheetWriter.Result, summary: String) throws {
        if json {
            print(try JSONOutput.string(result))
            return
        }
        ToolRun.say(summary)
        for path in result.sheets { ToolRun.say("wrote \(path)") }
        if let manifest = result.manifest { ToolRun.say("wrote \(manifest)") }
        if !result.cellCopies.isEmpty, let folder = cells { ToolRun.say("saved \(result.cellCopies.count) cells in \(folder)") }
    }

    func writer(fontPath: String) -> SheetWriter {
        var w = SheetWriter(output: output, fontPath: fontPath)
        w.combined = combined
        w.cellSize = cellSize
        w.cellsFolder = cells
        w.manifestPath = manifest ?? (output as NSString).deletingPathExtension + ".json"
        return w
    }
}

struct Assemble: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assemble",
        abstract: "Draw the sheet from cached cells (e.g. the caches of --shard runs), without rendering.",
        discussion: """
        Reads plan.json from the first --cache folder and looks each cell up in every --cache folder given. \
        Missing cells are an error unless --allow-missing draws them as gray boxes.
        """)

    @Option(parsing: .singleValue, help: ArgumentHelp("A cache folder; repeat to merge the caches of several machines.", valueName: "folder"),
            completion: .directory)
    var cache: [String] = []

    @Flag(help: "Draw cells no cache has as gray boxes instead of failing.")
    var allowMissing = false

    @Option(
        help: ArgumentHelp(
            "The plan to draw when the cache holds several (runs with different settings): its id (or the start of it), as the error lists them, or a plan "
                + "file.",
                               valueName: "id"))
    var plan: String?

    @OptionGroup var sheet: SheetOptions

    mutating func validate() throws {
        guard !cache.isEmpty else { throw ValidationError("give the cache folder(s) with --cache") }
    }

    func run() throws {
        ToolEnvironment.prepare()
        try ToolRun.perform(json: sheet.json) {
            let folders = cache
            let caches = folders.map(CellCache.init(folder:))
            let planFile = try PlanFile.choose(in: caches, choice: plan)
            let result = try sheet.writer(fontPath: try sheet.locateFont()).write(planFile, caches: caches, requireAll: !allowMissing)
            try sheet.printResult(result, summary: "\(planFile.plan.cells.count) cells from \(folders.count) cache(s)"
                                                   + (result.missing > 0 ? ", \(result.missing) missing" : "")
                                                   + (result.nonFinite > 0 ? ", \(result.nonFinite) marked '\(SheetWriter.nonFiniteMark)'" : ""))
            try Render.failIfNonFinite(planFile)
        }
    }
}
