import Foundation

/// kohya's `--lr_scheduler_type` (train_util.py `get_scheduler_fix`) for torch.optim.lr_scheduler's classes that
/// need no Python object: the class built on the optimizer with `--lr_scheduler_args` as its keyword arguments
/// (values read as Python literals) and no warmup (kohya refuses one). Each group's rate follows from its own
/// base rate (eta_min is absolute, as in torch), at optimizer step k, in torch's closed forms, which its
/// chainable steps equal to rounding (checked against torch in Fixtures/golden/make_schedule_golden.py).
public enum TorchLRScheduler: Sendable, Equatable {
    case step(size: Int, gamma: Double)
    case multiStep(milestones: [Int], gamma: Double)
    case exponential(gamma: Double)
    case constant(factor: Double, totalIters: Int)
    case linear(start: Double, end: Double, totalIters: Int)
    case polynomial(totalIters: Int, power: Double)
    case cosineAnnealing(tMax: Int, etaMin: Double)
    case cosineWarmRestarts(t0: Int, tMult: Int, etaMin: Double)

    public static let names = ["StepLR", "MultiStepLR", "ExponentialLR", "ConstantLR", "LinearLR", "PolynomialLR", "CosineAnnealingLR",
                               "CosineAnnealingWarmRestarts"]

    /// The class `name` with `arguments` ("key=value", Python literals); torch's defaults where it has them.
    public init(name: String, arguments: [String]) throws(OptimizerError) {
        var numbers: [String: [Double]] = [:]
        for item in arguments {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            let values = parts.count == 2 ? parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "[]() ")).split(separator: ",")
                .map { Double($0.trimmingCharacters(in: .whitespaces)) } : []
            guard parts.count == 2, !values.isEmpty, values.allSatisfy({ $0?.isFinite ?? false }) else {
                throw OptimizerError("--lr-scheduler-args \(item): expected key=number (or key=[n, …] for milestones)")
            }
            numbers[parts[0]] = values.map { $0! }
        }
        let known: [String: [String]] = ["StepLR": ["step_size", "gamma"], "MultiStepLR": ["milestones", "gamma"], "ExponentialLR": ["gamma"],
                                         "ConstantLR": ["factor", "total_iters"], "LinearLR": ["start_factor", "end_factor", "total_iters"],
                                         "PolynomialLR": ["total_iters", "power"], "CosineAnnealingLR": ["T_max", "eta_min"],
                                         "CosineAnnealingWarmRestarts": ["T_0", "T_mult", "eta_min"]]
        guard let keys = known[name] else {
            throw OptimizerError("--lr-scheduler-type \(name) is not supported (torch.optim.lr_scheduler's \(Self.names.joined(separator: ", ")) are; "
                                 + "classes that need Python objects or change momentum, and other modules, are not built)")
        }
        if let bad = numbers.keys.sorted().first(where: { !keys.contains($0) }) {
            throw OptimizerError("--lr-scheduler-args \(bad) is not an argument of \(name) (\(keys.joined(separator: ", ")))")
        }
        func number(_ key: String, _ fallback: Double? = nil) throws(OptimizerError) -> Double {
            guard let v = numbers[key] else {
                guard let fallback else { throw OptimizerError("\(name) needs --lr-scheduler-args \(key)=…, as torch does") }
                return fallback
            }
            guard v.count == 1 else { throw OptimizerError("--lr-scheduler-args \(key) takes one number") }
            return v[0]
        }
        func count(_ key: String, _ fallback: Int? = nil, atLeast minimum: Int = 1) throws(OptimizerError) -> Int {
            let v = try number(key, fallback.map(Double.init))
            guard v == v.rounded(), v >= Double(minimum), v < 1e12 else {
                throw OptimizerError("--lr-scheduler-args \(key) must be a whole number of at least \(minimum), as torch asks")
            }
            return Int(v)
        }
        switch name {
        case "StepLR": self = .step(size: try count("step_size"), gamma: try number("gamma", 0.1))
        case "MultiStepLR":
            guard let milestones = numbers["milestones"], milestones.allSatisfy({ $0 == $0.rounded() && $0 >= 0 && $0 < 1e12 }) else {
                throw OptimizerError("MultiStepLR needs --lr-scheduler-args milestones=[step, …] (whole numbers), as torch does")
            }
            self = .multiStep(milestones: milestones.map { Int($0) }.sorted(), gamma: try number("gamma", 0.1))
        case "ExponentialLR": self = .exponential(gamma: try number("gamma"))
        case "ConstantLR":
            let factor = try number("factor", 1.0 / 3)
            guard (0...1).contains(factor) else { throw OptimizerError("ConstantLR's factor must be between 0 and 1, as torch asks") }
            self = .constant(factor: factor, totalIters: try count("total_iters", 5, atLeast: 0))
        case "LinearLR":
            let (start, end) = (try number("start_factor", 1.0 / 3), try number("end_factor", 1))
            guard start > 0 && start <= 1 && (0...1).contains(end) else {
                throw OptimizerError("LinearLR's start_factor must be in (0, 1] and end_factor in [0, 1], as torch asks")
            }
            self = .linear(start: start, end: end, totalIters: try count("total_iters", 5))
        case "PolynomialLR": self = .polynomial(totalIters: try count("total_iters", 5), power: try number("power", 1))
        case "CosineAnnealingLR": self = .cosineAnnealing(tMax: try count("T_max"), etaMin: try number("eta_min", 0))
        default: self = .cosineWarmRestarts(t0: try count("T_0"), tMult: try count("T_mult", 1), etaMin: try number("eta_min", 0))
        }
    }

    /// A group's rate at optimizer step k (0-based: the rate its first step uses is the base).
    public func rate(base: Double, at k: Int) -> Double {
        switch self {
        case let .step(size, gamma): return base * pow(gamma, Double(k / size))
        case let .multiStep(milestones, gamma):
            // bisect_right over the sorted milestones, each counted as often as it is given (torch's Counter).
            return base * pow(gamma, Double(milestones.filter { $0 <= k }.count))
        case let .exponential(gamma): return base * pow(gamma, Double(k))
        case let .constant(factor, total): return base * (k < total ? factor : 1)
        case let .linear(start, end, total): return base * (start + (end - start) * Double(min(total, k)) / Double(total))
        case let .polynomial(total, power): return base * pow(1 - Double(min(total, k)) / Double(total), power)
        case let .cosineAnnealing(tMax, etaMin): return etaMin + (base - etaMin) * (1 + cos(Double.pi * Double(k) / Double(tMax))) / 2
        case let .cosineWarmRestarts(t0, tMult, etaMin):
            // T_cur counts up and wraps at T_i, which grows by T_mult at each restart (its step() without an epoch).
            var (current, period) = tMult == 1 ? (k % t0, t0) : (k, t0)
            while current >= period {
                current -= period
                let (grown, overflow) = period.multipliedReportingOverflow(by: tMult)
                period = overflow ? Int.max : grown
            }
            return etaMin + (base - etaMin) * (1 + cos(Double.pi * Double(current) / Double(period))) / 2
        }
    }
}
