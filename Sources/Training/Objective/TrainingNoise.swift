import Diffusion
import Foundation

/// The noise of a training step as sd-scripts makes it (library/train_util.py
/// `get_noise_noisy_latents_and_timesteps`, custom_train_functions.py), in its
/// order: ε ~ N(0, 1); `--noise_offset` o (× U(0, 1) with
/// `--noise_offset_random_strength`; per item and channel + `--adaptive_noise_scale`·|mean latent|,
/// clamped at 0) times N(0, 1) per item and channel; `--multires_noise_iterations`
/// (pyramid noise: Gaussians at sizes divided by r^i, r ~ U(2, 4), bilinearly
/// upsampled, weighted by discount^i, the sum divided by its standard deviation);
/// and `--ip_noise_gamma` γ (× U(0, 1) with random strength): the noisy latents
/// use ε + γ·ξ while the target stays ε. Draws come from the run's generator,
/// not kohya's, so the noise is kohya's in distribution, not in value.
public struct NoiseOptions: Sendable, Equatable {
    public var offset: Double?
    public var offsetRandomStrength = false
    public var adaptiveScale: Double?
    public var multiresIterations: Int?
    public var multiresDiscount = 0.3
    public var inputPerturbation: Double?
    public var inputPerturbationRandomStrength = false
    public init() {}
}

enum TrainingNoise {
    /// ε (the target's noise) and, with input perturbation, the noise the noisy latents use.
    static func draw(like latents: Tensor, options: NoiseOptions, random: inout TrainingRandom) -> (noise: Tensor, perturbed: Tensor?) {
        let b = latents.shape[0], c = latents.shape[1], h = latents.shape[2], w = latents.shape[3], plane = h * w
        var noise = Tensor(shape: latents.shape, values: random.normal(latents.count))
        if let base = options.offset, base != 0 {
            let strength = options.offsetRandomStrength ? base * random.uniform() : base
            let shifts = random.normal(b * c)
            for i in 0..<(b * c) {
                var o = strength
                if let adaptive = options.adaptiveScale {
                    let mean = latents.values[(i * plane)..<((i + 1) * plane)].reduce(0.0) { $0 + Double($1) } / Double(plane)
                    o = max(0, o + adaptive * abs(mean))
                }
                for j in 0..<plane { noise.values[i * plane + j] += Float(o) * shifts[i] }
            }
        }
        if let iterations = options.multiresIterations, iterations > 0 {
            for i in 0..<iterations {
                let r = random.uniform() * 2 + 2
                let scale = pow(r, Double(i))
                let hn = max(1, Int(Double(h) / scale)), wn = max(1, Int(Double(w) / scale))
                let small = random.normal(b * c * hn * wn)
                let up = upsampleBilinear(small, channels: b * c, from: (hn, wn), to: (h, w))
                let weight = Float(pow(options.multiresDiscount, Double(i)))
                for k in noise.values.indices { noise.values[k] += up[k] * weight }
                if hn == 1 || wn == 1 { break }
            }
            // torch's std(): unbiased, over the whole tensor.
            let n = Double(noise.count), mean = noise.values.reduce(0.0) { $0 + Double($1) } / n
            let variance = noise.values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / (n - 1)
            let std = Float(variance.squareRoot())
            for k in noise.values.indices { noise.values[k] /= std }
        }
        guard let gamma = options.inputPerturbation, gamma != 0 else { return (noise, nil) }
        let strength = Float(options.inputPerturbationRandomStrength ? gamma * random.uniform() : gamma)
        let xi = random.normal(latents.count)
        var perturbed = noise
        for k in perturbed.values.indices { perturbed.values[k] += strength * xi[k] }
        return (noise, perturbed)
    }

    /// torch's bilinear `Upsample` (align_corners = False) of `channels` planes.
    static func upsampleBilinear(_ x: [Float], channels: Int, from: (Int, Int), to: (Int, Int)) -> [Float] {
        let (hi, wi) = from, (ho, wo) = to
        func taps(_ outSize: Int, _ inSize: Int) -> [(Int, Int, Float)] {
            let scale = Float(inSize) / Float(outSize)
            return (0..<outSize).map { o in
                let source = max(0, (Float(o) + 0.5) * scale - 0.5)
                let i0 = min(Int(source), inSize - 1), i1 = min(i0 + 1, inSize - 1)
                return (i0, i1, source - Float(i0))
            }
        }
        let ys = taps(ho, hi), xs = taps(wo, wi)
        var out = [Float](repeating: 0, count: channels * ho * wo)
        for ch in 0..<channels {
            let base = ch * hi * wi
            for (oy, (y0, y1, ly)) in ys.enumerated() {
                for (ox, (x0, x1, lx)) in xs.enumerated() {
                    let top = x[base + y0 * wi + x0] * (1 - lx) + x[base + y0 * wi + x1] * lx
                    let bottom = x[base + y1 * wi + x0] * (1 - lx) + x[base + y1 * wi + x1] * lx
                    out[ch * ho * wo + oy * wo + ox] = top * (1 - ly) + bottom * ly
                }
            }
        }
        return out
    }
}
