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

extension KDiffusion {
    /// kohya's `--sample_sampler dpmsingle`: diffusers' DPMSolverSinglestepScheduler as kohya builds it —
    /// DPM-Solver++ (Lu et al. 2022, data prediction) of order 2 with the midpoint rule, steps paired: the first of a
    /// pair is a first-order step (DDIM's), the second goes again from the pair's start to its end with the slope
    /// corrected by the prediction at the pair's middle; the last step is first order and lands on σ = 0. `timesteps`
    /// run in the order given (`SamplerChoice.singlestepTimesteps`); one evaluation each. In the variance-preserving
    /// scale with α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t), λ_t = log(α_t / σ_t) and x̂0 = (x − σ_t ε) / α_t, diffusers'
    /// `dpm_solver_first_order_update` and `singlestep_dpm_solver_second_order_update`.
    public static func dpmSolverSinglestep(_ model: Denoiser, x: Tensor, timesteps: [Int], alphasCumprod: [Float],
                                           progress: Progress? = nil) -> Tensor {
        let n = timesteps.count
        // (α, σ) of step i's start; the end of the last step is (1, 0).
        func vp(_ i: Int) -> (alpha: Double, sigma: Double) {
            guard i < n else { return (1, 0) }
            let a = Double(alphasCumprod[timesteps[i]])
            return (a.squareRoot(), (1 - a).squareRoot())
        }
        func lambda(_ p: (alpha: Double, sigma: Double)) -> Double { log(p.alpha) - log(p.sigma) }
        var x = x
        var pairStart = x, pairStartPrediction = x // the sample and x̂0 where the current pair began
        for (i, order) in singlestepOrders(steps: n).enumerated() {
            let epsilon = model.epsilon(x, timestep: timesteps[i])
            let s = vp(i), t = vp(i + 1)
            let prediction = combine(x, epsilon) { x, e in Float((Double(x) - s.sigma * Double(e)) / s.alpha) }
            if order == 1 {
                // x_t = (σ_t / σ_s) x_s − α_t (e^−h − 1) x̂0_s, with e^−h = (σ_t α_s) / (α_t σ_s): no infinity at σ_t = 0.
                let ratio = t.sigma / s.sigma, slope = t.alpha * ((t.sigma * s.alpha) / (t.alpha * s.sigma) - 1)
                (pairStart, pairStartPrediction) = (x, prediction)
                x = combine(x, prediction) { x, d in Float(ratio * Double(x) - slope * Double(d)) }
            } else {
                // From the pair's start s1 to t: D0 = x̂0(s1), D1 = (x̂0(s0) − x̂0(s1)) / r0, r0 = (λ_s0 − λ_s1) / (λ_t − λ_s1).
                let s1 = vp(i - 1)
                let h = lambda(t) - lambda(s1), r0 = (lambda(s) - lambda(s1)) / h
                let ratio = t.sigma / s1.sigma, slope = t.alpha * (exp(-h) - 1)
                x = combine(pairStart, pairStartPrediction, prediction) { x, d0, d in
                    let d1 = (Double(d) - Double(d0)) / r0
                    return Float(ratio * Double(x) - slope * Double(d0) - 0.5 * slope * d1)
                }
            }
            progress?(i + 1, n)
        }
        return x
    }

    /// diffusers' `get_order_list` for order 2 with lower_order_final (which final_sigmas_type "zero" forces):
    /// 1, 2, 1, 2, … and a first-order last step (7 steps: 1 2 1 2 1 2 1; 8: 1 2 1 2 1 2 1 1).
    static func singlestepOrders(steps: Int) -> [Int] {
        var orders = (0..<steps).map { $0 % 2 == 0 ? 1 : 2 }
        if !orders.isEmpty { orders[steps - 1] = 1 }
        return orders
    }
}
