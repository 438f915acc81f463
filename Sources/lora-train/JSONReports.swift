import Training

/// What `lora-train --json` prints on standard output, one document at the end (the human report goes to
/// standard error meanwhile): the plan and estimate of a dry run, the files and losses of a run, the probe of --find-lr.
struct DryRunReport: Encodable {
    struct Estimate: Encodable { var caching: Double, training: Double }
    var plan: DatasetPlan.Summary
    /// Rough seconds (see --dry-run's own line).
    var estimatedSeconds: Estimate
}

struct RunReport: Encodable {
    var plan: DatasetPlan.Summary
    /// The LoRA files written (epoch and step files, the final one last), in order.
    var models: [String]
    var log: String
    var lossCurve: String
    var tensorBoard: String?
    /// Steps done by this run (a resumed run counts from where it resumed), and the last step's number.
    var stepsRun: Int
    var lastStep: Int
    /// kohya's avr_loss at the last step (the moving average the progress bar shows).
    var finalAverageLoss: Double?
    /// Wall seconds of each step this run did, from the end of the one before (the first: from the start of
    /// training, after the latents were cached), as kohya's progress bar times them: what `lora-bench kohya-train` compares.
    var stepSeconds: [Double]
    var seconds: Double
    /// Set when Ctrl-C stopped the run: the state to --resume from (the exit status is then 130).
    var interruptedState: String?
}

struct LearningRateReport: Encodable {
    /// d·lr at each step of the probe.
    var dTimesLR: [Double]
    var suggestedUNetLR: Double
    /// The text encoder's range (1/10 to 1/2 of the U-Net's).
    var suggestedTextEncoderLR: [Double]
    var stillRising: Bool
}
