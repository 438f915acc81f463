import ArgumentParser
import ToolSupport
import Foundation
import Imaging
import Training

/// Where the images are and how kohya reads them (sd-scripts' dataset arguments).
struct DatasetOptions: ParsableArguments {
    @Option(name: [.long, .customLong("train_data_dir")],
            help: ArgumentHelp("The parent of the <repeats>_<class tokens> image folders (e.g. dataset/ holding 10_mychar/). kohya: --train_data_dir.",
                               valueName: "path"), completion: .directory)
    var trainDataDir: String?

    @Option(name: [.long, .customLong("dataset_config")],
            help: ArgumentHelp("kohya's dataset TOML ([general], [[datasets]], [[datasets.subsets]]); replaces --train-data-dir.", valueName: "path"),
            completion: .file(extensions: ["toml"]))
    var datasetConfig: String?

    @Option(name: [.long, .customLong("in_json")],
            help: ArgumentHelp("kohya's fine-tuning metadata (merge_captions_to_metadata.py's JSON, or JSON Lines): the images it lists, relative to "
                               + "--train-data-dir, with its captions and tags, instead of <repeats>_<class tokens> folders. kohya: --in_json.",
                               valueName: "path"), completion: .file(extensions: ["json", "jsonl"]))
    var inJson: String?

    @Option(name: [.long, .customLong("dataset_repeats")],
            help: ArgumentHelp("Repeats of the --in-json images (and of dataset-config subsets without num_repeats).", valueName: "n"))
    var datasetRepeats = 1

    @Option(name: [.long, .customLong("reg_data_dir")],
            help: ArgumentHelp("The parent of regularization folders, balanced to as many samples as the training images. kohya: --reg_data_dir.",
                               valueName: "path"), completion: .directory)
    var regDataDir: String?

    @Option(name: [.long, .customLong("caption_extension"), .customLong("caption_extention")],
            help: ArgumentHelp("Caption file extension (kohya's default .caption; a warning names .txt files it finds instead).", valueName: "ext"))
    var captionExtension = ".caption"

    @Option(help: ArgumentHelp("Training resolution as an area: 512, or width,height (kohya: \"512,768\").", valueName: "size"))
    var resolution = "512"

    @Flag(name: [.long, .customLong("enable_bucket")], help: "Aspect-ratio buckets (kohya's predefined list of area ≤ resolution).")
    var enableBucket = false

    @Option(name: [.long, .customLong("min_bucket_reso")], help: ArgumentHelp("Smallest bucket side.", valueName: "px"))
    var minBucketReso = 256

    @Option(name: [.long, .customLong("max_bucket_reso")], help: ArgumentHelp("Largest bucket side.", valueName: "px"))
    var maxBucketReso = 1024

    @Option(name: [.long, .customLong("bucket_reso_steps")], help: ArgumentHelp("Bucket side step (a multiple of 8; 64 for SD1/SD2).", valueName: "px"))
    var bucketResoSteps = 64

    @Flag(name: [.long, .customLong("bucket_no_upscale")], help: "Buckets from each image's own size, never enlarging.")
    var bucketNoUpscale = false

    @Option(name: [.long, .customLong("train_batch_size")], help: ArgumentHelp("Images per batch (a batch never mixes buckets).", valueName: "n"))
    var trainBatchSize = 1

    @Flag(name: [.long, .customLong("shuffle_caption")], help: "Shuffle the comma-separated tags of each caption (after --keep-tokens).")
    var shuffleCaption = false

    @Option(name: [.long, .customLong("keep_tokens")], help: ArgumentHelp("Tags (not CLIP tokens) kept in front when shuffling.", valueName: "n"))
    var keepTokens = 0

    @Option(name: [.long, .customLong("keep_tokens_separator")], help: ArgumentHelp("Text before this separator stays in front.", valueName: "text"))
    var keepTokensSeparator = ""

    @Option(name: [.long, .customLong("caption_separator")], help: ArgumentHelp("Tag separator.", valueName: "text"))
    var captionSeparator = ","

    @Option(name: [.long, .customLong("caption_prefix")], help: ArgumentHelp("Text put before every caption.", valueName: "text"))
    var captionPrefix: String?

    @Option(name: [.long, .customLong("caption_suffix")], help: ArgumentHelp("Text put after every caption.", valueName: "text"))
    var captionSuffix: String?

    @Option(name: [.long, .customLong("caption_dropout_rate")], help: ArgumentHelp("Probability of training a sample with an empty caption.", valueName: "p"))
    var captionDropoutRate = 0.0

    @Option(name: [.long, .customLong("caption_dropout_every_n_epochs")], help: ArgumentHelp("Empty captions for every n-th epoch.", valueName: "n"))
    var captionDropoutEveryNEpochs = 0

    @Option(name: [.long, .customLong("caption_tag_dropout_rate")], help: ArgumentHelp("Probability of dropping each shuffled tag.", valueName: "p"))
    var captionTagDropoutRate = 0.0

    @Option(name: [.long, .customLong("secondary_separator")],
            help: ArgumentHelp("Tags joined by this shuffle as one, then become separate tags (e.g. ;;;).", valueName: "text"))
    var secondarySeparator: String?

    @Option(name: [.long, .customLong("token_warmup_min")], help: ArgumentHelp("Tags (after the kept ones) used at the first step of the warm-up.", valueName: "n"))
    var tokenWarmupMin = 1

    @Option(name: [.long, .customLong("token_warmup_step")],
            help: ArgumentHelp("Steps over which the tags used grow to all of them (below 1: a fraction of the run); 0: off.", valueName: "n"))
    var tokenWarmupStep = 0.0

    @Flag(name: [.long, .customLong("enable_wildcard")],
          help: "Captions with several lines give a random line at each step, and {a|b|c} a random choice ({{ and }} are literal braces).")
    var enableWildcard = false

    @Flag(name: [.long, .customLong("flip_aug")], help: "Mirror images at random (both latents are cached).")
    var flipAug = false

    @Flag(name: [.long, .customLong("random_crop")],
          help: "Crop each image at a random place within its resized size (without buckets: within the image as it is, as kohya), anew at every step; its latents are encoded at every step, not cached.")
    var randomCrop = false

    @Option(name: [.long, .customLong("face_crop_aug_range")],
            help: ArgumentHelp("Without buckets, crop around the face named in each file name (<name>_<centre x>_<centre y>_<width>_<height>) at a random "
                               + "scale, the face's larger side going a to b times into the crop's shorter side, as kohya's --face_crop_aug_range "
                               + "(e.g. 2.0,4.0; images are encoded at every step).", valueName: "a,b"))
    var faceCropAugRange: String?

    @Flag(name: [.long, .customLong("alpha_mask")],
          help: "Weight the loss by each image's alpha channel (transparent parts train less; images without alpha count as opaque), as kohya.")
    var alphaMask = false

    @Flag(name: [.long, .customLong("masked_loss")],
          help: "kohya's flag for masked loss: with alpha masks the loss is masked anyway; without them it does nothing (conditioning images are not supported).")
    var maskedLoss = false

    @Flag(name: [.long, .customLong("color_aug")],
          help: "kohya's colour augmentation at every step: a third of the samples get a hue shift (±8 of 180) or a gamma (0.95–1.05 on 0–255 values); not cached either.")
    var colorAug = false

    @Option(name: [.long, .customLong("resize_interpolation")],
            help: ArgumentHelp("How images are resized to their bucket: lanczos, nearest, bilinear (linear), bicubic (cubic) or area, as kohya's --resize_interpolation "
                               + "(PIL for lanczos, OpenCV for the others; a dataset config may also say box). Default: area when shrinking, lanczos when enlarging.",
                               valueName: "method"))
    var resizeInterpolation: String?

    @Option(name: [.long, .customLong("prior_loss_weight")], help: ArgumentHelp("Loss weight of regularization images.", valueName: "w"))
    var priorLossWeight = 1.0

    @Option(name: [.long, .customLong("max_token_length")], help: ArgumentHelp("Caption tokens: 75 (default), 150 or 225.", valueName: "n"))
    var maxTokenLength: Int?

    @Flag(name: [.long, .customLong("weighted_captions")],
          help: "Read (text), [text] and (text:1.3) in captions as weights on the text encoder's output, as kohya's --weighted_captions (keep commas out of the brackets if captions are shuffled).")
    var weightedCaptions = false

    @Option(name: [.long, .customLong("clip_skip")], help: ArgumentHelp("Text-encoder layer from the end (2 for most anime SD1 models).", valueName: "n"))
    var clipSkip: Int?

    @Flag(name: [.long, .customLong("cache_latents")],
          help: "Accepted for kohya command lines: latents are cached in memory anyway, except those of --random-crop/--color-aug images (kohya refuses the two together) and face crops (which kohya then ignores; so do we, with a warning).")
    var cacheLatents = false

    @Flag(name: [.long, .customLong("cache_latents_to_disk")],
          help: "Keep the latents in kohya's .npz files beside the images; later runs (and kohya) reuse them, an edited image or another VAE re-encodes.")
    var cacheLatentsToDisk = false

    func validate() throws {
        try refuseNaN([("--caption-dropout-rate", captionDropoutRate), ("--caption-tag-dropout-rate", captionTagDropoutRate),
                       ("--token-warmup-step", tokenWarmupStep), ("--prior-loss-weight", priorLossWeight)])
        guard trainDataDir != nil || datasetConfig != nil || inJson != nil else {
            throw ValidationError("--train-data-dir (kohya: --train_data_dir), --in-json or --dataset-config is required")
        }
        guard datasetRepeats >= 1 else { throw ValidationError("--dataset-repeats must be at least 1") }
        guard trainBatchSize >= 1 else { throw ValidationError("--train-batch-size must be at least 1") }
        guard bucketResoSteps >= 8, bucketResoSteps % 8 == 0 else { throw ValidationError("--bucket-reso-steps must be a multiple of 8") }
        for (name, p) in [("--caption-dropout-rate", captionDropoutRate), ("--caption-tag-dropout-rate", captionTagDropoutRate)] where !(0...1).contains(p) {
            throw ValidationError("\(name) must be between 0 and 1")
        }
        if let c = clipSkip, c < 1 { throw ValidationError("--clip-skip must be at least 1") }
        for (name, n) in [("--keep-tokens", keepTokens), ("--caption-dropout-every-n-epochs", captionDropoutEveryNEpochs),
                          ("--token-warmup-min", tokenWarmupMin)] where n < 0 {
            throw ValidationError("\(name) must not be negative")
        }
        _ = try parsedInterpolation()
        _ = try parsedResolution()
        _ = try parsedFaceCropRange()
    }

    /// kohya's `--face_crop_aug_range "a,b"` (an empty value, as a config file may hold, gives none).
    func parsedFaceCropRange() throws -> FaceCrop.Range? {
        guard let text = faceCropAugRange, !text.isEmpty else { return nil }
        guard let range = FaceCrop.Range(parsing: text) else {
            throw ValidationError("--face-crop-aug-range \(text): give two positive numbers a,b with a ≤ b, such as 2.0,4.0")
        }
        return range
    }

    /// kohya's `--resolution`: "512" or "512,768" (width, height).
    func parsedResolution() throws -> Resolution {
        let parts = resolution.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard (1...2).contains(parts.count), let width = parts[0], let height = parts.count == 2 ? parts[1] : width,
              Resolution(width, height).isTrainingSize else {
            throw ValidationError("--resolution \(resolution): give a size such as 512 or width,height such as 512,768 (multiples of 8 from 64 to 8192)")
        }
        return Resolution(width, height)
    }

    /// kohya's argparse choices for --resize_interpolation (its dataset config also takes "box").
    func parsedInterpolation() throws -> Bitmap.Interpolation? {
        guard let name = resizeInterpolation, !name.isEmpty else { return nil }
        let choices: [Bitmap.Interpolation] = [.lanczos, .nearest, .bilinear, .linear, .bicubic, .cubic, .area]
        guard let method = Bitmap.Interpolation(rawValue: name), choices.contains(method) else {
            throw ValidationError("--resize-interpolation \(name): choose \(choices.map(\.rawValue).joined(separator: ", "))")
        }
        return method
    }

    func subsetSettings(_ subset: inout DatasetSubset) {
        subset.resizeInterpolation = try? parsedInterpolation()  // checked in validate()
        subset.captionExtension = DatasetSubset.normalizedExtension(captionExtension)
        subset.shuffleCaption = shuffleCaption
        subset.keepTokens = keepTokens
        subset.keepTokensSeparator = keepTokensSeparator
        subset.captionSeparator = captionSeparator
        subset.captionPrefix = captionPrefix
        subset.captionSuffix = captionSuffix
        subset.captionDropoutRate = captionDropoutRate
        subset.captionDropoutEveryNEpochs = captionDropoutEveryNEpochs
        subset.captionTagDropoutRate = captionTagDropoutRate
        subset.flipAugment = flipAug
        subset.randomCrop = randomCrop
        subset.faceCropRange = try? parsedFaceCropRange()  // checked in validate()
        subset.colorAugment = colorAug
        subset.alphaMask = alphaMask
        subset.enableWildcard = enableWildcard
        subset.secondarySeparator = secondarySeparator
        (subset.tokenWarmupMin, subset.tokenWarmupStep) = (tokenWarmupMin, tokenWarmupStep)
    }
}
