import Foundation
import Imaging
import LoRACore

/// What a dataset amounts to before anything is trained: every image with its
/// caption, repeats and bucket; the buckets with their counts (repeats
/// included); batches per epoch. The numbers are sd-scripts' for the same
/// folders (library/train_util.py `DreamBoothDataset.__init__`, `make_buckets`).
public struct DatasetPlan: Sendable {
    public struct Bucket: Sendable, Equatable {
        public var resolution: Resolution
        /// Indices into `images`, each once per repeat (kohya's bucket contents).
        public var entries: [Int]
        /// Its dataset's batch size.
        public var batchSize = 1
    }

    /// One dataset (a `[[datasets]]` table, or the command line's folders): kohya trains several as a
    /// DatasetGroup, each with its own resolution, buckets and batch size, their batches shuffled together.
    public struct Part: Sendable {
        public var subsets: Range<Int>
        public var buckets: Range<Int>
        public var bucketing: BucketSet
        public var batchSize: Int
        public var trainImagesWithRepeats: Int
        public var regImagesWithRepeats: Int
        public var meanAspectError: Double
        /// Its folders' entries in `tagFrequency`.
        public var tagFrequency: Range<Int>
        /// kohya's dataset-level `resize_interpolation` (metadata only: each subset carries the one it uses).
        public var resizeInterpolation: Bitmap.Interpolation?
    }

    public var subsets: [DatasetSubset]
    public var images: [DatasetImage]
    /// Per image: the bucket index and the size it is resized to before cropping.
    public var bucketOf: [Int]
    public var resizedSize: [Resolution]
    /// Non-empty buckets in kohya's order (sorted by resolution).
    public var buckets: [Bucket]
    public var batchSize: Int
    public var bucketing: BucketSet
    /// Σ images × repeats over the training subsets, and the same for
    /// regularization subsets before balancing (kohya's two log lines).
    public var trainImagesWithRepeats = 0
    public var regImagesWithRepeats = 0
    /// Mean |aspect error| over images (without repeats), kohya's `mean_img_ar_error`.
    public var meanAspectError = 0.0
    /// Per subset folder name: tag → count (kohya's `ss_tag_frequency`).
    public var tagFrequency: [(folder: String, tags: [String: Int])] = []
    /// Lines a user should read before training (missing captions, unused folders…).
    public var warnings: [String] = []
    /// The datasets, in order (one unless a dataset config has several `[[datasets]]`).
    public var parts: [Part] = []

    public var batchesPerEpoch: Int { buckets.reduce(0) { $0 + ($1.entries.count + $1.batchSize - 1) / $1.batchSize } }

    /// Several datasets as one run (kohya's DatasetGroup): subsets, images and buckets concatenated,
    /// each bucket keeping its dataset's batch size; the first dataset's settings stand for the run
    /// where one value is asked for (the command-line metadata form, which a dataset config does not use).
    public static func combine(_ plans: [DatasetPlan]) -> DatasetPlan {
        guard var combined = plans.first, plans.count > 1 else { return plans[0] }
        for plan in plans.dropFirst() {
            let (subsetBase, imageBase, bucketBase) = (combined.subsets.count, combined.images.count, combined.buckets.count)
            let tagBase = combined.tagFrequency.count
            combined.subsets += plan.subsets
            combined.images += plan.images.map { var image = $0; image.subsetIndex += subsetBase; return image }
            combined.bucketOf += plan.bucketOf.map { $0 + bucketBase }
            combined.resizedSize += plan.resizedSize
            combined.buckets += plan.buckets.map { var bucket = $0; bucket.entries = bucket.entries.map { $0 + imageBase }; return bucket }
            combined.parts += plan.parts.map { part in
                var p = part
                p.subsets = (part.subsets.lowerBound + subsetBase)..<(part.subsets.upperBound + subsetBase)
                p.buckets = (part.buckets.lowerBound + bucketBase)..<(part.buckets.upperBound + bucketBase)
                p.tagFrequency = (part.tagFrequency.lowerBound + tagBase)..<(part.tagFrequency.upperBound + tagBase)
                return p
            }
            combined.trainImagesWithRepeats += plan.trainImagesWithRepeats
            combined.regImagesWithRepeats += plan.regImagesWithRepeats
            combined.tagFrequency += plan.tagFrequency
            combined.warnings += plan.warnings
        }
        let images = plans.map { Double($0.images.count) }
        combined.meanAspectError = zip(plans, images).reduce(0) { $0 + $1.0.meanAspectError * $1.1 } / max(1, images.reduce(0, +))
        return combined
    }

    /// Lists, captions, sizes and buckets for `subsets`.
    /// With `split`, each training folder keeps its `side` of kohya's validation split (a validation
    /// plan has no regularization images and may be empty). `cachedLatents`: kohya's `--cache_latents`, under which
    /// it ignores face crops.
    public static func make(subsets: [DatasetSubset], bucketing: BucketSet, batchSize: Int,
                            skippedFolders: [(folder: String, reason: String)] = [],
                            split: ValidationSplit? = nil, side: ValidationSplit.Side = .training,
                            cachedLatents: Bool = false) throws(ModelError) -> DatasetPlan {
        var plan = DatasetPlan(subsets: subsets, images: [], bucketOf: [], resizedSize: [], buckets: [], batchSize: batchSize,
                               bucketing: bucketing)
        for (folder, reason) in skippedFolders { plan.warnings.append("ignored folder \(folder): \(reason)") }
        var regular: [DatasetImage] = [], regularization: [DatasetImage] = []
        for (index, subset) in subsets.enumerated() {
            if side == .validation && split == nil { continue }
            if subset.metadataFile != nil {
                // A fine-tuning subset: kohya's FineTuningDataset takes no validation share and no regularization images.
                if side == .validation { continue }
                if let split, split.fraction > 0 {
                    plan.warnings.append("validation split \(pythonFloat(split.fraction)) does not apply to \(subset.metadataFile!): kohya's "
                                         + "fine-tuning datasets are not split, all their images train")
                }
                let listed = try plan.metadataImages(subset, index: index)
                guard !listed.isEmpty else {
                    plan.warnings.append("ignored subset with \(subset.metadataFile!): it lists no images")
                    continue
                }
                regular += listed
                plan.trainImagesWithRepeats += subset.repeats * listed.count
                continue
            }
            var paths = try ImageListing.images(in: subset.imageDirectory)
            if let split, !paths.isEmpty {
                if subset.isRegularization {
                    if side == .validation { continue }
                } else {
                    let overlap = split.overlap(count: paths.count)
                    if overlap > 0 && side == .training {
                        let (train, validate) = (split.part(paths, side: .training).count, split.part(paths, side: .validation).count)
                        plan.warnings.append("validation split \(pythonFloat(split.fraction)) of the \(paths.count) images in \(subset.imageDirectory): "
                                             + "kohya's counts (\(train) train, \(validate) validate) put \(overlap) image in both")
                    }
                    paths = split.part(paths, side: side)
                    if paths.isEmpty { continue }
                }
            }
            guard !paths.isEmpty else {
                plan.warnings.append("ignored folder \(subset.imageDirectory): no images found (.png, .jpg, .jpeg)")
                continue
            }
            var missing = 0
            for path in paths {
                let size: (width: Int, height: Int)
                do { size = try ImageFile.size(path) } catch { throw ModelError(.invalid, error.message, file: path) }
                var image = DatasetImage(path: path, caption: "", captionSource: .none, subsetIndex: index, repeats: subset.repeats,
                                         isRegularization: subset.isRegularization, width: size.width, height: size.height)
                if let caption = try ImageListing.caption(for: path, extension: subset.captionExtension, wildcard: subset.enableWildcard) {
                    (image.caption, image.captionSource) = (caption, .file)
                } else if let tokens = subset.classTokens {
                    (image.caption, image.captionSource) = (tokens, .classTokens)
                    missing += 1
                } else {
                    missing += 1
                    plan.warnings.append("neither a caption file nor class tokens for \(path): its caption is empty")
                }
                if subset.isRegularization { regularization.append(image) } else { regular.append(image) }
            }
            let folderImages = (subset.isRegularization ? regularization : regular).suffix(paths.count)
            plan.tagFrequency.append((subset.recordedName, tagCounts(folderImages.map(\.caption))))
            if missing > 0 {
                var line = "\(missing) of \(paths.count) images in \(subset.imageDirectory) have no \(subset.captionExtension) caption file"
                line += subset.classTokens.map { $0.isEmpty ? "" : "; they are captioned \"\($0)\"" } ?? ""
                let others = ImageListing.otherCaptionExtensions(in: subset.imageDirectory, images: paths, asked: subset.captionExtension)
                if !others.isEmpty {
                    line += ". Files with \(others.joined(separator: ", ")) sit beside them: pass --caption-extension \(others[0]) to use them"
                }
                plan.warnings.append(line)
            }
            if subset.isRegularization { plan.regImagesWithRepeats += subset.repeats * paths.count } else {
                plan.trainImagesWithRepeats += subset.repeats * paths.count
            }
        }
        if side == .validation && regular.isEmpty {
            plan.parts = [Part(subsets: 0..<subsets.count, buckets: 0..<0, bucketing: bucketing, batchSize: batchSize, trainImagesWithRepeats: 0,
                               regImagesWithRepeats: 0, meanAspectError: 0, tagFrequency: 0..<plan.tagFrequency.count)]
            return plan
        }
        guard !regular.isEmpty || subsets.allSatisfy({ $0.metadataFile == nil }) else {
            throw ModelError(.mismatch, "no training images found: the metadata file lists none", file: subsets.first?.metadataFile)
        }
        guard !regular.isEmpty else {
            throw ModelError(.mismatch, "no training images found: the training data folder must be the parent of folders named "
                             + "<repeats>_<class tokens> (e.g. 10_mychar) that hold the images", file: subsets.first.map {
                                 ($0.imageDirectory as NSString).deletingLastPathComponent })
        }
        // Regularization images: the first pass registers each with its own
        // repeats, later passes add one repeat each, until as many samples as
        // the training images have (images beyond that are never used).
        if !regularization.isEmpty {
            if plan.regImagesWithRepeats > plan.trainImagesWithRepeats {
                plan.warnings.append("some regularization images are not used: they outnumber the training images (with repeats)")
            }
            var registered = 0, n = 0, firstPass = true
            outer: while n < plan.trainImagesWithRepeats {
                for i in regularization.indices {
                    if firstPass { registered += 1; n += regularization[i].repeats } else { regularization[i].repeats += 1; n += 1 }
                    if n >= plan.trainImagesWithRepeats { break outer }
                }
                firstPass = false
            }
            regularization = Array(regularization.prefix(registered))
        }
        plan.images = regular + regularization
        try plan.assignBuckets()
        try plan.findFacesAndCheckCrops(cachedLatents: cachedLatents)
        for i in plan.buckets.indices { plan.buckets[i].batchSize = batchSize }
        plan.parts = [Part(subsets: 0..<subsets.count, buckets: 0..<plan.buckets.count, bucketing: bucketing, batchSize: batchSize,
                           trainImagesWithRepeats: plan.trainImagesWithRepeats, regImagesWithRepeats: plan.regImagesWithRepeats,
                           meanAspectError: plan.meanAspectError, tagFrequency: 0..<plan.tagFrequency.count)]
        return plan
    }

    mutating func assignBuckets() throws(ModelError) {
        var resolutions: [Resolution] = [], errors: [Double] = []
        var selection: [(Resolution, Resolution)] = []
        for image in images {
            let (bucket, resized, error) = bucketing.select(width: image.width, height: image.height)
            // kohya would go on with such a bucket and fail later, far from the cause.
            guard bucket.width >= 8, bucket.height >= 8, resized.width >= bucket.width, resized.height >= bucket.height else {
                var hint = "use a larger --resolution"
                if case let .noUpscale(step) = bucketing.mode {
                    hint = "with --bucket-no-upscale the sides are cut to multiples of --bucket-reso-steps (\(step)): use a smaller step, a larger --resolution, "
                        + "or leave --bucket-no-upscale out"
                }
                throw ModelError(.mismatch, "this \(image.width)x\(image.height) image's bucket would be \(bucket.width)x\(bucket.height) pixels; \(hint)",
                                 file: image.path)
            }
            selection.append((bucket, resized))
            errors.append(abs(error))
            if !resolutions.contains(bucket) { resolutions.append(bucket) }
        }
        resolutions.sort()
        let index = Dictionary(uniqueKeysWithValues: resolutions.enumerated().map { ($1, $0) })
        buckets = resolutions.map { Bucket(resolution: $0, entries: []) }
        bucketOf = selection.map { index[$0.0]! }
        resizedSize = selection.map(\.1)
        for (i, image) in images.enumerated() {
            buckets[bucketOf[i]].entries += [Int](repeating: i, count: image.repeats)
        }
        meanAspectError = errors.isEmpty ? 0 : errors.reduce(0, +) / Double(errors.count)
    }

    /// Tag counts per folder (captions split at commas, trimmed, lower-cased;
    /// repeats not counted; every listed image, used or not): kohya's `ss_tag_frequency`.
    static func tagCounts(_ captions: [String]) -> [String: Int] {
        var tags: [String: Int] = [:]
        for caption in captions {
            for tag in caption.split(separator: ",") {
                let t = tag.trimmingCharacters(in: .whitespaces).lowercased()
                if !t.isEmpty { tags[t, default: 0] += 1 }
            }
        }
        return tags
    }
}
