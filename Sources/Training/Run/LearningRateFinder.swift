import Foundation

/// The community's learning-rate finder (training.md §8): a short Prodigy run
/// on the same data, network and seed — lr 1, bias correction and safeguard
/// warm-up on, U-Net only — whose d·lr is the Adam-equivalent rate Prodigy
/// settles on; the AdamW U-Net rate suggested is where d·lr levels off (the
/// median of the last quarter of the probe), the text encoder's that ÷2 to ÷10
/// as the guides advise. The probe writes nothing.
public enum LearningRateFinder {
    public struct Result: Sendable {
        /// d·lr after each probe step.
        public var rates: [Double]
        public var suggestedUNet: Double
        public var suggestedTextEncoder: ClosedRange<Double>
        /// d·lr grew by more than 10% over the probe's last quarter: the suggestion is a lower bound.
        public var stillRising: Bool
    }

    /// The probe's settings from the run's own.
    public static func probeConfiguration(_ c: TrainingConfiguration, steps: Int) -> TrainingConfiguration {
        var p = c
        p.optimizer = .prodigy
        p.optimizerArguments = ["use_bias_correction=True", "safeguard_warmup=True", "weight_decay=\(c.optimizer == .adamW ? 0.01 : 0)"]
        (p.learningRate, p.unetLearningRate, p.textEncoderLearningRate) = (1, nil, nil)
        (p.trainUNet, p.trainTextEncoder) = (true, false)
        (p.scheduler, p.warmupSteps, p.warmupFraction) = (.constant, 0, nil)
        (p.maxTrainSteps, p.maxTrainEpochs) = (steps, nil)
        (p.saveEveryNEpochs, p.saveEveryNSteps, p.saveState, p.samplePrompts, p.writesFiles) = (nil, nil, false, [], false)
        return p
    }

    public static func suggest(from rates: [Double]) -> Result? {
        guard rates.count >= 4 else { return nil }
        let tail = rates.suffix(max(1, rates.count / 4)).sorted()
        let plateau = tail[tail.count / 2]
        let quarter = rates[rates.count - rates.count / 4 - 1]
        return Result(rates: rates, suggestedUNet: plateau, suggestedTextEncoder: (plateau / 10)...(plateau / 2),
                      stillRising: rates.last! > 1.1 * quarter)
    }
}
