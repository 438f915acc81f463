/// The metadata keys kohya's sd-scripts (`ss_*`), the Stability model spec
/// (`modelspec.*`) and the additional-networks extension (`sshs_*`) use: one
/// name for each, shared by every reader and writer (lora-inspect, lora-merge,
/// lora-extract, lora-xyz and, next, lora-train), so a key cannot be misspelt
/// in one place. See shared/reference/formats.md and training.md for meanings.
public struct MetadataKey: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }

    // kohya sd-scripts (ss_*)
    public static let baseModelVersion: MetadataKey = "ss_base_model_version"
    public static let batchSizePerDevice: MetadataKey = "ss_batch_size_per_device"
    public static let bucketInfo: MetadataKey = "ss_bucket_info"
    public static let captionDropoutRate: MetadataKey = "ss_caption_dropout_rate"
    public static let captionTagDropoutRate: MetadataKey = "ss_caption_tag_dropout_rate"
    public static let clipSkip: MetadataKey = "ss_clip_skip"
    public static let datasetDirs: MetadataKey = "ss_dataset_dirs"
    public static let enableBucket: MetadataKey = "ss_enable_bucket"
    public static let epoch: MetadataKey = "ss_epoch"
    public static let flipAug: MetadataKey = "ss_flip_aug"
    public static let gradientAccumulationSteps: MetadataKey = "ss_gradient_accumulation_steps"
    public static let keepTokens: MetadataKey = "ss_keep_tokens"
    public static let learningRate: MetadataKey = "ss_learning_rate"
    public static let lrScheduler: MetadataKey = "ss_lr_scheduler"
    public static let lrWarmupSteps: MetadataKey = "ss_lr_warmup_steps"
    public static let maxBucketReso: MetadataKey = "ss_max_bucket_reso"
    public static let maxTrainSteps: MetadataKey = "ss_max_train_steps"
    public static let minBucketReso: MetadataKey = "ss_min_bucket_reso"
    public static let minSnrGamma: MetadataKey = "ss_min_snr_gamma"
    public static let mixedPrecision: MetadataKey = "ss_mixed_precision"
    public static let networkAlpha: MetadataKey = "ss_network_alpha"
    public static let networkArgs: MetadataKey = "ss_network_args"
    public static let networkDim: MetadataKey = "ss_network_dim"
    public static let networkModule: MetadataKey = "ss_network_module"
    public static let newSdModelHash: MetadataKey = "ss_new_sd_model_hash"
    public static let noiseOffset: MetadataKey = "ss_noise_offset"
    public static let numEpochs: MetadataKey = "ss_num_epochs"
    public static let numRegImages: MetadataKey = "ss_num_reg_images"
    public static let numTrainImages: MetadataKey = "ss_num_train_images"
    public static let optimizer: MetadataKey = "ss_optimizer"
    public static let outputName: MetadataKey = "ss_output_name"
    public static let resolution: MetadataKey = "ss_resolution"
    public static let sdModelHash: MetadataKey = "ss_sd_model_hash"
    public static let sdModelName: MetadataKey = "ss_sd_model_name"
    public static let sdScriptsCommitHash: MetadataKey = "ss_sd_scripts_commit_hash"
    public static let seed: MetadataKey = "ss_seed"
    public static let shuffleCaption: MetadataKey = "ss_shuffle_caption"
    public static let steps: MetadataKey = "ss_steps"
    public static let tagFrequency: MetadataKey = "ss_tag_frequency"
    public static let textEncoderLr: MetadataKey = "ss_text_encoder_lr"
    public static let totalBatchSize: MetadataKey = "ss_total_batch_size"
    public static let trainingComment: MetadataKey = "ss_training_comment"
    /// Ours: the tool that trained the file when it is not sd-scripts (lora-train writes "lora-train <version>").
    public static let trainer: MetadataKey = "ss_trainer"
    public static let trainingFinishedAt: MetadataKey = "ss_training_finished_at"
    public static let trainingStartedAt: MetadataKey = "ss_training_started_at"
    public static let unetLr: MetadataKey = "ss_unet_lr"
    public static let v2: MetadataKey = "ss_v2"
    public static let vParameterization: MetadataKey = "ss_v_parameterization"

    // Stability model spec (modelspec.*)
    public static let specArchitecture: MetadataKey = "modelspec.architecture"
    public static let specAuthor: MetadataKey = "modelspec.author"
    public static let specDate: MetadataKey = "modelspec.date"
    public static let specDescription: MetadataKey = "modelspec.description"
    public static let specImplementation: MetadataKey = "modelspec.implementation"
    public static let specImplementationVersion: MetadataKey = "modelspec.implementation_version"
    public static let specMergedFrom: MetadataKey = "modelspec.merged_from"
    public static let specPredictionType: MetadataKey = "modelspec.prediction_type"
    public static let specResolution: MetadataKey = "modelspec.resolution"
    public static let specSaiModelSpec: MetadataKey = "modelspec.sai_model_spec"
    public static let specTitle: MetadataKey = "modelspec.title"
    public static let specTriggerPhrase: MetadataKey = "modelspec.trigger_phrase"

    // additional-networks hashes (sshs_*)
    public static let sshsLegacyHash: MetadataKey = "sshs_legacy_hash"
    public static let sshsModelHash: MetadataKey = "sshs_model_hash"
}

extension Metadata {
    public subscript(key: MetadataKey) -> String? {
        get { self[key.rawValue] }
        set { self[key.rawValue] = newValue }
    }
}

extension Metadata {
    /// The value parsed as JSON (kohya stores dicts and lists as JSON text).
    public func json(_ key: MetadataKey) -> JSON? { json(key.rawValue) }
}
