import Dispatch
import Foundation
import LinearAlgebra

/// Distils a LoRA from the difference of two checkpoints (kohya's
/// extract_lora_from_models.py): for every module kohya's LoRA targets,
/// ΔW = W_tuned − W_base in fp32, factored to a rank by truncated SVD.
public enum LoRAExtractor {
    public struct Options: Sendable {
        public var rank: RankRule = .fixed(4)
        /// Rank of 3×3 conv modules; nil leaves the resnet/conv modules out (kohya without --conv_dim).
        public var convRank: RankRule?
        /// kohya's clamp of extreme factor values; nil or ≥ 1 disables it.
        public var clampQuantile: Double? = 0.99
        /// Text encoders whose largest |ΔW| stays at or below this are left out (kohya's --min_diff).
        public var minDiff: Double = 0.01
        /// Leave out U-Net modules whose ΔW is exactly zero (kohya writes them as zeros).
        public var skipUnchanged = false
        public var precision: DType = .f16
        /// alpha for every module; nil means alpha = rank (scale 1).
        public var alpha: Double?
        public var svd = TruncatedSVD.Options()
        public init() {}
    }

    public struct ModuleResult: Sendable, Codable {
        public var name: String
        public var rank: Int
        /// √(Σ_kept σ² / ‖ΔW‖²): the share of ΔW's Frobenius norm the rank keeps.
        public var keptFraction: Double
        /// ‖ΔW − ΔŴ‖ / ‖ΔW‖ of the written factors (after clamping).
        public var relativeError: Double
        public var norm: Double
        public var method: String
    }

    public struct Report: Sendable, Codable {
        public var output: String
        public var family: String
        public var rule: String
        public var convRule: String?
        public var textEncoder: String
        public var modules: [ModuleResult]
        public var skipped: [String]
        /// √(Σ error² / Σ ‖ΔW‖²) and √(Σ kept² / Σ ‖ΔW‖²) over all modules.
        public var overallRelativeError: Double
        public var overallKeptFraction: Double
        public var hash: String
        public var seconds: Double
    }

    struct Job {
        let target: LoRATarget
        let baseKey: String
        let tunedKey: String
        let rows: Range<Int>?
        let shape: [Int]
    }

    public static func extract(base basePath: String, tuned tunedPath: String, output: String, options: Options = .init(),
                               progress: (@Sendable (Int) -> Void)? = nil) throws(ModelError) -> Report {
        let start = Date()
        try AtomicOutput.checkSafetensorsDestination(output, inputs: [basePath, tunedPath])
        guard !AtomicOutput.sameFile(basePath, tunedPath) else {
            throw ModelError(.mismatch, "the base and the tuned model are the same file: the LoRA would be all zeros", file: tunedPath)
        }
        let base = try ModelFile.open(basePath), tuned = try ModelFile.open(tunedPath)
        try base.requireCheckpoint()
        try tuned.requireCheckpoint()
        let family = try commonFamily(base, tuned)
        let jobs = try plan(base: base, tuned: tuned, family: family, includeConv: options.convRank != nil)

        // kohya's rule: text encoders are kept only if some weight moved by more than min_diff.
        let textJobs = jobs.filter { $0.target.component != .unet }
        var maxTextDiff: Float = 0
        for job in textJobs {
            let d = difference(job, base: base, tuned: tuned)
            maxTextDiff = max(maxTextDiff, d.values.reduce(0) { max($0, abs($1)) })
        }
        let keepText = Double(maxTextDiff) > options.minDiff
        let work = (keepText ? jobs : jobs.filter { $0.target.component == .unet })
        let textEncoderNote = textJobs.isEmpty ? "none" : (keepText
            ? "extracted (largest |ΔW| \(formatNumber(Double(maxTextDiff))) > min-diff \(formatNumber(options.minDiff)))"
            : "unchanged (largest |ΔW| \(formatNumber(Double(maxTextDiff))) ≤ min-diff \(formatNumber(options.minDiff))): U-Net only")
        progress?(-work.reduce(0) { $0 + $1.shape.reduce(1, *) })

        // Largest first so the cores finish together; BLAS single-threaded per job.
        let factored = try Parallel.map(work.count, cost: { work[$0].shape.reduce(1, *) }) {
            i throws(ModelError) -> (LowRankModule, ModuleResult, (Double, Double, Double))? in
            let job = work[i]
            defer { progress?(job.shape.reduce(1, *)) }
            let delta = difference(job, base: base, tuned: tuned)
            if options.skipUnchanged && job.target.component == .unet && delta.values.allSatisfy({ $0 == 0 }) { return nil }
            let isConv3x3 = job.shape.count == 4 && (job.shape[2] > 1 || job.shape[3] > 1)
            let rule = isConv3x3 ? (options.convRank ?? options.rank) : options.rank
            do throws(ModelError) {
                return try factor(delta, name: job.target.kohyaName, shape: job.shape, rule: rule, options: options)
            } catch {
                throw error.forKey(job.target.kohyaName)
            }
        }
        let modules = factored.compactMap { $0?.0 }
        let results = factored.compactMap { $0?.1 }
        var skipped: [String] = work.indices.filter { factored[$0] == nil }.map { work[$0].target.kohyaName }
        if !keepText { skipped += textJobs.map(\.target.kohyaName) }
        var (totalError, totalKept, totalNorm) = (0.0, 0.0, 0.0)
        for case let (_, _, squares)? in factored {
            totalError += squares.0
            totalKept += squares.1
            totalNorm += squares.2
        }
        guard totalNorm > 0 else {
            throw ModelError(.mismatch, "the two models are identical in every weight a LoRA targets: there is nothing to extract", file: tunedPath)
        }

        let metadata = extractionMetadata(family: family, base: base, tuned: tuned, options: options, hasConv: modules.contains(where: \.isConv3x3),
                                          title: ((output as NSString).lastPathComponent as NSString).deletingPathExtension,
                                          textEncoder: keepText)
        let hash = try KohyaLoRAWriter.write(modules, to: output, dtype: options.precision, metadata: metadata, inputs: [basePath, tunedPath])
        return Report(output: output, family: family.rawValue, rule: options.rank.description, convRule: options.convRank?.description,
                      textEncoder: textEncoderNote, modules: results, skipped: skipped,
                      overallRelativeError: totalNorm > 0 ? (totalError / totalNorm).squareRoot() : 0,
                      overallKeptFraction: totalNorm > 0 ? (totalKept / totalNorm).squareRoot() : 1,
                      hash: String(hash.prefix(12)), seconds: Date().timeIntervalSince(start))
    }

    static func commonFamily(_ base: ModelFile, _ tuned: ModelFile) throws(ModelError) -> Family {
        let a = FamilyDetection.checkpoint(base), b = FamilyDetection.checkpoint(tuned)
        guard let family = a.family else {
            throw ModelError(.unsupported, "cannot tell whether the base is SD1.x, SD2.x or SDXL (\(a.label))", file: base.path)
        }
        guard b.family == family, (a.variant?.contains("refiner") ?? false) == (b.variant?.contains("refiner") ?? false) else {
            throw ModelError(.mismatch, "the base is \(a.label) but the tuned model is \(b.label): extraction needs two models of the same family",
                             file: tuned.path)
        }
        return family
    }

    /// Every targeted weight, present in both files with the same shape.
    static func plan(base: ModelFile, tuned: ModelFile, family: Family, includeConv: Bool) throws(ModelError) -> [Job] {
        let baseNames = Set(base.tensorNames), tunedNames = Set(tuned.tensorNames)
        var jobs: [Job] = []
        for target in KeyMap(.keyStructure(of: base, family: family)).targets where target.set == .attention || (includeConv && target.set == .resnet) {
            guard let baseKey = MergePlan.resolve(target.checkpointKey, in: baseNames) else {
                throw ModelError(.mismatch, "the base has no \(target.checkpointKey)", file: base.path)
            }
            guard let tunedKey = MergePlan.resolve(target.checkpointKey, in: tunedNames) else {
                throw ModelError(.mismatch, "the tuned model has no \(target.checkpointKey)", file: tuned.path)
            }
            let b = base[baseKey]!, t = tuned[tunedKey]!
            guard b.shape == t.shape else {
                throw ModelError(.mismatch, "\(baseKey) is \(b.shape) in the base but \(t.shape) in the tuned model", file: tuned.path)
            }
            let rows = target.rows(inPackedRows: b.shape.first ?? 0)
            var shape = b.shape
            if let rows { shape[0] = rows.count }
            jobs.append(Job(target: target, baseKey: baseKey, tunedKey: tunedKey, rows: rows, shape: shape))
        }
        return jobs
    }

    /// ΔW = W_tuned − W_base in fp32, flattened to [out, in·kh·kw].
    static func difference(_ job: Job, base: ModelFile, tuned: ModelFile) -> Matrix {
        let b = base[job.baseKey]!, t = tuned[job.tunedKey]!
        let columns = job.shape.dropFirst().reduce(1, *)
        var x = b.floats(), y = t.floats()
        // Read once: drop the mapped pages so memory stays at the working set,
        // not the size of the two checkpoints.
        b.file.advise(.dontNeed, offset: b.byteOffset, count: b.byteCount)
        t.file.advise(.dontNeed, offset: t.byteOffset, count: t.byteCount)
        if let rows = job.rows {
            x = Array(x[(rows.lowerBound * columns)..<(rows.upperBound * columns)])
            y = Array(y[(rows.lowerBound * columns)..<(rows.upperBound * columns)])
        }
        for i in y.indices { y[i] -= x[i] }
        return Matrix(rows: job.shape[0], cols: columns, values: y)
    }

    /// Truncated SVD of one ΔW into kohya factors; returns (error², kept², ‖ΔW‖²).
    static func factor(_ delta: Matrix, name: String, shape: [Int], rule: RankRule, options: Options) throws(ModelError)
        -> (LowRankModule, ModuleResult, (Double, Double, Double))
    {
        let energy = delta.squaredNorm
        let fullLength = min(delta.rows, delta.cols)
        let svdRank = min(rule.maxRank, fullLength)
        var svdOptions = options.svd
        if rule.needsFullSpectrum { svdOptions.exact = true }
        let result: TruncatedSVD.Result
        do {
            result = try TruncatedSVD.compute(delta, rank: rule.needsFullSpectrum ? fullLength : svdRank, options: svdOptions)
        } catch {
            throw ModelError.factoring(error, module: name)
        }
        let rank = rule.isDynamic ? rule.rank(singularValues: result.s, fullLength: fullLength, totalEnergy: energy) : svdRank
        var up = Matrix(zeros: delta.rows, rank)
        for r in 0..<delta.rows { for c in 0..<rank { up.values[r * rank + c] = result.u.values[r * result.u.cols + c] * result.s[c] } }
        var down = Matrix(rows: rank, cols: delta.cols, values: Array(result.vt.values[0..<(rank * delta.cols)]))
        if let q = options.clampQuantile, q < 1 { LinearAlgebra.clampFactors(&up, &down, quantile: q) }
        let kept = result.s.prefix(rank).reduce(0.0) { $0 + Double($1) * Double($1) }
        let error = residual(delta, energy: energy, up: up, down: down)
        let alpha = options.alpha ?? Double(rank)
        if alpha != Double(rank) {
            // Stored factors times alpha/rank must still give ΔŴ.
            let s = Float(Double(rank) / alpha)
            for i in up.values.indices { up.values[i] *= s }
        }
        let module = LowRankModule(name: name, up: up, down: down, alpha: alpha, weightShape: shape)
        let result_ = ModuleResult(name: name, rank: rank, keptFraction: energy > 0 ? min(1, (kept / energy).squareRoot()) : 1,
                                   relativeError: energy > 0 ? (error / energy).squareRoot() : 0, norm: energy.squareRoot(),
                                   method: result.exact ? "exact" : "randomized")
        return (module, result_, (error, kept, energy))
    }

    /// ‖A − U·D‖², formed densely (one more GEMM) so that small errors are
    /// not lost to cancellation, and summed in double.
    static func residual(_ a: Matrix, energy: Double, up: Matrix, down: Matrix) -> Double {
        var r = a
        guard up.cols > 0 else { return energy }
        up.values.withUnsafeBufferPointer { u in
            down.values.withUnsafeBufferPointer { d in
                r.values.withUnsafeMutableBufferPointer { out in
                    LinearAlgebra.gemmAccumulate(m: a.rows, n: a.cols, k: up.cols, alpha: -1, a: u.baseAddress!, lda: up.cols, transposeA: false,
                                                 b: d.baseAddress!, ldb: down.cols, transposeB: false, c: out.baseAddress!, ldc: a.cols)
                }
            }
        }
        return r.squaredNorm
    }

    /// sd-scripts' extraction metadata (plus ModelSpec and our settings).
    static func extractionMetadata(family: Family, base: ModelFile, tuned: ModelFile, options: Options, hasConv: Bool,
                                   title: String, textEncoder: Bool) -> Metadata {
        let dim = options.rank.isDynamic ? "Dynamic" : String(options.rank.maxRank)
        let alpha = options.rank.isDynamic ? "Dynamic" : String(format: "%.1f", options.alpha ?? Double(options.rank.maxRank))
        var args: [(String, JSON)] = []
        if let conv = options.convRank {
            args.append(("conv_dim", .string(conv.isDynamic ? "Dynamic" : String(conv.maxRank))))
            args.append(("conv_alpha", .string(conv.isDynamic ? "Dynamic" : String(format: "%.1f", options.alpha ?? Double(conv.maxRank)))))
        }
        var settings: [(String, JSON)] = [
            ("tool", .string("lora-extract \(LoRATools.version)")),
            ("base", .string((base.path as NSString).lastPathComponent)),
            ("tuned", .string((tuned.path as NSString).lastPathComponent)),
            ("rank", .string(options.rank.description)),
            ("clamp_quantile", options.clampQuantile.map { .number(formatNumber($0)) } ?? .null),
            ("min_diff", .number(formatNumber(options.minDiff))),
            ("text_encoder", .bool(textEncoder)),
        ]
        if let conv = options.convRank { settings.append(("conv_rank", .string(conv.description))) }
        var m = KohyaLoRAWriter.metadata(family: family, sources: [base.metadata, tuned.metadata], rank: 0, alpha: 0, convRank: nil, convAlpha: nil,
                                         title: title, mergedFrom: [],
                                         extra: [("lora_extract", JSON.object(settings).serialized())])
        m[.networkDim] = dim
        m[.networkAlpha] = alpha
        m[.networkArgs] = JSON.object(args).pythonDumps()
        m[.sdModelName] = (base.path as NSString).lastPathComponent
        m[.sdModelHash] = Hashing.legacyModelHash(base.file)
        return m
    }
}

extension LinearAlgebra {
    /// kohya's clamp: both factors to ± the quantile of their joint (signed) values.
    public static func clampFactors(_ up: inout Matrix, _ down: inout Matrix, quantile q: Double) {
        let high = quantile(up.values + down.values, q)
        let low = -high
        for i in up.values.indices { up.values[i] = min(max(up.values[i], low), high) }
        for i in down.values.indices { down.values[i] = min(max(down.values[i], low), high) }
    }
}
