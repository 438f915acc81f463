import Diffusion
import Foundation
import Imaging
import LoRACore

/// What the loop reports as it goes (the CLI draws the progress bar and the
/// log from these; tests read them).
public enum TrainingEvent: Sendable {
    case epochStarted(epoch: Int, of: Int)
    /// After each optimizer step: kohya's `loss` (this step's, averaged over
    /// accumulated micro-batches), `avr_loss` (the mean of the last epoch's
    /// worth of steps, kohya's moving average) and the U-Net rate used.
    /// `adaptiveScale`: the d of Prodigy and D-Adaptation (their Adam-equivalent rate is d·lr).
    case step(step: Int, of: Int, epoch: Int, loss: Double, averageLoss: Double, learningRates: [(group: String, rate: Double)], adaptiveScale: Double?)
    /// After an epoch's last step: the moving average of the losses then (kohya logs it as
    /// `loss/epoch_average` at the epoch number).
    case epochEnded(epoch: Int, step: Int, averageLoss: Double)
    /// A validation after `step` (every n steps) or at the end of `epoch`: its mean loss and how far it is
    /// above the training's moving average (kohya's `loss/validation/…_average` and `…_divergence`).
    case validated(step: Int, epoch: Int, loss: Double, divergence: Double, atEpochEnd: Bool)
    case saved(path: String, epoch: Int, step: Int)
    case sampled(paths: [String], step: Int)
    case stateSaved(folder: String, step: Int)
    /// The run stopped early on request (Ctrl-C) after saving this state folder.
    case interrupted(stateFolder: String, step: Int)
}

/// The training loop of sd-scripts' train_network.py for a U-Net LoRA with
/// latents cached: per epoch, every bucket's entries shuffled and the
/// (bucket, batch) list shuffled (seeded by seed + epoch, as kohya reseeds);
/// per batch: cached latents, captions processed and encoded (through the
/// text encoder's modules when it trains), noise (+ offset), t uniform in
/// [min, max), the U-Net's forward and backward with its modules, the context
/// gradient back through the text encoder, the gradient averaged over
/// accumulated batches, clipped to `--max_grad_norm`, an AdamW step with
/// kohya's parameter groups (text encoder, then U-Net, each at its scheduled
/// rate). Files are written at the epochs/steps asked and at the end.
public final class LoRATrainer {
    public let model: StableDiffusionModel
    public let plan: DatasetPlan
    /// The images kohya's `--validation_split` set aside (nil or empty: no validation).
    public let validationPlan: DatasetPlan?
    public let configuration: TrainingConfiguration
    /// The objective with the model's prediction type (v for SD2 768-v models).
    let objective: DiffusionObjective
    public let network: LoRANetwork
    public let steps: StepCount
    public let captions: CaptionEncoder
    let unetTape: TrainingTape
    /// The text encoder's modules, when it trains.
    let textTape: TrainingTape?
    var optimizer: any Optimizer
    public private(set) var cache = LatentCache()
    public private(set) var validationCache = LatentCache()
    public private(set) var startedAt = Date()
    public internal(set) var savedFiles: [String] = []
    /// The last step's `--scale_weight_norms` report.
    public private(set) var lastMaxNorm: LoRANetwork.MaxNormReport?
    /// Asked after every optimizer step; true stops the run after saving a resumable state (Ctrl-C).
    public var stopRequested: @Sendable () -> Bool = { false }
    /// The session id kohya draws at random; here from the seed, so two runs
    /// with the same seed write the same metadata apart from the timestamps.
    public let sessionID: UInt32
    /// The base checkpoint's A1111 legacy hash and full SHA-256 (`ss_sd_model_hash`,
    /// `ss_new_sd_model_hash`), computed at the first save.
    public private(set) lazy var modelHashes: (legacy: String, sha256: String) = {
        (Hashing.legacyModelHash(model.file.file), Hashing.sha256(model.file.file))
    }()

    public init(model: StableDiffusionModel, plan: DatasetPlan, validation: DatasetPlan? = nil, configuration: TrainingConfiguration) throws(ModelError) {
        guard model.family != .sdxl else { throw ModelError(.unsupported, "SDXL training is not supported yet (SD1.x and SD2.x are)", file: model.path) }
        guard model.encoder != nil else { throw ModelError(.mismatch, "the model was loaded without its VAE encoder", file: model.path) }
        // The VAE halves the size vaeMultipliers − 1 times and the U-Net channelMultipliers − 1 times
        // more; a side that does not divide evenly cannot come back up to the skip connection's size.
        let multiple = (1 << (model.config.vaeMultipliers.count - 1)) * (1 << (model.config.channelMultipliers.count - 1))
        if let bad = (plan.buckets + (validation?.buckets ?? [])).first(where: { $0.resolution.width % multiple != 0 || $0.resolution.height % multiple != 0 }) {
            throw ModelError(.mismatch, "bucket \(bad.resolution.width)x\(bad.resolution.height): this model needs image sides that are "
                             + "multiples of \(multiple) (use --bucket-reso-steps \(multiple) and a resolution that is a multiple of it)")
        }
        self.model = model
        self.plan = plan
        self.validationPlan = validation.flatMap { $0.images.isEmpty ? nil : $0 }
        self.configuration = configuration
        var objective = configuration.objective
        // kohya takes --v_parameterization from the user; the model says it here (metadata, or SD2's test), the flag can force it.
        if model.prediction == .v || configuration.forceVPrediction { objective.prediction = .velocity }
        if configuration.zeroTerminalSNR {
            objective.snrSchedule = objective.schedule
            objective.schedule = objective.schedule.zeroTerminalSNR()
        }
        self.objective = objective
        var random = TrainingRandom(seed: configuration.seed)
        sessionID = random.generator.nextUInt32() & 0x7fff_ffff
        guard configuration.trainUNet || configuration.trainTextEncoder else {
            throw ModelError(.mismatch, "nothing to train: neither the U-Net's nor the text encoder's modules")
        }
        // A rank far beyond the layers' widths (a typo: --network-dim 32000) would be allocated module by module until the
        // process is killed; its size is known before: weights, gradients and up to two optimizer moments, 4 bytes each.
        let c = configuration
        let modules = c.networkModule == .lycoris
            ? LoRANetwork.lycorisPlan(ModelLayout(model.config), preset: c.lycorisPreset, dim: c.networkDim, alpha: c.networkAlpha, convDim: c.convDim ?? c.networkDim,
                                      convAlpha: c.convAlpha, unet: c.trainUNet, textEncoder: c.trainTextEncoder, trainNorm: c.lycorisTrainNorm,
                                      fromWeights: c.dimsFromWeights)
            : LoRANetwork.kohyaPlan(ModelLayout(model.config), dim: c.networkDim, alpha: c.networkAlpha, convDim: c.convDim, convAlpha: c.convAlpha,
                                    unet: c.trainUNet, textEncoder: c.trainTextEncoder, blocks: LoRATrainer.blocks(c), fromWeights: c.dimsFromWeights)
        // torch's optimizers refuse an empty parameter list; say which setting emptied it instead.
        guard !modules.isEmpty else {
            throw ModelError(.mismatch, "the network has no modules to train: "
                             + (c.networkModule == .lycoris ? "LyCORIS's preset \(c.lycorisPreset.rawValue) places none in " : "no module is left in ")
                             + (c.trainUNet && c.trainTextEncoder ? "the U-Net or the text encoder" : c.trainUNet ? "the U-Net (--network-train-unet-only)"
                                : "the text encoder (--network-train-text-encoder-only)"))
        }
        let algorithm = c.networkModule == .lycoris ? c.lycorisAlgorithm : .locon
        let tucker = c.networkModule == .lycoris && c.lycorisTucker
        let dora = c.networkModule == .lycoris && c.lycorisDoRA, trainedScalar = c.networkModule == .lycoris && c.lycorisTrainedScalar
        let parameters = modules.reduce(0) {
            $0 + LoRANetwork.parameterCount($1.target, rank: $1.rank, algorithm: algorithm, tucker: tucker, dora: dora, trainedScalar: trainedScalar)
        }
        let needed = Double(parameters) * 16, memory = Double(ProcessInfo.processInfo.physicalMemory)
        if needed > memory / 2 {
            throw ModelError(.mismatch, "the network (--network-dim \(configuration.networkDim)"
                             + (configuration.convDim.map { ", conv_dim \($0)" } ?? "") + ") has \(parameters) parameters: with their gradients and "
                             + "the optimizer's state about \(ReportText.byteSize(Int(needed))), more than half of this machine's "
                             + "\(ReportText.byteSize(Int(memory))); choose a smaller rank")
        }
        network = c.networkModule == .lycoris
            ? try LoRANetwork.lycoris(plan: modules, algorithm: algorithm, tucker: tucker, trainedScalar: trainedScalar,
                                      dora: dora ? { (target) throws(ModelError) in try LoRANetwork.weight(of: target, in: model) } : nil,
                                      uniform: { Float(random.uniform()) }, normal: { random.normal($0) })
            : c.networkModule == .loraFA ? LoRANetwork.loraFA(plan: modules, normal: { random.normal($0) })
            : LoRANetwork.kohya(plan: modules, uniform: { Float(random.uniform()) })
        unetTape = network.tape(for: model, components: [.unet])
        textTape = configuration.trainTextEncoder ? network.tape(for: model, components: [.textEncoder1]) : nil
        // kohya hands --network_dropout to LyCORIS as neuron_dropout, a name lycoris.kohya's create_network does not read;
        // LyCORIS's rank_dropout drops rows of ΔW.
        let lycoris = c.networkModule == .lycoris
        let dropout = LoRADropout(neuron: lycoris ? nil : configuration.networkDropout, rank: configuration.rankDropout, module: configuration.moduleDropout,
                                  seed: configuration.seed &+ 0xD80, rankDropout: lycoris ? .weightRows : .rankChannels)
        if dropout.isActive {
            unetTape.dropout = dropout
            textTape?.dropout = dropout
        }
        steps = StepCount(batchesPerEpoch: plan.batchesPerEpoch, gradientAccumulationSteps: configuration.gradientAccumulationSteps,
                          maxTrainEpochs: configuration.maxTrainEpochs, maxTrainSteps: configuration.maxTrainSteps)
        captions = try CaptionEncoder(text: model.text, maxTokenLength: configuration.maxTokenLength, clipSkip: configuration.clipSkip,
                                      weighted: configuration.weightedCaptions)
        do { optimizer = try configuration.optimizer.make(arguments: configuration.optimizerArguments) } catch {
            throw ModelError(.mismatch, error.message)
        }
        if configuration.optimizer.adaptive && configuration.trainUNet && configuration.trainTextEncoder
            && configuration.unetRate != configuration.textEncoderRate {
            throw ModelError(.mismatch, "\(configuration.optimizer.rawValue) takes one learning rate for the text encoder and the U-Net "
                             + "(\(configuration.textEncoderRate) and \(configuration.unetRate) given): set them equal, as its authors advise")
        }
    }

    public var schedule: LearningRateSchedule {
        var s = LearningRateSchedule(kind: configuration.scheduler, totalSteps: steps.totalSteps, warmupSteps: warmupSteps)
        s.cycles = configuration.schedulerCycles
        s.power = configuration.schedulerPower
        s.polynomialInitial = configuration.learningRate
        s.timescale = configuration.schedulerTimescale
        s.minLRRatio = configuration.schedulerMinLRRatio
        // kohya: --lr_decay_steps below 1 is a share of the steps (int(ratio · N)), as --lr_warmup_steps.
        let decay = configuration.schedulerDecaySteps
        s.decaySteps = decay > 0 && decay < 1 ? Int((decay * Double(steps.totalSteps)).rounded(.down)) : Int(decay)
        s.warmupRamp = configuration.schedulerWarmupRamp
        s.decayRamp = configuration.schedulerDecayRamp
        s.stepRules = configuration.schedulerStepRules
        return s
    }

    public var warmupSteps: Int {
        configuration.warmupFraction.map { Int(($0 * Double(steps.totalSteps)).rounded(.down)) } ?? configuration.warmupSteps
    }

    /// The training images' latents, then the validation images' (`progress`: done, of all of them).
    public func cacheLatents(progress: (Int, Int) -> Void = { _, _ in }) throws(ModelError) {
        guard let encoder = model.encoder else {
            throw ModelError(.mismatch, "the VAE encoder was released after the latents were cached (releaseEncoderIfDone)", file: model.path)
        }
        var random = TrainingRandom(seed: configuration.seed &+ 0x5EED)
        let disk = configuration.cacheLatentsToDisk ? try DiskLatentCache(model: model) : nil
        let total = plan.images.count + (validationPlan?.images.count ?? 0)
        cache = try LatentCache.encode(plan: plan, encoder: encoder, random: &random, disk: disk) { done, _ in progress(done, total) }
        guard let validationPlan else { return }
        var validationRandom = TrainingRandom(seed: configuration.seed &+ 0x7A11D)
        validationCache = try LatentCache.encode(plan: validationPlan, encoder: encoder, random: &validationRandom, disk: disk) { done, _ in
            progress(plan.images.count + done, total)
        }
    }

    /// After `cacheLatents`: when no image is encoded again at each step (random crop and the other per-step
    /// augmentations keep pixels instead of latents), the VAE encoder's weights and the memory the caching's
    /// activations took go back to the system before the U-Net's step needs it. The model then encodes nothing more.
    public func releaseEncoderIfDone() {
        if cache.perStep.isEmpty && validationCache.perStep.isEmpty { model.releaseEncoder() }
        EngineAllocator.returnFreedMemory()
    }

    /// The batches of an epoch in training order.
    func batches(epoch: Int) -> [[Int]] { plan.batches(epoch: epoch, seed: configuration.seed) }

    /// Trains to the end (from `resume`, a state loaded with `loadState`);
    /// returns the files written (epoch files, then the final one), or stops
    /// early after saving a state when `stopRequested` says so.
    public func run(resume: TrainingState? = nil, events: (TrainingEvent) throws -> Void = { _ in }) throws -> [String] {
        precondition(cache.latents.count == plan.images.count, "cacheLatents() first")
        startedAt = Date()
        var random = TrainingRandom(seed: configuration.seed &+ 0xD1FF)
        let parameters = network.parameters
        let schedule = schedule
        var step = 0
        var recent: [Double] = []
        var start = try startPosition()
        step = start.step
        if let resume {
            try random.generator.restore(resume.random)
            (start, step, recent) = (resume.position, resume.position.step, resume.recentLosses)
        }
        let scheduleStart = start.scheduleStart ?? 0
        for p in parameters { p.gradient.zero() }
        let sampling = !configuration.samplePrompts.isEmpty
        if sampling && configuration.sampleAtFirst && resume == nil { try events(.sampled(paths: try renderSamples(epoch: nil, step: 0), step: 0)) }
        // Schedule-free optimizers: saves, samples and validation see the averaged weights (a state holds them too), steps
        // the gradient point; switched where kohya calls their eval() and train(), which round off alike.
        optimizer.useGradientPointWeights(parameters)
        func saveState(epoch: Int?, stepName: Int?, position: TrainingState.Position) throws {
            let folder = stateFolder(epoch: epoch, step: stepName)
            try self.saveState(to: folder, position: position, random: random, recentLosses: recent)
            try events(.stateSaved(folder: folder, step: position.step))
        }
        for epoch in start.epoch...max(start.epoch, steps.epochs) where step < steps.totalSteps {
            try events(.epochStarted(epoch: epoch, of: steps.epochs))
            let batches = batches(epoch: epoch)
            var micro = 0, stepLoss = 0.0
            for (index, batch) in batches.enumerated() where epoch > start.epoch || index >= start.batch {
                stepLoss += try configuration.computePrecision.run { () throws(ModelError) in
                    try trainMicroBatch(batch, epoch: epoch, index: index, step: step, random: &random)
                }
                micro += 1
                let lastOfEpoch = index == batches.count - 1
                guard micro == configuration.gradientAccumulationSteps || lastOfEpoch else { continue }
                let loss = stepLoss / Double(micro)
                guard loss.isFinite else {
                    throw ModelError(.mismatch, "the loss became \(loss) at step \(step + 1) (epoch \(epoch)); training stopped"
                                     + (savedFiles.last.map { ", the last good file is \($0)" } ?? ", nothing was saved")
                                     + ". Lower the learning rate or the network alpha")
                }
                // sd-scripts' backward divides each micro-batch's loss by the accumulation count.
                if micro > 1 { for p in parameters { for i in p.gradient.values.indices { p.gradient.values[i] /= Float(micro) } } }
                clipGradientNorm(parameters, maximum: configuration.maxGradNorm)
                let k = step - scheduleStart
                let groups = optimizer.schedulesItself ? parameterGroups(factor: 1)
                    : configuration.torchScheduler.map { torch in parameterGroups { torch.rate(base: $0, at: k) } }
                    ?? parameterGroups(factor: schedule.factor(at: k))
                do { try optimizer.update(groups) } catch { throw ModelError(.mismatch, error.message) }
                if let maximum = configuration.scaleWeightNorms { lastMaxNorm = network.applyMaxNorm(maximum) }
                for p in parameters { p.gradient.zero() }
                step += 1
                recent.append(loss)
                if recent.count > steps.stepsPerEpoch { recent.removeFirst() }
                try events(.step(step: step, of: steps.totalSteps, epoch: epoch, loss: loss,
                                 averageLoss: recent.reduce(0, +) / Double(recent.count), learningRates: groups.map { ($0.name, $0.learningRate) },
                                 adaptiveScale: optimizer.adaptiveScale))
                (micro, stepLoss) = (0, 0)
                // Where a resumed run continues: the next batch of this epoch, or the next epoch.
                var next = lastOfEpoch ? TrainingState.Position(epoch: epoch + 1, batch: 0, step: step)
                                       : TrainingState.Position(epoch: epoch, batch: index + 1, step: step)
                next.scheduleStart = start.scheduleStart
                optimizer.useAveragedWeights(parameters)
                if let every = configuration.saveEveryNSteps, step % every == 0, step < steps.totalSteps {
                    let path = try save(name: String(format: "%@-step%08d", configuration.outputName, step), epoch: epoch, step: step)
                    try events(.saved(path: path, epoch: epoch, step: step))
                    if configuration.saveState {
                        try saveState(epoch: nil, stepName: step, position: next)
                        if let keep = configuration.saveLastNStepsState ?? configuration.saveLastNSteps {
                            let old = (step - keep - 1) / every * every   // as for the files below
                            if old > 0 { try? FileManager.default.removeItem(atPath: stateFolder(epoch: nil, step: old)) }
                        }
                    }
                    if let keep = configuration.saveLastNSteps {
                        // kohya's --save_last_n_steps: the step save at or below step − n − 1 (a multiple of every) goes.
                        let old = (step - keep - 1) / every * every
                        if old > 0 {
                            let path = (configuration.outputDirectory as NSString)
                                .appendingPathComponent(String(format: "%@-step%08d.safetensors", configuration.outputName, old))
                            if (try? FileManager.default.removeItem(atPath: path)) != nil { savedFiles.removeAll { $0 == path } }
                        }
                    }
                }
                if stopRequested() && step < steps.totalSteps {
                    let folder = stateFolder(epoch: nil, step: step)
                    try self.saveState(to: folder, position: next, random: random, recentLosses: recent)
                    try events(.interrupted(stateFolder: folder, step: step))
                    return savedFiles
                }
                if sampling, configuration.sampleEveryNEpochs == nil, let every = configuration.sampleEveryNSteps, step % every == 0 {
                    try events(.sampled(paths: try renderSamples(epoch: nil, step: step), step: step))
                }
                optimizer.useGradientPointWeights(parameters)
                if let every = configuration.validation.everyNSteps, step % every == 0,
                   let loss = try averagedWeightsValidationLoss(epoch: epoch, step: step) {
                    let average = recent.reduce(0, +) / Double(recent.count)
                    try events(.validated(step: step, epoch: epoch, loss: loss, divergence: loss - average, atEpochEnd: false))
                }
                if step >= steps.totalSteps { break } // mid-epoch with --max-train-steps; the epoch's end still runs, as in kohya
            }
            if configuration.validation.everyNEpochs.map({ epoch % $0 == 0 }) ?? true, !recent.isEmpty,
               let loss = try averagedWeightsValidationLoss(epoch: epoch, step: step) {
                let average = recent.reduce(0, +) / Double(recent.count)
                try events(.validated(step: step, epoch: epoch, loss: loss, divergence: loss - average, atEpochEnd: true))
            }
            if !recent.isEmpty { try events(.epochEnded(epoch: epoch, step: step, averageLoss: recent.reduce(0, +) / Double(recent.count))) }
            optimizer.useAveragedWeights(parameters)
            if let every = configuration.saveEveryNEpochs, epoch % every == 0, epoch < steps.epochs {
                let path = try save(name: String(format: "%@-%06d", configuration.outputName, epoch), epoch: epoch, step: step)
                try events(.saved(path: path, epoch: epoch, step: step))
                if let keep = configuration.saveLastNEpochs, epoch - every * keep > 0 {
                    // kohya's --save_last_n_epochs: the save that is now n saves old goes.
                    let old = (configuration.outputDirectory as NSString)
                        .appendingPathComponent(String(format: "%@-%06d.safetensors", configuration.outputName, epoch - every * keep))
                    if (try? FileManager.default.removeItem(atPath: old)) != nil { savedFiles.removeAll { $0 == old } }
                }
                if configuration.saveState {
                    try saveState(epoch: epoch, stepName: nil, position: .init(epoch: epoch + 1, batch: 0, step: step, scheduleStart: start.scheduleStart))
                    if let keep = configuration.saveLastNEpochsState ?? configuration.saveLastNEpochs, epoch - every * keep > 0 {
                        try? FileManager.default.removeItem(atPath: stateFolder(epoch: epoch - every * keep, step: nil))
                    }
                }
            }
            if sampling, let every = configuration.sampleEveryNEpochs, epoch % every == 0 {
                try events(.sampled(paths: try renderSamples(epoch: epoch, step: step), step: step))
            }
            optimizer.useGradientPointWeights(parameters)
            if step >= steps.totalSteps { break }
        }
        optimizer.useAveragedWeights(parameters)
        guard configuration.writesFiles else { return [] }
        let path = try save(name: configuration.outputName, epoch: steps.epochs, step: step)
        try events(.saved(path: path, epoch: steps.epochs, step: step))
        if configuration.saveState || configuration.saveStateOnTrainEnd {
            try saveState(epoch: nil, stepName: nil, position: .init(epoch: steps.epochs + 1, batch: 0, step: step, scheduleStart: start.scheduleStart))
        }
        return savedFiles
    }

    /// Where a run without a state starts (train_network.py's initial_step handling): step 0 of epoch 1, or with
    /// --initial_step (or --initial_epoch e: step (e − 1) × steps per epoch):
    /// - by default, at the first batch of the epoch that step falls in, counting steps from 0: the epochs
    ///   before it are only skipped in the numbering (files continue as NAME-00000e);
    /// - with --skip_until_initial_step, at that very step: its epoch's earlier batches are skipped too and the
    ///   step count (names, --max-train-steps, saves every n steps) continues from it. kohya's own count restarts
    ///   at the step's place within its epoch; the run's total is what users mean by it, so that is used here.
    /// Either way the learning-rate schedule starts from its beginning, as kohya's help says of both options.
    /// An epoch's batches are drawn from the seed and the epoch number, so a later start trains on the same
    /// batches an uninterrupted run would have.
    public func startPosition() throws(ModelError) -> TrainingState.Position {
        try LoRATrainer.startPosition(configuration, steps: steps)
    }

    public static func startPosition(_ c: TrainingConfiguration, steps: StepCount) throws(ModelError) -> TrainingState.Position {
        guard let initial = c.initialStep ?? c.initialEpoch.map({ ($0 - 1) * steps.stepsPerEpoch }), initial > 0 else {
            return .init(epoch: 1, batch: 0, step: 0)
        }
        guard initial < steps.totalSteps else {
            throw ModelError(.mismatch, "the initial step \(initial) is not below the run's \(steps.totalSteps) steps (kohya asserts max_train_steps > initial_step)")
        }
        let epoch = initial / steps.stepsPerEpoch + 1
        guard c.skipUntilInitialStep else { return .init(epoch: epoch, batch: 0, step: 0) }
        let within = initial - (epoch - 1) * steps.stepsPerEpoch
        return .init(epoch: epoch, batch: within * c.gradientAccumulationSteps, step: initial, scheduleStart: initial)
    }

    /// kohya's parameter groups in its order and names: "textencoder", then "unet".
    func parameterGroups(factor: Double) -> [ParameterGroup] { parameterGroups { $0 * factor } }

    /// `scheduled`: a group's rate now from its base rate.
    func parameterGroups(_ scheduled: (Double) -> Double) -> [ParameterGroup] {
        var groups: [ParameterGroup] = []
        // kohya's (and LyCORIS's) assemble_params: with LoRA+ the tensors whose name has "lora_up" form a " plus" group at
        // the rate × ratio; a group left empty (LoHa, LoKr: no lora_up) is not added.
        func add(_ name: String, _ modules: [any TrainedModule], rate: Double, plusRatio: Double?) {
            let parameters = modules.flatMap(\.parameters).filter { !$0.isFrozen }
            guard rate > 0, !parameters.isEmpty else { return }
            guard let ratio = plusRatio else {
                groups.append(ParameterGroup(name: name, parameters: parameters, learningRate: scheduled(rate)))
                return
            }
            let plus = parameters.filter { $0.key.contains("lora_up") }, rest = parameters.filter { !$0.key.contains("lora_up") }
            if !rest.isEmpty { groups.append(ParameterGroup(name: name, parameters: rest, learningRate: scheduled(rate))) }
            if !plus.isEmpty { groups.append(ParameterGroup(name: name + " plus", parameters: plus, learningRate: scheduled(rate * ratio))) }
        }
        let c = configuration
        if c.trainTextEncoder {
            // Blocks past the clip-skip layer never reach the loss: torch leaves their gradient None and AdamW skips
            // them (no weight decay either), so they stay out of the group.
            let used = captions.layerCount
            let modules = zip(network.modules, network.targets).filter { _, target in
                target.component == .textEncoder1 && (LoRANetwork.textEncoderBlock(of: target).map { $0 < used } ?? true)
            }.map(\.0)
            add("textencoder", modules, rate: c.textEncoderRate, plusRatio: c.loraPlusTextEncoderRatio ?? c.loraPlusRatio)
        }
        guard c.trainUNet else { return groups }
        let unetModules = zip(network.modules, network.targets).filter { $0.1.component == .unet }.map(\.0)
        guard let blockRates = c.blockLearningRates else {
            add("unet", unetModules, rate: c.unetRate, plusRatio: c.loraPlusUNetRatio ?? c.loraPlusRatio)
            return groups
        }
        // kohya: a group per block, in the order the modules come, named unet_block<index>.
        var order: [Int] = [], byBlock: [Int: [any TrainedModule]] = [:]
        for module in unetModules {
            let index = LoRANetwork.blockIndex(kohyaName: module.name) ?? 0
            if byBlock[index] == nil { order.append(index) }
            byBlock[index, default: []].append(module)
        }
        for index in order {
            add("unet_block\(index)", byBlock[index]!, rate: c.unetRate * blockRates.weights[index], plusRatio: c.loraPlusUNetRatio ?? c.loraPlusRatio)
        }
        return groups
    }

    /// The per-block dims the network is built with: block_dims, or (with block learning rates only) the
    /// network's dims per block, less the blocks whose rate weight is 0 (kohya's create_network).
    static func blocks(_ c: TrainingConfiguration) -> LoRANetwork.BlockDims? {
        guard c.blockDims != nil || c.blockLearningRates != nil else { return nil }
        let n = LoRANetwork.BlockDims.count
        let blocks = c.blockDims ?? LoRANetwork.BlockDims(dims: [Int](repeating: c.networkDim, count: n), alphas: [Float](repeating: c.networkAlpha, count: n),
                                                          convDims: c.convDim.map { [Int](repeating: $0, count: n) },
                                                          convAlphas: c.convDim.map { _ in [Float](repeating: c.convAlpha, count: n) })
        return c.blockLearningRates?.removingZeroBlocks(from: blocks) ?? blocks
    }

    /// A batch as the U-Net step takes it: latents (augmented where asked), processed captions, each
    /// item's loss scale (the prior loss weight for regularization images) and the loss mask.
    struct Batch {
        var latents: Tensor
        var captions: [String]
        var scales: [Float]
        var lossMask: [Float]?
    }

    /// kohya's `__getitem__` and collate for `entries` of `plan` (whose latents are in `cache`).
    func batch(_ entries: [Int], plan: DatasetPlan, cache: LatentCache, epoch: Int, step: Int,
               random: inout TrainingRandom) throws(ModelError) -> Batch {
        var latentValues: [Float] = [], scales: [Float] = [], processed: [String] = []
        var latentShape: [Int] = [], masks: [[Float]?] = []
        for entry in entries {
            let image = plan.images[entry]
            let subset = plan.subsets[image.subsetIndex]
            let latents: Tensor
            if let scaled = cache.perStep[entry] {
                let augmented = try augmentedLatents(scaled, entry: entry, plan: plan, cache: cache, random: &random)
                latents = augmented.latents
                masks.append(augmented.mask)
            } else {
                let useFlip = cache.flipped[entry] != nil && random.uniform() < 0.5
                latents = useFlip ? cache.flipped[entry]! : cache.latents[entry]!
                masks.append(useFlip ? cache.flippedMasks[entry] : cache.masks[entry])
            }
            latentShape = latents.shape
            latentValues += latents.values
            processed.append(CaptionProcessing.process(image.caption, subset: subset, epoch: epoch, step: step, totalSteps: steps.totalSteps, random: &random))
            scales.append(image.isRegularization ? Float(configuration.priorLossWeight) : 1)
        }
        // kohya's collate: when any item has an alpha mask, the others get ones.
        let plane = latentShape[latentShape.count - 2] * latentShape[latentShape.count - 1]
        let lossMask = masks.contains { $0 != nil } ? masks.flatMap { $0 ?? [Float](repeating: 1, count: plane) } : nil
        return Batch(latents: Tensor(shape: [entries.count] + latentShape.dropFirst(), values: latentValues), captions: processed,
                     scales: scales, lossMask: lossMask)
    }

    /// One micro-batch's forward and backward (gradients added into the buffers); its loss. `index`: the batch's place in the epoch.
    func trainMicroBatch(_ entries: [Int], epoch: Int, index: Int, step: Int = 0, random: inout TrainingRandom) throws(ModelError) -> Double {
        // The dropout masks of this pass (the same ones again if a checkpointed block recomputes), named by the epoch and
        // batch so that a resumed run draws the ones the uninterrupted run drew.
        unetTape.dropout?.pass = UInt64(epoch) << 32 | UInt64(index)
        let batch = try batch(entries, plan: plan, cache: cache, epoch: epoch, step: step, random: &random)
        let (latents, processed, scales, lossMask) = (batch.latents, batch.captions, batch.scales, batch.lossMask)
        let b = entries.count
        let (noise, perturbed) = TrainingNoise.draw(like: latents, options: configuration.noise, random: &random)
        let span = configuration.maxTimestep - configuration.minTimestep
        let timesteps = (0..<b).map { _ in configuration.minTimestep + (span > 0 ? random.integer(below: span) : 0) }
        let context: Tensor, textSaved: CaptionEncoder.Saved?
        if let textTape {
            textTape.reset()
            (context, textSaved) = captions.contextsSaving(processed, tape: textTape)
        } else {
            context = try captions.contexts(processed)
            textSaved = nil
        }
        let (loss, contextGradient) = unetTrainingStep(model.unet, tape: unetTape, objective: objective, latents: latents, noise: noise,
                                                       timesteps: timesteps, context: context, itemScales: scales,
                                                       checkpointing: configuration.gradientCheckpointing, perturbedNoise: perturbed,
                                                       lossMask: lossMask)
        if let textTape, let textSaved { captions.backward(textSaved, contextGradient: contextGradient, tape: textTape) }
        return loss
    }

    /// kohya's uncached path for one image (`DatasetPlan.stepPixels`): the pixels go through the VAE with a
    /// fresh sample of its latent distribution, as kohya's encode at each step draws one.
    func augmentedLatents(_ stored: Bitmap, entry: Int, plan: DatasetPlan, cache: LatentCache,
                          random: inout TrainingRandom) throws(ModelError) -> (latents: Tensor, mask: [Float]?) {
        let step = try plan.stepPixels(entry, stored: stored, alpha: cache.perStepAlpha[entry], random: &random)
        let bucket = plan.buckets[plan.bucketOf[entry]].resolution
        var latents = model.encoder!.encode(step.pixels, noise: random.normal(4 * (bucket.width / 8) * (bucket.height / 8)))
        for j in latents.values.indices where !latents.values[j].isFinite { latents.values[j] = 0 }
        return (latents, step.pixelMask.map { AlphaMask.latentMask($0, bucket: bucket, flipped: step.flipped) })
    }
}
