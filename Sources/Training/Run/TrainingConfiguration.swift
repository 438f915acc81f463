import Diffusion
import LoRACore

/// Everything a run is asked to do, with sd-scripts' defaults
/// (library/train_util.py `add_training_arguments`, train_network.py): a
/// kohya user's setting means the same here. The CLI fills it; tests build it.
public struct TrainingConfiguration: Sendable {
    public var outputDirectory: String
    public var outputName: String = "last"
    /// kohya: `--network_dim` (None → 4) and `--network_alpha` (default 1, so scale 1/dim).
    public var networkDim = 4
    public var networkAlpha: Float = 1
    /// `--network_module`: kohya's networks.lora, or LyCORIS's LoCon (`lycoris.kohya`, `LoRANetwork.lycorisPlan`).
    /// kohya's LoRA (and LoCon with conv_dim), its LoRA-FA (lora_down frozen), and LyCORIS's modules.
    public enum NetworkModule: String, Sendable { case lora = "networks.lora", loraFA = "networks.lora_fa", lycoris = "lycoris.kohya" }
    public var networkModule = NetworkModule.lora
    /// lycoris.kohya's `preset` and `algo` network args (with LoKr's factor, decompose_both, full_matrix).
    public var lycorisPreset = LyCORISPreset.full
    public var lycorisAlgorithm = LyCORISAlgorithm.locon
    /// LyCORIS's use_tucker (use_cp, use_conv_cp, not disable_conv_cp): Tucker cores on wider kernels (LoCon's lora_mid,
    /// LoHa's hada_t1/t2, LoKr's lokr_t2 where w2 is low-rank).
    public var lycorisTucker = false
    /// LyCORIS's dora_wd: weight decomposition (DoRA) around LoCon, LoHa and LoKr modules (`DoRAModule`).
    public var lycorisDoRA = false
    /// LyCORIS's use_scalar: each LoCon, LoHa and LoKr module's scalar trained from 0 (`ModuleScalar(trainedAs:)`).
    public var lycorisTrainedScalar = false
    /// LyCORIS's train_norm: the preset's GroupNorm and LayerNorm layers trained too (NormModule).
    public var lycorisTrainNorm = false
    /// LoCon/C3Lier: `--network_args conv_dim=… conv_alpha=…` (conv_alpha default 1). LyCORIS: conv_dim defaults to
    /// the network dim (0: no convolutions wider than 1×1), conv_alpha to the network alpha.
    public var convDim: Int?
    public var convAlpha: Float = 1
    /// kohya's `--network_dropout` (neuron), `rank_dropout` and `module_dropout` (network args).
    public var networkDropout: Double?
    public var rankDropout: Double?
    public var moduleDropout: Double?
    /// kohya's block_dims / block_alphas / conv_block_dims / conv_block_alphas.
    public var blockDims: LoRANetwork.BlockDims?
    /// kohya's down/mid/up_lr_weight: one parameter group per U-Net block.
    public var blockLearningRates: BlockLearningRates?
    /// LoRA+ (network args `loraplus_lr_ratio`, `loraplus_unet_lr_ratio`, `loraplus_text_encoder_lr_ratio`):
    /// the lora_up weights train at the rate × ratio.
    public var loraPlusRatio: Double?
    public var loraPlusUNetRatio: Double?
    public var loraPlusTextEncoderRatio: Double?
    /// `--network_args` as typed (kohya records them in ss_network_args).
    public var networkArguments: [String] = []
    /// `--learning_rate` (kohya's default 2e-6); `--unet_lr` falls back to it.
    /// Which modules train (`--network_train_unet_only`, `--network_train_text_encoder_only`).
    public var trainUNet = true
    public var trainTextEncoder = true
    public var learningRate = 2e-6
    public var unetLearningRate: Double?
    public var textEncoderLearningRate: Double?
    public var scheduler: LearningRateSchedule.Kind = .constant
    public var warmupSteps = 0
    /// `--lr_warmup_steps` below 1 is a fraction of the total steps (sd-scripts).
    public var warmupFraction: Double?
    public var schedulerCycles = 1
    public var schedulerPower = 1.0
    /// `--lr_scheduler_timescale` (inverse_sqrt), `--lr_scheduler_min_lr_ratio` (cosine_with_min_lr,
    /// warmup_stable_decay), `--lr_decay_steps` (warmup_stable_decay; below 1 a share of the steps) and
    /// warmup_stable_decay's `warmup_type` / `decay_type` scheduler args.
    public var schedulerTimescale: Int?
    public var schedulerMinLRRatio: Double?
    public var schedulerDecaySteps = 0.0
    public var schedulerWarmupRamp = LearningRateSchedule.Ramp.linear
    public var schedulerDecayRamp = LearningRateSchedule.Ramp.cosine
    /// `--lr_scheduler_type`: a torch scheduler in place of `scheduler`.
    public var torchScheduler: TorchLRScheduler?
    /// piecewise_constant's `step_rules`.
    public var schedulerStepRules = LearningRateSchedule.StepRules(bounds: [], last: 1)
    public var maxTrainSteps = 1600
    public var maxTrainEpochs: Int?
    public var gradientAccumulationSteps = 1
    public var maxGradNorm: Float = 1
    public var seed: UInt64 = 42
    public var saveEveryNEpochs: Int?
    public var saveEveryNSteps: Int?
    /// `--save_last_n_epochs`: keep only the newest n epoch files (kohya removes epoch e − every·n when saving e).
    public var saveLastNEpochs: Int?
    /// `--save_last_n_steps`: step files older than n steps are removed (kohya keeps those within the last n steps).
    public var saveLastNSteps: Int?
    /// `--save_last_n_epochs_state` / `--save_last_n_steps_state`: the same for state folders; unset, the
    /// file settings above prune the states too (train_util.py `save_and_remove_state_on_epoch_end`/`_stepwise`).
    public var saveLastNEpochsState: Int?
    public var saveLastNStepsState: Int?
    /// `--save_state_on_train_end`: a state folder at the end only.
    public var saveStateOnTrainEnd = false
    /// `--save_state`: a resumable state folder beside every saved file and at the end.
    public var saveState = false
    /// kohya's --initial_step / --initial_epoch (1-based; the step wins) and --skip_until_initial_step: a run
    /// without a state that starts later (see `LoRATrainer.startPosition`).
    public var initialStep: Int?
    public var initialEpoch: Int?
    public var skipUntilInitialStep = false
    /// `--scale_weight_norms`: max-norm regularisation of every module's ΔW after each step.
    public var scaleWeightNorms: Double?
    /// `--gradient_checkpointing`: the U-Net's ResBlocks and transformers recompute their activations in the backward
    /// (those of 32×32 latent pixels and more: `CheckpointPolicy.lowResolutionKept`).
    public var gradientCheckpointing = false
    /// A probe run (`--find-lr`): nothing is saved or sampled.
    public var writesFiles = true
    /// `--cache_latents_to_disk`: kohya's per-image `.npz` latent caches, reused by later runs.
    public var cacheLatentsToDisk = false
    /// kohya's `--dim_from_weights`: the modules, ranks and alphas of the `--network_weights` file instead of
    /// `--network_dim`/`--network_alpha`/`conv_dim` (LoRANetwork.moduleDims).
    public var dimsFromWeights: [String: (rank: Int, alpha: Float)]?
    /// kohya's `--zero_terminal_snr`: the noise schedule rescaled so t = 999 is pure noise (NoiseSchedule.zeroTerminalSNR).
    public var zeroTerminalSNR = false
    /// kohya's `--no_metadata`: only the keys a loader needs (ss_network_dim, …) and the ModelSpec card.
    public var noMetadata = false
    /// The command line's --resize_interpolation, for ss_resize_interpolation (the images use their subsets').
    public var resizeInterpolation: String?
    /// kohya's `--weighted_captions`: `(text:1.3)`-style weights in the captions scale the encoder's output.
    public var weightedCaptions = false
    /// kohya's validation (`--validation_split` with `--validate_every_n_steps` / `_epochs`, `--max_validation_steps`).
    public var validation = ValidationSettings()
    /// `--dataset_config`: kohya then writes the dataset metadata as `ss_datasets` (one entry per dataset).
    public var usesDatasetConfig = false
    public var savePrecision: DType = .f32
    /// `--mixed_precision bf16`, resolved for this CPU: the GEMMs of every training pass (forward and
    /// backward, U-Net and text encoder) and of the samples take bf16 operands with fp32 sums, as torch's
    /// autocast does in kohya's runs; the network's weights, gradients and optimizer stay fp32. Latents are
    /// cached in fp32 (kohya encodes them in bf16 too: a difference far below the noise the step adds).
    public var computePrecision: ComputePrecision = .fp32
    /// Loss weighting; the prediction type comes from the model (or `forceVPrediction`).
    public var objective = DiffusionObjective()
    /// kohya's `--v_parameterization`: train v-prediction whatever the model's metadata says.
    public var forceVPrediction = false
    /// `--noise_offset`, `--multires_noise_*`, `--ip_noise_gamma` and their variants.
    public var noise = NoiseOptions()
    public var priorLossWeight = 1.0
    /// `--min_timestep` / `--max_timestep`: t uniform in [min, max).
    public var minTimestep = 0
    public var maxTimestep = 1000
    public var maxTokenLength: Int?
    public var clipSkip: Int?
    public var trainingComment: String?
    /// kohya's --metadata_*: ModelSpec fields by key ("modelspec.author" …); a title replaces the output name.
    public var modelCard: [String: String] = [:]
    /// `--optimizer_type` and `--optimizer_args` (key=value, as kohya).
    public var optimizer: OptimizerChoice = .adamW
    public var optimizerArguments: [String] = []
    /// The command-line resolution text kohya records (`ss_resolution`, e.g. "(512, 512)").
    public var resolutionText = "(512, 512)"
    /// Sample images (`--sample_prompts`, `--sample_every_n_epochs`, `--sample_every_n_steps`, `--sample_at_first`,
    /// `--sample_sampler`): as kohya, steps are ignored when epochs are given.
    public var samplePrompts: [SamplePrompt] = []
    public var sampleEveryNEpochs: Int?
    public var sampleEveryNSteps: Int?
    public var sampleAtFirst = false
    public var sampleSampler = "ddim"
    public var minBucketReso = 256
    public var maxBucketReso = 1024

    public init(outputDirectory: String) { self.outputDirectory = outputDirectory }

    public var unetRate: Double { unetLearningRate ?? learningRate }
    /// Adafactor with its relative step (kohya's default for it): it sets its own rates, and kohya replaces the
    /// schedule by transformers' AdafactorSchedule, recorded as "adafactor:<lr>".
    public var adafactorRelativeStep: Bool {
        optimizer.usesRelativeStep(arguments: optimizerArguments)
    }
    public var textEncoderRate: Double { textEncoderLearningRate ?? learningRate }
}

/// sd-scripts' step arithmetic (train_network.py): optimizer steps per epoch
/// = ⌈batches / accumulation⌉; with `--max_train_epochs` E the run is E of
/// them, otherwise `--max_train_steps` (default 1600) and as many epochs as
/// that needs (the last one stopping part-way).
public struct StepCount: Sendable, Equatable {
    public var batchesPerEpoch: Int
    public var stepsPerEpoch: Int
    public var epochs: Int
    public var totalSteps: Int

    public init(batchesPerEpoch: Int, gradientAccumulationSteps: Int, maxTrainEpochs: Int?, maxTrainSteps: Int) {
        self.batchesPerEpoch = batchesPerEpoch
        stepsPerEpoch = (batchesPerEpoch + gradientAccumulationSteps - 1) / gradientAccumulationSteps
        if let e = maxTrainEpochs {
            totalSteps = e * stepsPerEpoch
            epochs = e
        } else {
            totalSteps = maxTrainSteps
            epochs = (maxTrainSteps + stepsPerEpoch - 1) / max(1, stepsPerEpoch)
        }
    }
}

/// When and how much to validate (train_network.py): every epoch unless `everyNEpochs` says otherwise,
/// after every `everyNSteps` optimizer steps too; at most `maxSteps` batches a run, each at kohya's four
/// timesteps. `split` and `seed` are what the plan was split with (recorded in the metadata).
public struct ValidationSettings: Sendable {
    public var split = 0.0
    /// `--validation_seed` as given (nil: `--seed` split and drew the validation noise).
    public var seed: UInt64?
    public var everyNSteps: Int?
    public var everyNEpochs: Int?
    public var maxSteps: Int?

    public init() {}
}
