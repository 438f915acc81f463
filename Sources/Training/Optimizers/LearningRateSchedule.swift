import Foundation

/// sd-scripts' `--lr_scheduler` (library/train_util.py `get_scheduler_fix`,
/// over diffusers.optimization): every schedule is a LambdaLR, the rate at
/// optimizer step k (0-based, before the step) is base · λ(k), so a run with
/// warmup starts at rate 0. N = total optimizer steps, W = warmup steps.
/// The last three are transformers.optimization's, with the arguments
/// get_scheduler_fix passes: inverse_sqrt (`--lr_scheduler_timescale`),
/// cosine_with_min_lr (`--lr_scheduler_min_lr_ratio`, num_cycles/2) and
/// warmup_stable_decay (`--lr_decay_steps`, the stable phase the rest). piecewise_constant is diffusers'
/// (`--lr_scheduler_args step_rules='1:10,0.1:20,0.01'`: ×1 before step 10, ×0.1 before 20, ×0.01 after), which
/// kohya builds without warmup.
public struct LearningRateSchedule: Sendable, Equatable {
    public enum Kind: String, CaseIterable, Sendable {
        case constant
        case constantWithWarmup = "constant_with_warmup"
        case linear
        case cosine
        case cosineWithRestarts = "cosine_with_restarts"
        case polynomial
        case inverseSqrt = "inverse_sqrt"
        case cosineWithMinLR = "cosine_with_min_lr"
        case warmupStableDecay = "warmup_stable_decay"
        case piecewiseConstant = "piecewise_constant"
    }

    /// warmup_stable_decay's shapes (its `--lr_scheduler_args warmup_type=… decay_type=…`).
    public enum Ramp: String, Sendable, CaseIterable {
        case linear, cosine
        case oneMinusSqrt = "1-sqrt"
    }

    public var kind: Kind
    public var totalSteps: Int
    public var warmupSteps: Int = 0
    /// `--lr_scheduler_num_cycles` (cosine_with_restarts).
    public var cycles: Int = 1
    /// `--lr_scheduler_power` (polynomial).
    public var power: Double = 1
    /// polynomial's end rate (diffusers' default 1e-7) and its reference: the
    /// optimizer's default rate (`--learning_rate`), as diffusers computes it.
    public var polynomialEnd: Double = 1e-7
    public var polynomialInitial: Double = 1
    /// inverse_sqrt's timescale (transformers: W, or 10000 without warmup).
    public var timescale: Int?
    /// cosine_with_min_lr's and warmup_stable_decay's floor, as a share of the rate.
    public var minLRRatio: Double?
    /// warmup_stable_decay's decay steps (the stable phase is N − W − decay).
    public var decaySteps = 0
    public var warmupRamp = Ramp.linear
    public var decayRamp = Ramp.cosine
    /// piecewise_constant's rules: the multiplier before each step bound, and the one after the last.
    public var stepRules = StepRules(bounds: [], last: 1)

    public struct StepRules: Sendable, Equatable {
        /// (step bound, multiplier), sorted by bound; a bound given twice keeps its last multiplier (a Python dict).
        public var bounds: [(steps: Int, multiplier: Double)]
        public var last: Double
        public init(bounds: [(steps: Int, multiplier: Double)], last: Double) { (self.bounds, self.last) = (bounds, last) }
        public static func == (a: StepRules, b: StepRules) -> Bool {
            a.last == b.last && a.bounds.map(\.steps) == b.bounds.map(\.steps) && a.bounds.map(\.multiplier) == b.bounds.map(\.multiplier)
        }

        /// diffusers' `step_rules` string: "value:steps" pairs and a final value, comma-separated, read as it
        /// reads them (float(value), int(steps)); nil where it would raise.
        public init?(parsing text: String) {
            let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard let final = items.last.flatMap(Double.init), final.isFinite else { return nil }
            var rules: [Int: Double] = [:]
            for item in items.dropLast() {
                let pair = item.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                guard pair.count == 2, let value = Double(pair[0]), value.isFinite, let steps = Int(pair[1]) else { return nil }
                rules[steps] = value
            }
            self.init(bounds: rules.keys.sorted().map { ($0, rules[$0]!) }, last: final)
        }

        /// `rule_func(k)`: the first bound above k gives its multiplier.
        public func multiplier(at k: Int) -> Double { bounds.first { k < $0.steps }?.multiplier ?? last }
    }

    public init(kind: Kind, totalSteps: Int, warmupSteps: Int = 0) {
        self.kind = kind
        self.totalSteps = totalSteps
        self.warmupSteps = warmupSteps
    }

    /// λ(k): the multiplier of a group's base rate at optimizer step k.
    public func factor(at k: Int) -> Double {
        let n = Double(totalSteps), w = Double(warmupSteps), step = Double(k)
        if kind == .warmupStableDecay { return warmupStableDecay(at: k) }
        if kind == .piecewiseConstant { return stepRules.multiplier(at: k) }
        if kind != .constant && k < warmupSteps { return step / max(1, w) }
        let progress = (step - w) / max(1, n - w)
        switch kind {
        case .constant, .constantWithWarmup:
            return 1
        case .linear:
            return max(0, (n - step) / max(1, n - w))
        case .cosine:
            return max(0, 0.5 * (1 + cos(Double.pi * 0.5 * 2 * progress)))
        case .cosineWithRestarts:
            if progress >= 1 { return 0 }
            return max(0, 0.5 * (1 + cos(Double.pi * (Double(cycles) * progress).truncatingRemainder(dividingBy: 1))))
        case .polynomial:
            if k > totalSteps { return polynomialEnd / polynomialInitial }
            let range = polynomialInitial - polynomialEnd
            let remaining = 1 - (step - w) / max(1, n - w)
            return (range * pow(remaining, power) + polynomialEnd) / polynomialInitial
        case .inverseSqrt:
            let scale = Double(timescale ?? (warmupSteps == 0 ? 10_000 : warmupSteps))
            return 1 / ((step + scale - w) / scale).squareRoot()
        case .cosineWithMinLR:
            let floor = minLRRatio ?? 0
            let factor = 0.5 * (1 + cos(Double.pi * (Double(cycles) / 2) * 2 * progress))
            return max(0, factor * (1 - floor) + floor)
        case .warmupStableDecay:
            return warmupStableDecay(at: k)
        case .piecewiseConstant:
            return stepRules.multiplier(at: k)
        }
    }

    /// transformers' `_get_wsd_scheduler_lambda` with num_cycles = cycles / 2.
    func warmupStableDecay(at k: Int) -> Double {
        let floor = minLRRatio ?? 0, stable = totalSteps - warmupSteps - decaySteps
        func ramp(_ shape: Ramp, _ p: Double, rising: Bool) -> Double {
            switch shape {
            case .linear: return rising ? p : 1 - p
            case .cosine: return rising ? 0.5 * (1 - cos(Double.pi * p)) : 0.5 * (1 + cos(Double.pi * (Double(cycles) / 2) * 2 * p))
            case .oneMinusSqrt: return rising ? 1 - (1 - p).squareRoot() : 1 - p.squareRoot()
            }
        }
        if k < warmupSteps {
            return max(0, ramp(warmupRamp, Double(k) / Double(max(1, warmupSteps)), rising: true) * (1 - floor) + floor)
        }
        if k < warmupSteps + stable { return 1 }
        if k < warmupSteps + stable + decaySteps {
            let p = Double(k - warmupSteps - stable) / Double(max(1, decaySteps))
            return max(0, ramp(decayRamp, p, rising: false) * (1 - floor) + floor)
        }
        return floor
    }
}
