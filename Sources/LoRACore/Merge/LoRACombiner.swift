import Dispatch
import Foundation
import LinearAlgebra

/// Combines several LoRAs into one kohya-format LoRA.
///
/// `concat` is exact: per module the scaled up factors are placed side by side
/// and the down factors stacked, so up·down is the weighted sum and rank adds
/// up. `svd` truncates that sum to a target rank as svd_merge_lora.py does, but
/// on the factors (QR of the stacked factors, SVD of the small core) instead of
/// full-size products.
public enum LoRACombiner {
    public enum Mode: Sendable, Equatable {
        case concat
        /// `clampQuantile` as kohya (0.99); nil or ≥ 1 disables clamping.
        case svd(rank: Int, convRank: Int, clampQuantile: Double?)
    }

    public struct ModuleResult: Sendable, Codable {
        public var name: String
        public var rank: Int
        /// ‖ΔW − ΔŴ‖ / ‖ΔW‖ of this module (0 for concat).
        public var relativeError: Double
        public var norm: Double
    }

    public struct Report: Sendable, Codable {
        public var output: String
        public var family: String
        public var mode: String
        public var modules: [ModuleResult]
        /// sqrt(Σ‖ΔW − ΔŴ‖² / Σ‖ΔW‖²) over all modules.
        public var overallRelativeError: Double
        public var hash: String
        public var seconds: Double
        /// Input tensors holding NaN or Inf that were combined anyway (--allow-nan), as "file: tensor".
        public var nonFiniteTensors: [String] = []
    }

    struct Group {
        var name: String
        var target: LoRATarget?
        var contributions: [(lora: Int, module: NetworkModule, multiplier: Double)] = []
    }

    public static func combine(_ specs: [LoRASpec], mode: Mode, output: String, precision: DType? = nil,
                               allowNaN: Bool = false, progress: (@Sendable (Int) -> Void)? = nil) throws(ModelError) -> Report {
        let start = Date()
        try AtomicOutput.checkSafetensorsDestination(output, inputs: specs.map(\.path))
        guard !specs.isEmpty else { throw ModelError(.mismatch, "no LoRAs to combine") }
        var loras: [LoadedLoRA] = []
        for spec in specs { loras.append(try LoadedLoRA.open(spec)) }
        var nonFinite: [String] = []
        for lora in loras {
            if allowNaN {
                nonFinite += CheckpointBaker.nonFiniteTensors(lora).map { (lora.path as NSString).lastPathComponent + ": " + $0 }
            } else {
                try CheckpointBaker.refuseNonFinite(lora)
            }
        }
        let family = try commonFamily(loras)
        let groups = try groupModules(loras, family: family)
        progress?(-groups.count)

        let combined = try Parallel.map(groups.count) { i throws(ModelError) in
            defer { progress?(1) }
            return try combineGroup(groups[i], mode: mode)
        }
        let modules = combined.map(\.0)
        let results = combined.map(\.1)
        let totalError = combined.reduce(0) { $0 + $1.2.0 }
        let totalNorm = combined.reduce(0) { $0 + $1.2.1 }
        let dtype = precision ?? loras.first?.network.modules.first?.parts.values.first { $0.dtype.isFloatingPoint }?.dtype ?? .f16

        let (rank, convRank): (Int, Int?) = {
            switch mode {
            case let .svd(rank, convRank, _):
                return (rank, modules.contains(where: \.isConv3x3) ? convRank : nil)
            case .concat:
                let linear = modules.filter { !$0.isConv3x3 }.map(\.rank).max() ?? 0
                let conv = modules.filter(\.isConv3x3).map(\.rank).max()
                return (linear, conv)
            }
        }()
        var record: [(String, JSON)] = [("tool", .string("lora-merge \(LoRATools.version)"))]
        switch mode {
        case .concat: record.append(("mode", .string("concat")))
        case let .svd(r, c, q):
            record.append(("mode", .string("svd")))
            record.append(("rank", .number(String(r))))
            record.append(("conv_rank", .number(String(c))))
            record.append(("clamp_quantile", q.map { .number(formatNumber($0)) } ?? .null))
        }
        record.append(("relative_error", .number(formatNumber(totalNorm > 0 ? (totalError / totalNorm).squareRoot() : 0))))
        record.append(("loras", .array(loras.map { lora in
            let hashes = Hashing.hashes(of: lora.network.model)
            var fields: [(String, JSON)] = [("file", .string((lora.path as NSString).lastPathComponent)), ("hash", .string(hashes.a1111LoRAHash)),
                                            ("sha256", .string(hashes.sha256)), ("ratio", .number(formatNumber(lora.spec.ratio)))]
            if let te = lora.spec.textEncoderRatio { fields.append(("te", .number(formatNumber(te)))) }
            if let unet = lora.spec.unetRatio { fields.append(("unet", .number(formatNumber(unet)))) }
            if let lbw = lora.spec.blockWeights { fields.append(("lbw", .string(lbw.description))) }
            return JSON.object(fields)
        })))
        let names = specs.map { ($0.path as NSString).lastPathComponent }
        let metadata = KohyaLoRAWriter.metadata(
            family: family, sources: loras.map(\.network.model.metadata), rank: rank, alpha: Double(rank),
            convRank: convRank, convAlpha: convRank.map(Double.init),
            title: ((output as NSString).lastPathComponent as NSString).deletingPathExtension, mergedFrom: names,
            extra: [("lora_merge", JSON.object(record).serialized())])
        let hash = try KohyaLoRAWriter.write(modules, to: output, dtype: dtype, metadata: metadata, inputs: specs.map(\.path))
        let modeLabel: String
        switch mode {
        case .concat: modeLabel = "concat (exact)"
        case let .svd(r, c, q): modeLabel = "svd rank \(r), conv rank \(c)" + (q.map { $0 < 1 ? ", clamp quantile \(formatNumber($0))" : "" } ?? "")
        }
        return Report(output: output, family: family?.rawValue ?? "unknown", mode: modeLabel, modules: results,
                      overallRelativeError: totalNorm > 0 ? (totalError / totalNorm).squareRoot() : 0,
                      hash: String(hash.prefix(12)), seconds: Date().timeIntervalSince(start), nonFiniteTensors: nonFinite)
    }

    /// All LoRAs must target the same family (as far as the tensors tell).
    /// The family every LoRA fits. Tensor evidence decides; a LoRA whose family
    /// is uncertain (metadata only, "SD1.x?") must still fit it by its key
    /// structure, as it would have to when baked into a checkpoint of that
    /// family: uncertain never means compatible with anything.
    static func commonFamily(_ loras: [LoadedLoRA]) throws(ModelError) -> Family? {
        func name(_ lora: LoadedLoRA) -> String { (lora.path as NSString).lastPathComponent }
        let known = loras.compactMap { lora in lora.family.evidence == .tensors ? lora.family.family.map { (lora, $0) } : nil }
        if let (first, family) = known.first, let other = known.first(where: { $0.1 != family }) {
            throw ModelError(
                .mismatch, "\(name(first)) is \(family.rawValue) but \(name(other.0)) is \(other.1.rawValue); LoRAs for different families cannot be combined")
        }
        guard let family = known.first?.1 ?? loras.compactMap(\.family.family).first else { return nil }
        let keyMap = KeyMap.real(family)
        for lora in loras where lora.family.evidence != .tensors {
            let names = lora.network.modules.map { KeyMap.kohyaStyleName($0.name) }
            let label = lora.family.family.map { $0.rawValue + "?" } ?? "of unknown family"
            if let reason = FamilyDetection.ruledOut(family, byNames: names) {
                throw ModelError(.mismatch, "this LoRA (\(label)) cannot be \(family.rawValue): \(reason); LoRAs for different families cannot be combined",
                                 file: lora.path)
            }
            let unmatched = lora.network.modules.filter { keyMap.target(forModule: $0.name) == nil }
            // As baking refuses unmatched modules, so does an uncertain family here.
            if !unmatched.isEmpty {
                throw ModelError(
                    .mismatch,
                    "this LoRA (\(label)) does not fit \(family.rawValue): \(unmatched.count) of \(lora.network.modules.count) modules match no "
                        + "\(family.rawValue) layer (first: \(unmatched[0].name)); LoRAs for different families cannot be combined",
                                 file: lora.path)
            }
        }
        return family
    }

    static func groupModules(_ loras: [LoadedLoRA], family: Family?) throws(ModelError) -> [Group] {
        let keyMap = family.map(KeyMap.real)
        var groups: [String: Group] = [:]
        var order: [String] = []
        for (index, lora) in loras.enumerated() {
            if let incomplete = lora.network.incompleteModules.first {
                throw ModelError(.invalid, "incomplete module (has only \(incomplete.roles.joined(separator: ", ")))", file: lora.path, key: incomplete.name)
            }
            for module in lora.network.modules {
                let target = keyMap?.target(forModule: module.name)
                let name = target?.kohyaName ?? KeyMap.kohyaStyleName(module.name)
                let component = target?.component ?? LoRAAnalysis.guessComponent(module.name)
                if groups[name] == nil { groups[name] = Group(name: name, target: target); order.append(name) }
                groups[name]!.contributions.append((index, module, lora.spec.multiplier(component: component, block: target?.block)))
            }
        }
        return order.map { groups[$0]! }
    }

    /// Returns the combined module, its report line, and (‖error‖², ‖ΔW‖²).
    static func combineGroup(_ group: Group, mode: Mode) throws(ModelError) -> (LowRankModule, ModuleResult, (Double, Double)) {
        // Factor form of every contribution, weighted by its multiplier.
        var us: [Matrix] = [], vs: [Matrix] = []
        var dense: Matrix?
        var shape: [Int]?
        for c in group.contributions {
            if shape == nil { shape = c.module.weightShape(for: group.target) }
            if let (u, v) = try c.module.lowRankForm() {
                var scaled = u
                let m = Float(c.multiplier)
                for i in scaled.values.indices { scaled.values[i] *= m }
                us.append(scaled); vs.append(v)
            } else {
                guard case .svd = mode else {
                    throw ModelError(
                        .unsupported,
                        "\(c.module.algorithm.rawValue)\(c.module.parts["mid"] != nil ? " (Tucker)" : "") modules cannot be concatenated exactly; use "
                            + "--rank to merge by SVD",
                                     key: c.module.name)
                }
                var d = try c.module.delta()
                let m = Float(c.multiplier)
                for i in d.values.indices { d.values[i] *= m }
                if let existing = dense {
                    guard existing.rows == d.rows, existing.cols == d.cols else { throw ModelError(.mismatch, "modules of different shapes", key: group.name) }
                    for i in d.values.indices { d.values[i] += existing.values[i] }
                }
                dense = d
            }
        }
        guard let weightShape = shape ?? us.first.map({ [$0.rows, vs[0].cols] }) else {
            throw ModelError(.invalid, "module without a shape", key: group.name)
        }
        let out = weightShape[0], columns = weightShape.dropFirst().reduce(1, *)
        for (u, v) in zip(us, vs) where u.rows != out || v.cols != columns {
            throw ModelError(.mismatch, "the LoRAs disagree on this module's shape (\(u.rows)x\(v.cols) vs \(out)x\(columns))", key: group.name)
        }
        let stackedU = hstack(us, rows: out), stackedV = vstack(vs, cols: columns)
        let isConv3x3 = weightShape.count == 4 && (weightShape[2] > 1 || weightShape[3] > 1)

        switch mode {
        case .concat:
            let norm = LinearAlgebra.squaredDistance(ua: stackedU, va: stackedV, ub: Matrix(zeros: out, 0), vb: Matrix(zeros: 0, columns))
            let module = LowRankModule(name: group.name, up: stackedU, down: stackedV, alpha: Double(stackedV.rows), weightShape: weightShape)
            return (module, ModuleResult(name: group.name, rank: stackedV.rows, relativeError: 0, norm: norm.squareRoot()), (0, norm))
        case let .svd(rank, convRank, clamp):
            let target = min(isConv3x3 ? convRank : rank, out, columns)
            var up: Matrix, down: Matrix
            let squaredError: Double, squaredNorm: Double
            let clamping = (clamp ?? 1) < 1
            do {
                if var d = dense {
                    if !us.isEmpty { d = add(d, LinearAlgebra.multiply(stackedU, stackedV)) }
                    (up, down, _) = try LinearAlgebra.truncate(d, rank: target)
                    if clamping { LinearAlgebra.clampFactors(&up, &down, quantile: clamp!) }
                    let approx = LinearAlgebra.multiply(up, down)
                    squaredError = zip(d.values, approx.values).reduce(0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
                    squaredNorm = d.squaredNorm
                } else {
                    let factored = try FactoredMatrix(u: stackedU, v: stackedV)
                    (up, down) = try factored.truncated(rank: target)
                    if clamping { LinearAlgebra.clampFactors(&up, &down, quantile: clamp!) }
                    squaredError = clamping ? factored.squaredDistance(up: up, down: down) : factored.truncationError(rank: target)
                    squaredNorm = factored.squaredNorm
                }
            } catch {
                throw ModelError.factoring(error, module: group.name)
            }
            let module = LowRankModule(name: group.name, up: up, down: down, alpha: Double(down.rows), weightShape: weightShape)
            let relative = squaredNorm > 0 ? (squaredError / squaredNorm).squareRoot() : 0
            return (module, ModuleResult(name: group.name, rank: down.rows, relativeError: relative, norm: squaredNorm.squareRoot()),
                    (squaredError, squaredNorm))
        }
    }

    static func hstack(_ ms: [Matrix], rows: Int) -> Matrix {
        let cols = ms.reduce(0) { $0 + $1.cols }
        var out = Matrix(zeros: rows, cols)
        var offset = 0
        for m in ms {
            for r in 0..<rows { for c in 0..<m.cols { out.values[r * cols + offset + c] = m.values[r * m.cols + c] } }
            offset += m.cols
        }
        return out
    }

    static func vstack(_ ms: [Matrix], cols: Int) -> Matrix {
        Matrix(rows: ms.reduce(0) { $0 + $1.rows }, cols: cols, values: ms.flatMap(\.values))
    }

    static func add(_ a: Matrix, _ b: Matrix) -> Matrix {
        var out = a
        for i in out.values.indices { out.values[i] += b.values[i] }
        return out
    }
}
