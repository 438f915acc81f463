import Foundation

/// What kohya-style metadata (`ss_*`, `modelspec.*`, `ssmd_*`) says about how a
/// LoRA was trained, in the terms users look for.
public struct TrainingSummary: Sendable, Codable, Equatable {
    public struct Field: Sendable, Codable, Equatable {
        public var label: String
        public var value: String
    }

    public struct Tag: Sendable, Codable, Equatable {
        public var tag: String
        public var count: Int
    }

    /// Labelled values in display order (only those present).
    public var fields: [Field] = []
    /// The most frequent caption tags (trigger words first, usually).
    public var topTags: [Tag] = []
    public var distinctTags: Int = 0
    /// Images seen per epoch (images × repeats), from `ss_num_train_images` or `ss_dataset_dirs`.
    public var trainingImages: Int?
    public var networkArgs: [String: String] = [:]

    public var isEmpty: Bool { fields.isEmpty && topTags.isEmpty }

    public init(metadata: Metadata, topTagCount: Int = 20) {
        func add(_ label: String, _ value: String?) {
            guard let value, !value.isEmpty, value != "None" else { return }
            fields.append(Field(label: label, value: value))
        }
        let m = metadata
        add("title", m[.specTitle] ?? m["ssmd_display_name"])
        add("output name", m[.outputName])
        add("author", m[.specAuthor] ?? m["ssmd_author"])
        add("description", (m[.specDescription] ?? m["ssmd_description"]).map { $0.count > 200 ? String($0.prefix(197)) + "..." : $0 })
        add("trigger phrase", m[.specTriggerPhrase] ?? m["ssmd_keywords"])
        add("usage hint", m["modelspec.usage_hint"])
        add("license", m["modelspec.license"])
        add("tags", m["modelspec.tags"] ?? m["ssmd_tags"])
        add("merged from", m["modelspec.merged_from"])
        add("preprocessor", m["modelspec.preprocessor"])
        add("negative embedding", m["modelspec.is_negative_embedding"])
        // A data URL can be megabytes: its type and size, not its bytes.
        add("thumbnail", m["modelspec.thumbnail"].map { url in
            guard url.hasPrefix("data:"), let comma = url.firstIndex(of: ",") else { return "\(url.count) characters" }
            let header = url[url.index(url.startIndex, offsetBy: 5)..<comma].replacingOccurrences(of: ";base64", with: "")
            let encoded = url.distance(from: comma, to: url.endIndex) - 1, padding = url.suffix(2).filter { $0 == "=" }.count
            return "\(header.isEmpty ? "data" : header), \(ReportText.byteSize(encoded * 3 / 4 - padding)) (data URL)"
        })
        add("base model", m[.sdModelName])
        add("base model version", m[.baseModelVersion])
        add("base model hash", m[.newSdModelHash].map { String($0.prefix(10)) } ?? m[.sdModelHash])
        add("VAE", m["ss_vae_name"].map { name in name + (m["ss_new_vae_hash"].map { " [\($0.prefix(10))]" } ?? "") })
        add("architecture", m[.specArchitecture])
        add("prediction type", m[.specPredictionType])
        add("resolution", m[.resolution] ?? m[.specResolution])
        add("network module", m[.networkModule])
        add("network dim", m[.networkDim])
        add("network alpha", m[.networkAlpha])
        add("network args", m[.networkArgs])
        add("epochs", TrainingSummary.ofTotal(m[.epoch], m[.numEpochs]))
        add("steps", TrainingSummary.ofTotal(m[.steps], m[.maxTrainSteps]))
        add("learning rate", m[.learningRate])
        add("unet lr", m[.unetLr])
        add("text encoder lr", m[.textEncoderLr])
        add("optimizer", m[.optimizer])
        add("lr scheduler", m[.lrScheduler])
        add("warmup steps", m[.lrWarmupSteps].flatMap { $0 == "0" ? nil : $0 })
        add("batch size", m[.totalBatchSize] ?? m[.batchSizePerDevice])
        add("gradient accumulation", m[.gradientAccumulationSteps].flatMap { $0 == "1" ? nil : $0 })
        add("mixed precision", m[.mixedPrecision])
        add("clip skip", m[.clipSkip])
        add("noise offset", m[.noiseOffset])
        add("min SNR gamma", m[.minSnrGamma])
        add("seed", m[.seed])
        add("reg images", m[.numRegImages].flatMap { $0 == "0" ? nil : $0 })
        // kohya's validation (sd-scripts 2025): the held-out images with repeats and the split that chose them.
        add("validation images", m["ss_num_validation_images"].flatMap { $0 == "0" ? nil : $0 + (m["ss_validation_split"].map { " (split \($0))" } ?? "") })
        add("buckets", m[.enableBucket] == "True" ? TrainingSummary.bucketSummary(m) : nil)
        add("datasets", TrainingSummary.datasetsSummary(m))
        add("caption options", TrainingSummary.captionOptions(m))
        add("training started", m[.trainingStartedAt].flatMap(TrainingSummary.isoDate))
        add("training finished", m[.trainingFinishedAt].flatMap(TrainingSummary.isoDate))
        add("trainer", m[.trainer] ?? m[.sdScriptsCommitHash].map { "sd-scripts \(String($0.prefix(7)))" } ?? m[.specImplementationVersion])
        add("comment", m[.trainingComment])

        // Dataset size: images × repeats per folder, or kohya's own count.
        if let dirs = m.json(.datasetDirs), case let .object(entries) = dirs {
            var total = 0, images = 0
            for (_, info) in entries {
                let count = Int(info["img_count"]?.double ?? 0)
                let repeats = Int(info["n_repeats"]?.double ?? 1)
                images += count
                total += count * repeats
            }
            trainingImages = total
            // kohya records a fine-tuning dataset under its metadata file's name (--in_json, metadata_file).
            let metadataFiles = entries.allSatisfy { $0.0.hasSuffix(".json") || $0.0.hasSuffix(".jsonl") }
            fields.append(Field(label: "dataset", value: "\(images) images in \(entries.count) \(metadataFiles ? "metadata file" : "folder")(s), \(total) with repeats"))
        } else if let n = m[.numTrainImages].flatMap(Int.init) {
            trainingImages = n
            fields.append(Field(label: "dataset", value: "\(n) images (with repeats)"))
        }

        if let args = m.json(.networkArgs), case let .object(entries) = args {
            for (key, value) in entries { networkArgs[key] = value.stringValue ?? value.serialized() }
        }

        // Tag frequencies summed across dataset folders, as A1111's card does.
        if let frequency = m.json(.tagFrequency), case let .object(folders) = frequency {
            var counts: [String: Int] = [:]
            for (_, tags) in folders {
                guard case let .object(entries) = tags else { continue }
                for (tag, count) in entries {
                    let trimmed = tag.trimmingCharacters(in: .whitespaces)
                    guard !trimmed.isEmpty else { continue }
                    counts[trimmed, default: 0] += Int(count.double ?? 0)
                }
            }
            distinctTags = counts.count
            topTags = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                .prefix(topTagCount).map { Tag(tag: $0.key, count: $0.value) }
        }
    }

    /// kohya's dataset-config form (`ss_datasets`, one entry per `[[datasets]]`): resolution, batch size and
    /// images with repeats of each, e.g. "2 datasets: 512x512 batch 2 (40 images), 768x768 batch 1 (12 images)".
    static func datasetsSummary(_ m: Metadata) -> String? {
        guard let list = m.json("ss_datasets"), case let .array(datasets) = list, !datasets.isEmpty else { return nil }
        let parts = datasets.map { d -> String in
            var text = ""
            if case let .array(size)? = d["resolution"], size.count == 2, let w = size[0].double, let h = size[1].double {
                text = "\(Int(w))x\(Int(h))"
            }
            if let b = d["batch_size_per_device"]?.double { text += (text.isEmpty ? "" : " ") + "batch \(Int(b))" }
            if let n = d["num_train_images"]?.double { text += " (\(Int(n)) images)" }
            return text
        }
        return "\(datasets.count) dataset\(datasets.count == 1 ? "" : "s"): " + parts.joined(separator: ", ")
    }

    static func ofTotal(_ value: String?, _ total: String?) -> String? {
        switch (value, total) {
        case let (v?, t?) where v != t: return "\(v) of \(t)"
        case let (v?, _): return v
        case let (nil, t?): return t
        default: return nil
        }
    }

    static func isoDate(_ text: String) -> String? {
        guard let seconds = Double(text), seconds > 0 else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date(timeIntervalSince1970: seconds))
    }

    static func bucketSummary(_ m: Metadata) -> String? {
        var parts: [String] = []
        if let lo = m[.minBucketReso], let hi = m[.maxBucketReso] { parts.append("\(lo)–\(hi)") }
        if let info = m.json(.bucketInfo), case let .object(buckets)? = info["buckets"] {
            parts.append("\(buckets.count) buckets")
        }
        return parts.isEmpty ? "enabled" : parts.joined(separator: ", ")
    }

    static func captionOptions(_ m: Metadata) -> String? {
        var parts: [String] = []
        if m[.shuffleCaption] == "True" { parts.append("shuffled") }
        if let keep = m[.keepTokens], keep != "0" { parts.append("keep \(keep) tokens") }
        if let drop = m[.captionDropoutRate], let v = Double(drop), v > 0 { parts.append("dropout \(drop)") }
        if let drop = m[.captionTagDropoutRate], let v = Double(drop), v > 0 { parts.append("tag dropout \(drop)") }
        if m[.flipAug] == "True" { parts.append("flip augmentation") }
        return parts.isEmpty ? nil : parts.joined(separator: ", ")
    }
}
