import Foundation

/// sd-scripts' `--lr_scheduler` (library/train_util.py `get_scheduler_fix`,
/// over diffusers.optimization): every schedule is a LambdaLR, the rate at
/// optimizer step k (0-based, before the step) is base · λ(k), so a run with
/// warmup starts at rate 0. N = total optimizer steps, W = warmup steps.
public struct LearningRateSchedule: Sendable, Equatable {
    public enum Kind: String, CaseIterable, Sendable {
        case constant
        case constantWithWarmup = "constant_with_warmup"
        case linear
        case cosine
        case cosineWithRestarts = "cosine_with_restarts"
        case polynomial
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

    public init(kind: Kind, totalSteps: Int, warmupSteps: Int = 0) {
        self.kind = kind
        self.totalSteps = totalSteps
        self.warmupSteps = warmupSteps
    }

    /// λ(k): the multiplier of a group's base rate at optimizer step k.
    public func factor(at k: Int) -> Double {
        let n = Double(totalSteps), w = Double(warmupSteps), step = Double(k)
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
        }
    }
}
