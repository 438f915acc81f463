import Foundation

/// A1111's samplers on integer timesteps (`modules/sd_samplers_timesteps_impl.py`) rather than σ: the model gives the
/// guided noise prediction ε(x, t) and x stays in the variance-preserving scale, x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε.
extension KDiffusion {
    /// DDIM (η = 0 unless given) as A1111 runs it: integer timesteps, CFG on ε,
    /// one evaluation per timestep except the first (t = 1) of the list.
    public static func ddim(_ model: Denoiser, x: Tensor, timesteps: [Int], alphasCumprod: [Float], eta: Float = 0,
                            noise: inout some NoiseSource, progress: Progress? = nil) -> Tensor {
        var x = x
        let total = timesteps.count - 1
        for i in 0..<total {
            let index = timesteps.count - 1 - i
            let t = timesteps[index]
            let epsilon = model.epsilon(x, timestep: t)
            let aT = alphasCumprod[t]
            let aPrev = alphasCumprod[index > 0 ? timesteps[index - 1] : 0]
            let sigmaT = eta * Float((Double(1 - aPrev) / Double(1 - aT) * Double(1 - aT / aPrev)).squareRoot())
            x = ddimStep(x, epsilon: epsilon, timesteps: timesteps, index: index, alphasCumprod: alphasCumprod, sigma: sigmaT)
            if sigmaT > 0 {
                let n = noise.noise(like: x, sigma: 0, sigmaNext: 0)
                map2(&x, n) { x, z in x + sigmaT * z }
            }
            progress?(i + 1, total)
        }
        return x
    }

    /// PLMS as A1111 runs it (`sd_samplers_timesteps_impl.plms`, from LDM's PLMSSampler: PNDM's pseudo linear
    /// multistep, Liu et al. 2022): DDIM's update with ε replaced by an Adams–Bashforth blend of the last four
    /// predictions; the first step, with no history, takes the mean of ε at t and at the next timestep (a second
    /// evaluation), so a run of n steps evaluates n + 1 times.
    public static func plms(_ model: Denoiser, x: Tensor, timesteps: [Int], alphasCumprod: [Float], progress: Progress? = nil) -> Tensor {
        var x = x
        let total = timesteps.count - 1
        var history: [Tensor] = [] // the last three ε(x_t, t), oldest first
        for i in 0..<total {
            let index = timesteps.count - 1 - i
            let epsilon = model.epsilon(x, timestep: timesteps[index])
            let blended: Tensor
            switch history.count {
            case 0:
                // Pseudo improved Euler: ε at the point a DDIM step with ε(t) reaches, averaged with ε(t).
                let ahead = model.epsilon(ddimStep(x, epsilon: epsilon, timesteps: timesteps, index: index, alphasCumprod: alphasCumprod),
                                          timestep: timesteps[max(index - 1, 0)])
                blended = combine(epsilon, ahead) { e, n in (e + n) / 2 }
            case 1: blended = combine(epsilon, history[0]) { e, e1 in (3 * e - e1) / 2 }
            case 2: blended = combine(epsilon, history[1], history[0]) { e, e1, e2 in (23 * e - 16 * e1 + 5 * e2) / 12 }
            default: blended = combine(epsilon, history[2], history[1], history[0]) { e, e1, e2, e3 in (55 * e - 59 * e1 + 37 * e2 - 9 * e3) / 24 }
            }
            x = ddimStep(x, epsilon: blended, timesteps: timesteps, index: index, alphasCumprod: alphasCumprod)
            history.append(epsilon)
            if history.count > 3 { history.removeFirst() }
            progress?(i + 1, total)
        }
        return x
    }

    /// DDIM's deterministic part from timesteps[index] to the one before it (ᾱ of timestep 0 after the first):
    /// √ᾱ_prev · x̂0 + √(1 − ᾱ_prev − σ²) · ε; the σ-scaled noise, when η > 0, is the caller's.
    static func ddimStep(_ x: Tensor, epsilon: Tensor, timesteps: [Int], index: Int, alphasCumprod: [Float], sigma: Float = 0) -> Tensor {
        let aT = alphasCumprod[timesteps[index]], aPrev = alphasCumprod[index > 0 ? timesteps[index - 1] : 0]
        let sqrtOneMinusAT = (1 - aT).squareRoot(), sqrtAT = aT.squareRoot(), sqrtAPrev = aPrev.squareRoot()
        let direction = (1 - aPrev - sigma * sigma).squareRoot()
        var next = x
        map2(&next, epsilon) { x, e in sqrtAPrev * ((x - sqrtOneMinusAT * e) / sqrtAT) + direction * e }
        return next
    }

    /// Element-wise blends of same-shaped tensors (the multistep's weighted sums, in A1111's order of operations).
    static func combine(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        var out = a
        map2(&out, b, f)
        return out
    }

    static func combine(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ f: (Float, Float, Float) -> Float) -> Tensor {
        Tensor(shape: a.shape, values: (0..<a.count).map { f(a.values[$0], b.values[$0], c.values[$0]) })
    }

    static func combine(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ d: Tensor, _ f: (Float, Float, Float, Float) -> Float) -> Tensor {
        Tensor(shape: a.shape, values: (0..<a.count).map { f(a.values[$0], b.values[$0], c.values[$0], d.values[$0]) })
    }
}
