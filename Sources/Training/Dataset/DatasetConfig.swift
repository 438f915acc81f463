import Foundation
import Imaging
import LoRACore

/// kohya's dataset TOML (`--dataset_config`; sd-scripts library/config_util.py,
/// docs/config_README-en.md): `[general]`, `[[datasets]]`, `[[datasets.subsets]]`,
/// a key at a lower level overriding the same key above it, and the command
/// line's value (or its default) below them all. Folder names are not parsed
/// here: `num_repeats` and `class_tokens` are given. Each `[[datasets]]` is a
/// dataset of its own (resolution, batch size, buckets), as kohya's
/// DatasetGroup; a key kohya does not know, or one we do not support with a
/// value that asks for something, is an error naming the key. A subset with
/// `metadata_file` is kohya's fine-tuning subset (`MetadataListing`).
public struct DatasetConfig: Sendable {
    public var subsets: [DatasetSubset]
    public var resolution: Resolution?
    public var batchSize: Int?
    public var enableBucket: Bool?
    public var minBucketReso: Int?
    public var maxBucketReso: Int?
    public var bucketResoSteps: Int?
    public var bucketNoUpscale: Bool?
    /// kohya's dataset-level `validation_split` and `validation_seed` (the command line's where unset).
    public var validationSplit: Double?
    public var validationSeed: UInt64?
    /// kohya's dataset-level `resize_interpolation` (recorded in ss_datasets; each subset carries its own).
    public var resizeInterpolation: Bitmap.Interpolation?

    /// `subsets` with every setting left to the command line.
    public init(subsets: [DatasetSubset]) { self.subsets = subsets }

    static let datasetKeys: Set<String> = ["resolution", "batch_size", "enable_bucket", "min_bucket_reso", "max_bucket_reso", "bucket_reso_steps",
                                           "bucket_no_upscale", "network_multiplier", "validation_seed", "validation_split", "resize_interpolation"]
    // cache_info is accepted as lora-train's --cache_info is: kohya's metadata_cache.json only saves re-reading sizes and captions.
    static let subsetKeys: Set<String> = ["num_repeats", "shuffle_caption", "caption_separator", "keep_tokens", "keep_tokens_separator",
                                          "secondary_separator", "enable_wildcard", "color_aug", "flip_aug", "face_crop_aug_range", "random_crop",
                                          "caption_prefix", "caption_suffix", "token_warmup_min", "token_warmup_step", "custom_attributes",
                                          "caption_dropout_rate", "caption_dropout_every_n_epochs", "caption_tag_dropout_rate", "caption_extension",
                                          "class_tokens", "cache_info", "resize_interpolation"]
    static let subsetOnlyKeys: Set<String> = ["image_dir", "is_reg", "alpha_mask", "metadata_file", "conditioning_data_dir"]

    /// Reads `path`, one config per `[[datasets]]`; `defaults` is the subset the command line describes (its caption
    /// and augmentation settings).
    public static func load(_ path: String, defaults: DatasetSubset) throws(ModelError) -> [DatasetConfig] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ModelError(.io, "cannot read the dataset config (UTF-8 TOML)", file: path)
        }
        let root: JSON
        do { root = try TOML.parse(text) } catch { throw ModelError(.invalid, error.description, file: path) }
        guard case let .object(top) = root else { throw ModelError(.invalid, "not a TOML table", file: path) }
        for (key, _) in top where !["general", "datasets"].contains(key) {
            throw ModelError(.invalid, "unknown top-level key \(key) (kohya's are [general] and [[datasets]])", file: path, key: key)
        }
        let general = root["general"].flatMap(members) ?? []
        guard case let .array(datasets)? = root["datasets"], !datasets.isEmpty else {
            throw ModelError(.invalid, "no [[datasets]] table", file: path)
        }
        for (key, _) in general where !datasetKeys.contains(key) && !subsetKeys.contains(key) {
            throw ModelError(.invalid, "[general] has an unknown key \(key)", file: path, key: key)
        }
        var configs: [DatasetConfig] = []
        for table in datasets { configs.append(try dataset(table, general: general, path: path, defaults: defaults)) }
        return configs
    }

    /// One `[[datasets]]` table with its subsets.
    static func dataset(_ table: JSON, general: [(String, JSON)], path: String, defaults: DatasetSubset) throws(ModelError) -> DatasetConfig {
        let dataset = members(table) ?? []
        for (key, _) in dataset where !datasetKeys.contains(key) && !subsetKeys.contains(key) && key != "subsets" {
            throw ModelError(.invalid, "[[datasets]] has an unknown key \(key)", file: path, key: key)
        }
        guard case let .array(subsetTables)? = table["subsets"], !subsetTables.isEmpty else {
            throw ModelError(.invalid, "a [[datasets]] table has no [[datasets.subsets]]", file: path)
        }
        // Lookup from the innermost level out.
        func lookup(_ key: String, _ levels: [[(String, JSON)]]) -> JSON? {
            for level in levels { if let v = level.first(where: { $0.0 == key })?.1 { return v } }
            return nil
        }
        var config = DatasetConfig(subsets: [])
        let outer = [dataset, general]
        config.resolution = try lookup("resolution", outer).map { v throws(ModelError) in try resolution(v, path) }
        config.batchSize = try lookup("batch_size", outer).map { v throws(ModelError) in try int(v, "batch_size", path, atLeast: 1) }
        config.enableBucket = try lookup("enable_bucket", outer).map { v throws(ModelError) in try bool(v, "enable_bucket", path) }
        config.minBucketReso = try lookup("min_bucket_reso", outer).map { v throws(ModelError) in try int(v, "min_bucket_reso", path) }
        config.maxBucketReso = try lookup("max_bucket_reso", outer).map { v throws(ModelError) in try int(v, "max_bucket_reso", path) }
        config.bucketResoSteps = try lookup("bucket_reso_steps", outer).map { v throws(ModelError) in try int(v, "bucket_reso_steps", path) }
        config.bucketNoUpscale = try lookup("bucket_no_upscale", outer).map { v throws(ModelError) in try bool(v, "bucket_no_upscale", path) }
        if let m = lookup("network_multiplier", outer), try number(m, "network_multiplier", path) != 1 {
            // sd-scripts reads it into each example's "network_multipliers", but its train_network.py no longer applies
            // them (only --debug_dataset prints them): a run there trains as with 1, silently. Refused rather than ignored.
            throw ModelError(.unsupported, "network_multiplier other than 1 is not supported (sd-scripts reads it but its train_network.py "
                             + "does not apply it either; set it to 1 or leave it out)", file: path, key: "network_multiplier")
        }
        if let v = lookup("validation_split", outer) {
            let split = try number(v, "validation_split", path)
            guard (0..<1).contains(split) else {
                throw ModelError(.invalid, "validation_split \(pythonFloat(split)): a share from 0 to below 1 is expected", file: path, key: "validation_split")
            }
            config.validationSplit = split
        }
        if let v = lookup("validation_seed", outer) {
            let seed = try int(v, "validation_seed", path)
            guard seed >= 0 else { throw ModelError(.invalid, "validation_seed must not be negative", file: path, key: "validation_seed") }
            config.validationSeed = UInt64(seed)
        }
        if let v = lookup("resize_interpolation", outer) { config.resizeInterpolation = try interpolation(v, path) }
        for table in subsetTables {
            let own = members(table) ?? []
            for (key, _) in own where !subsetKeys.contains(key) && !subsetOnlyKeys.contains(key) {
                throw ModelError(.invalid, "[[datasets.subsets]] has an unknown key \(key)", file: path, key: key)
            }
            let levels = [own, dataset, general]
            // A fine-tuning subset (kohya's FT_SUBSET schema): metadata_file, image_dir only where its keys are relative, no DreamBooth keys.
            let metadataFile = try lookup("metadata_file", [own]).map { v throws(ModelError) in
                guard let file = v.stringValue else { throw ModelError(.invalid, "metadata_file must be a string", file: path, key: "metadata_file") }
                return file
            }
            if metadataFile != nil {
                for key in ["is_reg", "class_tokens", "caption_extension", "cache_info"] where lookup(key, [own]) != nil {
                    throw ModelError(.invalid, "\(key) belongs to folder (DreamBooth) subsets, not to one with metadata_file", file: path, key: key)
                }
            }
            guard let dir = lookup("image_dir", [own])?.stringValue ?? (metadataFile != nil ? "" : nil) else {
                throw ModelError(.invalid, "a subset without image_dir", file: path, key: "image_dir")
            }
            var s = defaults
            s.imageDirectory = dir
            s.metadataFile = metadataFile
            s.classTokens = metadataFile == nil ? lookup("class_tokens", levels)?.stringValue : nil
            s.isRegularization = try lookup("is_reg", [own]).map { v throws(ModelError) in try bool(v, "is_reg", path) } ?? false
            s.repeats = try lookup("num_repeats", levels).map { v throws(ModelError) in try int(v, "num_repeats", path, atLeast: 1) } ?? defaults.repeats
            if let v = lookup("caption_extension", levels)?.stringValue { s.captionExtension = DatasetSubset.normalizedExtension(v) }
            if let v = lookup("shuffle_caption", levels) { s.shuffleCaption = try bool(v, "shuffle_caption", path) }
            if let v = lookup("caption_separator", levels)?.stringValue { s.captionSeparator = v }
            if let v = lookup("keep_tokens", levels) { s.keepTokens = try int(v, "keep_tokens", path, atLeast: 0) }
            if let v = lookup("keep_tokens_separator", levels)?.stringValue { s.keepTokensSeparator = v }
            if let v = lookup("caption_prefix", levels)?.stringValue { s.captionPrefix = v }
            if let v = lookup("caption_suffix", levels)?.stringValue { s.captionSuffix = v }
            if let v = lookup("caption_dropout_rate", levels) { s.captionDropoutRate = try rate(v, "caption_dropout_rate", path) }
            if let v = lookup("caption_dropout_every_n_epochs", levels) { s.captionDropoutEveryNEpochs = try int(v, "caption_dropout_every_n_epochs", path, atLeast: 0) }
            if let v = lookup("caption_tag_dropout_rate", levels) { s.captionTagDropoutRate = try rate(v, "caption_tag_dropout_rate", path) }
            if let v = lookup("flip_aug", levels) { s.flipAugment = try bool(v, "flip_aug", path) }
            if let v = lookup("random_crop", levels) { s.randomCrop = try bool(v, "random_crop", path) }
            if let v = lookup("color_aug", levels) { s.colorAugment = try bool(v, "color_aug", path) }
            if let v = lookup("alpha_mask", levels) { s.alphaMask = try bool(v, "alpha_mask", path) }
            if let v = lookup("enable_wildcard", levels) { s.enableWildcard = try bool(v, "enable_wildcard", path) }
            if let v = lookup("resize_interpolation", levels) { s.resizeInterpolation = try interpolation(v, path) }
            // Settings that ask for something not built yet: refused by name (false / empty values ask nothing).
            if let v = lookup("secondary_separator", levels)?.stringValue { s.secondarySeparator = v }
            if let v = lookup("token_warmup_min", levels) { s.tokenWarmupMin = try int(v, "token_warmup_min", path, atLeast: 0) }
            if let v = lookup("token_warmup_step", levels) { s.tokenWarmupStep = try number(v, "token_warmup_step", path) }
            if let v = lookup("face_crop_aug_range", levels), v != .null { s.faceCropRange = try faceCropRange(v, path) }
            for key in ["conditioning_data_dir", "custom_attributes"] {
                if let v = lookup(key, levels), v != .null, v != .string(""), v != .array([]), v != .object([]) {
                    throw ModelError(.unsupported, "\(key) is not supported yet", file: path, key: key)
                }
            }
            config.subsets.append(s)
        }
        if Set(config.subsets.map { $0.metadataFile == nil }).count > 1 {
            throw ModelError(.invalid, "a [[datasets]] table mixes folder (DreamBooth) subsets and subsets with metadata_file; kohya refuses it too: "
                             + "put them in separate [[datasets]]", file: path, key: "metadata_file")
        }
        return config
    }

    static func members(_ v: JSON) -> [(String, JSON)]? {
        if case let .object(m) = v { return m }
        return nil
    }

    static func number(_ v: JSON, _ key: String, _ path: String) throws(ModelError) -> Double {
        guard case let .number(text) = v, let d = Double(text) else { throw ModelError(.invalid, "\(key) must be a number", file: path, key: key) }
        return d
    }

    /// An integer, at least `minimum` when given (a count, a size: what the loader would divide by or loop to).
    static func int(_ v: JSON, _ key: String, _ path: String, atLeast minimum: Int? = nil) throws(ModelError) -> Int {
        guard case let .number(text) = v, let i = Int(text) else { throw ModelError(.invalid, "\(key) must be an integer", file: path, key: key) }
        if let minimum, i < minimum { throw ModelError(.invalid, "\(key) must be at least \(minimum), not \(i)", file: path, key: key) }
        return i
    }

    /// A probability.
    static func rate(_ v: JSON, _ key: String, _ path: String) throws(ModelError) -> Double {
        let p = try number(v, key, path)
        guard (0...1).contains(p) else { throw ModelError(.invalid, "\(key) must be between 0 and 1, not \(p)", file: path, key: key) }
        return p
    }

    /// kohya's `face_crop_aug_range = [a, b]` (a two-float sequence; positive and a ≤ b, as its command line checks).
    static func faceCropRange(_ v: JSON, _ path: String) throws(ModelError) -> FaceCrop.Range {
        let key = "face_crop_aug_range"
        guard case let .array(items) = v, items.count == 2 else {
            throw ModelError(.invalid, "\(key) must be two numbers [a, b], such as [2.0, 4.0]", file: path, key: key)
        }
        let range = FaceCrop.Range(lower: try number(items[0], key, path), upper: try number(items[1], key, path))
        guard range.isUsable else { throw ModelError(.invalid, "\(key) must be positive with a ≤ b, such as [2.0, 4.0]", file: path, key: key) }
        return range
    }

    static func bool(_ v: JSON, _ key: String, _ path: String) throws(ModelError) -> Bool {
        guard case let .bool(b) = v else { throw ModelError(.invalid, "\(key) must be true or false", file: path, key: key) }
        return b
    }

    /// kohya's `validate_interpolation_fn` names (utils.py); "" leaves kohya's default.
    static func interpolation(_ v: JSON, _ path: String) throws(ModelError) -> Bitmap.Interpolation? {
        guard case let .string(name) = v else { throw ModelError(.invalid, "resize_interpolation must be a string", file: path, key: "resize_interpolation") }
        if name.isEmpty { return nil }
        guard let method = Bitmap.Interpolation(rawValue: name) else {
            throw ModelError(.invalid, "resize_interpolation \"\(TerminalText.escape(name))\" is not one of "
                             + Bitmap.Interpolation.allCases.map(\.rawValue).joined(separator: ", "), file: path, key: "resize_interpolation")
        }
        return method
    }

    /// `resolution = 512` or `[768, 512]` (width, height), as kohya takes it.
    static func resolution(_ v: JSON, _ path: String) throws(ModelError) -> Resolution {
        let r: Resolution
        switch v {
        case .number: let side = try int(v, "resolution", path); r = Resolution(side, side)
        case let .array(items) where items.count == 2:
            r = Resolution(try int(items[0], "resolution", path), try int(items[1], "resolution", path))
        default: throw ModelError(.invalid, "resolution must be a number or [width, height]", file: path, key: "resolution")
        }
        guard r.isTrainingSize else {
            throw ModelError(.invalid, "resolution \(r) must have sides of 64 to 8192 pixels, multiples of 8", file: path, key: "resolution")
        }
        return r
    }
}
