import Diffusion
import Foundation
import LoRACore
import ToolSupport
import ArgumentParser
import Training

/// One run from the command line: the output folder checked before anything
/// heavy, the model loaded, latents cached, the loop driven with a progress
/// bar (loss, s/it, ETA) and the CSV log, the files written listed.
struct TrainingSession {
    let command: LoRATrain
    let plan: DatasetPlan
    var validation: DatasetPlan? = nil
    let configuration: TrainingConfiguration

    func run() throws {
        let output = configuration.outputDirectory
        try AtomicOutput.createFolder(output, what: "the output folder")
        guard FileManager.default.isWritableFile(atPath: output) else { throw ModelError(.io, "the output folder is not writable", file: output) }
        // The TensorBoard run folder before anything slow, so an unwritable --logging-dir fails at once.
        let board = try command.logs.loggingDir.map { folder throws(ModelError) in
            try TensorBoardLog(loggingDirectory: folder, prefix: command.logs.logPrefix ?? "", trackerName: command.logs.logTrackerName ?? "network_train")
        }
        if let board { ToolRun.say("TensorBoard log: \(TerminalText.escape(board.path))") }
        if command.logs.logConfig, let board {
            let names = OptionNames(help: LoRATrain.helpMessage(includeHidden: true, columns: 10_000))
            let written = try board.recordHParams(LoggedConfiguration.values(of: command, names: names))
            ToolRun.say("settings logged: \(TerminalText.escape(written.yaml))")
        }
        let tokenizer = try BPETokenizer.locate(explicit: command.tokenizer, near: command.model)
        for spec in command.network.baseLoRAs { ToolRun.say("merging module: \(spec.path) with multiplier \(formatNumber(spec.ratio))") }
        let model = try StableDiffusionModel(checkpoint: command.model, tokenizer: tokenizer, options: command.modelOptions)
        // kohya's --v2 says which family to load, and a wrong one fails there; here the tensors say it, so a GUI's
        // checkbox that disagrees is only worth a note.
        if command.kohyaFlags.v2 != (model.family == .sd2) {
            printError("note: \(command.kohyaFlags.v2 ? "--v2 is given" : "--v2 is not given"), but the checkpoint's tensors are "
                       + "\(model.family.rawValue)'s: trained as \(model.family.rawValue) (kohya would not load it)")
        }
        if !command.network.baseWeights.isEmpty { ToolRun.say("all weights merged: " + command.network.baseWeights.joined(separator: ", ")) }
        let trainer = try LoRATrainer(model: model, plan: plan, validation: validation, configuration: configuration)
        if let dims = configuration.dimsFromWeights {
            let ranks = dims.values.map(\.rank)
            ToolRun.say("create LoRA network from weights: \(trainer.network.modules.count) of its \(dims.count) modules, rank \(ranks.min()!)"
                        + (ranks.min() == ranks.max() ? "" : "–\(ranks.max()!)"))
        } else if configuration.networkModule == .lycoris {
            // LyCORIS's own log lines (lycoris.kohya): its algo and preset, then the dims.
            ToolRun.say("Using rank adaptation algo: \(configuration.lycorisAlgorithm.name), preset \(configuration.lycorisPreset.rawValue). dim: \(configuration.networkDim), "
                        + "alpha: \(formatNumber(Double(configuration.networkAlpha))), conv dim: \(configuration.convDim ?? configuration.networkDim), "
                        + "conv alpha: \(formatNumber(Double(configuration.convAlpha)))")
        } else {
            ToolRun.say("create LoRA network. base dim (rank): \(configuration.networkDim), alpha: \(formatNumber(Double(configuration.networkAlpha)))"
                        + (configuration.convDim.map { ", conv dim \($0), conv alpha \(formatNumber(Double(configuration.convAlpha)))" } ?? ""))
        }
        if configuration.zeroTerminalSNR && model.prediction != .v && !configuration.forceVPrediction {
            printError("warning: --zero-terminal-snr with an ε-prediction model: at t = 999 it sees pure noise and can only guess; kohya warns the same (use it with v-prediction)")
        }
        if configuration.networkModule == .loraFA, configuration.maxGradNorm > 0 {
            // train_network.py clips network.get_trainable_params(), which for networks.lora_fa is every parameter; torch gives
            // lora_down a gradient (prepare_optimizer_params' requires_grad_(True) reaches it) that no optimizer zeroes.
            printError("note: networks.lora_fa: kohya's --max_grad_norm also counts lora_down's gradients, which it computes but never "
                       + "applies or zeroes, so they add up over the run and its clipping tightens; lora-train clips lora_up's alone")
        }
        if configuration.networkModule == .lycoris && configuration.lycorisAlgorithm == .ia3 {
            printError("note: lycoris_lora 3.2.0.post2, which kohya_ss pins, has no ia3 in lycoris.kohya's module table (kohya stops with "
                       + "KeyError: 'ia3'); this trains its IA3Module on the preset's layers, scaling their outputs")
        }
        let unetModules = trainer.network.targets.filter { $0.component == .unet }.count
        let kind = configuration.networkModule == .lycoris ? "LyCORIS" : "LoRA"
        if configuration.trainTextEncoder { ToolRun.say("create \(kind) for Text Encoder: \(trainer.network.modules.count - unetModules) modules.") }
        if configuration.trainUNet { ToolRun.say("create \(kind) for U-Net: \(unetModules) modules.") }
        ToolRun.say("use \(configuration.optimizer.rawValue) optimizer | \(configuration.optimizerArguments.isEmpty ? "defaults" : configuration.optimizerArguments.joined(separator: " "))")
        let asked = command.optimizer.optimizerName
        if configuration.optimizer == .adamW8bit || asked.lowercased() != configuration.optimizer.rawValue.lowercased() {
            let runs = configuration.optimizer == .adamW8bit ? "AdamW" : configuration.optimizer.rawValue
            printError("note: \(asked) trains as \(runs) with fp32 state here: bitsandbytes' 8-bit and paged states save GPU memory, not a CPU run's")
        }
        if configuration.adafactorRelativeStep {
            printError("note: Adafactor with relative_step (kohya's default) sets its own step sizes: the learning rates only seed the log")
        }
        if configuration.optimizer.isScheduleFree
            && (configuration.scheduler != .constant || configuration.warmupSteps > 0 || configuration.warmupFraction != nil) {
            printError("note: \(configuration.optimizer.rawValue) sets its own schedule: --lr-scheduler and --lr-warmup-steps do not apply (kohya "
                       + "ignores them too)" + (configuration.optimizer == .prodigyPlusScheduleFree ? "" : "; give --optimizer-args warmup_steps=N for its warmup"))
        }
        if configuration.optimizer.adaptive && configuration.unetRate <= 0.1 {
            printError("warning: \(configuration.optimizer.rawValue) adapts the rate itself: its learning rate is a multiplier, usually 1.0 (kohya warns the same)")
        }
        if configuration.optimizer == .prodigyPlusScheduleFree && configuration.unetRate <= 0.1 {
            printError("warning: ProdigyPlusScheduleFree adapts the rate itself: its learning rate is a multiplier, usually 1.0 (as its authors advise)")
        }

        if let weights = command.network.networkWeights {
            let report = try trainer.loadNetworkWeights(weights, strict: false)
            ToolRun.say("load network weights from \(weights): \(report.loaded) of \(report.loaded + report.missing) tensors")
            if report.missing > 0 {
                printError("note: \(report.missing) tensors of this network are not in \(TerminalText.escape(weights)); they start fresh (kohya loads with strict=False too)")
            }
            if report.unused > 0 {
                printError("note: \(report.unused) tensors of \(TerminalText.escape(weights)) belong to modules this network does not have; they are not used")
            }
        }
        let resumeState = try command.resume.map { folder throws(ModelError) in try trainer.loadState(from: folder) }
        if let state = resumeState {
            ToolRun.say("resume from \(command.resume!): step \(state.position.step), epoch \(state.position.epoch)")
        }
        let start = try resumeState?.position ?? trainer.startPosition()
        if resumeState == nil && start.epoch > 1 {
            ToolRun.say(start.step > 0 ? "starting at step \(start.step) (epoch \(start.epoch), batch \(start.batch + 1)); the learning-rate schedule starts from its beginning"
                                       : "starting at epoch \(start.epoch) of \(trainer.steps.epochs), counting steps from 0; the learning-rate schedule starts from its beginning")
        }

        let caching = ProgressBar(label: "caching latents", total: plan.images.count + (validation?.images.count ?? 0), unit: .items,
                                  enabled: !command.quiet)
        try ToolRun.perform(json: command.json, bar: caching) { try trainer.cacheLatents { _, _ in caching.advance(by: 1) } }
        trainer.releaseEncoderIfDone()
        if configuration.cacheLatentsToDisk {
            ToolRun.say("latents: \(trainer.cache.reused) of \(plan.images.count) images from .npz caches on disk, \(plan.images.count - trainer.cache.reused) encoded")
        }

        let log = try TrainingLog(path: (output as NSString).appendingPathComponent(configuration.outputName + "-log.csv"), appending: resumeState != nil)
        // Without --skip-until-initial-step a later start counts from 0 and runs its remaining epochs' steps.
        let remaining = start.step == 0 && start.epoch > 1 ? min(trainer.steps.totalSteps, (trainer.steps.epochs - start.epoch + 1) * trainer.steps.stepsPerEpoch)
                                                           : trainer.steps.totalSteps
        let bar = ProgressBar(label: "steps", total: remaining, unit: .items, enabled: !command.quiet, delay: 0)
        if start.step > 0 { bar.advance(by: start.step) }
        var last = Date()
        let started = last
        var interrupted: String?, stepsRun = 0, lastStep = start.step, lastAverage: Double?, stepSeconds: [Double] = []
        var curve: [LossCurve.Point] = [], validationPoints: [LossCurve.Point] = []
        let curvePath = (output as NSString).appendingPathComponent(configuration.outputName + "-loss.png")
        func drawCurve() {
            // A failed curve is not a failed run: say so and go on.
            do { try LossCurve.write(curve, validation: validationPoints, to: curvePath, title: "\(configuration.outputName): loss per step") } catch {
                printError("warning: the loss curve was not written: \(TerminalText.escape(error.description))")
            }
        }
        // Ctrl-C: finish the step, save a state to resume from, exit 130.
        ToolEnvironment.deferInterrupt(true)
        defer { ToolEnvironment.deferInterrupt(false) }
        trainer.stopRequested = { ToolEnvironment.interruptRequested }
        let files = try ToolRun.perform(json: command.json, bar: bar) {
            try trainer.run(resume: resumeState) { event in
                switch event {
                case let .epochStarted(epoch, total):
                    if epoch > 1 && !curve.isEmpty { drawCurve() }
                    if command.quiet || !ToolEnvironment.stderrIsTerminal { printError("epoch \(epoch)/\(total)") }
                case let .step(step, _, epoch, loss, average, rates, d):
                    (stepsRun, lastStep, lastAverage) = (stepsRun + 1, step, average)
                    log.record(step: step, epoch: epoch, loss: loss, averageLoss: average, learningRates: rates, adaptiveScale: d)
                    board?.record(TensorBoardLog.stepScalars(loss: loss, averageLoss: average, learningRates: rates, adaptiveScale: d,
                                                             maxNorm: trainer.lastMaxNorm), step: step)
                    curve.append(LossCurve.Point(step: step, epoch: epoch, loss: loss, average: average))
                    let now = Date()
                    // kohya's progress postfix with --scale_weight_norms: "Keys Scaled", "Average key norm", then the loss.
                    let norms = trainer.lastMaxNorm.map { String(format: "Keys Scaled=%d  Average key norm=%.3g  ", $0.keysScaled, $0.averageNorm) } ?? ""
                    bar.setStatus(norms + String(format: "avr_loss=%.4f  %.2f s/it", average, now.timeIntervalSince(last)))
                    stepSeconds.append(now.timeIntervalSince(last))
                    last = now
                    bar.advance(by: 1)
                case let .epochEnded(epoch, _, average):
                    board?.record([("loss/epoch_average", average)], step: epoch)
                case let .validated(step, epoch, loss, divergence, atEpochEnd):
                    bar.finish()
                    let kind = atEpochEnd ? "epoch" : "step"
                    board?.record([("loss/validation/\(kind)_average", loss), ("loss/validation/\(kind)_divergence", divergence)],
                                  step: atEpochEnd ? epoch : step)
                    validationPoints.append(LossCurve.Point(step: step, epoch: epoch, loss: loss, average: loss))
                    printError(String(format: "validation (%@ %d): loss %.4f, %+.4f against the training's average", atEpochEnd ? "epoch" : "step",
                                      atEpochEnd ? epoch : step, loss, divergence))
                case let .saved(path, epoch, step):
                    bar.finish()
                    printError("saving checkpoint: \(TerminalText.escape(path)) (epoch \(epoch), step \(step))")
                case let .stateSaved(folder, step):
                    bar.finish()
                    printError("saving state: \(TerminalText.escape(folder)) (step \(step))")
                case let .interrupted(folder, step):
                    bar.finish()
                    printError("interrupted at step \(step): resume with --resume \(TerminalText.escape(folder))")
                    interrupted = folder
                case let .sampled(paths, step):
                    bar.finish()
                    printError("sample images at step \(step): " + paths.map { TerminalText.escape(($0 as NSString).lastPathComponent) }.joined(separator: ", "))
                }
            }
        }
        drawCurve()
        if command.json {
            let summary = plan.summary(steps: trainer.steps, gradientAccumulationSteps: configuration.gradientAccumulationSteps,
                                       validationImagesWithRepeats: validation?.trainImagesWithRepeats ?? 0)
            print(try JSONOutput.string(RunReport(plan: summary, models: files, log: log.path, lossCurve: curvePath, tensorBoard: board?.path,
                                                  stepsRun: stepsRun, lastStep: lastStep, finalAverageLoss: lastAverage, stepSeconds: stepSeconds,
                                                  seconds: Date().timeIntervalSince(started), interruptedState: interrupted)))
        }
        if interrupted != nil { throw ExitCode(130) }
        ToolRun.say("model saved: " + files.joined(separator: ", "))
        ToolRun.say("log: " + log.path + ", loss curve: " + curvePath)
    }

    /// `--find-lr`: the probe, the d·lr it went through, and the rates it suggests.
    func findLearningRate() throws {
        let tokenizer = try BPETokenizer.locate(explicit: command.tokenizer, near: command.model)
        let model = try StableDiffusionModel(checkpoint: command.model, tokenizer: tokenizer, options: command.modelOptions)
        let trainer = try LoRATrainer(model: model, plan: plan, configuration: configuration)
        ToolRun.say("learning-rate probe: Prodigy (lr 1, bias correction, safeguard warm-up), U-Net modules, \(trainer.steps.totalSteps) steps")
        let caching = ProgressBar(label: "caching latents", total: plan.images.count, unit: .items, enabled: !command.quiet)
        try ToolRun.perform(json: command.json, bar: caching) { try trainer.cacheLatents { _, _ in caching.advance(by: 1) } }
        trainer.releaseEncoderIfDone()
        let bar = ProgressBar(label: "probe", total: trainer.steps.totalSteps, unit: .items, enabled: !command.quiet, delay: 0)
        var rates: [Double] = []
        try ToolRun.perform(json: command.json, bar: bar) {
            _ = try trainer.run { event in
                if case let .step(_, _, _, _, average, groups, d) = event, let d {
                    rates.append(d * (groups.map(\.rate).max() ?? 0))
                    bar.setStatus(String(format: "d*lr=%.3g  avr_loss=%.4f", rates.last!, average))
                    bar.advance(by: 1)
                }
            }
        }
        guard let result = LearningRateFinder.suggest(from: rates) else {
            throw ModelError(.mismatch, "the probe took \(rates.count) steps; it needs at least 4 (--find-lr-steps)")
        }
        ToolRun.say("step      d*lr")
        let every = max(1, rates.count / 10)
        for (i, rate) in rates.enumerated() where (i + 1) % every == 0 || i == rates.count - 1 {
            ToolRun.say(String(format: "%5d  %9.3g", i + 1, rate))
        }
        ToolRun.say(String(format: "suggested AdamW rates: --unet-lr %.2g --text-encoder-lr %.2g (to %.2g)", result.suggestedUNet,
                           result.suggestedTextEncoder.lowerBound, result.suggestedTextEncoder.upperBound))
        ToolRun.say("(the median d*lr of the probe's last quarter; the text encoder at 1/10 to 1/2 of it, as the guides do)")
        if result.stillRising {
            printError("warning: d*lr was still rising at the end of the probe: the suggestion is a lower bound; probe longer (--find-lr-steps)")
        }
        if command.json {
            print(try JSONOutput.string(LearningRateReport(dTimesLR: rates, suggestedUNetLR: result.suggestedUNet,
                                                           suggestedTextEncoderLR: [result.suggestedTextEncoder.lowerBound, result.suggestedTextEncoder.upperBound],
                                                           stillRising: result.stillRising)))
        }
    }
}
