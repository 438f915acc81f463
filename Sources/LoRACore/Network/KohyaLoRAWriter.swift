import Foundation
import LinearAlgebra

/// One module of a kohya-format LoRA to write: ΔW ≈ (alpha/rank)·up·down.
public struct LowRankModule: Sendable {
    /// kohya name (`lora_unet_…`, `lora_te_…`).
    public var name: String
    /// [out, r].
    public var up: Matrix
    /// [r, in·kh·kw].
    public var down: Matrix
    public var alpha: Double
    /// Shape of the weight it changes: [out, in] or [out, in, kh, kw].
    public var weightShape: [Int]

    public init(name: String, up: Matrix, down: Matrix, alpha: Double, weightShape: [Int]) {
        self.name = name
        self.up = up
        self.down = down
        self.alpha = alpha
        self.weightShape = weightShape
    }

    public var rank: Int { down.rows }
    public var isConv3x3: Bool { weightShape.count == 4 && (weightShape[2] > 1 || weightShape[3] > 1) }
}

/// Writes LoRAs the way sd-scripts does, so A1111, ComfyUI, diffusers and kohya
/// load them: `.lora_down.weight` [r, in(, kh, kw)], `.lora_up.weight`
/// [out, r(, 1, 1)], a scalar `.alpha`, `ss_*` and `modelspec.*` metadata, and
/// `sshs_model_hash` (the data hash A1111 shows) filled in after the data.
public enum KohyaLoRAWriter {
    public static func write(_ modules: [LowRankModule], to path: String, dtype: DType, metadata: Metadata,
                             inputs: [String] = []) throws(ModelError) -> String {
        var tensors: [NamedTensor] = []
        for m in modules {
            let conv = m.weightShape.count == 4
            let downShape = conv ? [m.rank] + Array(m.weightShape.dropFirst()) : [m.rank, m.down.cols]
            let upShape = conv ? [m.up.rows, m.rank, 1, 1] : [m.up.rows, m.rank]
            tensors.append(NamedTensor(name: m.name + ".lora_down.weight", shape: downShape, values: m.down.values))
            tensors.append(NamedTensor(name: m.name + ".lora_up.weight", shape: upShape, values: m.up.values))
            tensors.append(NamedTensor(name: m.name + ".alpha", shape: [], values: [Float(m.alpha)]))
        }
        return try write(tensors: tensors, to: path, dtype: dtype, metadata: metadata, inputs: inputs)
    }

    /// A tensor of a network file: its key, shape and values (written in `dtype`).
    public struct NamedTensor: Sendable {
        public var name: String
        public var shape: [Int]
        public var values: [Float]
        public init(name: String, shape: [Int], values: [Float]) {
            precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
            (self.name, self.shape, self.values) = (name, shape, values)
        }
    }

    /// Any network's tensors (LyCORIS's LoHa and LoKr keys too) in the given order, with the metadata and
    /// `sshs_model_hash` as above; nothing under `path` until complete.
    public static func write(tensors: [NamedTensor], to path: String, dtype: DType, metadata: Metadata,
                             inputs: [String] = []) throws(ModelError) -> String {
        let entries = tensors.map { SafeTensorsWriter.Entry(name: $0.name, dtype: dtype, shape: $0.shape) }
        let writer = try SafeTensorsWriter(path: path, metadata: metadata, entries: entries, inputs: inputs,
                                           reservedMetadata: [MetadataKey.sshsModelHash.rawValue])
        do {
            for t in tensors {
                try rethrowingModelError { try t.values.withUnsafeBufferPointer { try writer.write(name: t.name, floats: $0) } }
            }
            let hash = try writer.dataSHA256()
            try writer.patchMetadata(MetadataKey.sshsModelHash.rawValue, value: hash)
            try writer.finish()
            return hash
        } catch {
            writer.abandon()
            throw error
        }
    }

    /// sd-scripts' metadata for a LoRA built from others (minimum network
    /// metadata plus ModelSpec), with `extra` merged in last.
    public static func metadata(family: Family?, sources: [Metadata], rank: Int, alpha: Double, convRank: Int?, convAlpha: Double?,
                                title: String, mergedFrom: [String], extra: [(String, String)]) -> Metadata {
        var m = Metadata()
        m[.networkModule] = "networks.lora"
        m[.networkDim] = String(rank)
        m[.networkAlpha] = formatNumber(alpha)
        if let convRank {
            m[.networkArgs] = JSON.object([("conv_dim", .string(String(convRank))),
                                                ("conv_alpha", .string(formatNumber(convAlpha ?? Double(convRank))))]).pythonDumps()
        }
        // Base model: from the family, else from the sources' own metadata.
        if let family {
            m[.baseModelVersion] = family.kohyaBaseVersion
            m[.v2] = family == .sd2 ? "True" : "False"
        } else if let version = sources.compactMap({ $0[.baseModelVersion] }).first {
            m[.baseModelVersion] = version
            m[.v2] = sources.compactMap({ $0[.v2] }).first ?? "False"
        }
        if let version = sources.compactMap({ $0[.baseModelVersion] }).first, version.hasSuffix("_v") {
            m[.baseModelVersion] = version // keep v-parameterisation markers
        }
        m[.specSaiModelSpec] = "1.0.1"
        let architecture = family?.modelSpecArchitecture ?? sources.compactMap({ $0[.specArchitecture] }).first.map {
            $0.hasSuffix("/lora") ? String($0.dropLast(5)) : $0
        }
        if let architecture { m[.specArchitecture] = architecture + "/lora" }
        m[.specImplementation] = family == .sdxl ? "https://github.com/Stability-AI/generative-models" : "diffusers"
        m[.specTitle] = title
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        m[.specDate] = formatter.string(from: Date())
        if let resolution = sources.compactMap({ $0[.specResolution] }).first {
            m[.specResolution] = resolution
        } else if let family {
            m[.specResolution] = family == .sdxl ? "1024x1024" : "512x512"
        }
        if let prediction = sources.compactMap({ $0[.specPredictionType] }).first { m[.specPredictionType] = prediction }
        if !mergedFrom.isEmpty { m[.specMergedFrom] = mergedFrom.joined(separator: ", ") }
        for (k, v) in extra { m[k] = v }
        return m
    }
}
