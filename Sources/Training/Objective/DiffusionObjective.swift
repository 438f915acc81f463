import Diffusion
import Foundation

/// What the U-Net is trained to predict at a step (sd-scripts train_network.py
/// `process_batch` with diffusers' DDPMScheduler: scaled-linear betas, 1000 steps):
///   noisy  = √ᾱ_t · x0 + √(1 − ᾱ_t) · ε          (DDPMScheduler.add_noise, float32)
///   target = ε, or v = √ᾱ_t · ε − √(1 − ᾱ_t) · x0 for v-prediction models
///   loss   = mean over items of mean over (C, H, W) of (pred − target)²   (l2)
public struct DiffusionObjective: Sendable {
    public enum Prediction: Sendable { case epsilon, velocity }

    public var prediction: Prediction
    public var schedule: NoiseSchedule
    /// The schedule the loss weights' SNR comes from, when not `schedule`: with `--zero_terminal_snr`
    /// sd-scripts computes `all_snr` before it rescales the betas, so min-SNR and the v-prediction scales
    /// keep the standard schedule's SNR (also sparing SNR 0 at t = 999) while noising uses the new one.
    public var snrSchedule: NoiseSchedule?
    /// sd-scripts' per-item loss weights, applied in train_network.py's
    /// `post_process_loss` order after the spatial mean: `--min_snr_gamma`,
    /// `--scale_v_pred_loss_like_noise_pred`, `--v_pred_like_loss`,
    /// `--debiased_estimation_loss` (library/custom_train_functions.py).
    public var minSNRGamma: Double?
    public var scaleVPredictionLoss = false
    public var vPredictionLikeLoss: Double?
    public var debiasedEstimation = false

    /// `--loss_type`: the element loss before the spatial mean (library/train_util.py
    /// `conditional_loss`), with δ = pred − target and c the Huber threshold:
    ///   l2 δ², l1 |δ|, huber 2c(√(δ² + c²) − c), smooth_l1 2(√(δ² + c²) − c).
    public enum LossType: String, Sendable, CaseIterable { case l2, l1, huber, smoothL1 = "smooth_l1" }
    /// `--huber_schedule` (`get_huber_threshold_if_needed`): c per item from its timestep —
    /// snr (1 − c)/(1 + σ_t)² + c with σ_t = √((1 − ᾱ_t)/ᾱ_t); exponential e^(−αt)·scale with
    /// α = −ln c / 1000; constant c·scale.
    public enum HuberSchedule: String, Sendable, CaseIterable { case snr, exponential, constant }
    public var lossType = LossType.l2
    public var huberSchedule = HuberSchedule.snr
    public var huberC = 0.1
    public var huberScale = 1.0

    public init(prediction: Prediction = .epsilon, schedule: NoiseSchedule = .standard) {
        self.prediction = prediction
        self.schedule = schedule
    }

    /// √ᾱ_t and √(1 − ᾱ_t) in float32, as add_noise computes them from its float32 ᾱ.
    func coefficients(_ t: Int) -> (signal: Float, noise: Float) {
        let alpha = schedule.alphasCumprod[t]
        return (alpha.squareRoot(), (1 - alpha).squareRoot())
    }

    /// Noisy latents and the target for latents [b, c, h, w], noise like them,
    /// one timestep per item; `perturbed`: the noise the noisy latents use
    /// instead (`--ip_noise_gamma`), the target keeping `noise`.
    public func noisyAndTarget(latents: Tensor, noise: Tensor, timesteps: [Int], perturbed: Tensor? = nil) -> (noisy: Tensor, target: Tensor) {
        precondition(latents.shape == noise.shape && timesteps.count == latents.shape[0])
        let per = latents.count / timesteps.count
        let input = perturbed ?? noise
        var noisy = latents, target = noise
        for (item, t) in timesteps.enumerated() {
            let (a, s) = coefficients(t)
            for i in (item * per)..<((item + 1) * per) {
                noisy.values[i] = a * latents.values[i] + s * input.values[i]
                if prediction == .velocity { target.values[i] = a * noise.values[i] - s * latents.values[i] }
            }
        }
        return (noisy, target)
    }

    /// SNR(t) = (√ᾱ_t / √(1 − ᾱ_t))², float32 as `prepare_scheduler_for_custom_training` computes it.
    func signalToNoise(_ t: Int) -> Float {
        let alpha = (snrSchedule ?? schedule).alphasCumprod[t]
        let ratio = alpha.squareRoot() / (1 - alpha).squareRoot()
        return ratio * ratio
    }

    /// The Huber threshold of each item (float32, as torch computes it from the float32 ᾱ).
    func huberThreshold(_ t: Int) -> Float {
        switch huberSchedule {
        case .exponential:
            let alpha = -log(huberC) / Double(schedule.alphasCumprod.count)
            return Float(exp(-alpha * Double(t))) * Float(huberScale)
        case .snr:
            let a = schedule.alphasCumprod[t]
            let sigma = ((1 - a) / a).squareRoot()
            return (1 - Float(huberC)) / ((1 + sigma) * (1 + sigma)) + Float(huberC)
        case .constant:
            return Float(huberC * huberScale)
        }
    }

    /// The weight of each item's loss (1 without weighting options), in
    /// sd-scripts' order and float32 arithmetic.
    public func itemWeights(timesteps: [Int]) -> [Float] {
        timesteps.map { t in
            var w: Float = 1
            let snr = signalToNoise(t)
            if let gamma = minSNRGamma {
                let clipped = min(snr, Float(gamma))
                w *= prediction == .velocity ? clipped / (snr + 1) : clipped / snr
            }
            // get_snr_scale: SNR capped at 1000 (t = 0 would be infinite).
            let capped = min(snr, 1000), snrScale = capped / (capped + 1)
            if scaleVPredictionLoss { w *= snrScale }
            if let v = vPredictionLikeLoss { w = w + w / snrScale * Float(v) }
            if debiasedEstimation { w *= prediction == .velocity ? 1 / (capped + 1) : 1 / capped.squareRoot() }
            return w
        }
    }

    /// The loss (sd-scripts' per-item mean of the element loss, weighted, then
    /// the batch mean) and its gradient with respect to the prediction: for
    /// l2, 2·wᵢ·(pred − target)/(b·c·h·w).
    /// `itemScales`: sd-scripts' `loss_weights` (`--prior_loss_weight` for
    /// regularization images, else 1), multiplied in before the timestep weights.
    /// `mask`: [items × h × w], the alpha masks at latent size (`apply_masked_loss`),
    /// multiplying each element's loss (every channel alike) before the means.
    public func loss(prediction: Tensor, target: Tensor, timesteps: [Int], itemScales: [Float]? = nil,
                     mask: [Float]? = nil) -> (loss: Double, gradient: Tensor) {
        precondition(prediction.shape == target.shape && timesteps.count == prediction.shape[0])
        let items = prediction.shape[0], per = prediction.count / items
        let plane = prediction.shape.count == 4 ? prediction.shape[2] * prediction.shape[3] : per
        precondition(mask == nil || mask!.count == items * plane, "a mask value per item and latent pixel")
        var weights = itemWeights(timesteps: timesteps)
        if let itemScales { for i in weights.indices { weights[i] = itemScales[i] * weights[i] } }
        var gradient = Tensor.uninitialized(prediction.shape)
        var total = 0.0
        for item in 0..<items {
            let scale = weights[item] / Float(prediction.count)
            let c = lossType == .huber || lossType == .smoothL1 ? huberThreshold(timesteps[item]) : 0
            var sum = 0.0
            for i in (item * per)..<((item + 1) * per) {
                let d = prediction.values[i] - target.values[i]
                let m = mask.map { $0[item * plane + (i - item * per) % plane] } ?? 1
                switch lossType {
                case .l2:
                    sum += Double(m) * Double(d) * Double(d)
                    gradient.values[i] = 2 * scale * m * d
                case .l1:
                    sum += Double(m) * Double(abs(d))
                    gradient.values[i] = scale * m * (d > 0 ? 1 : d < 0 ? -1 : 0)
                case .huber, .smoothL1:
                    let root = (d * d + c * c).squareRoot(), factor: Float = lossType == .huber ? 2 * c : 2
                    sum += Double(m) * Double(factor * (root - c))
                    gradient.values[i] = scale * m * factor * d / root
                }
            }
            total += sum / Double(per) * Double(weights[item])
        }
        return (total / Double(items), gradient)
    }
}

/// One forward and backward of the U-Net with a network's modules: the loss,
/// the gradient at the context (for a trained text encoder), and the modules'
/// gradients added into their buffers (zero them between optimizer steps;
/// accumulation over micro-batches is the rule's `+=`). Resets `tape`, which
/// should hold the U-Net's modules only (the text encoder's have their own).
@discardableResult
public func unetTrainingStep(_ unet: UNet, tape: TrainingTape, objective: DiffusionObjective, latents: Tensor, noise: Tensor, timesteps: [Int],
                             context: Tensor, itemScales: [Float]? = nil, checkpointing: Bool = false,
                             perturbedNoise: Tensor? = nil, lossMask: [Float]? = nil) -> (loss: Double, contextGradient: Tensor) {
    let (noisy, target) = objective.noisyAndTarget(latents: latents, noise: noise, timesteps: timesteps, perturbed: perturbedNoise)
    tape.reset()
    let (prediction, saved) = unet.forwardSaving(noisy, timesteps: timesteps.map(Float.init), context: context, tape: tape,
                                                 checkpointing: checkpointing ? .lowResolutionKept : .none)
    let (loss, gradient) = objective.loss(prediction: prediction, target: target, timesteps: timesteps, itemScales: itemScales, mask: lossMask)
    let (_, contextGradient) = unet.backward(saved, outputGradient: gradient, tape: tape)
    return (loss, contextGradient)
}

/// The same step's loss without the backward (validation): the forward keeps only what a checkpointed
/// backward would, and nothing is added to any gradient.
public func unetLoss(_ unet: UNet, tape: TrainingTape, objective: DiffusionObjective, latents: Tensor, noise: Tensor, timesteps: [Int],
                     context: Tensor, itemScales: [Float]? = nil, perturbedNoise: Tensor? = nil, lossMask: [Float]? = nil) -> Double {
    let (noisy, target) = objective.noisyAndTarget(latents: latents, noise: noise, timesteps: timesteps, perturbed: perturbedNoise)
    tape.reset()
    let (prediction, _) = unet.forwardSaving(noisy, timesteps: timesteps.map(Float.init), context: context, tape: tape, checkpointing: .every)
    return objective.loss(prediction: prediction, target: target, timesteps: timesteps, itemScales: itemScales, mask: lossMask).loss
}
