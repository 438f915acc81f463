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
        add("title", m["modelspec.title"] ?? m["ssmd_display_name"])
        add("output name", m["ss_output_name"])
        add("author", m["modelspec.author"] ?? m["ssmd_author"])
        add("description", (m["modelspec.description"] ?? m["ssmd_description"]).map { $0.count > 200 ? String($0.prefix(197)) + "..." : $0 })
        add("trigger phrase", m["modelspec.trigger_phrase"] ?? m["ssmd_keywords"])
        add("base model", m["ss_sd_model_name"])
        add("base model version", m["ss_base_model_version"])
        add("base model hash", m["ss_new_sd_model_hash"].map { String($0.prefix(10)) } ?? m["ss_sd_model_hash"])
        add("architecture", m["modelspec.architecture"])
        add("prediction type", m["modelspec.prediction_type"])
        add("resolution", m["ss_resolution"] ?? m["modelspec.resolution"])
        add("network module", m["ss_network_module"])
        add("network dim", m["ss_network_dim"])
        add("network alpha", m["ss_network_alpha"])
        add("network args", m["ss_network_args"])
        add("epochs", TrainingSummary.ofTotal(m["ss_epoch"], m["ss_num_epochs"]))
        add("steps", TrainingSummary.ofTotal(m["ss_steps"], m["ss_max_train_steps"]))
        add("learning rate", m["ss_learning_rate"])
        add("unet lr", m["ss_unet_lr"])
        add("text encoder lr", m["ss_text_encoder_lr"])
        add("optimizer", m["ss_optimizer"])
        add("lr scheduler", m["ss_lr_scheduler"])
        add("warmup steps", m["ss_lr_warmup_steps"].flatMap { $0 == "0" ? nil : $0 })
        add("batch size", m["ss_total_batch_size"] ?? m["ss_batch_size_per_device"])
        add("gradient accumulation", m["ss_gradient_accumulation_steps"].flatMap { $0 == "1" ? nil : $0 })
        add("mixed precision", m["ss_mixed_precision"])
        add("clip skip", m["ss_clip_skip"])
        add("noise offset", m["ss_noise_offset"])
        add("min SNR gamma", m["ss_min_snr_gamma"])
        add("seed", m["ss_seed"])
        add("reg images", m["ss_num_reg_images"].flatMap { $0 == "0" ? nil : $0 })
        add("buckets", m["ss_enable_bucket"] == "True" ? TrainingSummary.bucketSummary(m) : nil)
        add("caption options", TrainingSummary.captionOptions(m))
        add("training started", m["ss_training_started_at"].flatMap(TrainingSummary.isoDate))
        add("training finished", m["ss_training_finished_at"].flatMap(TrainingSummary.isoDate))
        add("trainer", m["ss_sd_scripts_commit_hash"].map { "sd-scripts \(String($0.prefix(7)))" } ?? m["modelspec.implementation_version"])
        add("comment", m["ss_training_comment"])

        // Dataset size: images × repeats per folder, or kohya's own count.
        if let dirs = m.json("ss_dataset_dirs"), case let .object(entries) = dirs {
            var total = 0, images = 0
            for (_, info) in entries {
                let count = Int(info["img_count"]?.double ?? 0)
                let repeats = Int(info["n_repeats"]?.double ?? 1)
                images += count
                total += count * repeats
            }
            trainingImages = total
            fields.append(Field(label: "dataset", value: "\(images) images in \(entries.count) folder(s), \(total) with repeats"))
        } else if let n = m["ss_num_train_images"].flatMap(Int.init) {
            trainingImages = n
            fields.append(Field(label: "dataset", value: "\(n) images (with repeats)"))
        }

        if let args = m.json("ss_network_args"), case let .object(entries) = args {
            for (key, value) in entries { networkArgs[key] = value.stringValue ?? value.serialized() }
        }

        // Tag frequencies summed across dataset folders, as A1111's card does.
        if let frequency = m.json("ss_tag_frequency"), case let .object(folders) = frequency {
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
        if let lo = m["ss_min_bucket_reso"], let hi = m["ss_max_bucket_reso"] { parts.append("\(lo)–\(hi)") }
        if let info = m.json("ss_bucket_info"), case let .object(buckets)? = info["buckets"] {
            parts.append("\(buckets.count) buckets")
        }
        return parts.isEmpty ? "enabled" : parts.joined(separator: ", ")
    }

    static func captionOptions(_ m: Metadata) -> String? {
        var parts: [String] = []
        if m["ss_shuffle_caption"] == "True" { parts.append("shuffled") }
        if let keep = m["ss_keep_tokens"], keep != "0" { parts.append("keep \(keep) tokens") }
        if let drop = m["ss_caption_dropout_rate"], let v = Double(drop), v > 0 { parts.append("dropout \(drop)") }
        if let drop = m["ss_caption_tag_dropout_rate"], let v = Double(drop), v > 0 { parts.append("tag dropout \(drop)") }
        if m["ss_flip_aug"] == "True" { parts.append("flip augmentation") }
        return parts.isEmpty ? nil : parts.joined(separator: ", ")
    }
}
