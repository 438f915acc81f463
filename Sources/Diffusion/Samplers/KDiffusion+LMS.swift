import Foundation
import LoRACore

/// k-diffusion's linear multistep sampler (`sample_lms`, order 4; A1111's
/// "LMS"): each step adds the last four slopes, weighted by the integrals
/// over [σ_i, σ_{i+1}] of their Lagrange basis polynomials in σ.
extension KDiffusion {
    public static func lms(_ model: Denoiser, x: Tensor, sigmas: [Float], order: Int = 4, progress: Progress? = nil) -> Tensor {
        var x = x
        var slopes: [Tensor] = []   // newest last
        for i in 0..<(sigmas.count - 1) {
            slopes.append(slope(x, model.denoised(x, sigma: sigmas[i]), sigma: sigmas[i]))
            if slopes.count > order { slopes.removeFirst() }
            let current = min(i + 1, order)
            // Python's sum(coeff * d for …) from 0, newest slope first; each coefficient a float32 scalar in torch.
            var total = Tensor(zeros: x.shape)
            for j in 0..<current {
                let c = Float(multistepCoefficient(order: current, sigmas: sigmas, step: i, term: j))
                map2(&total, slopes[slopes.count - 1 - j]) { t, d in t + c * d }
            }
            map2(&x, total) { x, t in x + t }
            progress?(i + 1, sigmas.count - 1)
        }
        return x
    }

    /// ∫ from σ_i to σ_{i+1} of Π_{k ≠ j} (τ − σ_{i−k}) / (σ_{i−j} − σ_{i−k}) dτ, in double precision. The integrand
    /// is a polynomial of degree order − 1 ≤ 3, so 4-point Gauss–Legendre is exact (k-diffusion asks scipy's
    /// quad, whose Gauss–Kronrod rule is exact for it too).
    static func multistepCoefficient(order: Int, sigmas: [Float], step i: Int, term j: Int) -> Double {
        let t = sigmas.map(Double.init)
        func basis(_ tau: Double) -> Double {
            var product = 1.0
            for k in 0..<order where k != j { product *= (tau - t[i - k]) / (t[i - j] - t[i - k]) }
            return product
        }
        let nodes = [-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526]
        let weights = [0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538]
        let (a, b) = (t[i], t[i + 1]), half = (b - a) / 2, mid = (a + b) / 2
        return zip(nodes, weights).reduce(0) { $0 + $1.1 * basis(mid + half * $1.0) } * half
    }
}
