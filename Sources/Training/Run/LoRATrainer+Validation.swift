import Diffusion
import Foundation
import LoRACore

/// kohya's validation (train_network.py, sd-scripts 2025): the images `--validation_split` set aside,
/// their loss with the network as it is now and no gradient, dropout off, each batch at the four
/// timesteps `linspace(min, max, 6)[1:-1]` (200, 400, 600, 800 by default), averaged.
///
/// kohya reseeds its random sources with the validation seed (or `--seed`) before each validation and
/// restores them after; here the validation has its own source seeded the same way at every run, so
/// every validation draws the same noise, captions and flips (the loss moves only with the network)
/// and the training's draws are what they would be without it (a resumed run stays equal to an
/// uninterrupted one). The batches come in a fixed order (kohya's order moves with its epoch).
extension LoRATrainer {
    /// kohya's `validation_timesteps`: numpy's `linspace(min, max, 6, dtype=int)[1:-1]`.
    public static func validationTimesteps(min: Int, max: Int) -> [Int] {
        let step = Double(max - min) / 5
        return (1...4).map { Int((Double($0) * step + Double(min)).rounded(.towardZero)) }
    }

    /// The validation batches: each bucket's entries (repeats included) in order, cut into its batch size,
    /// at most `--max_validation_steps` of them.
    var validationBatches: [[Int]] {
        guard let validationPlan else { return [] }
        var all: [[Int]] = []
        for bucket in validationPlan.buckets {
            all += stride(from: 0, to: bucket.entries.count, by: bucket.batchSize).map {
                Array(bucket.entries[$0..<Swift.min($0 + bucket.batchSize, bucket.entries.count)])
            }
        }
        return configuration.validation.maxSteps.map { Array(all.prefix($0)) } ?? all
    }

    /// `validationLoss` with a schedule-free optimizer's averaged weights in place: kohya calls its eval() before
    /// and train() after, when there is something to validate.
    func averagedWeightsValidationLoss(epoch: Int, step: Int) throws(ModelError) -> Double? {
        guard validationPlan != nil, !validationBatches.isEmpty else { return nil }
        let parameters = network.parameters
        optimizer.useAveragedWeights(parameters)
        defer { optimizer.useGradientPointWeights(parameters) }
        return try validationLoss(epoch: epoch, step: step)
    }

    /// The mean validation loss now (nil without validation images).
    public func validationLoss(epoch: Int, step: Int) throws(ModelError) -> Double? {
        guard let validationPlan else { return nil }
        let batches = validationBatches
        guard !batches.isEmpty else { return nil }
        var random = TrainingRandom(seed: configuration.validation.seed ?? configuration.seed)
        let timesteps = Self.validationTimesteps(min: configuration.minTimestep, max: configuration.maxTimestep)
        // Evaluation mode: no module, rank or neuron dropout.
        let (unetDropout, textDropout) = (unetTape.dropout, textTape?.dropout)
        unetTape.dropout = nil
        textTape?.dropout = nil
        defer { unetTape.dropout = unetDropout; textTape?.dropout = textDropout }
        var total = 0.0, count = 0
        for entries in batches {
            let batch = try batch(entries, plan: validationPlan, cache: validationCache, epoch: epoch, step: step, random: &random)
            let context: Tensor
            if let textTape {
                textTape.reset()
                context = captions.contextsSaving(batch.captions, tape: textTape).0
            } else {
                context = try captions.contexts(batch.captions)
            }
            for t in timesteps {
                let (noise, perturbed) = TrainingNoise.draw(like: batch.latents, options: configuration.noise, random: &random)
                let loss = configuration.computePrecision.run {
                    unetLoss(model.unet, tape: unetTape, objective: objective, latents: batch.latents, noise: noise,
                             timesteps: [Int](repeating: t, count: entries.count), context: context, itemScales: batch.scales,
                             perturbedNoise: perturbed, lossMask: batch.lossMask)
                }
                total += loss
                count += 1
            }
        }
        return total / Double(count)
    }
}
