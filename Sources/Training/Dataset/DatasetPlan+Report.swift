import Foundation

/// The plan in the words sd-scripts logs before training (train_util.py,
/// train_network.py), so a kohya user can compare line by line.
extension DatasetPlan {
    public func reportLines(steps: StepCount, gradientAccumulationSteps: Int, validationImagesWithRepeats: Int = 0) -> [String] {
        var lines: [String] = []
        for (number, part) in parts.enumerated() {
            if parts.count > 1 {
                lines.append("[Dataset \(number)] resolution \(part.bucketing.resolution), batch size \(part.batchSize), "
                             + "\(part.trainImagesWithRepeats) train images with repeats, \(part.regImagesWithRepeats) reg images with repeats")
            }
            lines += partLines(part)
        }
        lines.append("num train images * repeats: \(trainImagesWithRepeats)")
        lines.append("num validation images * repeats: \(validationImagesWithRepeats)")
        lines.append("num reg images: \(regImagesWithRepeats)")
        lines.append("num batches per epoch: \(steps.batchesPerEpoch)")
        lines.append("num epochs: \(steps.epochs)")
        lines.append("batch size per device: \(Array(Set(parts.map(\.batchSize))).sorted().map(String.init).joined(separator: ", "))")
        lines.append("gradient accumulation steps: \(gradientAccumulationSteps)")
        lines.append("total optimization steps: \(steps.totalSteps)")
        return lines
    }

    /// One dataset's folders and buckets.
    func partLines(_ part: Part) -> [String] {
        var lines: [String] = []
        for index in part.subsets {
            let subset = subsets[index]
            let count = images.filter { $0.subsetIndex == index }.count
            if let file = subset.metadataFile {
                let tagged = tagFrequency[part.tagFrequency].first { $0.folder == subset.recordedName }.map { !$0.tags.isEmpty } ?? false
                lines.append("loaded metadata \(file): \(count) images\(subset.imageDirectory.isEmpty ? "" : " in \(subset.imageDirectory)"), "
                             + "\(subset.repeats) repeats, captions\(tagged ? " and tags" : "") from the metadata")
                continue
            }
            let captioned = images.filter { $0.subsetIndex == index && $0.captionSource == .file }.count
            let listed = subset.isRegularization && count == 0 ? "" : " (\(captioned) with \(subset.captionExtension) captions)"
            lines.append("found directory \(subset.imageDirectory) contains \(count) image files\(listed), "
                         + "\(subset.repeats) repeats\(subset.isRegularization ? ", regularization" : "")"
                         + (subset.classTokens.map { $0.isEmpty ? "" : ", class tokens \"\($0)\"" } ?? ""))
        }
        lines.append("\(part.trainImagesWithRepeats) train images with repeats.")
        lines.append(part.regImagesWithRepeats == 0 ? "no regularization images" : "\(part.regImagesWithRepeats) reg images with repeats.")
        let bucketing = part.bucketing
        switch bucketing.mode {
        case .fixed:
            let size = "\(bucketing.resolution.width)x\(bucketing.resolution.height)"
            let unresized = images.indices.filter { part.subsets.contains(images[$0].subsetIndex) && cropsUnresized($0) }.count
            lines.append(unresized == 0 ? "no buckets: every image is resized to cover \(size) and center-cropped"
                         : "no buckets: \(unresized) images (random_crop, face crops) are cropped to \(size) as they are at every step, "
                           + "the others resized to cover it and center-cropped")
        case .predefined, .noUpscale:
            lines.append("number of images (including repeats) per bucket:")
            for (i, bucket) in buckets[part.buckets].enumerated() {
                lines.append("bucket \(i): resolution \(bucket.resolution), count: \(bucket.entries.count)")
            }
            lines.append("mean ar error (without repeats): \(pythonFloat(part.meanAspectError))")
        }
        return lines
    }
}
