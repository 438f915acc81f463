import Dispatch
import Foundation
import LinearAlgebra

/// Bakes LoRAs into a checkpoint, streaming: the base is memory-mapped, each
/// output tensor is computed and written on its own (in parallel, at its
/// offset), and untouched tensors are copied byte for byte. Changed weights
/// are accumulated in fp32 and rounded once to the output precision.
public enum CheckpointBaker {
    public struct Options: Sendable {
        /// Output dtype for float tensors; nil keeps each tensor's own.
        public var precision: DType?
        public var allowUnmatched = false
        public var allowNaN = false
        public var overwrite = true
        public init(precision: DType? = nil, allowUnmatched: Bool = false, allowNaN: Bool = false) {
            self.precision = precision
            self.allowUnmatched = allowUnmatched
            self.allowNaN = allowNaN
        }
    }

    public struct Report: Sendable, Codable {
        public struct LoRAEntry: Sendable, Codable {
            public var file: String
            public var spec: String
            public var hash: String
            public var family: String
            public var modules: Int
            public var applied: Int
        }
        public var output: String
        public var base: String
        public var family: String
        public var loras: [LoRAEntry]
        public var changedTensors: Int
        public var copiedTensors: Int
        public var unmatched: [UnmatchedModule]
        /// LoRA tensors holding NaN or Inf that were merged anyway (--allow-nan), as "file: tensor".
        public var nonFiniteTensors: [String] = []
        /// Changed tensors written as float8 (the base's own dtype, no --precision): a LoRA's change
        /// mostly rounds away in 2–3 mantissa bits, so the tool says so.
        public var float8ChangedTensors = 0
        public var outputBytes: Int
        public var seconds: Double
    }

    /// Progress callbacks receive bytes processed (a negative value first: the total).
    public static func bake(base basePath: String, loras specs: [LoRASpec], output: String, options: Options = .init(),
                            progress: (@Sendable (Int) -> Void)? = nil) throws(ModelError) -> Report {
        let start = Date()
        try AtomicOutput.checkSafetensorsDestination(output, inputs: [basePath] + specs.map(\.path))
        let base = try ModelFile.open(basePath)
        var loras: [LoadedLoRA] = []
        for spec in specs { loras.append(try LoadedLoRA.open(spec)) }
        var nonFinite: [String] = []
        for lora in loras {
            if options.allowNaN {
                nonFinite += nonFiniteTensors(lora).map { (lora.path as NSString).lastPathComponent + ": " + $0 }
            } else {
                try refuseNonFinite(lora)
            }
        }
        let plan = try MergePlan.make(base: base, loras: loras, allowUnmatched: options.allowUnmatched)
        let hashes = loras.map { Hashing.hashes(of: $0.network.model) }

        // Output layout: every base tensor, in the requested precision.
        @Sendable func outputType(_ t: TensorView) -> DType {
            guard let precision = options.precision, t.dtype.isFloatingPoint else { return t.dtype }
            return precision
        }
        let entries = base.tensors.map { SafeTensorsWriter.Entry(name: $0.name, dtype: outputType($0), shape: $0.shape) }
        var metadata = base.metadata
        let record = mergeRecord(plan: plan, hashes: hashes, precision: options.precision)
        metadata["lora_merge"] = record.serialized()
        let names = specs.map { ($0.path as NSString).lastPathComponent }
        metadata[.specMergedFrom] = ([metadata[.specMergedFrom]].compactMap { $0 } + [(basePath as NSString).lastPathComponent] + names)
            .joined(separator: ", ")
        let writer = try SafeTensorsWriter(path: output, metadata: metadata, entries: entries,
                                           inputs: [basePath] + specs.map(\.path), overwrite: options.overwrite)
        progress?(-entries.reduce(0) { $0 + $1.byteCount })

        // Biggest tensors first so the cores finish together; the first failure stops the rest.
        do {
            _ = try Parallel.map(base.tensors.count, cost: { base.tensors[$0].byteCount }) { i throws(ModelError) in
                let tensor = base.tensors[i]
                defer {
                    tensor.file.advise(.dontNeed, offset: tensor.byteOffset, count: tensor.byteCount)
                    progress?(tensor.elementCount * outputType(tensor).size)
                }
                try writeTensor(tensor, plan: plan, outputType: outputType(tensor), writer: writer)
            }
        } catch {
            writer.abandon()
            throw error
        }
        try writer.finish()
        let changedNames = Set(plan.contributions.keys).union(plan.biasContributions.keys)
        let changed = changedNames.count
        let float8 = base.tensors.filter { changedNames.contains($0.name) && [.f8e4m3, .f8e5m2].contains(outputType($0)) }.count
        return Report(output: output, base: basePath, family: plan.family.rawValue,
                      loras: loras.enumerated().map { i, lora in
                          .init(file: lora.path, spec: lora.spec.summary, hash: hashes[i].a1111LoRAHash, family: lora.family.label,
                                modules: lora.network.modules.count,
                                applied: plan.contributions.values.reduce(0) { $0 + $1.filter { $0.lora == i }.count })
                      },
                      changedTensors: changed, copiedTensors: base.tensors.count - changed, unmatched: plan.unmatched,
                      nonFiniteTensors: nonFinite, float8ChangedTensors: float8,
                      outputBytes: writer.dataOffset + entries.reduce(0) { $0 + $1.byteCount },
                      seconds: Date().timeIntervalSince(start))
    }

    static func writeTensor(_ tensor: TensorView, plan: MergePlan, outputType: DType, writer: SafeTensorsWriter) throws(ModelError) {
        let weightContributions = plan.contributions[tensor.name] ?? []
        let biasContributions = plan.biasContributions[tensor.name] ?? []
        if weightContributions.isEmpty && biasContributions.isEmpty {
            if outputType == tensor.dtype && tensor.isContiguous {
                try writer.copy(name: tensor.name, from: tensor)
            } else {
                let values = tensor.floats()
                try rethrowingModelError { try values.withUnsafeBufferPointer { try writer.write(name: tensor.name, floats: $0) } }
            }
            return
        }
        let merged = try mergedValues(tensor, weightContributions: weightContributions, biasContributions: biasContributions,
                                      loraPaths: plan.loras.map(\.path))
        try rethrowingModelError { try merged.withUnsafeBufferPointer { try writer.write(name: tensor.name, floats: $0) } }
    }

    /// A tensor with its contributions applied in order, in fp32: what the
    /// baked checkpoint holds before rounding (the engine's run-time LoRA
    /// uses this too for modules it cannot run as side paths).
    public static func mergedValues(_ tensor: TensorView, weightContributions: [MergeContribution], biasContributions: [MergeContribution],
                                    loraPaths: [String]) throws(ModelError) -> [Float] {
        let rows = tensor.shape.first ?? 1
        let columns = tensor.shape.count > 1 ? tensor.elementCount / max(rows, 1) : tensor.elementCount
        var weight = Matrix(rows: tensor.shape.count > 1 ? rows : 1, cols: columns, values: tensor.floats())
        for c in weightContributions {
            do {
                if let range = c.rows {
                    // Packed q/k/v (OpenCLIP in_proj_weight): work on the row slice.
                    var slice = Matrix(rows: range.count, cols: weight.cols,
                                       values: Array(weight.values[(range.lowerBound * weight.cols)..<(range.upperBound * weight.cols)]))
                    try c.module.apply(to: &slice, multiplier: c.multiplier)
                    weight.values.replaceSubrange((range.lowerBound * weight.cols)..<(range.upperBound * weight.cols), with: slice.values)
                } else {
                    try c.module.apply(to: &weight, multiplier: c.multiplier)
                }
            } catch {
                throw error.inFile(loraPaths[c.lora])
            }
        }
        for c in biasContributions {
            guard let delta = c.module.biasDelta, delta.count == weight.values.count else { continue }
            let m = Float(c.multiplier)
            for i in delta.indices { weight.values[i] += m * delta[i] }
        }
        return weight.values
    }

    /// A LoRA with NaN or Inf would silently poison the checkpoint.
    public static func refuseNonFinite(_ lora: LoadedLoRA) throws(ModelError) {
        if let bad = nonFiniteTensors(lora).first {
            throw ModelError(.mismatch, "the LoRA contains NaN or Inf values; merging would break the checkpoint (pass --allow-nan to merge anyway)",
                             file: lora.path, key: bad)
        }
    }

    /// Names of the LoRA's tensors that hold NaN or Inf.
    public static func nonFiniteTensors(_ lora: LoadedLoRA) -> [String] {
        let tensors = lora.network.model.tensors
        return zip(tensors, TensorScan.scan(tensors)).filter { ($0.1?.nanCount ?? 0) + ($0.1?.infCount ?? 0) > 0 }.map(\.0.name)
    }

    /// What was merged, for the output's metadata (`lora_merge`).
    static func mergeRecord(plan: MergePlan, hashes: [FileHashes], precision: DType?) -> JSON {
        let loras: [JSON] = plan.loras.enumerated().map { i, lora in
            var fields: [(String, JSON)] = [
                ("file", .string((lora.path as NSString).lastPathComponent)),
                ("sha256", .string(hashes[i].sha256)),
                ("hash", .string(hashes[i].a1111LoRAHash)),
                ("ratio", .number(formatNumber(lora.spec.ratio))),
            ]
            if let te = lora.spec.textEncoderRatio { fields.append(("te", .number(formatNumber(te)))) }
            if let unet = lora.spec.unetRatio { fields.append(("unet", .number(formatNumber(unet)))) }
            if let lbw = lora.spec.blockWeights { fields.append(("lbw", .string(lbw.description))) }
            return .object(fields)
        }
        var fields: [(String, JSON)] = [
            ("tool", .string("lora-merge \(LoRATools.version)")),
            ("base", .object([("file", .string((plan.base.path as NSString).lastPathComponent)),
                              ("autov1", .string(Hashing.legacyModelHash(plan.base.file)))])),
            ("family", .string(plan.family.rawValue)),
            ("loras", .array(loras)),
        ]
        if let precision { fields.append(("precision", .string(precision.shortName))) }
        return .object(fields)
    }
}
