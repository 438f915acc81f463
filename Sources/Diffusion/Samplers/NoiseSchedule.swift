import Foundation

/// The DDPM schedule every SD model was trained with (scaled-linear betas,
/// 1000 steps) in k-diffusion's σ parametrisation, computed as LDM and
/// k-diffusion compute it: betas and their cumulative product in double,
/// ᾱ stored as float32, σ = √((1−ᾱ)/ᾱ) and log σ in float32.
public struct NoiseSchedule: Sendable {
    /// ᾱ_t, float32 as LDM registers it.
    public let alphasCumprod: [Float]
    public let sigmas: [Float]
    public let logSigmas: [Float]

    public init(betaStart: Double = 0.00085, betaEnd: Double = 0.012, steps: Int = 1000) {
        let start = betaStart.squareRoot(), end = betaEnd.squareRoot()
        let roots = NoiseSchedule.linspace(start, end, steps)
        var running = 1.0
        var cumulative = [Float](repeating: 0, count: steps)
        for i in 0..<steps {
            running *= 1 - roots[i] * roots[i]
            cumulative[i] = Float(running)
        }
        alphasCumprod = cumulative
        sigmas = cumulative.map { ((1 - $0) / $0).squareRoot() }
        logSigmas = sigmas.map { Foundation.log($0) }
    }

    public static let standard = NoiseSchedule()

    /// A schedule of given ᾱ_t (σ is infinite where ᾱ_t is 0).
    public init(alphasCumprod: [Float]) {
        self.alphasCumprod = alphasCumprod
        sigmas = alphasCumprod.map { ((1 - $0) / $0).squareRoot() }
        logSigmas = sigmas.map { Foundation.log($0) }
    }

    /// Zero terminal SNR (Lin et al. 2023, arXiv 2305.08891), the steps of sd-scripts'
    /// `fix_noise_scheduler_betas_for_zero_terminal_snr` in float32: √ᾱ shifted so the last is 0 and
    /// rescaled so the first is kept, back to betas (α_t = ᾱ_t / ᾱ_{t−1}) and cumulated again.
    public func zeroTerminalSNR() -> NoiseSchedule {
        var roots = alphasCumprod.map { $0.squareRoot() }
        let first = roots[0], last = roots[roots.count - 1]
        for i in roots.indices { roots[i] -= last }
        let scale = first / (first - last)
        for i in roots.indices { roots[i] *= scale }
        let bars = roots.map { $0 * $0 }
        // torch's CPU cumprod accumulates float32 in double and stores each partial product as float32.
        var running = 1.0
        var cumulative = [Float](repeating: 0, count: bars.count)
        for i in bars.indices {
            let alpha = i == 0 ? bars[0] : bars[i] / bars[i - 1]
            let beta: Float = 1 - alpha
            running *= Double(1 - beta)
            cumulative[i] = Float(running)
        }
        return NoiseSchedule(alphasCumprod: cumulative)
    }

    public var sigmaMin: Float { sigmas.first! }
    public var sigmaMax: Float { sigmas.last! }

    /// torch.linspace in double: the first half counts up from `start`, the
    /// second half down from `end`, as PyTorch's kernel does.
    static func linspace(_ start: Double, _ end: Double, _ count: Int) -> [Double] {
        guard count > 1 else { return [start] }
        let step = (end - start) / Double(count - 1)
        return (0..<count).map { i in i < count / 2 ? start + step * Double(i) : end - step * Double(count - 1 - i) }
    }

    /// The float32 version.
    static func linspace(_ start: Float, _ end: Float, _ count: Int) -> [Float] {
        guard count > 1 else { return [start] }
        let step = (end - start) / Float(count - 1)
        return (0..<count).map { i in i < count / 2 ? start + step * Float(i) : end - step * Float(count - 1 - i) }
    }

    /// σ → fractional timestep: linear interpolation in log σ between the two
    /// table entries around σ (k-diffusion's `sigma_to_t`, A1111's default).
    public func timestep(sigma: Float) -> Float {
        let logSigma = Foundation.log(sigma)
        var low = 0
        for (i, value) in logSigmas.enumerated() where logSigma - value >= 0 { low = i }
        low = min(low, logSigmas.count - 2)
        let lowValue = logSigmas[low], highValue = logSigmas[low + 1]
        var w = (lowValue - logSigma) / (lowValue - highValue)
        w = min(max(w, 0), 1)
        return (1 - w) * Float(low) + w * Float(low + 1)
    }

    /// Fractional timestep → σ, interpolating log σ.
    public func sigma(timestep t: Float) -> Float {
        let low = Int(t.rounded(.down)), high = Int(t.rounded(.up))
        let w = t - t.rounded(.towardZero)
        return Foundation.exp((1 - w) * logSigmas[low] + w * logSigmas[high])
    }

    /// A1111's "Uniform"/"Automatic" for Euler: `steps` timesteps evenly from
    /// 999 to 0, as σ, then 0.
    public func uniformSigmas(steps: Int) -> [Float] {
        NoiseSchedule.linspace(Float(sigmas.count - 1), 0, steps).map { sigma(timestep: $0) } + [0]
    }

    /// Karras et al. (2022), ρ = 7, between the table's σ_min and σ_max, then 0.
    public func karrasSigmas(steps: Int, sigmaMin: Float? = nil, sigmaMax: Float? = nil, rho: Double = 7) -> [Float] {
        let minimum = Double(sigmaMin ?? self.sigmaMin), maximum = Double(sigmaMax ?? self.sigmaMax)
        // As k-diffusion: the inverse roots in double, the ramp arithmetic in float32.
        let minInverse = pow(minimum, 1 / rho), maxInverse = pow(maximum, 1 / rho)
        let span = Float(minInverse - maxInverse), base = Float(maxInverse)
        let ramp = NoiseSchedule.linspace(Float(0), 1, steps)
        return ramp.map { r in Foundation.pow(base + r * span, Float(rho)) } + [0]
    }

    /// σ = exp(linspace(ln σ_max, ln σ_min)), then 0 (A1111's "Exponential").
    public func exponentialSigmas(steps: Int) -> [Float] {
        NoiseSchedule.linspace(Float(Foundation.log(Double(sigmaMax))), Float(Foundation.log(Double(sigmaMin))), steps)
            .map { Foundation.exp($0) } + [0]
    }
}
