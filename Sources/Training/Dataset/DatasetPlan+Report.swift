import Foundation

/// The plan in the words sd-scripts logs before training (train_util.py,
/// train_network.py), so a kohya user can compare line by line.
extension DatasetPlan {
    public func reportLines(steps: StepCount, gradientAccumulationSteps: Int) -> [String] {
        var lines: [String] = []
        for (index, subset) in subsets.enumerated() {
            let count = images.filter { $0.subsetIndex == index }.count
            let captioned = images.filter { $0.subsetIndex == index && $0.captionSource == .file }.count
            let listed = subset.isRegularization && count == 0 ? "" : " (\(captioned) with \(subset.captionExtension) captions)"
            lines.append("found directory \(subset.imageDirectory) contains \(count) image files\(listed), "
                         + "\(subset.repeats) repeats\(subset.isRegularization ? ", regularization" : "")"
                         + (subset.classTokens.map { $0.isEmpty ? "" : ", class tokens \"\($0)\"" } ?? ""))
        }
        lines.append("\(trainImagesWithRepeats) train images with repeats.")
        lines.append(regImagesWithRepeats == 0 ? "no regularization images" : "\(regImagesWithRepeats) reg images with repeats.")
        switch bucketing.mode {
        case .fixed: lines.append("no buckets: every image is resized to cover \(bucketing.resolution.width)x\(bucketing.resolution.height) and center-cropped")
        case .predefined, .noUpscale:
            lines.append("number of images (including repeats) per bucket:")
            for (i, bucket) in buckets.enumerated() {
                lines.append("bucket \(i): resolution \(bucket.resolution), count: \(bucket.entries.count)")
            }
            lines.append("mean ar error (without repeats): \(pythonFloat(meanAspectError))")
        }
        lines.append("num train images * repeats: \(trainImagesWithRepeats)")
        lines.append("num reg images: \(regImagesWithRepeats)")
        lines.append("num batches per epoch: \(steps.batchesPerEpoch)")
        lines.append("num epochs: \(steps.epochs)")
        lines.append("batch size per device: \(batchSize)")
        lines.append("gradient accumulation steps: \(gradientAccumulationSteps)")
        lines.append("total optimization steps: \(steps.totalSteps)")
        return lines
    }
}
