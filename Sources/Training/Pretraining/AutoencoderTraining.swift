import Diffusion
import Foundation
import LoRACore

/// One optimisation step of the KL autoencoder from scratch (the tiny
/// model's VAE): encode, sample z = μ + σ·ε, decode, and
///   loss = mean((x̂ − x)²) + klWeight · mean(½(μ² + σ² − 1 − log σ²))
/// — LDM's objective without its LPIPS and GAN terms (flat-coloured shapes
/// need neither). Gradients go into `parameters`' buffers through the tape.
public struct AutoencoderTraining: Sendable {
    public var klWeight: Double

    public init(klWeight: Double = 1e-3) { self.klWeight = klWeight }

    /// images: [b, 3, H, W] in [-1, 1]; noise: [b, 4, H/8, W/8] standard normal.
    public func step(encoder: VAEEncoder, decoder: VAEDecoder, tape: TrainingTape, images: Tensor, noise: Tensor)
        -> (loss: Double, reconstruction: Double) {
        let (moments, encoderSaved) = encoder.forwardSaving(images, tape: tape)   // [b, 8, h, w]
        let batch = moments.shape[0], z = moments.shape[1] / 2, plane = moments.shape[2] * moments.shape[3]
        let perItem = z * plane
        var latent = noise
        var sigma = [Float](repeating: 0, count: noise.count)
        for b in 0..<batch {
            for i in 0..<perItem {
                let mean = moments.values[b * 2 * perItem + i], logVariance = min(max(moments.values[b * 2 * perItem + perItem + i], -30), 20)
                sigma[b * perItem + i] = Foundation.exp(0.5 * logVariance)
                latent.values[b * perItem + i] = mean + sigma[b * perItem + i] * noise.values[b * perItem + i]
            }
        }
        let (decoded, decoderSaved) = decoder.forwardSaving(latent, tape: tape)   // [b, 3, H, W]
        var reconstruction = 0.0
        var dDecoded = decoded
        let n = Double(decoded.count), scale = Float(2 / n)
        for i in 0..<decoded.count {
            let d = decoded.values[i] - images.values[i]
            reconstruction += Double(d) * Double(d)
            dDecoded.values[i] = scale * d
        }
        reconstruction /= n
        let dLatent = decoder.backward(decoderSaved, outputGradient: dDecoded, tape: tape)
        // KL to N(0, 1) per latent element, averaged; its gradients join the sample's.
        var kl = 0.0
        var dMoments = Tensor(zeros: moments.shape)
        let count = Double(noise.count), w = Float(klWeight / count)
        for b in 0..<batch {
            for i in 0..<perItem {
                let at = b * 2 * perItem + i, j = b * perItem + i
                let mean = moments.values[at], logVariance = moments.values[at + perItem], s = sigma[j]
                kl += 0.5 * Double(mean * mean + s * s - 1 - logVariance)
                dMoments.values[at] = dLatent.values[j] + w * mean
                // dz/dlogσ² = ½σε; the clamp passes no gradient outside [-30, 20].
                let inside: Float = logVariance > -30 && logVariance < 20 ? 1 : 0
                dMoments.values[at + perItem] = inside * (dLatent.values[j] * 0.5 * s * noise.values[j] + w * 0.5 * (s * s - 1))
            }
        }
        kl /= count
        _ = encoder.backward(encoderSaved, outputGradient: dMoments, tape: tape)
        return (reconstruction + klWeight * kl, reconstruction)
    }
}
