import Foundation
import LoRACore

/// The dataset part of kohya's metadata (train_network.py), in its two forms: from the command line's
/// folders, flat `ss_*` keys for the one dataset; from a dataset config, `ss_datasets` (a JSON list, one
/// entry per `[[datasets]]` with its subsets) beside the merged `ss_tag_frequency` and `ss_dataset_dirs`.
extension LoRATrainer {
    func datasetMetadata(into m: inout Metadata) {
        let c = configuration
        func py(_ v: Bool) -> String { v ? "True" : "False" }
        if c.usesDatasetConfig {
            m["ss_datasets"] = JSON.array(plan.parts.map(datasetEntry)).pythonDumps()
            // Merged across datasets: a folder's tags once (its first dataset's), non-regularization folders
            // with " (2)", " (3)" … when a name comes again.
            var tags: [(String, JSON)] = [], dirs: [(String, JSON)] = []
            for part in plan.parts {
                for (folder, counts) in plan.tagFrequency[part.tagFrequency] where !tags.contains(where: { $0.0 == folder }) {
                    tags.append((folder, Self.tagJSON(counts)))
                }
                for index in part.subsets where !plan.subsets[index].isRegularization {
                    let base = plan.subsets[index].recordedName
                    var name = base, n = 2
                    while dirs.contains(where: { $0.0 == name }) { name = base + " (\(n))"; n += 1 }
                    dirs.append((name, dirInfo(index)))
                }
            }
            m[.tagFrequency] = JSON.object(tags).pythonDumps()
            m[.datasetDirs] = JSON.object(dirs).pythonDumps()
            return
        }
        let first = plan.subsets.first, part = plan.parts[0]
        m[.batchSizePerDevice] = String(plan.batchSize)
        m[.totalBatchSize] = String(plan.batchSize * c.gradientAccumulationSteps)
        m[.resolution] = c.resolutionText
        m["ss_color_aug"] = py(first?.colorAugment ?? false)
        m[.flipAug] = py(first?.flipAugment ?? false)
        m["ss_random_crop"] = py(first?.randomCrop ?? false)
        m[.shuffleCaption] = py(first?.shuffleCaption ?? false)
        m[.enableBucket] = py(part.bucketing.bucketed)
        m["ss_bucket_no_upscale"] = py(part.bucketing.noUpscale)
        // The dataset's limits as kohya keeps them: adjusted to the step with buckets (no_upscale too), None without.
        m[.minBucketReso] = part.bucketing.limits.map { String($0.min) } ?? "None"
        m[.maxBucketReso] = part.bucketing.limits.map { String($0.max) } ?? "None"
        m[.keepTokens] = String(first?.keepTokens ?? 0)
        func dirs(_ reg: Bool) -> JSON {
            .object(plan.subsets.indices.filter { plan.subsets[$0].isRegularization == reg }.map { index in
                (plan.subsets[index].recordedName, dirInfo(index))
            })
        }
        m[.datasetDirs] = dirs(false).pythonDumps()
        m["ss_reg_dataset_dirs"] = dirs(true).pythonDumps()
        m[.tagFrequency] = JSON.object(plan.tagFrequency.map { ($0.folder, Self.tagJSON($0.tags)) }).pythonDumps()
        m[.bucketInfo] = bucketInfo(part).pythonDumps()
    }

    /// One `ss_datasets` entry: kohya's dataset_metadata with its subsets_metadata.
    func datasetEntry(_ part: DatasetPlan.Part) -> JSON {
        func number(_ n: Int) -> JSON { .number(String(n)) }
        func text(_ s: String?) -> JSON { s.map(JSON.string) ?? .null }
        let bucketed = part.bucketing.bucketed
        let limits: (JSON, JSON) = part.bucketing.limits.map { (number($0.min), number($0.max)) } ?? (.null, .null)
        let subsets: [JSON] = part.subsets.map { index in
            let s = plan.subsets[index]
            var fields: [(String, JSON)] = [
                ("img_count", number(imageCount(index))), ("num_repeats", number(s.repeats)), ("color_aug", .bool(s.colorAugment)),
                ("flip_aug", .bool(s.flipAugment)), ("random_crop", .bool(s.randomCrop)), ("shuffle_caption", .bool(s.shuffleCaption)),
                ("keep_tokens", number(s.keepTokens)), ("keep_tokens_separator", .string(s.keepTokensSeparator)), ("secondary_separator", text(s.secondarySeparator)),
                ("enable_wildcard", .bool(s.enableWildcard)), ("caption_prefix", text(s.captionPrefix)), ("caption_suffix", text(s.captionSuffix)),
                ("resize_interpolation", text(s.resizeInterpolation?.rawValue)),
            ]
            // kohya: image_dir when the subset has one; a DreamBooth subset's class tokens and is_reg, a fine-tuning one's metadata file.
            if !s.imageDirectory.isEmpty { fields.append(("image_dir", .string((s.imageDirectory as NSString).lastPathComponent))) }
            if let file = s.metadataFile {
                fields.append(("metadata_file", .string((file as NSString).lastPathComponent)))
            } else {
                fields += [("class_tokens", text(s.classTokens)), ("is_reg", .bool(s.isRegularization))]
            }
            return .object(fields)
        }
        return .object([
            ("is_dreambooth", .bool(plan.subsets[part.subsets].allSatisfy { $0.metadataFile == nil })), ("batch_size_per_device", number(part.batchSize)),
            ("num_train_images", number(part.trainImagesWithRepeats)), ("num_reg_images", number(part.regImagesWithRepeats)),
            ("resolution", .array([number(part.bucketing.resolution.width), number(part.bucketing.resolution.height)])),
            ("enable_bucket", .bool(bucketed)), ("min_bucket_reso", limits.0), ("max_bucket_reso", limits.1),
            ("tag_frequency", .object(plan.tagFrequency[part.tagFrequency].map { ($0.folder, Self.tagJSON($0.tags)) })),
            ("bucket_info", bucketInfo(part)),
            ("resize_interpolation", text(part.resizeInterpolation?.rawValue)), ("subsets", .array(subsets)),
        ])
    }

    /// kohya's bucket_info: the dataset's buckets (resolution, count with repeats) and mean aspect error; null without buckets.
    func bucketInfo(_ part: DatasetPlan.Part) -> JSON {
        guard part.bucketing.bucketed else { return .null }
        return .object([
            ("buckets", .object(plan.buckets[part.buckets].enumerated().map { i, b in
                (String(i), JSON.object([("resolution", .array([.number(String(b.resolution.width)), .number(String(b.resolution.height))])),
                                         ("count", .number(String(b.entries.count)))]))
            })),
            ("mean_img_ar_error", .number(pythonFloat(part.meanAspectError))),
        ])
    }

    func imageCount(_ subset: Int) -> Int { plan.images.filter { $0.subsetIndex == subset }.count }

    func dirInfo(_ subset: Int) -> JSON {
        .object([("n_repeats", .number(String(plan.subsets[subset].repeats))), ("img_count", .number(String(imageCount(subset))))])
    }

    /// Tag → count, the most frequent first (ties by name).
    static func tagJSON(_ tags: [String: Int]) -> JSON {
        .object(tags.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { ($0.key, .number(String($0.value))) })
    }
}
