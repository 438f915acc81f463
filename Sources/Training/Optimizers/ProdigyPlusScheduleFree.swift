import Diffusion
import Foundation

/// prodigy-plus-schedule-free 1.9.2's ProdigyPlusScheduleFree (the version sd-scripts and kohya_ss pin; the kohya_ss
/// GUI passes `prodigyplus.ProdigyPlusScheduleFree`, whose name ends in "schedulefree", so kohya gives it the dummy
/// scheduler and calls its eval()/train() as schedulefree's). Prodigy's distance estimate d drives a schedule-free
/// step with no first moment; per group at its step k (from 1), per parameter:
///   dlr = lr · (harmonic mean of the groups' d once a step has run, with split_groups_mean; else the group's d)
///   use_bias_correction: RAdam's rectification times dlr, β2 ← 1 − (1 − β2)/(1 − β2ᵏ) (the raw g while ρ ≤ 4)
///   v ← β2·(d_prev/d)²·v + (1 − β2)·g²  — factored (`factoredAxes`) when a dimension reaches 32: per-axis means of g²
///   u = g/(√v̂ + ε)  (eps=None: Adam-atan2, b·atan2(g, b·√v̂));  StableAdamW: u /= max(1, max(1, RMS(u))/b)
///   b = 50 while d ≤ d0, then 1
///   s ← β3·s + √d·g[::11] (bf16), Σnum += √d·⟨g[::11], p0 − y[::11]⟩, Σden += Σ|s|   (p0 = first y[::11], bf16)
///   w = dlr², c = w/Σw;  weight_decay_by_lr: u += wd·y;  y ← lerp(y, z, c);  z ← z − dlr·u;  y ← y − dlr·(1 − β1(1 − c))·u
/// and once every parameter has stepped: num ← β3·num + Σnum (once d > d0 a negative Σnum only lowers it),
/// d ← max(d, atan2(d_coef·num, Σden)) per group (split_groups, with more than one group) or shared.
/// The experimental options (use_speed, use_muon_pp, use_cautious, use_grams, use_adopt, use_orthograd,
/// use_focus) and fused_back_pass are refused by `OptimizerChoice`; stochastic_rounding and factored_fp32
/// concern bf16 weights, which lora-train does not train.
public struct ProdigyPlusScheduleFree: Optimizer {
    public var beta1 = 0.9, beta2 = 0.99
    public var beta3: Double?
    public var weightDecay = 0.0, weightDecayByLR = true, useBiasCorrection = false
    public var d0 = 1e-6, dCoefficient = 1.0
    public var prodigySteps = 0
    /// nil: Adam-atan2.
    public var epsilon: Double? = 1e-8
    public var splitGroups = true, splitGroupsMean = true, factored = true, useStableAdamW = true
    public private(set) var step = 0
    public private(set) var trainMode = true

    struct GroupState: Equatable {
        var d: Double, dPrevious: Double, numerator = 0.0, denominator = 0.0, k = 1, weightSum = 0.0
        var runningNumerator: Float = 0, runningDenominator: Float = 0
    }
    var groupState: [String: GroupState] = [:]
    var sharedD: Double?
    var z = ParameterBuffers(), second = ParameterBuffers(), rows = ParameterBuffers(), columns = ParameterBuffers()
    var s = ParameterBuffers(), p0 = ParameterBuffers()

    public init() {}

    public var kohyaName: String { "prodigyplus.prodigy_plus_schedulefree.ProdigyPlusScheduleFree" }
    public var schedulesItself: Bool { true }
    /// The d steps are taken at: the groups' harmonic mean when split, else the first group's (kohya logs its d).
    public var adaptiveScale: Double? { sharedD ?? firstGroup.flatMap { groupState[$0]?.d } ?? d0 }
    var firstGroup: String?

    /// The package's `slice_p`: Prodigy's statistics see every 11th element.
    static let slice = 11

    public mutating func update(_ groups: [ParameterGroup]) throws(OptimizerError) {
        guard trainMode else { throw OptimizerError("ProdigyPlusScheduleFree stepped in eval mode (the package raises too)") }
        step += 1
        // The package turns split_groups off when the optimizer was built with one group.
        let split = splitGroups && groups.count > 1
        let b3 = beta3 ?? beta2.squareRoot()
        for group in groups where groupState[group.name] == nil { groupState[group.name] = GroupState(d: d0, dPrevious: d0) }
        firstGroup = groups.first?.name
        let statsGroup = split ? nil : groups.first?.name
        for group in groups {
            let g = groupState[group.name]!
            // Where this group's statistics add up (torch's running_d_numerator/denom tensors, summed in float32 in order).
            let statsKey = statsGroup ?? group.name
            var dlr = (split ? (sharedD ?? g.d) : g.d) * group.learningRate
            var b2 = beta2
            var rawGradient = false
            if useBiasCorrection {
                let k = Double(g.k), beta2t = pow(beta2, k), correction = 1 - beta2t
                let rhoInfinity = 2 / (1 - beta2) - 1, rho = rhoInfinity - 2 * k * beta2t / correction
                dlr *= rho > 4 ? ((rho - 4) * (rho - 2) * rhoInfinity / ((rhoInfinity - 4) * (rhoInfinity - 2) * rho)).squareRoot() : 0
                b2 = 1 - (1 - beta2) / correction
                rawGradient = rho <= 4
            }
            let dRatio = g.dPrevious / g.d
            let keep2 = Float(b2 * dRatio * dRatio), mix2 = Float(1 - b2)
            let clip = g.d <= d0 ? 50.0 : 1.0
            let collects = prodigySteps <= 0 || g.k < prodigySteps
            let weight = dlr * dlr, weightSum = g.weightSum + weight
            let ckp1 = weightSum != 0 ? weight / weightSum : 0
            let xyStep = 1 - beta1 * (1 - ckp1)
            for p in group.parameters {
                let grad = p.gradient.values
                var y = p.values
                var zs = z.values.removeValue(forKey: p.key) ?? y
                if p0.values[p.key] == nil {
                    p0.values[p.key] = y.contains { $0 != 0 } ? Self.sliced(y).map(\.bfloat16Rounded) : []
                }
                // The second moment and the normalised step.
                var denominator: [Float]
                if let axes = factored ? Self.factoredAxes(p.shape) : nil {
                    var row = rows.take(p.key, count: p.count / p.shape[axes.row]), column = columns.take(p.key, count: p.count / p.shape[axes.column])
                    Self.decayMeanSquares(grad, shape: p.shape, axis: axes.row, into: &row, keep: keep2, mix: mix2)
                    Self.decayMeanSquares(grad, shape: p.shape, axis: axes.column, into: &column, keep: keep2, mix: mix2)
                    denominator = Self.factoredRoot(row: row, column: column, shape: p.shape, axes: axes)
                    (rows.values[p.key], columns.values[p.key]) = (row, column)
                } else {
                    var v = second.take(p.key, count: p.count)
                    for i in 0..<p.count { v[i] = v[i] * keep2 + mix2 * grad[i] * grad[i] }
                    denominator = v.map { $0.squareRoot() }
                    second.values[p.key] = v
                }
                var u = grad
                if !rawGradient {
                    if let epsilon {
                        for i in 0..<p.count { u[i] = grad[i] / (denominator[i] + Float(epsilon)) }
                    } else {
                        let b = Float(clip)
                        for i in 0..<p.count { u[i] = atan2(grad[i], denominator[i] * b) * b }
                    }
                }
                if useStableAdamW {
                    let rms = max(Float(u.rootMeanSquare), 1)
                    let scale = 1 / max(rms / Float(clip), 1)
                    for i in 0..<p.count { u[i] *= scale }
                }
                // Prodigy's statistics, at y before this step.
                if collects {
                    let dUpdate = g.d.squareRoot()
                    let slicedGradient = Self.sliced(grad), slicedY = Self.sliced(y), start = p0.values[p.key]!
                    var dot: Float = 0
                    for (i, gi) in slicedGradient.enumerated() { dot += gi * ((start.isEmpty ? 0 : start[i]) - slicedY[i]) }
                    var sp = s.take(p.key, count: slicedGradient.count)
                    var total: Float = 0
                    for i in 0..<sp.count {
                        sp[i] = (sp[i] * Float(b3)).bfloat16Rounded
                        sp[i] = (sp[i] + Float(dUpdate) * slicedGradient[i]).bfloat16Rounded
                        total += abs(sp[i])
                    }
                    s.values[p.key] = sp
                    groupState[statsKey]!.runningNumerator += Float(dUpdate) * dot
                    groupState[statsKey]!.runningDenominator += total.bfloat16Rounded
                } else {
                    (s.values[p.key], p0.values[p.key]) = (nil, [])
                }
                // The schedule-free step.
                let decay = Float(weightDecay)
                let decayed = weightDecay != 0 && !weightDecayByLR ? y : []
                if weightDecay != 0 && weightDecayByLR { for i in 0..<p.count { u[i] += decay * y[i] } }
                let (c, zStep, yStep) = (Float(ckp1), Float(dlr), Float(dlr * xyStep))
                for i in 0..<p.count {
                    y[i] = ScheduleFree.lerp(y[i], zs[i], c)
                    zs[i] -= zStep * u[i]
                    y[i] -= yStep * u[i]
                }
                if !decayed.isEmpty {
                    let (zDecay, yDecay) = (decay, Float(weightDecay * xyStep))
                    for i in 0..<p.count {
                        zs[i] -= zDecay * decayed[i]
                        y[i] -= yDecay * decayed[i]
                    }
                }
                p.values = y
                z.values[p.key] = zs
            }
            groupState[group.name]!.weightSum = weightSum   // the package's running_weight_sum: the group's weight_sum from the next step
        }
        finishStep(groups.map(\.name), split: split, beta3: b3)
    }

    /// The package's on_end_step: d from the step's statistics, per group or from the first group's for all.
    private mutating func finishStep(_ names: [String], split: Bool, beta3: Double) {
        func absorb(_ g: inout GroupState) {
            guard prodigySteps <= 0 || g.k < prodigySteps else { return }
            var numerator = g.numerator * beta3
            let running = Double(g.runningNumerator)
            if running < 0 {
                if g.d > d0 { numerator = min(numerator, running) }
            } else {
                numerator += running
            }
            (g.numerator, g.denominator) = (numerator, Double(g.runningDenominator))
            (g.runningNumerator, g.runningDenominator) = (0, 0)
        }
        func estimate(_ g: inout GroupState) {
            guard prodigySteps <= 0 || g.k < prodigySteps else { return }
            let dHat = atan2(dCoefficient * g.numerator, g.denominator)
            (g.dPrevious, g.d) = (g.d, max(g.d, dHat))
        }
        if split {
            for name in names { absorb(&groupState[name]!) }
            for name in names {
                estimate(&groupState[name]!)
                groupState[name]!.k += 1
            }
            // statistics.harmonic_mean (exact there; to a rounding here).
            sharedD = splitGroupsMean ? Double(names.count) / names.reduce(0.0) { $0 + 1 / groupState[$1]!.d } : nil
        } else if let first = names.first {
            absorb(&groupState[first]!)
            estimate(&groupState[first]!)
            let lead = groupState[first]!
            for name in names {
                (groupState[name]!.d, groupState[name]!.numerator, groupState[name]!.denominator) = (lead.d, lead.numerator, lead.denominator)
                groupState[name]!.k += 1
            }
        }
    }

    static func sliced(_ values: [Float]) -> [Float] { stride(from: 0, to: values.count, by: slice).map { values[$0] } }

    /// The package's factored_dims (from timm's Adafactor): with factoring on, a tensor of two or more dimensions
    /// of which one reaches 32 keeps means over its largest axis ("row") and its second largest ("column"; ties
    /// go to the later axis, as Python sorts (size, index) pairs).
    static func factoredAxes(_ shape: [Int]) -> (row: Int, column: Int)? {
        guard shape.count >= 2, shape.contains(where: { $0 >= 32 }) else { return nil }
        let order = shape.indices.sorted { (shape[$0], $0) < (shape[$1], $1) }
        return (order[order.count - 1], order[order.count - 2])
    }

    /// m ← keep·m + mix·(‖g‖ over `axis`)²/n, kept with `axis` at size 1 (the package's norm().square_().mul_(1/n)).
    static func decayMeanSquares(_ g: [Float], shape: [Int], axis: Int, into m: inout [Float], keep: Float, mix: Float) {
        let length = shape[axis], inner = shape[(axis + 1)...].reduce(1, *), outer = g.count / (length * inner)
        let scale = Float(1 / Double(length))
        var squares = [Double](repeating: 0, count: inner)
        for o in 0..<outer {
            for i in 0..<inner { squares[i] = 0 }
            // Along the reduced axis in order for every inner position at once (contiguous reads).
            for j in 0..<length {
                let line = (o * length + j) * inner
                for i in 0..<inner { let v = Double(g[line + i]); squares[i] += v * v }
            }
            for i in 0..<inner {
                let norm = Float(squares[i].squareRoot())
                m[o * inner + i] = m[o * inner + i] * keep + mix * (norm * norm * scale)
            }
        }
    }

    /// √(row/(mean of row over the package's reduce axis + 1e-30)) · √column at every element. The package takes the
    /// mean over axis `column` of the row tensor, or the axis before it when the column axis comes after the row
    /// axis (an index meant for a tensor with the row axis removed, applied to one that keeps it): for a matrix
    /// whose larger axis comes first (a LoRA up weight) that mean is over an axis of size 1, so the row factor is 1.
    static func factoredRoot(row: [Float], column: [Float], shape: [Int], axes: (row: Int, column: Int)) -> [Float] {
        var rowShape = shape
        rowShape[axes.row] = 1
        let reduce = axes.column > axes.row ? axes.column - 1 : axes.column
        let rLength = rowShape[reduce], rInner = rowShape[(reduce + 1)...].reduce(1, *), rOuter = row.count / (rLength * rInner)
        var rowMean = [Float](repeating: 0, count: rOuter * rInner)
        for o in 0..<rOuter {
            for i in 0..<rInner {
                var sum: Float = 0
                for j in 0..<rLength { sum += row[(o * rLength + j) * rInner + i] }
                rowMean[o * rInner + i] = sum / Float(rLength) + 1e-30
            }
        }
        let count = shape.reduce(1, *)
        let (length, inner) = (shape[axes.row], shape[(axes.row + 1)...].reduce(1, *))
        let (cLength, cInner) = (shape[axes.column], shape[(axes.column + 1)...].reduce(1, *))
        // Both factors once per stored value, then one product per element.
        var rowFactors = [Float](repeating: 0, count: row.count)
        for r in 0..<row.count { rowFactors[r] = (row[r] / rowMean[(r / (rLength * rInner)) * rInner + r % rInner]).squareRoot() }
        let columnFactors = column.map { $0.squareRoot() }
        var out = [Float](repeating: 0, count: count)
        for f in 0..<count {
            out[f] = rowFactors[(f / (length * inner)) * inner + f % inner] * columnFactors[(f / (cLength * cInner)) * cInner + f % cInner]
        }
        return out
    }

    /// The package's eval() and train() (`ScheduleFree.switchPoints`); it starts in train mode.
    public mutating func useAveragedWeights(_ parameters: [Parameter]) {
        trainMode = ScheduleFree.switchPoints(parameters, z: z, beta1: beta1, toAverage: true, trainMode: trainMode)
    }

    public mutating func useGradientPointWeights(_ parameters: [Parameter]) {
        trainMode = ScheduleFree.switchPoints(parameters, z: z, beta1: beta1, toAverage: false, trainMode: trainMode)
    }

    public var state: OptimizerState {
        var scalars = ["step": Double(step), "train_mode": trainMode ? 1 : 0]
        if let sharedD { scalars["shared_d"] = sharedD }
        if let firstGroup { scalars["first." + firstGroup] = 1 }
        for (name, g) in groupState {
            for (key, value) in [("d", g.d), ("d_prev", g.dPrevious), ("d_numerator", g.numerator), ("d_denom", g.denominator),
                                 ("k", Double(g.k)), ("weight_sum", g.weightSum)] {
                scalars[key + "." + name] = value
            }
        }
        return OptimizerState(scalars: scalars, buffers: ["z": z, "exp_avg_sq": second, "exp_avg_sq_row": rows, "exp_avg_sq_col": columns,
                                                          "s": s, "p0": p0])
    }

    public mutating func restore(_ state: OptimizerState) throws(OptimizerError) {
        step = Int(try state.scalar("step"))
        trainMode = try state.scalar("train_mode") != 0
        sharedD = state.scalars["shared_d"]
        firstGroup = state.scalars.keys.first { $0.hasPrefix("first.") }.map { String($0.dropFirst(6)) }
        groupState = [:]
        for key in state.scalars.keys where key.hasPrefix("k.") {
            let name = String(key.dropFirst(2))
            var g = GroupState(d: try state.scalar("d." + name), dPrevious: try state.scalar("d_prev." + name))
            (g.numerator, g.denominator) = (try state.scalar("d_numerator." + name), try state.scalar("d_denom." + name))
            (g.k, g.weightSum) = (Int(try state.scalar("k." + name)), try state.scalar("weight_sum." + name))
            groupState[name] = g
        }
        (z, second, rows, columns) = (.restore("z", from: state), .restore("exp_avg_sq", from: state),
                                      .restore("exp_avg_sq_row", from: state), .restore("exp_avg_sq_col", from: state))
        (s, p0) = (.restore("s", from: state), .restore("p0", from: state))
    }
}

extension Float {
    /// Rounded to bfloat16 (nearest, ties to even) and widened back, as torch stores a bf16 tensor's result.
    var bfloat16Rounded: Float {
        guard isFinite else { return self }
        let bits = bitPattern
        return Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000)
    }
}
