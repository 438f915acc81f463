import Diffusion
import Foundation
import LoRACore

/// schedulefree 1.4's AdamWScheduleFree, RAdamScheduleFree and SGDScheduleFree (Defazio et al., "The Road Less
/// Scheduled"; kohya's `--optimizer_type AdamWScheduleFree` / `RAdamScheduleFree` / `SGDScheduleFree`), in the order of its foreach path, which
/// torch takes on CPU too. No schedule: the rate is constant after an optional linear warmup of its own
/// (`warmup_steps`), and the weights the gradients are taken at (y, "train mode") are an interpolation between
/// the fast iterate z and the running average x, which is what gets saved, sampled and validated ("eval mode";
/// kohya switches at every step: `useAveragedWeights` / `useGradientPointWeights`). Per group, at its step k:
///   lr = base·min(1, (k+1)/warmup);  c = w/Σw with w = (k+1)^r · max lr so far^weight_lr_power
///   AdamW: v ← β2·v + (1−β2)·g²;  ĝ = g / (√(v / (1 − β2^(k+1))) + ε);  SGD: ĝ = g;  then ĝ += wd·y
///   RAdam: no warmup but RAdam's rectification as the rate's factor (0 while ρ_t ≤ 4 with silent_sgd_phase, and ĝ = g then)
///   y ← lerp(y, z, c);  y ← y + lr·(β1·(1 − c) − 1)·ĝ;  z ← z − lr·ĝ
/// eval: y → lerp(y, z, 1 − 1/β1) = x;  train: x → lerp(x, z, 1 − β1) = y  (β1 is SGD's momentum).
public struct ScheduleFree: Optimizer {
    public enum Form: String, Sendable { case adamW = "AdamWScheduleFree", radam = "RAdamScheduleFree", sgd = "SGDScheduleFree" }
    public var form: Form
    /// AdamW's β1, SGD's momentum: the interpolation between z and x.
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var epsilon = 1e-8
    public var weightDecay = 0.0
    public var warmupSteps = 0
    public var r = 0.0
    public var weightLRPower = 2.0
    /// RAdam's: no step while the variance estimate is not yet rectifiable (otherwise plain SGD steps there).
    public var silentSGDPhase = true
    public internal(set) var step = 0
    /// Whether the parameters hold y (after `useGradientPointWeights`) rather than x; schedulefree starts in eval mode.
    public internal(set) var trainMode = false
    /// Per group name: its step count, largest rate so far and the sum of the averaging weights.
    var groupState: [String: (k: Int, lrMax: Double, weightSum: Double)] = [:]
    /// Per parameter key: z, and AdamW's second moment.
    var z = ParameterBuffers(), secondMoments = ParameterBuffers()

    public init(form: Form) { self.form = form }

    public var kohyaName: String { "schedulefree.\(form.rawValue.replacingOccurrences(of: "ScheduleFree", with: "").lowercased())_schedulefree.\(form.rawValue)" }

    /// Its own warmup over a constant rate: kohya gives it a dummy scheduler and ignores --lr_scheduler.
    public var schedulesItself: Bool { true }

    public mutating func update(_ groups: [ParameterGroup]) throws(OptimizerError) {
        guard trainMode else { throw OptimizerError("\(form.rawValue) stepped in eval mode (schedulefree raises too)") }
        step += 1
        for group in groups {
            var (k, lrMax, weightSum) = groupState[group.name] ?? (0, -1, 0)
            var lr = group.learningRate * (k < warmupSteps ? Double(k + 1) / Double(warmupSteps) : 1)
            var normalizes = form != .sgd
            if form == .radam {
                let t = Double(k + 1), beta2t = pow(beta2, t)
                let rhoInfinity = 2 / (1 - beta2) - 1, rho = rhoInfinity - 2 * t * beta2t / (1 - beta2t)
                let rectification = rho > 4 ? ((rho - 4) * (rho - 2) * rhoInfinity / ((rhoInfinity - 4) * (rhoInfinity - 2) * rho)).squareRoot()
                                            : (silentSGDPhase ? 0 : 1)
                lr = group.learningRate * rectification
                normalizes = rho > 4
            }
            lrMax = max(lr, lrMax)
            let weight = pow(Double(k + 1), r) * pow(lrMax, weightLRPower)
            weightSum += weight
            let ckp1 = weightSum == 0 ? 0 : weight / weightSum
            let correction2 = Float(1 - pow(beta2, Double(k + 1)))
            let (keep, mix, eps, decay) = (Float(beta2), Float(1 - beta2), Float(epsilon), Float(weightDecay))
            let (c, yStep, zStep) = (Float(ckp1), Float(lr * (beta1 * (1 - ckp1) - 1)), Float(lr))
            let adaptive = form != .sgd
            for parameter in group.parameters {
                var zs = z.values.removeValue(forKey: parameter.key) ?? parameter.values   // z starts at the weights
                var vs = adaptive ? secondMoments.take(parameter.key, count: parameter.count) : []
                parameter.values.withUnsafeMutableBufferPointer { y in
                    zs.withUnsafeMutableBufferPointer { z in
                        vs.withUnsafeMutableBufferPointer { v in parameter.gradient.values.withUnsafeBufferPointer { g in
                            Parallel.forRanges(y.count, cost: 16) { range in
                                for i in range {
                                    var normalized = g[i]
                                    if adaptive { v[i] = v[i] * keep + mix * g[i] * g[i] }
                                    if normalizes { normalized = g[i] / ((v[i] / correction2).squareRoot() + eps) }
                                    if decay != 0 { normalized += decay * y[i] }
                                    y[i] = Self.lerp(y[i], z[i], c)
                                    y[i] += yStep * normalized
                                    z[i] -= zStep * normalized
                                }
                            }
                        } }
                    }
                }
                z.values[parameter.key] = zs
                if adaptive { secondMoments.values[parameter.key] = vs }
            }
            groupState[group.name] = (k + 1, lrMax, weightSum)
        }
    }

    /// schedulefree's `eval()`: the parameters become the average x (nothing before the first step).
    public mutating func useAveragedWeights(_ parameters: [Parameter]) {
        trainMode = ScheduleFree.switchPoints(parameters, z: z, beta1: beta1, toAverage: true, trainMode: trainMode)
    }

    /// schedulefree's `train()`: the parameters become the point y the next gradient is taken at.
    public mutating func useGradientPointWeights(_ parameters: [Parameter]) {
        trainMode = ScheduleFree.switchPoints(parameters, z: z, beta1: beta1, toAverage: false, trainMode: trainMode)
    }

    /// eval() and train() of schedulefree and prodigy-plus-schedule-free alike: y → x = lerp(y, z, 1 − 1/β1), or
    /// x → y = lerp(x, z, 1 − β1), for the parameters that have a z, unless already there. Returns the new train mode.
    static func switchPoints(_ parameters: [Parameter], z: ParameterBuffers, beta1: Double, toAverage: Bool, trainMode: Bool) -> Bool {
        guard trainMode == toAverage else { return trainMode }
        let weight = Float(toAverage ? 1 - 1 / beta1 : 1 - beta1)
        for parameter in parameters {
            guard let zs = z.values[parameter.key] else { continue }
            parameter.values.withUnsafeMutableBufferPointer { p in
                zs.withUnsafeBufferPointer { z in for i in p.indices { p[i] = lerp(p[i], z[i], weight) } }
            }
        }
        return !toAverage
    }

    /// torch's lerp (ATen Lerp.h, vectorised as a fused multiply-add): from the start for small weights, from the end otherwise.
    static func lerp(_ start: Float, _ end: Float, _ weight: Float) -> Float {
        abs(weight) < 0.5 ? start.addingProduct(weight, end - start) : end.addingProduct(-(1 - weight), end - start)
    }

    public var state: OptimizerState {
        var scalars = ["step": Double(step), "train_mode": trainMode ? 1 : 0]
        for (name, g) in groupState {
            (scalars["k." + name], scalars["lr_max." + name], scalars["weight_sum." + name]) = (Double(g.k), g.lrMax, g.weightSum)
        }
        return OptimizerState(scalars: scalars, buffers: ["z": z, "exp_avg_sq": secondMoments])
    }

    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        step = Int(try state.scalar("step"))
        trainMode = try state.scalar("train_mode") != 0
        groupState = [:]
        for (name, k) in state.scalars where name.hasPrefix("k.") {
            let group = String(name.dropFirst(2))
            groupState[group] = (Int(k), try state.scalar("lr_max." + group), try state.scalar("weight_sum." + group))
        }
        z = ParameterBuffers.restore("z", from: state)
        secondMoments = form != .sgd ? ParameterBuffers.restore("exp_avg_sq", from: state) : ParameterBuffers()
        if form != .sgd, let key = z.values.keys.first(where: { secondMoments.values[$0] == nil }) {
            throw OptimizerError("\(key) has z without exp_avg_sq")
        }
    }
}
