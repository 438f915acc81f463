import ArgumentParser
import Foundation
import LoRACore
import ToolSupport
import Training

/// Optimizer, learning rates, schedule and the loss (sd-scripts' optimizer and training arguments).
struct OptimizerOptions: ParsableArguments {
    @Option(name: [.long, .customLong("optimizer_type")],
            help: ArgumentHelp("AdamW, Lion, SGDNesterov, Prodigy, DAdaptAdam, DAdaptLion, DAdaptSGD, DAdaptAdaGrad, DAdaptAdan, DAdaptAdanIP, "
                               + "DAdaptation (= DAdaptAdamPreprint), Adafactor, AdamWScheduleFree, RAdamScheduleFree or SGDScheduleFree; the kohya_ss GUI's "
                               + "prodigyplus.ProdigyPlusScheduleFree, pytorch_optimizer.CAME, came_pytorch.CAME and bitsandbytes.optim.AdEMAMix8bit; bitsandbytes' AdamW8bit, PagedAdamW(8bit, 32bit), "
                               + "Lion8bit, PagedLion8bit, SGDNesterov8bit and (Paged)AdEMAMix8bit train as their fp32 forms.", valueName: "name"),
            completion: .list(OptimizerChoice.allCases.map(\.rawValue)))
    var optimizerType = "AdamW"

    @Flag(name: [.customLong("use-8bit-adam"), .customLong("use_8bit_adam")], help: ArgumentHelp("kohya's older spelling of --optimizer-type AdamW8bit.", visibility: .hidden))
    var use8bitAdam = false

    @Flag(name: [.customLong("use-lion-optimizer"), .customLong("use_lion_optimizer")], help: ArgumentHelp("kohya's older spelling of --optimizer-type Lion.", visibility: .hidden))
    var useLionOptimizer = false

    @Option(name: [.long, .customLong("optimizer_args")], parsing: .upToNextOption,
            help: ArgumentHelp("key=value as kohya: weight_decay=0.01 betas=0.9,0.999 eps=1e-8; Prodigy/DAdaptAdam: decouple=True "
                               + "use_bias_correction=True safeguard_warmup=True d_coef=2 d0=1e-6 growth_rate=…; SGDNesterov: momentum=0.9; DAdaptLion: betas, weight_decay, d0; "
                               + "CAME: betas=0.9,0.999,0.9999 eps1= eps2= (came_pytorch: eps=1e-30,1e-16) clip_threshold=1; AdEMAMix: betas=0.9,0.999,0.9999 alpha=5 t_alpha= t_beta3=; "
                               + "ProdigyPlusScheduleFree: d_coef, d0, eps (None: Adam-atan2), split_groups, factored, use_stableadamw, use_bias_correction, prodigy_steps.",
                               valueName: "key=value"))
    var optimizerArgs: [String] = []

    @Option(name: [.long, .customLong("learning_rate"), .customLong("lr")], help: ArgumentHelp("Base learning rate (kohya's default 2e-6).", valueName: "rate"))
    var learningRate = 2e-6

    @Option(name: [.long, .customLong("unet_lr")], help: ArgumentHelp("U-Net modules' rate (default: --learning-rate).", valueName: "rate"))
    var unetLr: Double?

    /// kohya's `nargs="*"` (one rate per text encoder; the kohya_ss GUI writes two): SD1/SD2's networks.lora uses the first.
    @Option(name: [.long, .customLong("text_encoder_lr")], parsing: .upToNextOption,
            help: ArgumentHelp("Text-encoder modules' rate (0: the text encoder is not trained); as in kohya, only the first of several counts.",
                               valueName: "rate"))
    var textEncoderLr: [Double] = []

    var textEncoderRate: Double? { textEncoderLr.first }

    @Option(name: [.long, .customLong("lr_scheduler")],
            help: ArgumentHelp("constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial, inverse_sqrt, cosine_with_min_lr, warmup_stable_decay, "
                               + "piecewise_constant, or adafactor (with Adafactor's relative step, which sets it anyway).",
                               valueName: "name"),
            completion: .list(LearningRateSchedule.Kind.allCases.map(\.rawValue)))
    var lrScheduler = "constant"

    @Option(name: [.long, .customLong("lr_scheduler_type")],
            help: ArgumentHelp("A torch.optim.lr_scheduler class instead (StepLR, MultiStepLR, ExponentialLR, ConstantLR, LinearLR, PolynomialLR, "
                               + "CosineAnnealingLR, CosineAnnealingWarmRestarts), its arguments in --lr-scheduler-args (T_max=1000 eta_min=1e-6), as kohya's.",
                               valueName: "class"), completion: .list(TorchLRScheduler.names))
    var lrSchedulerType: String?

    /// kohya's `--lr_scheduler_type`: a torch class, built from --lr-scheduler-args; it replaces --lr-scheduler.
    func torchScheduler() throws -> TorchLRScheduler? {
        guard let name = lrSchedulerType, !name.isEmpty else { return nil }
        do { return try TorchLRScheduler(name: name, arguments: lrSchedulerArgs) } catch { throw ValidationError(error.message) }
    }

    @Option(name: [.long, .customLong("lr_scheduler_timescale")], help: ArgumentHelp("inverse_sqrt's timescale (default: the warmup steps).", valueName: "n"))
    var lrSchedulerTimescale: Int?

    @Option(name: [.long, .customLong("lr_scheduler_min_lr_ratio")],
            help: ArgumentHelp("The floor of cosine_with_min_lr (needed) and warmup_stable_decay, as a share of the rate.", valueName: "ratio"))
    var lrSchedulerMinLRRatio: Double?

    @Option(name: [.long, .customLong("lr_decay_steps")],
            help: ArgumentHelp("warmup_stable_decay's decay steps, or a share of all steps when below 1.", valueName: "n"))
    var lrDecaySteps = 0.0

    @Option(name: [.long, .customLong("lr_scheduler_args")], parsing: .upToNextOption,
            help: ArgumentHelp("warmup_stable_decay's warmup_type=… and decay_type=… (linear, cosine, 1-sqrt); piecewise_constant's step_rules='1:10,0.1:20,0.01'.",
                               valueName: "key=value"))
    var lrSchedulerArgs: [String] = []

    /// `--lr-scheduler-args`: warmup_stable_decay's warmup_type and decay_type, piecewise_constant's step_rules (a Python
    /// string literal to kohya's ast.literal_eval; the quotes may be left out here).
    func schedulerArguments() throws -> (warmup: LearningRateSchedule.Ramp, decay: LearningRateSchedule.Ramp, stepRules: LearningRateSchedule.StepRules?) {
        var ramps = (warmup: LearningRateSchedule.Ramp.linear, decay: LearningRateSchedule.Ramp.cosine)
        var rules: LearningRateSchedule.StepRules?
        for argument in lrSchedulerArgs {
            let parts = argument.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: CharacterSet(charactersIn: " \"'")) }
            if parts.count == 2, lrScheduler == "piecewise_constant", parts[0] == "step_rules" {
                guard let parsed = LearningRateSchedule.StepRules(parsing: parts[1]) else {
                    throw ValidationError("--lr-scheduler-args \(argument): step_rules is value:step pairs and a last value, e.g. step_rules='1:10,0.1:20,0.01'")
                }
                rules = parsed
                continue
            }
            guard parts.count == 2, lrScheduler == "warmup_stable_decay", ["warmup_type", "decay_type"].contains(parts[0]) else {
                throw ValidationError("--lr-scheduler-args \(argument): only warmup_stable_decay's warmup_type and decay_type and "
                                      + "piecewise_constant's step_rules are supported")
            }
            guard let ramp = LearningRateSchedule.Ramp(rawValue: parts[1]) else {
                throw ValidationError("--lr-scheduler-args \(argument): expected linear, cosine or 1-sqrt")
            }
            if parts[0] == "warmup_type" { ramps.warmup = ramp } else { ramps.decay = ramp }
        }
        return (ramps.warmup, ramps.decay, rules)
    }

    /// The schedule kohya builds: `adafactor` (or `adafactor:<lr>`) is transformers' AdafactorSchedule, which only reports
    /// the rates Adafactor's relative step sets itself; for the step it is constant.
    var scheduleKind: LearningRateSchedule.Kind? {
        lrScheduler.hasPrefix("adafactor") ? .constant : LearningRateSchedule.Kind(rawValue: lrScheduler)
    }

    @Option(name: [.long, .customLong("lr_warmup_steps")], help: ArgumentHelp("Warmup steps, or a fraction of all steps when below 1.", valueName: "n"))
    var lrWarmupSteps = 0.0

    @Option(name: [.long, .customLong("lr_scheduler_num_cycles")], help: ArgumentHelp("Restarts of cosine_with_restarts.", valueName: "n"))
    var lrSchedulerNumCycles = 1

    @Option(name: [.long, .customLong("lr_scheduler_power")], help: ArgumentHelp("Power of the polynomial schedule.", valueName: "p"))
    var lrSchedulerPower = 1.0

    @Option(name: [.long, .customLong("max_grad_norm")], help: ArgumentHelp("Clip the gradient's L2 norm to this (0: no clipping).", valueName: "n"))
    var maxGradNorm: Float = 1

    @Option(name: [.long, .customLong("gradient_accumulation_steps")], help: ArgumentHelp("Batches per optimizer step.", valueName: "n"))
    var gradientAccumulationSteps = 1

    @Option(name: [.long, .customLong("noise_offset")], help: ArgumentHelp("Noise offset (0.1 is common).", valueName: "x"))
    var noiseOffset: Double?

    @Flag(name: [.long, .customLong("noise_offset_random_strength")], help: "Scale the noise offset by U(0, 1) each step.")
    var noiseOffsetRandomStrength = false

    @Option(name: [.long, .customLong("adaptive_noise_scale")], help: ArgumentHelp("Add this times |mean latent| to the noise offset.", valueName: "x"))
    var adaptiveNoiseScale: Double?

    @Option(name: [.long, .customLong("multires_noise_iterations")], help: ArgumentHelp("Pyramid (multi-resolution) noise levels (6–10).", valueName: "n"))
    var multiresNoiseIterations: Int?

    @Option(name: [.long, .customLong("multires_noise_discount")], help: ArgumentHelp("Weight decay per pyramid level (kohya's default 0.3).", valueName: "x"))
    var multiresNoiseDiscount = 0.3

    @Option(name: [.long, .customLong("ip_noise_gamma")], help: ArgumentHelp("Input perturbation noise (about 0.1).", valueName: "x"))
    var ipNoiseGamma: Double?

    @Flag(name: [.long, .customLong("ip_noise_gamma_random_strength")], help: "Scale the input perturbation by U(0, 1) each step.")
    var ipNoiseGammaRandomStrength = false

    @Option(name: [.long, .customLong("loss_type")], help: ArgumentHelp("l2 (default), l1, huber or smooth_l1.", valueName: "type"),
            completion: .list(["l2", "l1", "huber", "smooth_l1"]))
    var lossType = "l2"

    @Option(name: [.long, .customLong("huber_schedule")], help: ArgumentHelp("snr (default), exponential or constant.", valueName: "schedule"),
            completion: .list(["snr", "exponential", "constant"]))
    var huberSchedule = "snr"

    @Option(name: [.long, .customLong("huber_c")], help: ArgumentHelp("Huber threshold (default 0.1).", valueName: "c"))
    var huberC = 0.1

    @Option(name: [.long, .customLong("huber_scale")], help: ArgumentHelp("Huber threshold scale (default 1).", valueName: "x"))
    var huberScale = 1.0

    @Option(name: [.long, .customLong("min_snr_gamma")], help: ArgumentHelp("Min-SNR loss weighting (5 is common).", valueName: "gamma"))
    var minSnrGamma: Double?

    @Flag(name: [.long, .customLong("debiased_estimation_loss")], help: "Debiased estimation loss weighting.")
    var debiasedEstimationLoss = false

    @Flag(name: [.long, .customLong("scale_v_pred_loss_like_noise_pred")], help: "Scale v-prediction losses like noise prediction.")
    var scaleVPredLossLikeNoisePred = false

    @Option(name: [.long, .customLong("v_pred_like_loss")], help: ArgumentHelp("Add a v-prediction-like loss of this weight.", valueName: "w"))
    var vPredLikeLoss: Double?

    @Flag(name: [.long, .customLong("zero_terminal_snr")],
          help: "Rescale the noise schedule so the last timestep is pure noise (kohya's; meant for v-prediction).")
    var zeroTerminalSNR = false

    @Option(name: [.long, .customLong("min_timestep")], help: ArgumentHelp("Smallest training timestep.", valueName: "t"))
    var minTimestep = 0

    @Option(name: [.long, .customLong("max_timestep")], help: ArgumentHelp("Training timesteps are below this.", valueName: "t"))
    var maxTimestep = 1000

    /// kohya's get_optimizer: `--use_8bit_adam` means AdamW8bit, `--use_lion_optimizer` Lion.
    var optimizerName: String { use8bitAdam ? "AdamW8bit" : useLionOptimizer ? "Lion" : optimizerType }

    func validate() throws {
        try refuseNaN([("--learning-rate", learningRate), ("--unet-lr", unetLr), ("--text-encoder-lr", textEncoderLr.first { $0.isNaN } ?? textEncoderRate), ("--lr-scheduler-min-lr-ratio", lrSchedulerMinLRRatio),
                       ("--lr-decay-steps", lrDecaySteps), ("--lr-warmup-steps", lrWarmupSteps), ("--lr-scheduler-power", lrSchedulerPower),
                       ("--max-grad-norm", Double(maxGradNorm)), ("--noise-offset", noiseOffset), ("--adaptive-noise-scale", adaptiveNoiseScale),
                       ("--multires-noise-discount", multiresNoiseDiscount), ("--ip-noise-gamma", ipNoiseGamma), ("--huber-c", huberC),
                       ("--huber-scale", huberScale), ("--min-snr-gamma", minSnrGamma), ("--v-pred-like-loss", vPredLikeLoss)])
        if use8bitAdam || useLionOptimizer {
            guard !(use8bitAdam && useLionOptimizer) else { throw ValidationError("--use_8bit_adam and --use_lion_optimizer name two optimizers; give one") }
            guard optimizerType == "AdamW" else {
                throw ValidationError("--\(use8bitAdam ? "use_8bit_adam" : "use_lion_optimizer") and --optimizer-type \(optimizerType) name two optimizers; give one")
            }
        }
        guard let choice = OptimizerChoice(kohyaName: optimizerName) else {
            throw ValidationError("--optimizer-type \(optimizerType) is not supported (\(OptimizerChoice.allCases.map(\.rawValue).joined(separator: ", ")); "
                                  + "bitsandbytes' 8-bit and paged forms of those train as them; other Python classes are not built)")
        }
        do { _ = try choice.make(arguments: optimizerArgs) } catch { throw ValidationError(error.message) }
        if Set(textEncoderLr).count > 1 {
            printError("note: --text-encoder-lr \(textEncoderLr.map { formatNumber($0) }.joined(separator: " ")): SD1/SD2 have one text encoder, and "
                       + "kohya's networks.lora trains it at the first rate")
        }
        let torch = try torchScheduler()
        if torch != nil && lrWarmupSteps > 0 {
            throw ValidationError("--lr-scheduler-type \(lrSchedulerType ?? ""): torch's schedulers take no warmup (kohya refuses --lr-warmup-steps with them too)")
        }
        let schedulerArguments = torch == nil ? try schedulerArguments() : (.linear, .cosine, nil)
        if torch == nil && lrScheduler == "piecewise_constant" && schedulerArguments.stepRules == nil {
            throw ValidationError("--lr-scheduler piecewise_constant needs --lr-scheduler-args step_rules='1:10,0.1:20,0.01' (multiplier 1 before "
                                  + "step 10, 0.1 before step 20, 0.01 after), as diffusers does")
        }
        if torch == nil && lrScheduler == "piecewise_constant" && lrWarmupSteps > 0 {
            printError("note: --lr-warmup-steps does not apply to piecewise_constant (kohya builds it without warmup)")
        }
        let relativeStep = choice.usesRelativeStep(arguments: optimizerArgs)
        if lrScheduler.hasPrefix("adafactor") && !relativeStep {
            throw ValidationError("--lr-scheduler adafactor is Adafactor's own schedule for its relative step (kohya stops on it otherwise): "
                                  + (choice == .adafactor ? "with relative_step=False use constant_with_warmup, as kohya suggests" : "use it with --optimizer-type Adafactor"))
        }
        if relativeStep && lrWarmupSteps > 0 {
            throw ValidationError("Adafactor with relative_step sets its own rates and kohya gives it its AdafactorSchedule, which refuses a warmup: "
                                  + "leave --lr-warmup-steps out, or give --optimizer-args relative_step=False for constant_with_warmup")
        }
        if lrScheduler == "cosine_with_min_lr" && lrSchedulerMinLRRatio == nil {
            throw ValidationError("--lr-scheduler cosine_with_min_lr needs --lr-scheduler-min-lr-ratio (transformers refuses it without one too)")
        }
        if let r = lrSchedulerMinLRRatio, !(0...1).contains(r) { throw ValidationError("--lr-scheduler-min-lr-ratio must be between 0 and 1") }
        if let t = lrSchedulerTimescale, t < 1 { throw ValidationError("--lr-scheduler-timescale must be at least 1") }
        if lrScheduler == "warmup_stable_decay" && lrDecaySteps <= 0 {
            printError("warning: --lr-scheduler warmup_stable_decay without --lr-decay-steps (kohya's default 0) never decays: it is constant_with_warmup")
        }
        guard scheduleKind != nil else {
            throw ValidationError("--lr-scheduler \(lrScheduler) is not supported (\(LearningRateSchedule.Kind.allCases.map(\.rawValue).joined(separator: ", ")), "
                                  + "adafactor with Adafactor)")
        }
        guard learningRate > 0 || (unetLr ?? 0) > 0 else { throw ValidationError("--learning-rate (or --unet-lr) must be positive") }
        guard gradientAccumulationSteps >= 1 else { throw ValidationError("--gradient-accumulation-steps must be at least 1") }
        guard 0 <= minTimestep, minTimestep <= maxTimestep, maxTimestep <= 1000 else {
            throw ValidationError("timesteps: 0 ≤ --min-timestep ≤ --max-timestep ≤ 1000")
        }
        guard lrWarmupSteps >= 0 else { throw ValidationError("--lr-warmup-steps must not be negative") }
        if choice == .dAdaptSGD && lrWarmupSteps > 0 && torch == nil {
            throw ValidationError("DAdaptSGD takes no warmup: a warmup's first step runs at rate 0, and dadaptation divides by zero there "
                                  + "(kohya stops with ZeroDivisionError); leave --lr-warmup-steps out")
        }
        if lrScheduler == "constant" && lrWarmupSteps > 0 {
            throw ValidationError("--lr-scheduler constant takes no warmup (kohya refuses it too): use constant_with_warmup")
        }
        guard DiffusionObjective.LossType(rawValue: lossType) != nil else { throw ValidationError("--loss-type \(lossType): l2, l1, huber or smooth_l1") }
        guard DiffusionObjective.HuberSchedule(rawValue: huberSchedule) != nil else {
            throw ValidationError("--huber-schedule \(huberSchedule): snr, exponential or constant")
        }
        guard huberC > 0 else { throw ValidationError("--huber-c must be positive") }
    }
}
