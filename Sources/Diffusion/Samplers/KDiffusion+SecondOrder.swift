import Foundation
import LoRACore

/// k-diffusion's Heun and DPM-Solver-2 samplers (crowsonkb/k-diffusion
/// `sampling.py` `sample_heun`, `sample_dpm_2`, `sample_dpm_2_ancestral`;
/// A1111's "Heun", "DPM2", "DPM2 a"), with s_churn = 0 as A1111 runs them:
/// two model evaluations per step, the last step (σ_next = 0) an Euler step.
/// Float32 in torch's order: d = (x − D)/σ, then x + d·dt.
extension KDiffusion {
    /// Heun (Karras et al. 2022, algorithm 2): an Euler step to σ_next, then the mean of both slopes.
    public static func heun(_ model: Denoiser, x: Tensor, sigmas: [Float], progress: Progress? = nil) -> Tensor {
        var x = x
        for i in 0..<(sigmas.count - 1) {
            let sigma = sigmas[i], next = sigmas[i + 1], dt = next - sigma
            let d = slope(x, model.denoised(x, sigma: sigma), sigma: sigma)
            if next == 0 {
                map2(&x, d) { x, d in x + d * dt }
            } else {
                var x2 = x
                map2(&x2, d) { x, d in x + d * dt }
                var average = slope(x2, model.denoised(x2, sigma: next), sigma: next)
                map2(&average, d) { d2, d in (d + d2) / 2 }
                map2(&x, average) { x, d in x + d * dt }
            }
            progress?(i + 1, sigmas.count - 1)
        }
        return x
    }

    /// DPM-Solver-2: the slope at the geometric midpoint of σ and σ_next (ancestral: of σ and σ_down, then
    /// σ_up of fresh noise, as Euler a).
    public static func dpm2(_ model: Denoiser, x: Tensor, sigmas: [Float], progress: Progress? = nil) -> Tensor {
        var none = NoNoise()
        return dpm2(model, x: x, sigmas: sigmas, ancestral: false, noise: &none, progress: progress)
    }

    public static func dpm2Ancestral(_ model: Denoiser, x: Tensor, sigmas: [Float], noise: inout some NoiseSource,
                                     progress: Progress? = nil) -> Tensor {
        dpm2(model, x: x, sigmas: sigmas, ancestral: true, noise: &noise, progress: progress)
    }

    private static func dpm2(_ model: Denoiser, x: Tensor, sigmas: [Float], ancestral: Bool, noise: inout some NoiseSource,
                             progress: Progress?) -> Tensor {
        var x = x
        for i in 0..<(sigmas.count - 1) {
            let sigma = sigmas[i], next = sigmas[i + 1]
            let d = slope(x, model.denoised(x, sigma: sigma), sigma: sigma)
            let (target, up) = ancestral ? ancestralStep(sigma, next) : (next, 0)
            if target == 0 {
                let dt = target - sigma
                map2(&x, d) { x, d in x + d * dt }
            } else {
                // torch's lerp at weight ½: end − (end − start)·½, in log σ.
                let start = Foundation.log(sigma), end = Foundation.log(target)
                let middle = Foundation.exp(end - (end - start) * 0.5)
                let dt1 = middle - sigma, dt2 = target - sigma
                var x2 = x
                map2(&x2, d) { x, d in x + d * dt1 }
                let d2 = slope(x2, model.denoised(x2, sigma: middle), sigma: middle)
                map2(&x, d2) { x, d in x + d * dt2 }
                if ancestral {
                    let n = noise.noise(like: x, sigma: sigma, sigmaNext: next)
                    map2(&x, n) { x, z in x + z * up }
                }
            }
            progress?(i + 1, sigmas.count - 1)
        }
        return x
    }

    /// k-diffusion's `to_d`: (x − D)/σ.
    static func slope(_ x: Tensor, _ denoised: Tensor, sigma: Float) -> Tensor {
        var d = x
        map2(&d, denoised) { x, den in (x - den) / sigma }
        return d
    }

    /// For the deterministic variant of a sampler written once for both.
    struct NoNoise: NoiseSource {
        mutating func noise(like x: Tensor, sigma: Float, sigmaNext: Float) -> Tensor { x }
    }
}
