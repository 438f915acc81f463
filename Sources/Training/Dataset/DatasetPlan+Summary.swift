import Foundation

/// The plan as a script reads it (`lora-train --dry-run --json`): the numbers of `reportLines`, per dataset
/// and in total, with the warnings, so a wrapper (a GUI, a queue) need not parse kohya's log lines.
extension DatasetPlan {
    public struct Summary: Encodable, Sendable {
        public struct Dataset: Encodable, Sendable {
            public var resolution: [Int]
            public var batchSize: Int
            public var bucketed: Bool
            public var trainImagesWithRepeats: Int
            public var regImagesWithRepeats: Int
            /// kohya's mean aspect error (nil without buckets).
            public var meanAspectError: Double?
            public var buckets: [Bucket]
            public var subsets: [Subset]
        }
        public struct Bucket: Encodable, Sendable {
            public var resolution: [Int]
            /// Images with repeats.
            public var count: Int
        }
        public struct Subset: Encodable, Sendable {
            public var imageDir: String?
            public var metadataFile: String?
            public var images: Int
            /// Images whose caption came from a caption file or the metadata file (the others: class tokens or none).
            public var captioned: Int
            public var repeats: Int
            public var classTokens: String?
            public var isReg: Bool
        }
        public var datasets: [Dataset]
        public var trainImagesWithRepeats: Int
        public var validationImagesWithRepeats: Int
        public var regImagesWithRepeats: Int
        public var batchesPerEpoch: Int
        public var stepsPerEpoch: Int
        public var epochs: Int
        public var totalSteps: Int
        public var gradientAccumulationSteps: Int
        public var warnings: [String]
    }

    public func summary(steps: StepCount, gradientAccumulationSteps: Int, validationImagesWithRepeats: Int = 0) -> Summary {
        let datasets = parts.map { part in
            Summary.Dataset(
                resolution: [part.bucketing.resolution.width, part.bucketing.resolution.height], batchSize: part.batchSize,
                bucketed: part.bucketing.bucketed, trainImagesWithRepeats: part.trainImagesWithRepeats,
                regImagesWithRepeats: part.regImagesWithRepeats, meanAspectError: part.bucketing.bucketed ? part.meanAspectError : nil,
                buckets: buckets[part.buckets].map { Summary.Bucket(resolution: [$0.resolution.width, $0.resolution.height], count: $0.entries.count) },
                subsets: part.subsets.map { index in
                    let subset = subsets[index], own = images.filter { $0.subsetIndex == index }
                    return Summary.Subset(imageDir: subset.imageDirectory.isEmpty ? nil : subset.imageDirectory, metadataFile: subset.metadataFile,
                                          images: own.count, captioned: own.filter { $0.captionSource == .file || $0.captionSource == .metadata }.count,
                                          repeats: subset.repeats, classTokens: subset.classTokens, isReg: subset.isRegularization)
                })
        }
        return Summary(datasets: datasets, trainImagesWithRepeats: trainImagesWithRepeats, validationImagesWithRepeats: validationImagesWithRepeats,
                       regImagesWithRepeats: regImagesWithRepeats, batchesPerEpoch: steps.batchesPerEpoch, stepsPerEpoch: steps.stepsPerEpoch,
                       epochs: steps.epochs, totalSteps: steps.totalSteps, gradientAccumulationSteps: gradientAccumulationSteps, warnings: warnings)
    }
}
