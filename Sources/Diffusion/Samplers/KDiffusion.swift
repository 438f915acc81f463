import LoRACore
import Foundation

/// The k-diffusion samplers A1111 runs, step for step (crowsonkb/k-diffusion
/// `sampling.py`): float32 tensors, the same order of operations.
public enum KDiffusion {
    public typealias Progress = (_ step: Int, _ total: Int) -> Void

    /// x ← x + (x − D)/σ · (σ_next − σ)
    public static func euler(_ model: Denoiser, x: Tensor, sigmas: [Float], progress: Progress? = nil) -> Tensor {
        var x = x
        for i in 0..<(sigmas.count - 1) {
            let sigma = sigmas[i], next = sigmas[i + 1]
            let denoised = model.denoised(x, sigma: sigma)
            let dt = next - sigma
            map2(&x, denoised) { x, d in x + (x - d) / sigma * dt }
            progress?(i + 1, sigmas.count - 1)
        }
        return x
    }

    /// σ_up/σ_down split of an ancestral step (η = 1).
    static func ancestralStep(_ from: Float, _ to: Float, eta: Float = 1) -> (down: Float, up: Float) {
        guard eta != 0 else { return (to, 0) }
        let up = min(to, eta * (to * to * (from * from - to * to) / (from * from)).squareRoot())
        return ((to * to - up * up).squareRoot(), up)
    }

    public static func eulerAncestral(_ model: Denoiser, x: Tensor, sigmas: [Float], noise: inout some NoiseSource,
                                      progress: Progress? = nil) -> Tensor {
        var x = x
        for i in 0..<(sigmas.count - 1) {
            let sigma = sigmas[i], next = sigmas[i + 1]
            let denoised = model.denoised(x, sigma: sigma)
            let (down, up) = ancestralStep(sigma, next)
            let dt = down - sigma
            map2(&x, denoised) { x, d in x + (x - d) / sigma * dt }
            if next > 0 {
                let n = noise.noise(like: x, sigma: sigma, sigmaNext: next)
                map2(&x, n) { x, z in x + z * up }
            }
            progress?(i + 1, sigmas.count - 1)
        }
        return x
    }

    /// DPM-Solver++(2M): second-order multistep in log σ.
    public static func dpmpp2m(_ model: Denoiser, x: Tensor, sigmas: [Float], progress: Progress? = nil) -> Tensor {
        var x = x
        var previous: Tensor?
        for i in 0..<(sigmas.count - 1) {
            let sigma = sigmas[i], next = sigmas[i + 1]
            let denoised = model.denoised(x, sigma: sigma)
            if next == 0 {
                // exp(−∞) = 0: the step lands on the prediction.
                x = denoised
            } else {
                let t = -Foundation.log(sigma), tNext = -Foundation.log(next)
                let h = tNext - t
                let ratio = Foundation.exp(-tNext) / Foundation.exp(-t)
                let factor = Foundation.expm1(-h)
                if let previous, i > 0 {
                    let hLast = t - (-Foundation.log(sigmas[i - 1]))
                    let r = hLast / h
                    let a = 1 + 1 / (2 * r), b = 1 / (2 * r)
                    var d = denoised
                    map2(&d, previous) { c, p in a * c - b * p }
                    map2(&x, d) { x, d in ratio * x - factor * d }
                } else {
                    map2(&x, denoised) { x, d in ratio * x - factor * d }
                }
            }
            previous = denoised
            progress?(i + 1, sigmas.count - 1)
        }
        return x
    }

    /// DPM-Solver++ (stochastic, r = ½): two evaluations per step, noise from a
    /// Brownian tree so that it does not depend on the step count.
    public static func dpmppSDE(_ model: Denoiser, x: Tensor, sigmas: [Float], noise: inout some NoiseSource,
                                progress: Progress? = nil) -> Tensor {
        var x = x
        let r: Float = 0.5
        func sigmaOf(_ t: Float) -> Float { Foundation.exp(-t) }
        func tOf(_ s: Float) -> Float { -Foundation.log(s) }
        for i in 0..<(sigmas.count - 1) {
            let sigma = sigmas[i], next = sigmas[i + 1]
            let denoised = model.denoised(x, sigma: sigma)
            if next == 0 {
                let dt = next - sigma
                map2(&x, denoised) { x, d in x + (x - d) / sigma * dt }
            } else {
                let t = tOf(sigma), tNext = tOf(next)
                let h = tNext - t
                let s = t + h * r
                let fac = 1 / (2 * r)
                // Step 1: to the midpoint s.
                var (down, up) = ancestralStep(sigmaOf(t), sigmaOf(s))
                let sPrime = tOf(down)
                var x2 = x
                let ratio1 = sigmaOf(sPrime) / sigmaOf(t), factor1 = Foundation.expm1(t - sPrime)
                map2(&x2, denoised) { x, d in ratio1 * x - factor1 * d }
                let n1 = noise.noise(like: x, sigma: sigmaOf(t), sigmaNext: sigmaOf(s))
                let up1 = up
                map2(&x2, n1) { x, z in x + z * up1 }
                let denoised2 = model.denoised(x2, sigma: sigmaOf(s))
                // Step 2: to σ_next with the combined prediction.
                (down, up) = ancestralStep(sigmaOf(t), sigmaOf(tNext))
                let tNextPrime = tOf(down)
                var combined = denoised
                map2(&combined, denoised2) { a, b in (1 - fac) * a + fac * b }
                let ratio2 = sigmaOf(tNextPrime) / sigmaOf(t), factor2 = Foundation.expm1(t - tNextPrime)
                map2(&x, combined) { x, d in ratio2 * x - factor2 * d }
                let n2 = noise.noise(like: x, sigma: sigmaOf(t), sigmaNext: sigmaOf(tNext))
                let up2 = up
                map2(&x, n2) { x, z in x + z * up2 }
            }
            progress?(i + 1, sigmas.count - 1)
        }
        return x
    }

    /// a[i] = f(a[i], b[i]) over the cores.
    static func map2(_ a: inout Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) {
        let n = a.count
        a.withMutablePointer { ap in
            b.withPointer { bp in
                Parallel.forRanges(n, cost: 4) { range in
                    for i in range { ap[i] = f(ap[i], bp[i]) }
                }
            }
        }
    }
}
