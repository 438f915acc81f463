import Dispatch
import Foundation
import LinearAlgebra

/// Reduces a LoRA's rank (resize_lora.py), without ever forming up·down:
/// the factors are QR-factored and only the small r×r core is decomposed.
/// The effective scale is kept: the new alpha is old_scale × new_rank.
public enum LoRAResizer {
    public struct Options: Sendable {
        public var rank: RankRule = .fixed(8)
        /// Rule for 3×3 conv modules (default: the same as `rank`).
        public var convRank: RankRule?
        public var precision: DType?
        /// resize_lora.py does not clamp; available for parity with extraction.
        public var clampQuantile: Double?
        public init() {}
    }

    public static func resize(_ input: String, output: String, options: Options = .init(),
                              progress: (@Sendable (Int) -> Void)? = nil) throws(ModelError) -> LoRAExtractor.Report {
        let start = Date()
        try AtomicOutput.checkSafetensorsDestination(output, inputs: [input])
        let model = try ModelFile.open(input)
        let network = try NetworkFile(model: model)
        guard !network.modules.isEmpty else { throw ModelError.notALoRA(model, network: network) }
        if let incomplete = network.incompleteModules.first {
            throw ModelError(.invalid, "incomplete module (has only \(incomplete.roles.joined(separator: ", ")))", file: input, key: incomplete.name)
        }
        let family = FamilyDetection.lora(network).family
        let keyMap = family.map(KeyMap.real)
        let modules = network.modules
        progress?(-modules.count)

        let done = try Parallel.map(modules.count, cost: { modules[$0].deltaShape?.reduce(1, *) ?? 1 }) { i throws(ModelError) in
            defer { progress?(1) }
            do throws(ModelError) {
                return try resizeModule(modules[i], target: keyMap?.target(forModule: modules[i].name), options: options)
            } catch {
                throw error.forKey(modules[i].name).inFile(input)
            }
        }
        let resized = done.map(\.0)
        let results = done.map(\.1)
        var (totalError, totalKept, totalNorm) = (0.0, 0.0, 0.0)
        for (_, _, squares) in done {
            totalError += squares.0
            totalKept += squares.1
            totalNorm += squares.2
        }

        var metadata = model.metadata
        let oldDim = metadata[.networkDim] ?? String(modules.compactMap(\.rank).max() ?? 0)
        let dynamic = options.rank.isDynamic
        metadata[.networkModule] = "networks.lora"
        metadata[.networkDim] = dynamic ? "Dynamic" : String(options.rank.maxRank)
        metadata[.networkAlpha] = dynamic ? "Dynamic" : (resized.first.map { formatNumber($0.alpha) } ?? "")
        let conv = resized.filter(\.isConv3x3)
        if let first = conv.first {
            let rule = options.convRank ?? options.rank
            metadata[.networkArgs] = JSON.object([("conv_dim", .string(rule.isDynamic ? "Dynamic" : String(rule.maxRank))),
                                                       ("conv_alpha", .string(rule.isDynamic ? "Dynamic" : formatNumber(first.alpha)))]).pythonDumps()
        } else if metadata[.networkModule] == "networks.lora", model.metadata[.networkModule] != "networks.lora" {
            metadata[.networkArgs] = "null"
        }
        let comment = metadata[.trainingComment].map { "; " + $0 } ?? ""
        metadata[.trainingComment] = "dimension is resized from \(oldDim) to \(options.rank)\(comment)"
        metadata[.sshsLegacyHash] = nil
        let dtype = options.precision ?? modules.first?.parts.values.first(where: { $0.dtype.isFloatingPoint })?.dtype ?? .f16
        let hash = try KohyaLoRAWriter.write(resized, to: output, dtype: dtype, metadata: metadata, inputs: [input])
        return LoRAExtractor.Report(output: output, family: family?.rawValue ?? "unknown", rule: options.rank.description,
                                    convRule: options.convRank?.description, textEncoder: "-", modules: results,
                                    skipped: [], overallRelativeError: totalNorm > 0 ? (totalError / totalNorm).squareRoot() : 0,
                                    overallKeptFraction: totalNorm > 0 ? (totalKept / totalNorm).squareRoot() : 1,
                                    hash: String(hash.prefix(12)), seconds: Date().timeIntervalSince(start))
    }

    static func resizeModule(_ module: NetworkModule, target: LoRATarget?, options: Options) throws(ModelError)
        -> (LowRankModule, LoRAExtractor.ModuleResult, (Double, Double, Double))
    {
        guard let shape = module.weightShape(for: target) else {
            throw ModelError(.unsupported, "\(module.algorithm.rawValue) modules need the base model and cannot be resized")
        }
        let isConv3x3 = shape.count == 4 && (shape[2] > 1 || shape[3] > 1)
        let rule = isConv3x3 ? (options.convRank ?? options.rank) : options.rank
        let name = target?.kohyaName ?? KeyMap.kohyaStyleName(module.name)
        let columns = shape.dropFirst().reduce(1, *)
        let fullLength = min(shape[0], columns)
        // Work on the unscaled product, as kohya does, and carry the scale in alpha.
        do {
            // LoRA factors unscaled (the scale moves into alpha); LoHa and LoKr
            // through their exact low-rank forms (scale already inside).
            var factors: (u: Matrix, v: Matrix, scale: Double)?
            if module.algorithm == .lora && module["mid"] == nil {
                let (u, v) = try LoRADelta.factors(module)
                factors = (u, v, module.scale)
            } else if let (u, v) = try module.lowRankForm() {
                factors = (u, v, 1)
            }
            if let (up0, down0, scale) = factors {
                let factored = try FactoredMatrix(u: up0, v: down0)
                let rank = rule.rank(singularValues: factored.singularValues, fullLength: fullLength, totalEnergy: factored.squaredNorm)
                var (up, down) = try factored.truncated(rank: min(rank, factored.singularValues.count))
                if let q = options.clampQuantile, q < 1 { LinearAlgebra.clampFactors(&up, &down, quantile: q) }
                let error = options.clampQuantile.map { $0 < 1 } == true
                    ? factored.squaredDistance(up: up, down: down) : factored.truncationError(rank: up.cols)
                return finish(name: name, up: up, down: down, shape: shape, scale: scale, energy: factored.squaredNorm,
                              kept: factored.squaredNorm - factored.truncationError(rank: up.cols), error: error, method: "factored")
            }
            // LoHa, LoKr, Tucker cores, full diffs: from the dense ΔW (scale already applied).
            let delta = try module.delta()
            let energy = delta.squaredNorm
            let result = try TruncatedSVD.compute(delta, rank: fullLength, options: .init(exact: true))
            let rank = rule.rank(singularValues: result.s, fullLength: fullLength, totalEnergy: energy)
            var up = Matrix(zeros: delta.rows, rank)
            for r in 0..<delta.rows { for c in 0..<rank { up.values[r * rank + c] = result.u.values[r * result.u.cols + c] * result.s[c] } }
            var down = Matrix(rows: rank, cols: delta.cols, values: Array(result.vt.values[0..<(rank * delta.cols)]))
            if let q = options.clampQuantile, q < 1 { LinearAlgebra.clampFactors(&up, &down, quantile: q) }
            let kept = result.s.prefix(rank).reduce(0.0) { $0 + Double($1) * Double($1) }
            return finish(name: name, up: up, down: down, shape: shape, scale: 1, energy: energy, kept: kept,
                          error: LoRAExtractor.residual(delta, energy: energy, up: up, down: down), method: "exact")
        } catch {
            throw ModelError.factoring(error, module: module.name)
        }
    }

    static func finish(name: String, up: Matrix, down: Matrix, shape: [Int], scale: Double, energy: Double, kept: Double, error: Double,
                       method: String) -> (LowRankModule, LoRAExtractor.ModuleResult, (Double, Double, Double)) {
        let rank = down.rows
        // ΔW = scale · up·down = (alpha/rank) · up·down with alpha = scale · rank.
        let module = LowRankModule(name: name, up: up, down: down, alpha: scale * Double(rank), weightShape: shape)
        let s2 = scale * scale
        let result = LoRAExtractor.ModuleResult(name: name, rank: rank, keptFraction: energy > 0 ? min(1, (kept / energy).squareRoot()) : 1,
                                                relativeError: energy > 0 ? (error / energy).squareRoot() : 0,
                                                norm: (energy * s2).squareRoot(), method: method)
        return (module, result, (error * s2, kept * s2, energy * s2))
    }
}
