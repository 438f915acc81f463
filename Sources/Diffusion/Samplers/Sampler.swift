import Foundation

/// What a sampler asks of the model: the denoised prediction D(x; σ) with
/// classifier-free guidance applied (k-diffusion samplers), or the guided
/// noise prediction ε(x, t) at an integer timestep (DDIM, as A1111 runs it).
public protocol Denoiser {
    func denoised(_ x: Tensor, sigma: Float) -> Tensor
    func epsilon(_ x: Tensor, timestep: Int) -> Tensor
}

/// Where ancestral and SDE samplers get their fresh noise.
public protocol NoiseSource {
    /// Standard normal noise shaped like `x`, for the step from σ to σ_next.
    mutating func noise(like x: Tensor, sigma: Float, sigmaNext: Float) -> Tensor
}

/// A1111's "RNG source: CPU": each image continues its own torch generator
/// (seeded for the initial noise), so ancestral noise is reproducible too.
public struct GeneratorNoise: NoiseSource {
    public var generators: [TorchGenerator]

    public init(generators: [TorchGenerator]) { self.generators = generators }

    public mutating func noise(like x: Tensor, sigma: Float, sigmaNext: Float) -> Tensor {
        let perImage = x.count / generators.count
        var values: [Float] = []
        values.reserveCapacity(x.count)
        for i in generators.indices { values += generators[i].randn(perImage) }
        return Tensor(shape: x.shape, values: values)
    }
}

/// The samplers of A1111's list this engine implements, and diffusers' DPM-Solver single-step (kohya's
/// `dpmsingle`), which A1111 does not list.
public enum SamplerKind: String, CaseIterable, Sendable, Codable {
    case euler = "Euler"
    case eulerAncestral = "Euler a"
    case dpmpp2m = "DPM++ 2M"
    case dpmppSDE = "DPM++ SDE"
    case ddim = "DDIM"
    case lms = "LMS"
    case heun = "Heun"
    case dpm2 = "DPM2"
    case dpm2Ancestral = "DPM2 a"
    case plms = "PLMS"
    /// DPM-Solver++(2S) on diffusers' timesteps (`DPMSolverSinglestepScheduler`); the name is the solver's
    /// (Lu et al. 2022), A1111's list has only its ancestral form ("DPM++ 2S a").
    case dpmpp2s = "DPM++ 2S"

    /// The timestep samplers (A1111's DDIM and PLMS, diffusers' DPM-Solver single-step): integer timesteps and ε,
    /// no σ schedule.
    public var usesTimesteps: Bool { self == .ddim || self == .plms || self == .dpmpp2s }

    /// UNet evaluations per step (before CFG doubles them; the second-order samplers' last step takes one).
    public var evaluationsPerStep: Int { [.dpmppSDE, .heun, .dpm2, .dpm2Ancestral].contains(self) ? 2 : 1 }

    /// A1111's `discard_next_to_last_sigma` (DPM2, DPM2 a): σ for steps + 1, the one before the final 0 dropped.
    public var discardsPenultimateSigma: Bool { self == .dpm2 || self == .dpm2Ancestral }

    /// The schedule A1111 (1.9+) uses when the user leaves it on "Automatic".
    public var defaultSchedule: ScheduleKind {
        switch self {
        case .dpmpp2m, .dpmppSDE: return .karras
        case .euler, .eulerAncestral, .ddim, .plms, .dpmpp2s, .lms, .heun, .dpm2, .dpm2Ancestral: return .uniform
        }
    }
}

/// A1111's "Schedule type".
public enum ScheduleKind: String, CaseIterable, Sendable, Codable {
    case automatic = "Automatic"
    case uniform = "Uniform"
    case karras = "Karras"
    case exponential = "Exponential"
}

/// A sampler and its σ schedule, named as users name them: "Euler a",
/// "DPM++ 2M Karras" (the pre-1.9 names), or a sampler with a schedule.
public struct SamplerChoice: Sendable, Hashable, Codable, CustomStringConvertible {
    public var sampler: SamplerKind
    public var schedule: ScheduleKind

    public init(_ sampler: SamplerKind, schedule: ScheduleKind = .automatic) {
        self.sampler = sampler
        self.schedule = schedule == .automatic ? sampler.defaultSchedule : schedule
    }

    /// Parse "DPM++ 2M Karras", "Euler a", "dpmpp_2m", "k_euler_a", "DDIM", …
    public init?(name: String) {
        var text = name.trimmingCharacters(in: .whitespaces).lowercased()
            .replacingOccurrences(of: "_", with: " ").replacingOccurrences(of: "-", with: " ")
        if text.hasPrefix("k ") { text.removeFirst(2) }
        var schedule = ScheduleKind.automatic
        for kind in [ScheduleKind.karras, .exponential, .uniform] where text.hasSuffix(" " + kind.rawValue.lowercased()) {
            schedule = kind
            text = String(text.dropLast(kind.rawValue.count + 1))
        }
        let compact = text.replacingOccurrences(of: " ", with: "").replacingOccurrences(of: "+", with: "p")
        let table: [String: SamplerKind] = ["euler": .euler, "eulera": .eulerAncestral, "eulerancestral": .eulerAncestral,
                                            "dpmpp2m": .dpmpp2m, "dpmppsde": .dpmppSDE, "ddim": .ddim, "lms": .lms, "heun": .heun,
                                            "dpm2": .dpm2, "dpm2a": .dpm2Ancestral, "dpm2ancestral": .dpm2Ancestral, "plms": .plms,
                                            "dpmpp2s": .dpmpp2s]
        guard let sampler = table[compact] else { return nil }
        self.init(sampler, schedule: schedule)
    }

    public static var knownNames: [String] {
        ["Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ SDE", "DPM++ SDE Karras", "DDIM", "PLMS", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S"]
    }

    /// The name A1111 ≤1.8 shows ("DPM++ 2M Karras"): also what 1.9+ parses back. A timestep sampler has no
    /// σ schedule to name, whatever was asked.
    public var description: String {
        if sampler.usesTimesteps { return sampler.rawValue }
        return schedule == sampler.defaultSchedule
            ? (schedule == .karras && sampler != .euler && sampler != .eulerAncestral ? "\(sampler.rawValue) Karras" : sampler.rawValue)
            : "\(sampler.rawValue) \(schedule.rawValue)"
    }

    /// The σ values of a k-diffusion run of `steps` steps (ending in 0).
    public func sigmas(steps: Int, schedule table: NoiseSchedule) -> [Float] {
        let count = sampler.discardsPenultimateSigma ? steps + 1 : steps
        let sigmas: [Float]
        switch schedule {
        case .karras: sigmas = table.karrasSigmas(steps: count)
        case .exponential: sigmas = table.exponentialSigmas(steps: count)
        case .uniform, .automatic: sigmas = table.uniformSigmas(steps: count)
        }
        return sampler.discardsPenultimateSigma && sigmas.count > 2 ? Array(sigmas.dropLast(2)) + [sigmas[sigmas.count - 1]] : sigmas
    }

    /// The timesteps a timestep sampler is asked at for a run of `steps`, in the order they run (one step each):
    /// DDIM's and PLMS's but the first (A1111's list, reversed), DPM-Solver single-step's as diffusers chooses them.
    public func timesteps(steps: Int) -> [Int] {
        switch sampler {
        case .ddim, .plms: return Self.ddimTimesteps(steps: steps).dropFirst().reversed()
        case .dpmpp2s: return Self.singlestepTimesteps(steps: steps)
        case .euler, .eulerAncestral, .dpmpp2m, .dpmppSDE, .lms, .heun, .dpm2, .dpm2Ancestral: return [] // σ samplers
        }
    }

    /// diffusers' DPMSolverSinglestepScheduler.set_timesteps (timestep_spacing "linspace", nothing clipped):
    /// `np.linspace(0, 999, steps + 1).round()[::-1][:-1]`, NumPy's rounding being half to even (6 steps: 166.5 → 166).
    public static func singlestepTimesteps(steps: Int) -> [Int] {
        let n = max(steps, 1), delta = 999.0 / Double(n)
        return (1...n).reversed().map { i in i == n ? 999 : Int((Double(i) * delta).rounded(.toNearestOrEven)) }
    }

    /// DDIM's and PLMS's timesteps as A1111 makes them: 1, 1 + 1000/steps, … (capped at 999); the sampler runs
    /// one step fewer than it lists (the last lands on timestep 1's neighbour 0 through ᾱ_0).
    public static func ddimTimesteps(steps: Int) -> [Int] {
        let stride = max(1, 1000 / max(steps, 1))
        return Swift.stride(from: 0, to: 1000, by: stride).map { min($0 + 1, 999) }
    }
}
