import ArgumentParser
import Diffusion
import Foundation
import LoRACore
import ToolSupport
import Training

@main
struct LoRATrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora-train",
        abstract: "Train a LoRA (or LoCon) for SD1.x/SD2.x with kohya's conventions, on the CPU.",
        discussion: """
        The dataset is laid out as for kohya's train_network.py: --train-data-dir is the parent of folders named \
        <repeats>_<class tokens> (e.g. dataset/10_mychar/) holding PNG or JPEG images and, beside each, a caption \
        file (--caption-extension, kohya's default .caption). Images without a caption are captioned with the \
        folder's class tokens. Before training, the plan is printed as kohya prints it: images and repeats per \
        folder, buckets with counts, batches per epoch and total steps (--dry-run stops there).

        Latents are cached in memory before training. Files are written as kohya names them: \
        NAME-000002.safetensors every --save-every-n-epochs, NAME-step00000500.safetensors every \
        --save-every-n-steps, and NAME.safetensors at the end, with kohya's ss_* and modelspec.* metadata, so \
        A1111, ComfyUI, kohya and lora-inspect read them. A CSV of loss and learning rate per step goes to \
        NAME-log.csv beside them. kohya's spellings (--pretrained_model_name_or_path, --train_data_dir, \
        --network_dim, …) are accepted; a kohya option not listed here is an error that names it.

        Sample images (--sample-prompts with kohya's prompt-file format) are rendered by the engine with the \
        modules as they are at that epoch or step, into OUTPUT/sample/ under kohya's names, with A1111 infotext.

        --save-state writes a resumable state folder beside each file; --resume FOLDER continues it exactly. \
        Ctrl-C stops after the current step and saves such a state (a second Ctrl-C quits at once).

        kohya's TOML files work too: --config-file (training arguments; the command line overrides them) and \
        --dataset-config ([general], [[datasets]], [[datasets.subsets]]).

        --mixed-precision bf16 runs the GEMMs in bf16 on CPUs with AMX (fp32 elsewhere, with a note: AVX512-BF16 alone \
        multiplies slower than fp32).

        Not yet: SDXL.

        Examples:

          lora-train --model sd15.safetensors --train-data-dir dataset/ --output-dir out/ --output-name mychar \\
                     --network-dim 32 --network-alpha 16 --resolution 512 --enable-bucket --max-train-epochs 10 \\
                     --save-every-n-epochs 2 --learning-rate 1e-4 --text-encoder-lr 5e-5
          lora-train ... --dry-run
          lora-train ... --find-lr                       (a short Prodigy probe; prints the AdamW rates it suggests)
          lora-train --config mychar.toml --dataset-config dataset.toml

        \(ExitStatus.documentation)
        """,
        version: LoRATools.version)

    static func main() {
        Completions.answerBashRequest(Self.self)
        ToolEnvironment.prepare()  // before anything is printed: it may run the process again (ParsableCommand.toolMain)
        let expanded: (arguments: [String], keys: [String: String])
        let arguments = Array(CommandLine.arguments.dropFirst())
        // Every option name the parser knows (the help text names them all, hidden ones included); worked out once, and only
        // when a config file, --output-config or a negative number asks.
        var names: OptionNames?
        let ours = { () -> OptionNames in
            if let names { return names }
            let made = OptionNames(help: helpMessage(includeHidden: true, columns: 10_000))
            names = made
            return made
        }
        do {
            if let path = try OutputConfig.destination(arguments) {
                try OutputConfig.write(arguments, to: path, names: ours())
                return
            }
        } catch let error as ModelError {
            printError("Error: " + TerminalText.escape(error.description))
            exit(withError: ExitCode(ExitStatus.of(error)))
        } catch {
            exit(withError: error)
        }
        do { expanded = try ConfigFile.expand(arguments, ours: ours) } catch {
            printError("Error: " + TerminalText.escape(error.description))
            exit(withError: ExitCode(ExitStatus.of(error)))
        }
        do {
            var command = try parseAsRoot(ConfigFile.joiningNegativeValues(expanded.arguments, ours: ours))
            try command.run()
        } catch {
            // Say which settings came from the config file when the parser refuses one of them.
            let message = fullMessage(for: error)
            if let (option, file) = expanded.keys.first(where: { message.contains("'\($0.key)'") || message.contains("\($0.key) ") }) {
                printError("note: \(option) comes from \(TerminalText.escape(file)); lora-train does not support it (or not with that value)")
            }
            exit(withError: error)
        }
    }

    @Option(name: [.long, .customLong("config_file"), .customLong("config")],
            help: ArgumentHelp("kohya's training-arguments TOML (sections are flattened); the command line overrides it.", valueName: "path"),
            completion: .file(extensions: ["toml"]))
    var configFile: String?

    @Flag(name: [.long, .customLong("output_config")],
          help: "Write the options given to the --config-file TOML (kohya's spellings; never over an existing file) and stop.")
    var outputConfig = false

    @Option(name: [.short, .long, .customLong("pretrained_model_name_or_path")],
            help: ArgumentHelp("The SD1.x/SD2.x checkpoint to train on (.safetensors or .ckpt). kohya: --pretrained_model_name_or_path.",
                               valueName: "path"), completion: .file(extensions: ["safetensors", "ckpt"]))
    var model: String

    @Option(name: .long, help: ArgumentHelp("A separate VAE (e.g. vae-ft-mse-840000) that encodes the latents and decodes the samples instead of the checkpoint's. kohya: --vae.",
                                            valueName: "path"), completion: .file(extensions: ["safetensors", "ckpt", "pt"]))
    var vae: String?

    @Option(help: ArgumentHelp("CLIP tokenizer: a folder with vocab.json and merges.txt, or bpe_simple_vocab_16e6.txt.gz.", valueName: "path"),
            completion: .file())
    var tokenizer: String?

    @OptionGroup(title: "Dataset") var dataset: DatasetOptions
    @OptionGroup(title: "Network") var network: NetworkOptions
    @OptionGroup(title: "Optimizer and loss") var optimizer: OptimizerOptions
    @OptionGroup(title: "Sample images") var samples: SampleOptions

    @Option(name: [.long, .customLong("output_dir")], help: ArgumentHelp("Folder for the LoRA files and the log.", valueName: "path"),
            completion: .directory)
    var outputDir: String?

    @Option(name: [.long, .customLong("output_name")], help: ArgumentHelp("File name without extension (kohya's default: last).", valueName: "name"))
    var outputName = "last"

    @Option(name: [.long, .customLong("max_train_epochs")], help: ArgumentHelp("Epochs to train (overrides --max-train-steps).", valueName: "n"))
    var maxTrainEpochs: Int?

    @Option(name: [.long, .customLong("max_train_steps")], help: ArgumentHelp("Optimizer steps to train (kohya's default 1600).", valueName: "n"))
    var maxTrainSteps = 1600

    @Option(name: [.long, .customLong("save_every_n_epochs")], help: ArgumentHelp("Also save NAME-<epoch>.safetensors every n epochs.", valueName: "n"))
    var saveEveryNEpochs: Int?

    @Option(name: [.long, .customLong("save_n_epoch_ratio")],
            help: ArgumentHelp("Save about n epoch files in all: every floor(epochs / n) epochs (kohya's; overrides --save-every-n-epochs).", valueName: "n"))
    var saveNEpochRatio: Double?

    @Option(name: [.long, .customLong("save_every_n_steps")], help: ArgumentHelp("Also save NAME-step<step>.safetensors every n steps.", valueName: "n"))
    var saveEveryNSteps: Int?

    @Option(name: [.long, .customLong("save_precision")], help: ArgumentHelp("dtype of the saved tensors (kohya's default: fp32).", valueName: "fp16|bf16|fp32"))
    var savePrecision: Precision?

    @Option(name: [.long, .customLong("save_last_n_epochs")], help: ArgumentHelp("Keep only the newest n epoch files.", valueName: "n"))
    var saveLastNEpochs: Int?

    @Option(name: [.long, .customLong("save_last_n_steps")], help: ArgumentHelp("Remove step files older than n steps.", valueName: "n"))
    var saveLastNSteps: Int?

    @Option(name: [.long, .customLong("save_last_n_epochs_state")],
            help: ArgumentHelp("Keep only the newest n epoch state folders (default: --save-last-n-epochs).", valueName: "n"))
    var saveLastNEpochsState: Int?

    @Option(name: [.long, .customLong("save_last_n_steps_state")],
            help: ArgumentHelp("Remove step state folders older than n steps (default: --save-last-n-steps).", valueName: "n"))
    var saveLastNStepsState: Int?

    @Flag(name: [.long, .customLong("save_state_on_train_end")], help: "Save a resumable state folder at the end only.")
    var saveStateOnTrainEnd = false

    @Flag(name: [.long, .customLong("save_state")],
          help: "Also save a resumable state folder (NAME-000002-state …) with every file, and at the end.")
    var saveState = false

    @Option(name: .long,
            help: ArgumentHelp("Continue from a state folder written by --save-state (or by Ctrl-C): the same settings give the same file as an uninterrupted run.",
                               valueName: "folder"), completion: .directory)
    var resume: String?

    @Option(name: [.long, .customLong("initial_epoch")],
            help: ArgumentHelp("Start at this epoch (1 = the first) without a state, as kohya's --initial_epoch: e.g. after --network-weights NAME-000004.safetensors, "
                               + "--initial-epoch 5 trains epochs 5 on and names their files so. The learning-rate schedule starts from its beginning.", valueName: "n"))
    var initialEpoch: Int?

    @Option(name: [.long, .customLong("initial_step")],
            help: ArgumentHelp("Start at the epoch of this optimizer step (0 = the first; overrides --initial-epoch), as kohya's --initial_step.", valueName: "n"))
    var initialStep: Int?

    @Flag(name: [.long, .customLong("skip_until_initial_step")],
          help: "With --initial-step/--initial-epoch: start at that very step (its epoch's earlier batches skipped) and count steps from it, as kohya's --skip_until_initial_step.")
    var skipUntilInitialStep = false

    @Option(name: [.long, .customLong("save_model_as")], help: ArgumentHelp("Only safetensors.", valueName: "format"))
    var saveModelAs = "safetensors"

    @Option(help: ArgumentHelp("Seed of everything random in the run (same seed, same file).", valueName: "n"))
    var seed: UInt64 = 42

    @Option(name: [.long, .customLong("mixed_precision")], help: ArgumentHelp("no (fp32) or bf16: the training passes' GEMMs take bf16 operands with fp32 sums, as torch's autocast; the weights stay fp32. On a CPU without AMX (no bf16 units, or AVX512-BF16 alone, slower than fp32), fp32 with a note. fp16 (the kohya_ss GUI's default) runs in fp32, with a note.", valueName: "no|bf16|fp16"))
    var mixedPrecision = "no"

    @Flag(name: [.long, .customLong("no_metadata")],
          help: "Write only the metadata a loader needs (network dim, alpha, module, base model) and the ModelSpec card, as kohya's --no_metadata: no dataset, tags or settings.")
    var noMetadata = false

    @Option(name: [.long, .customLong("training_comment")], help: ArgumentHelp("Stored as ss_training_comment.", valueName: "text"))
    var trainingComment: String?

    @OptionGroup(title: "Model card (ModelSpec metadata, as kohya's --metadata_*)") var card: ModelCardOptions
    @OptionGroup(title: "Logs") var logs: LoggingOptions
    @OptionGroup(title: "Validation") var validation: ValidationOptions

    @Flag(name: [.long, .customLong("gradient_checkpointing")],
          help: "Recompute the U-Net blocks' activations in the backward instead of keeping them: less memory, more time. Blocks under 32×32 latent pixels keep theirs (little memory for their work; sd-scripts recomputes every block): the same gradients.")
    var gradientCheckpointing = false

    @Flag(name: [.long, .customLong("find_lr")],
          help: "Run a short Prodigy probe on this data and network and print the AdamW learning rates it suggests (U-Net, text encoder), then stop.")
    var findLR = false

    @Option(name: [.long, .customLong("find_lr_steps")], help: ArgumentHelp("Steps of the --find-lr probe (default: one epoch, at most 300).", valueName: "n"))
    var findLRSteps: Int?

    @Flag(name: [.long, .customLong("dry_run")], help: "Print the plan (images, buckets, steps) and stop.")
    var dryRun = false

    @Flag(name: [.long, .customLong("debug_dataset")],
          help: "Print the plan, then each batch of the first epoch in training order (image, size, caption as processed, bucket, flip), and stop (kohya's --debug_dataset, without its image window).")
    var debugDataset = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    @Flag(help: "Print the plan and time estimate (--dry-run), the probe and suggested rates (--find-lr) or the run's files and losses as one JSON document on standard output; the report goes to standard error.")
    var json = false

    @OptionGroup var kohyaFlags: KohyaAcceptedFlags
    @OptionGroup var kohyaIgnored: KohyaTrainingFlags

    func validate() throws {
        try refuseNaN([("--save-n-epoch-ratio", saveNEpochRatio)])
        if !dryRun && !findLR && !debugDataset && outputDir == nil { throw ValidationError("--output-dir is required (kohya: --output_dir)") }
        if let n = findLRSteps, n < 4 { throw ValidationError("--find-lr-steps must be at least 4") }
        try kohyaIgnored.checkPrecisionStorage(mixedPrecision: mixedPrecision)
        guard saveModelAs == "safetensors" else { throw ValidationError("--save-model-as \(saveModelAs): only safetensors is written") }
        guard ["no", "bf16", "fp16"].contains(mixedPrecision) else {
            throw ValidationError("--mixed-precision takes no, bf16 or fp16 (got '\(mixedPrecision)')")
        }
        if let n = maxTrainEpochs, n < 1 { throw ValidationError("--max-train-epochs must be at least 1") }
        if let n = initialEpoch, n < 1 { throw ValidationError("--initial-epoch must be at least 1 (1 is the first epoch)") }
        if let n = initialStep, n < 0 { throw ValidationError("--initial-step must not be negative") }
        if resume != nil && (initialEpoch != nil || initialStep != nil) {
            throw ValidationError("--resume continues where its state stopped; --initial-step/--initial-epoch are for a run without a state (drop one)")
        }
        if let n = saveLastNEpochs, n < 1 { throw ValidationError("--save-last-n-epochs must be at least 1") }
        if let n = saveLastNSteps, n < 1 { throw ValidationError("--save-last-n-steps must be at least 1") }
        if let n = saveLastNEpochsState, n < 1 { throw ValidationError("--save-last-n-epochs-state must be at least 1") }
        if let n = saveLastNStepsState, n < 1 { throw ValidationError("--save-last-n-steps-state must be at least 1") }
        guard maxTrainSteps >= 1 else { throw ValidationError("--max-train-steps must be at least 1") }
        guard !outputName.isEmpty, !outputName.contains("/") else { throw ValidationError("--output-name must be a file name without folders") }
    }

    func run() throws {
        ToolEnvironment.prepare()
        ToolRun.reportsToStandardError = json
        try ToolRun.perform(json: json) {
            if let path = logs.consoleLogFile { try ConsoleLog.open(path) }
            let plan = try makePlan()
            var validationPlan: DatasetPlan? = try makePlan(.validation)
            if validationPlan?.images.isEmpty ?? true {
                if let s = validation.validationSplit, s > 0 {
                    printError("warning: --validation-split \(s) leaves no image for validation (each folder holds out round(images × split)); nothing is validated")
                }
                validationPlan = nil
            }
            var configuration = try makeConfiguration()
            // kohya records args.resolution after turning it into a tuple: "(512, 512)".
            configuration.resolutionText = "(\(plan.bucketing.resolution.width), \(plan.bucketing.resolution.height))"
            if let limits = plan.bucketing.limits { (configuration.minBucketReso, configuration.maxBucketReso) = (limits.min, limits.max) }
            let steps = StepCount(batchesPerEpoch: plan.batchesPerEpoch, gradientAccumulationSteps: configuration.gradientAccumulationSteps,
                                  maxTrainEpochs: configuration.maxTrainEpochs, maxTrainSteps: configuration.maxTrainSteps)
            if let ratio = saveNEpochRatio, ratio > 0 {
                // kohya: args.save_every_n_epochs = math.floor(num_train_epochs / args.save_n_epoch_ratio) or 1
                configuration.saveEveryNEpochs = max(1, Int((Double(steps.epochs) / ratio).rounded(.down)))
            }
            for line in plan.reportLines(steps: steps, gradientAccumulationSteps: configuration.gradientAccumulationSteps,
                                         validationImagesWithRepeats: validationPlan?.trainImagesWithRepeats ?? 0) { ToolRun.say(line) }
            if let validationPlan {
                let trainer = validationPlan.batchesPerEpoch
                let batches = configuration.validation.maxSteps.map { min($0, trainer) } ?? trainer
                let when = (configuration.validation.everyNEpochs.map { $0 == 1 ? "every epoch" : "every \($0) epochs" } ?? "every epoch")
                    + (configuration.validation.everyNSteps.map { " and every \($0) steps" } ?? "")
                let t = LoRATrainer.validationTimesteps(min: configuration.minTimestep, max: configuration.maxTimestep)
                ToolRun.say("validation: \(validationPlan.images.count) images, \(batches) batches at timesteps "
                            + t.map(String.init).joined(separator: ", ") + ", \(when)")
            }
            for warning in plan.warnings { printError("warning: " + TerminalText.escape(warning)) }
            if dataset.maskedLoss && !plan.subsets.contains(where: \.alphaMask) {
                printError("warning: --masked-loss without alpha masks does nothing (give --alpha-mask or alpha_mask = true; conditioning images are not supported)")
            }
            let perStep = plan.images.indices.filter(plan.encodesEachStep).count
            if perStep > 0 {
                // kohya: "when caching latents, either color_aug or random_crop cannot be used".
                if dataset.cacheLatents || dataset.cacheLatentsToDisk {
                    throw ValidationError("--cache-latents\(dataset.cacheLatentsToDisk ? "-to-disk" : ""): the latents of random_crop and color_aug images "
                                          + "change at every step and cannot be cached (kohya refuses it too); leave it out: the other images stay cached in memory")
                }
                ToolRun.say("\(perStep) images (random_crop, color_aug or face crops) are encoded by the VAE at every step; the others' latents are cached")
            }
            // A later start (--initial-step/--initial-epoch) is checked before anything is loaded, --dry-run too.
            _ = try LoRATrainer.startPosition(configuration, steps: steps)
            if logs.logConfig && logs.loggingDir == nil {
                printError("note: --log-config does nothing without --logging-dir (kohya logs the settings to its tracker, which needs one)")
            }
            if samples.sampleEveryNEpochs != nil && samples.sampleEveryNSteps != nil {
                printError("note: --sample-every-n-steps is ignored because --sample-every-n-epochs is given (kohya does the same)")
            }
            if debugDataset {
                for (name, shown) in [("", plan), ("validation dataset: ", validationPlan)] {
                    guard let shown else { continue }
                    if !name.isEmpty { ToolRun.say(name + "\(shown.images.count) images") }
                    for line in shown.debugLines(epoch: 1, seed: configuration.seed, totalSteps: steps.totalSteps,
                                                 gradientAccumulationSteps: configuration.gradientAccumulationSteps,
                                                 priorLossWeight: configuration.priorLossWeight) {
                        ToolRun.say(line)  // escapes the captions' and paths' control characters
                    }
                }
                return
            }
            if dryRun {
                let file = try? ModelFile.open(model)
                let sd2 = file.flatMap { try? StableDiffusionModel.renderableFamily($0).0 } == .sd2
                let host = TrainingEstimate.HostFigures.thisHost
                let (caching, training) = TrainingEstimate.seconds(plan: plan, steps: steps, checkpointing: configuration.gradientCheckpointing,
                                                                  textEncoder: configuration.trainTextEncoder, sd2: sd2,
                                                                  model: file.map(TrainingEstimate.modelScale) ?? (1, 1),
                                                                  network: TrainingEstimate.networkFactor(
                                                                      configuration.networkModule == .lycoris ? configuration.lycorisAlgorithm : nil,
                                                                      maxNorm: (configuration.scaleWeightNorms ?? 0) > 0, dora: configuration.lycorisDoRA),
                                                                  host: host)
                ToolRun.say("estimated time: ~\(ReportText.clock(caching)) caching latents, ~\(ReportText.clock(training)) training "
                            + "(rough: scaled from \(host.name)'s SD1.5 figures by image area, model size, network and cores; the progress bar's s/it is the real one)")
                if json {
                    let summary = plan.summary(steps: steps, gradientAccumulationSteps: configuration.gradientAccumulationSteps,
                                               validationImagesWithRepeats: validationPlan?.trainImagesWithRepeats ?? 0)
                    print(try JSONOutput.string(DryRunReport(plan: summary, estimatedSeconds: .init(caching: caching, training: training))))
                }
                return
            }
            if findLR {
                let probe = LearningRateFinder.probeConfiguration(configuration, steps: findLRSteps ?? min(300, steps.stepsPerEpoch))
                try TrainingSession(command: self, plan: plan, configuration: probe).findLearningRate()
                return
            }
            try TrainingSession(command: self, plan: plan, validation: validationPlan, configuration: configuration).run()
        }
    }

    /// The training plan, or (`.validation`) the images kohya's validation split holds out (empty when no
    /// dataset asks for a split).
    func makePlan(_ side: ValidationSplit.Side = .training) throws(ModelError) -> DatasetPlan {
        var resolution: Resolution
        do { resolution = try dataset.parsedResolution() } catch { throw ModelError(.mismatch, "\(error)") }
        // kohya's --dataset_repeats is every subset's num_repeats unless its own is given (config_util.py maps one to the other).
        var defaults = DatasetSubset(imageDirectory: "", repeats: dataset.datasetRepeats)
        dataset.subsetSettings(&defaults)
        let commandLine = DatasetConfig(subsets: [])
        guard let path = dataset.datasetConfig else {
            if let metadata = dataset.inJson {
                if dataset.regDataDir != nil && side == .training {
                    printError("warning: --reg-data-dir is not used with --in-json (kohya's fine-tuning datasets have no regularization images)")
                }
                var subset = defaults
                (subset.imageDirectory, subset.metadataFile) = (dataset.trainDataDir ?? "", metadata)
                return try plan(commandLine, subsets: [subset], resolution: resolution, skipped: [], side: side)
            }
            var (subsets, skipped) = try DatasetSubset.fromFolders(train: dataset.trainDataDir!, regularization: dataset.regDataDir)
            for i in subsets.indices { dataset.subsetSettings(&subsets[i]) }
            return try plan(commandLine, subsets: subsets, resolution: resolution, skipped: skipped, side: side)
        }
        // kohya: the TOML's values, the command line's where it is silent; folder names are not parsed.
        if (dataset.trainDataDir != nil || dataset.regDataDir != nil || dataset.inJson != nil) && side == .training {
            printError("warning: --train-data-dir, --reg-data-dir and --in-json are ignored with --dataset-config (as in kohya)")
        }
        var plans: [DatasetPlan] = []
        for config in try DatasetConfig.load(path, defaults: defaults) {
            plans.append(try plan(config, subsets: config.subsets, resolution: config.resolution ?? resolution, skipped: [], side: side))
        }
        let kept = side == .validation ? plans.filter { !$0.images.isEmpty } : plans
        return DatasetPlan.combine(kept.isEmpty ? [plans[0]] : kept)
    }

    /// One dataset's plan: its settings, the command line's where it has none.
    func plan(_ config: DatasetConfig, subsets: [DatasetSubset], resolution: Resolution, skipped: [(folder: String, reason: String)],
              side: ValidationSplit.Side) throws(ModelError) -> DatasetPlan {
        let (minimum, maximum, step) = (config.minBucketReso ?? dataset.minBucketReso, config.maxBucketReso ?? dataset.maxBucketReso,
                                        config.bucketResoSteps ?? dataset.bucketResoSteps)
        let mode: BucketSet.Mode
        var limits: (min: Int, max: Int)?
        if config.enableBucket ?? dataset.enableBucket {
            // kohya adjusts (and checks) the limits whenever buckets are on, bucket_no_upscale or not.
            let adjusted = BucketSet.adjustedLimits(resolution: resolution, min: minimum, max: maximum, step: step)
            if let error = adjusted.error { throw ModelError(.mismatch, error) }
            limits = (adjusted.min, adjusted.max)
        }
        if !(config.enableBucket ?? dataset.enableBucket) {
            mode = .fixed
        } else if config.bucketNoUpscale ?? dataset.bucketNoUpscale {
            mode = .noUpscale(step: step)
        } else {
            mode = .predefined(min: limits!.min, max: limits!.max, step: step)
        }
        var bucketing = BucketSet(resolution: resolution, mode: mode)
        if case .noUpscale = mode { bucketing.noUpscaleLimits = limits }
        var made = try DatasetPlan.make(subsets: subsets, bucketing: bucketing,
                                        batchSize: config.batchSize ?? dataset.trainBatchSize, skippedFolders: skipped, split: split(config), side: side,
                                        cachedLatents: dataset.cacheLatents || dataset.cacheLatentsToDisk)
        made.parts[0].resizeInterpolation = config.resizeInterpolation ?? (try? dataset.parsedInterpolation()) ?? nil
        return made
    }

    /// A dataset's validation split: its own validation_split and validation_seed, the command line's where it has none
    /// (kohya's blueprint order), the run's seed last.
    func split(_ config: DatasetConfig) -> ValidationSplit? {
        guard let fraction = config.validationSplit ?? validation.validationSplit, fraction > 0 else { return nil }
        return ValidationSplit(fraction: fraction, seed: config.validationSeed ?? validation.validationSeed ?? seed)
    }

    /// How the model loads: its encoder for the latents, a separate VAE, LoRAs merged first (`--base-weights`).
    var modelOptions: StableDiffusionModel.Options {
        var options = StableDiffusionModel.Options(loadEncoder: true, vae: vae)
        options.loadDecoder = samples.samplePrompts != nil
        options.baseLoRAs = network.baseLoRAs
        return options
    }

    func makeConfiguration() throws -> TrainingConfiguration {
        var c = TrainingConfiguration(outputDirectory: outputDir ?? ".")
        c.outputName = outputName
        // A part whose rate is 0 does not train (kohya drops its parameter group); its modules are not created.
        c.trainUNet = !network.networkTrainTextEncoderOnly && (optimizer.unetLr ?? optimizer.learningRate) > 0
        c.trainTextEncoder = !network.networkTrainUnetOnly && (optimizer.textEncoderRate ?? optimizer.learningRate) > 0
        c.networkDim = network.networkDim
        c.networkAlpha = network.networkAlpha
        let args = try network.parsedArgs(reportingUnused: true)
        (c.convDim, c.convAlpha, c.rankDropout, c.moduleDropout, c.blockDims, c.blockLearningRates) =
            (args.convDim, args.convAlpha, args.rankDropout, args.moduleDropout, args.blocks, args.blockRates)
        (c.loraPlusRatio, c.loraPlusUNetRatio, c.loraPlusTextEncoderRatio) =
            (args.loraPlus["loraplus_lr_ratio"], args.loraPlus["loraplus_unet_lr_ratio"], args.loraPlus["loraplus_text_encoder_lr_ratio"])
        c.networkArguments = network.networkArgs
        c.networkModule = TrainingConfiguration.NetworkModule(rawValue: network.networkModule) ?? .lora
        c.lycorisPreset = network.lycorisPreset
        c.lycorisAlgorithm = network.lycorisAlgorithm
        c.lycorisTucker = network.lycorisTucker
        c.lycorisDoRA = network.lycorisDoRA
        c.lycorisTrainedScalar = network.lycorisTrainedScalar
        c.lycorisTrainNorm = network.lycorisTrainNorm
        c.networkDropout = network.networkDropout
        c.learningRate = optimizer.learningRate
        c.unetLearningRate = optimizer.unetLr
        c.textEncoderLearningRate = optimizer.textEncoderRate
        c.scheduler = optimizer.scheduleKind!   // checked in validate()
        if optimizer.lrWarmupSteps < 1 && optimizer.lrWarmupSteps > 0 { c.warmupFraction = optimizer.lrWarmupSteps } else {
            c.warmupSteps = Int(optimizer.lrWarmupSteps)
        }
        c.schedulerCycles = optimizer.lrSchedulerNumCycles
        c.schedulerPower = optimizer.lrSchedulerPower
        c.schedulerTimescale = optimizer.lrSchedulerTimescale
        c.schedulerMinLRRatio = optimizer.lrSchedulerMinLRRatio
        c.schedulerDecaySteps = optimizer.lrDecaySteps
        c.torchScheduler = try optimizer.torchScheduler()
        let schedulerArguments = c.torchScheduler == nil ? try optimizer.schedulerArguments() : (.linear, .cosine, nil)
        (c.schedulerWarmupRamp, c.schedulerDecayRamp) = (schedulerArguments.warmup, schedulerArguments.decay)
        if let rules = schedulerArguments.stepRules { c.schedulerStepRules = rules }
        c.maxTrainSteps = maxTrainSteps
        c.maxTrainEpochs = maxTrainEpochs
        c.gradientAccumulationSteps = optimizer.gradientAccumulationSteps
        c.maxGradNorm = optimizer.maxGradNorm
        c.seed = seed
        c.saveEveryNEpochs = saveEveryNEpochs
        c.saveEveryNSteps = saveEveryNSteps
        c.savePrecision = savePrecision?.dtype ?? .f32
        c.usesDatasetConfig = dataset.datasetConfig != nil
        c.validation.split = validation.validationSplit ?? 0
        c.validation.seed = validation.validationSeed
        c.validation.everyNSteps = validation.validateEveryNSteps
        c.validation.everyNEpochs = validation.validateEveryNEpochs
        c.validation.maxSteps = validation.maxValidationSteps
        for note in kohyaIgnored.notes { printError(note) }
        let (precision, note) = (mixedPrecision == "bf16" ? ComputePrecision.bf16 : .fp32).resolved()
        if let note { printError("note: --mixed-precision bf16: \(note)") }
        if mixedPrecision == "fp16" {
            // The kohya_ss GUI's default. CPUs have no fp16 matrix units (and fp16 needs a loss scaler); fp32 is what
            // fp16 autocast approximates, and the file says what ran.
            printError("note: --mixed-precision fp16 (the kohya_ss GUI's default): computing in fp32, as CPUs have no fp16 matrix units; "
                       + "bf16 is the fast mode on CPUs with AMX")
        }
        c.computePrecision = precision
        c.noise.offset = optimizer.noiseOffset
        c.noise.offsetRandomStrength = optimizer.noiseOffsetRandomStrength
        c.noise.adaptiveScale = optimizer.adaptiveNoiseScale
        c.noise.multiresIterations = optimizer.multiresNoiseIterations
        c.noise.multiresDiscount = optimizer.multiresNoiseDiscount
        c.noise.inputPerturbation = optimizer.ipNoiseGamma
        c.noise.inputPerturbationRandomStrength = optimizer.ipNoiseGammaRandomStrength
        c.objective.lossType = DiffusionObjective.LossType(rawValue: optimizer.lossType)!
        c.objective.huberSchedule = DiffusionObjective.HuberSchedule(rawValue: optimizer.huberSchedule)!
        (c.objective.huberC, c.objective.huberScale) = (optimizer.huberC, optimizer.huberScale)
        c.priorLossWeight = dataset.priorLossWeight
        c.minTimestep = optimizer.minTimestep
        c.maxTimestep = optimizer.maxTimestep
        c.maxTokenLength = dataset.maxTokenLength
        c.weightedCaptions = dataset.weightedCaptions
        c.noMetadata = noMetadata
        if network.dimFromWeights, let weights = network.networkWeights {
            c.dimsFromWeights = try LoRANetwork.moduleDims(inKohyaFile: weights)
            // LyCORIS's create_network_from_weights gives a LoCon module a core where the file has its lora_mid.
            if c.networkModule == .lycoris, try ModelFile.open(weights).tensors.contains(where: { $0.name.hasSuffix(".lora_mid.weight") }) {
                c.lycorisTucker = true
            }
        }
        c.clipSkip = dataset.clipSkip
        c.trainingComment = trainingComment
        c.modelCard = try card.fields()
        c.saveState = saveState
        (c.initialStep, c.initialEpoch, c.skipUntilInitialStep) = (initialStep, initialEpoch, skipUntilInitialStep)
        c.saveLastNEpochs = saveLastNEpochs
        c.saveLastNSteps = saveLastNSteps
        c.saveLastNEpochsState = saveLastNEpochsState
        c.saveLastNStepsState = saveLastNStepsState
        c.saveStateOnTrainEnd = saveStateOnTrainEnd
        c.gradientCheckpointing = gradientCheckpointing
        c.scaleWeightNorms = network.scaleWeightNorms.flatMap { $0 > 0 ? $0 : nil }
        c.cacheLatentsToDisk = dataset.cacheLatentsToDisk
        c.forceVPrediction = kohyaFlags.vParameterization
        c.samplePrompts = try samples.prompts()
        c.sampleEveryNEpochs = samples.sampleEveryNEpochs
        c.sampleEveryNSteps = samples.sampleEveryNSteps
        c.sampleAtFirst = samples.sampleAtFirst
        c.sampleSampler = samples.sampleSampler
        c.objective.minSNRGamma = optimizer.minSnrGamma
        c.objective.debiasedEstimation = optimizer.debiasedEstimationLoss
        c.objective.scaleVPredictionLoss = optimizer.scaleVPredLossLikeNoisePred
        c.objective.vPredictionLikeLoss = optimizer.vPredLikeLoss
        c.zeroTerminalSNR = optimizer.zeroTerminalSNR
        c.optimizer = OptimizerChoice(kohyaName: optimizer.optimizerName)!
        c.optimizerArguments = optimizer.optimizerArgs
        c.resizeInterpolation = dataset.resizeInterpolation.flatMap { $0.isEmpty ? nil : $0 }
        c.minBucketReso = dataset.minBucketReso
        c.maxBucketReso = dataset.maxBucketReso
        return c
    }
}

/// kohya options that change how sd-scripts runs on a GPU but not what is
/// trained; accepted so kohya command lines run unchanged.
struct KohyaTrainingFlags: ParsableArguments {
    @Flag(name: .customLong("xformers"), help: ArgumentHelp("Accepted: attention is always computed blockwise.", visibility: .hidden))
    var xformers = false
    @Flag(name: .customLong("sdpa"), help: ArgumentHelp("Accepted: attention is always computed blockwise.", visibility: .hidden))
    var sdpa = false
    @Flag(name: .customLong("mem_eff_attn"), help: ArgumentHelp("Accepted: attention is always computed blockwise.", visibility: .hidden))
    var memEffAttn = false
    @Flag(name: .customLong("cache_info"),
          help: ArgumentHelp("Accepted: kohya's metadata_cache.json saves re-reading sizes and captions; here sizes come from the image headers "
                             + "and captions from their files at every run, which is quick (and never stale).", visibility: .hidden))
    var cacheInfo = false
    @Flag(name: .customLong("highvram"), help: ArgumentHelp("Accepted: a GPU memory hint (memory-mapped weights here).", visibility: .hidden))
    var highvram = false
    @Flag(name: .customLong("lowram"), help: ArgumentHelp("Accepted: a GPU memory hint (memory-mapped weights here).", visibility: .hidden))
    var lowram = false
    @Flag(name: .customLong("disable_mmap_load_safetensors"), help: ArgumentHelp("Accepted: files are always memory-mapped and checked.", visibility: .hidden))
    var disableMmapLoadSafetensors = false
    @Flag(name: .customLong("skip_cache_check"), help: ArgumentHelp("Accepted: .npz caches are checked by their recorded hashes, which is quick.", visibility: .hidden))
    var skipCacheCheck = false
    @Option(name: .customLong("console_log_level"), help: ArgumentHelp("Accepted: lora-train prints kohya's plan and warnings; --quiet drops the bar.", visibility: .hidden))
    var consoleLogLevel: String?
    @Flag(name: .customLong("console_log_simple"), help: ArgumentHelp("Accepted: the output is plain text.", visibility: .hidden))
    var consoleLogSimple = false
    @Flag(name: .customLong("persistent_data_loader_workers"), help: ArgumentHelp("Accepted: no data-loader processes.", visibility: .hidden))
    var persistentDataLoaderWorkers = false
    @Option(name: .customLong("max_data_loader_n_workers"), help: ArgumentHelp("Accepted: no data-loader processes.", visibility: .hidden))
    var maxDataLoaderNWorkers: Int?
    // What the kohya_ss GUI writes into every config it runs with.
    @Option(name: .customLong("vae_batch_size"), help: ArgumentHelp("Accepted: latents are encoded one image at a time (the same latents).", visibility: .hidden))
    var vaeBatchSize: Int?
    @Flag(name: .customLong("no_half_vae"), help: ArgumentHelp("Accepted: the VAE always runs in fp32 here.", visibility: .hidden))
    var noHalfVAE = false
    @Option(name: .customLong("dynamo_backend"), help: ArgumentHelp("Accepted as no: torch.compile has no counterpart here.", visibility: .hidden))
    var dynamoBackend = "no"
    @Option(name: .customLong("wandb_run_name"), help: ArgumentHelp("Accepted: it names a run only with --log_with wandb, which is not supported.",
                                                                    visibility: .hidden))
    var wandbRunName: String?
    @Flag(name: .customLong("use_safetensors"), help: ArgumentHelp("Accepted: the network is always written as safetensors.", visibility: .hidden))
    var useSafetensors = false
    @Option(name: .customLong("tokenizer_cache_dir"), help: ArgumentHelp("Accepted: the CLIP tokenizer is read from --tokenizer (or found beside the tools), never downloaded.",
                                                                         visibility: .hidden))
    var tokenizerCacheDir: String?

    // kohya's low-precision storage: GPU memory savers that also round what is trained. Accepted where kohya
    // accepts them (its asserts on --mixed_precision are repeated), and left out: the network, its gradients
    // and the base weights stay float32 (the checkpoint's values), which is what kohya's run approximates.
    @Flag(name: .customLong("full_bf16"), help: ArgumentHelp("Accepted with --mixed-precision bf16, with a note: the network and its gradients stay fp32.", visibility: .hidden))
    var fullBF16 = false
    @Flag(name: .customLong("full_fp16"), help: ArgumentHelp("Accepted with --mixed-precision fp16, with a note: the network and its gradients stay fp32.", visibility: .hidden))
    var fullFP16 = false
    @Flag(name: .customLong("fp8_base"), help: ArgumentHelp("Accepted with --mixed-precision bf16, with a note: the base model stays at the checkpoint's precision.", visibility: .hidden))
    var fp8Base = false
    @Flag(name: .customLong("fp8_base_unet"), help: ArgumentHelp("Accepted with --mixed-precision bf16, with a note: the U-Net stays at the checkpoint's precision.", visibility: .hidden))
    var fp8BaseUnet = false

    /// kohya's asserts (train_network.py). What is accepted and not done is said by `notes`, from the run.
    func checkPrecisionStorage(mixedPrecision: String) throws {
        if fullFP16 && mixedPrecision != "fp16" {
            throw ValidationError("--full_fp16 requires --mixed_precision fp16 (as kohya asserts)")
        }
        if fullBF16 && mixedPrecision != "bf16" {
            throw ValidationError("--full_bf16 requires --mixed_precision bf16 (as kohya asserts)")
        }
        if (fp8Base || fp8BaseUnet) && mixedPrecision == "no" {
            throw ValidationError("--fp8_base\(fp8BaseUnet && !fp8Base ? "_unet" : "") requires --mixed_precision bf16 or fp16 (as kohya asserts)")
        }
    }

    /// Notes for the options accepted and not acted on: SDXL/SD3 options train_network.py ignores for SD1/SD2 too, and
    /// kohya's low-precision storage.
    var notes: [String] {
        var notes: [String] = []
        var unused: [String] = []
        if cacheTextEncoderOutputs { unused.append("--cache_text_encoder_outputs") }
        if cacheTextEncoderOutputsToDisk { unused.append("--cache_text_encoder_outputs_to_disk") }
        if textEncoderBatchSize != nil { unused.append("--text_encoder_batch_size") }
        if let w = weightingScheme, w != "uniform" { unused.append("--weighting_scheme") }
        if logitMean.map({ $0 != 0 }) ?? false { unused.append("--logit_mean") }
        if logitStd.map({ $0 != 1 }) ?? false { unused.append("--logit_std") }
        if modeScale.map({ $0 != 1.29 }) ?? false { unused.append("--mode_scale") }
        if !unused.isEmpty {
            notes.append("note: \(unused.joined(separator: ", ")): SDXL/SD3 options that sd-scripts' train_network.py does not use for SD1/SD2 either; ignored")
        }
        let stored = [fullBF16 ? "--full_bf16 (the network and its gradients stay fp32)" : nil, fullFP16 ? "--full_fp16 (the network and its gradients stay fp32)" : nil,
                      fp8Base ? "--fp8_base (the U-Net and text encoder stay at the checkpoint's precision)" : nil,
                      fp8BaseUnet && !fp8Base ? "--fp8_base_unet (the U-Net stays at the checkpoint's precision)" : nil].compactMap { $0 }
        if !stored.isEmpty {
            notes.append("note: \(stored.joined(separator: "; ")): GPU memory savers that round what is trained; not needed on the CPU, so not done "
                         + "(the result is the full-precision run's, which kohya's approximates)")
        }
        return notes
    }

    // SDXL/SD3/FLUX options train_network.py parses but does not use for SD1/SD2 (its text-encoder caching is a no-op
    // there, and the weighting scheme belongs to flow-matching models): accepted with a note, as kohya runs with them.
    @Flag(name: .customLong("cache_text_encoder_outputs"), help: ArgumentHelp("Accepted with a note: SDXL's; SD1/SD2 training does not use it.", visibility: .hidden))
    var cacheTextEncoderOutputs = false
    @Flag(name: .customLong("cache_text_encoder_outputs_to_disk"), help: ArgumentHelp("Accepted with a note: SDXL's; SD1/SD2 training does not use it.", visibility: .hidden))
    var cacheTextEncoderOutputsToDisk = false
    @Option(name: .customLong("text_encoder_batch_size"), help: ArgumentHelp("Accepted with a note: for text-encoder caching.", visibility: .hidden))
    var textEncoderBatchSize: Int?
    @Option(name: .customLong("weighting_scheme"), help: ArgumentHelp("Accepted with a note: SD3/FLUX's.", visibility: .hidden))
    var weightingScheme: String?
    @Option(name: .customLong("logit_mean"), help: ArgumentHelp("Accepted with a note: SD3/FLUX's.", visibility: .hidden))
    var logitMean: Double?
    @Option(name: .customLong("logit_std"), help: ArgumentHelp("Accepted with a note: SD3/FLUX's.", visibility: .hidden))
    var logitStd: Double?
    @Option(name: .customLong("mode_scale"), help: ArgumentHelp("Accepted with a note: SD3/FLUX's.", visibility: .hidden))
    var modeScale: Double?

    mutating func validate() throws {
        try refuseNaN([("--logit-mean", logitMean), ("--logit-std", logitStd), ("--mode-scale", modeScale)])
        guard dynamoBackend.lowercased() == "no" else {
            throw ValidationError("--dynamo_backend \(dynamoBackend): torch.compile backends do not apply here; leave it at no")
        }
    }
}
