import LinearAlgebra
import LoRACore
/// A linear layer y = x·Wᵀ + b over rows of a [tokens, in] matrix.
///
/// A layer may pack several checkpoint weights along its output rows (q, k and
/// v of an attention block) so that one GEMM computes them all; each part keeps
/// its own checkpoint key, which is how LoRA modules find it.
public struct Linear: Sendable {
    public struct Part: Sendable {
        /// Checkpoint key of the weight (`….to_q.weight`, `….in_proj_weight`).
        public let key: String
        public let biasKey: String?
        public let rows: Range<Int>

        public init(key: String, biasKey: String?, rows: Range<Int>) {
            self.key = key
            self.biasKey = biasKey
            self.rows = rows
        }
    }

    public let inFeatures: Int
    public let outFeatures: Int
    public let parts: [Part]
    /// [out, in]
    public var store: WeightStore
    public var bias: [Float]?
    /// The weight as float32 (widened if stored as fp16).
    public var weight: [Float] { store.floats() }

    public init(inFeatures: Int, outFeatures: Int, weight: [Float], bias: [Float]?, parts: [Part]) {
        self.init(inFeatures: inFeatures, outFeatures: outFeatures, store: WeightStore(weight), bias: bias, parts: parts)
    }

    public init(inFeatures: Int, outFeatures: Int, store: WeightStore, bias: [Float]?, parts: [Part]) {
        precondition(store.count == inFeatures * outFeatures)
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.store = store
        self.bias = bias
        self.parts = parts
    }

    /// Load `prefix.weight` (and `prefix.bias` when `bias`) from a checkpoint.
    public init(_ weights: Weights, _ prefix: String, in inFeatures: Int, out outFeatures: Int, bias: Bool = true) throws(ModelError) {
        try self.init(weights, keys: [prefix + ".weight"], biasKeys: bias ? [prefix + ".bias"] : nil, in: inFeatures, outs: [outFeatures])
    }

    /// Several weights packed into one layer, in order.
    public init(_ weights: Weights, keys: [String], biasKeys: [String]?, in inFeatures: Int, outs: [Int]) throws(ModelError) {
        var w: [WeightStore] = []
        var b: [Float]? = biasKeys == nil ? nil : []
        var parts: [Part] = []
        var row = 0
        for (i, key) in keys.enumerated() {
            w.append(try weights.loadStore(key, shape: [outs[i], inFeatures]))
            if let biasKeys { b! += try weights.load(biasKeys[i], shape: [outs[i]]) }
            parts.append(Part(key: key, biasKey: biasKeys?[i], rows: row..<(row + outs[i])))
            row += outs[i]
        }
        self.init(inFeatures: inFeatures, outFeatures: row, store: w.count == 1 ? w[0] : WeightStore.concatenate(w), bias: b, parts: parts)
    }

    /// An OpenCLIP packed projection: one key whose rows are q, k and v.
    public init(packed weights: Weights, weightKey: String, biasKey: String, in inFeatures: Int, out outFeatures: Int) throws(ModelError) {
        let w = try weights.loadStore(weightKey, shape: [outFeatures, inFeatures])
        let b = try weights.load(biasKey, shape: [outFeatures])
        self.init(inFeatures: inFeatures, outFeatures: outFeatures, store: w, bias: b,
                  parts: [Part(key: weightKey, biasKey: biasKey, rows: 0..<outFeatures)])
    }

    /// y[rows, out] = x[rows, in]·Wᵀ + b, plus any LoRA side paths.
    public func forward(_ x: Tensor, adapters: AdapterSet = .empty) -> Tensor {
        let rows = x.count / inFeatures
        var y = Tensor.uninitialized(Array(x.shape.dropLast()) + [outFeatures])
        x.withPointer { xp in y.withMutablePointer { yp in forward(xp, rows: rows, into: yp, adapters: adapters) } }
        return y
    }

    public func forward(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, adapters: AdapterSet) {
        EngineProfile.measure(.linear, flops: 2 * Double(rows * inFeatures * outFeatures)) { run(x, rows: rows, into: y, adapters: adapters) }
    }

    private func run(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, adapters: AdapterSet) {
        let (w, b) = effectiveParameters(adapters)
        w.withUnsafeBufferPointer { wp in
            if let b {
                for r in 0..<rows { (y + r * outFeatures).update(from: b, count: outFeatures) }
            }
            LinearAlgebra.gemm(transposeB: true, m: rows, n: outFeatures, k: inFeatures, a: x, lda: inFeatures,
                 b: wp.baseAddress!, ldb: inFeatures, beta: b == nil ? 0 : 1, c: y, ldc: outFeatures)
        }
        guard !adapters.lowRank.isEmpty else { return }
        for part in parts {
            for adapter in adapters.lowRank[part.key] ?? [] {
                let outRows = adapter.rows.map { part.rows.lowerBound + $0.lowerBound } ?? part.rows.lowerBound
                let count = adapter.rows?.count ?? part.rows.count
                applyLowRank(adapter, x: x, rows: rows, into: y + outRows, outCount: count)
            }
        }
    }

    /// y += s·(x·downᵀ)·upᵀ, two thin GEMMs through a [rows, rank] buffer.
    func applyLowRank(_ a: AdapterSet.LowRank, x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, outCount: Int) {
        var hidden = [Float](repeating: 0, count: rows * a.rank)
        hidden.withUnsafeMutableBufferPointer { h in
            a.down.withUnsafeBufferPointer { d in
                LinearAlgebra.gemm(transposeB: true, m: rows, n: a.rank, k: inFeatures, a: x, lda: inFeatures, b: d.baseAddress!, ldb: inFeatures,
                     c: h.baseAddress!, ldc: a.rank)
            }
            a.up.withUnsafeBufferPointer { u in
                LinearAlgebra.gemm(transposeB: true, m: rows, n: outCount, k: a.rank, alpha: a.scale, a: h.baseAddress!, lda: a.rank,
                     b: u.baseAddress!, ldb: a.rank, beta: 1, c: y, ldc: outFeatures)
            }
        }
    }

    /// The weight and bias with any replacements from folded LoRA modules.
    func effectiveParameters(_ adapters: AdapterSet) -> ([Float], [Float]?) {
        guard !adapters.replacements.isEmpty else { return (store.floats(), bias) }
        var w = store.floats(), b = bias
        for part in parts {
            if let replacement = adapters.replacements[part.key], replacement.count == part.rows.count * inFeatures {
                w.replaceSubrange((part.rows.lowerBound * inFeatures)..<(part.rows.upperBound * inFeatures), with: replacement)
            }
            if let key = part.biasKey, let replacement = adapters.replacements[key], replacement.count == part.rows.count, b != nil {
                b!.replaceSubrange(part.rows, with: replacement)
            }
        }
        return (w, b)
    }
}
