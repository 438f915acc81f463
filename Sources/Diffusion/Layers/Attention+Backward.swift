import CEngineKernels
import LinearAlgebra
import LoRACore

extension Attention {
    /// What the training forward keeps for the backward, as flash-attention's does: the output and each query
    /// row's log-sum-exp of its scaled scores, from which the backward rebuilds any tile of probabilities as
    /// exp(s·scale − lse) without a softmax over all the keys.
    public struct Saved: Sendable {
        public let output: Tensor      // softmax(q·kᵀ·s)·v  [items, queries, heads·d]
        public let logSumExp: Tensor   // per row            [items, heads, queries]
    }

    /// softmax(q·kᵀ/√d)·v over contiguous q [items, queries, heads·d] and k, v [items, keys, heads·d] (the
    /// training passes keep q, k and v apart), with the statistics the backward needs.
    public static func forwardSaving(q: Tensor, k: Tensor, v: Tensor, items: Int, queries: Int, keys: Int, heads: Int, headDim: Int,
                              causal: Bool = false) -> Saved {
        let c = heads * headDim
        var out = Tensor.uninitialized([items, queries, c]), lse = Tensor.uninitialized([items, heads, queries])
        q.withPointer { qp in k.withPointer { kp in v.withPointer { vp in out.withMutablePointer { op in lse.withMutablePointer { lp in
            forward(q: .init(pointer: qp, stride: c, itemStride: queries * c), k: .init(pointer: kp, stride: c, itemStride: keys * c),
                    v: .init(pointer: vp, stride: c, itemStride: keys * c), into: op, outStride: c, outItemStride: queries * c,
                    items: items, queries: queries, keys: keys, heads: heads, headDim: headDim, causal: causal, logSumExp: lp)
        } } } } }
        return Saved(output: out, logSumExp: lse)
    }

    /// Gradients of q, k, v for O = softmax(q·kᵀ·s)·v, s = 1/√d, per (item, head), tile by tile of
    /// (query rows × keys), so that a tile's probabilities and their gradient stay in cache (the whole
    /// matrix would be 340 MB per head at 768²; one block of query rows over all its keys, the previous
    /// scheme, was 4.7 MB and ran from L3). With lse and δ = rowsum(dO ⊙ O) per query row (Dao, 2022,
    /// FlashAttention, algorithm 4), for key tile j and query block i:
    ///   P    = exp(q_i·k_jᵀ·s − lse_i)          [rows, cols]
    ///   dv_jᵀ += dO_iᵀ·P                       [d, cols]
    ///   dP   = dO_i·v_jᵀ                        [rows, cols]
    ///   dS   = P ⊙ (dP − δ_i)·s
    ///   dq_i += dS·k_j                          [rows, d]
    ///   dk_jᵀ += q_iᵀ·dS                        [d, cols]
    /// Key tiles are the outer loop: a tile's dkᵀ and dvᵀ are accumulated transposed in cache and
    /// written once (GEMMs with m = keys and k = rows ran at 25 GFLOP/s, these at 60: oneDNN, one
    /// thread, SD1.5 shapes, measured 2026-12-01), while dq gathers every tile's share in place.
    /// On the AVX-512 and AVX2 kernel paths, long non-causal sequences (≥ `fusedMinimumKeys` keys) take the same schedule
    /// on register tiles instead (attention_fused_backward.h): S and dP straight from packed key panels, P and dS kept
    /// in L1 for the three updates, no GEMM calls.
    /// q: [items, queries, heads·d], k and v: [items, keys, heads·d], dO like q. Returns (dq, dk, dv) in
    /// the inputs' shapes. `rowsPerBlock` and `keysPerTile` override the tile (tests use a few rows and
    /// keys so that small cases span tiles).
    public static func backward(q: Tensor, k: Tensor, v: Tensor, saved: Saved, outputGradient dOut: Tensor, items: Int, queries: Int, keys: Int,
                         heads: Int, headDim: Int, causal: Bool = false, rowsPerBlock: Int? = nil,
                         keysPerTile: Int? = nil) -> (q: Tensor, k: Tensor, v: Tensor) {
        precondition(q.count == items * queries * heads * headDim && k.count == items * keys * heads * headDim && v.count == k.count
                     && dOut.count == q.count && saved.output.count == q.count && saved.logSumExp.count == items * heads * queries)
        return EngineProfile.measure(.attentionBackward, flops: 10 * Double(items * heads) * Double(queries * keys * headDim)) {
            let tile = (rows: max(1, min(queries, rowsPerBlock ?? backwardTile.rows)), keys: max(1, min(keys, keysPerTile ?? backwardTile.keys)))
            return run(q: q, k: k, v: v, saved: saved, outputGradient: dOut, items: items, queries: queries, keys: keys, heads: heads,
                       headDim: headDim, causal: causal, tile: tile)
        }
    }

    /// Query rows × keys of one tile of the backward (P and dP: 2 × 256 KB, in L2). On the AMD host (2026-12-02,
    /// SD1.5 training step at 768², the backward's 32 attentions, paired runs): 26.2 s with blocks of 128 rows
    /// over all 9,216 keys (4.7 MB each, from L3), 16.1 s with 128×256 tiles; 64×512, 256×256 and 128×512 were
    /// within that host's noise. On the Intel host with AVX-512 exponentials (2026-12-03, `lora-bench attention
    /// --size 768`) 128×512 beat 128×256: a 9,216-token head 1,206–1,369 against 1,680–1,850 ms; 256×256,
    /// 256×128, 64×512, 64×1024, 128×1024 and 256×512 no better (Benchmarks/README.md).
    static let backwardTile = (rows: 128, keys: 512)

    private static func run(q: Tensor, k: Tensor, v: Tensor, saved: Saved, outputGradient dOut: Tensor, items: Int, queries: Int, keys: Int,
                            heads: Int, headDim: Int, causal: Bool, tile: (rows: Int, keys: Int)) -> (q: Tensor, k: Tensor, v: Tensor) {
        let width = heads * headDim
        var dq = Tensor(zeros: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
        let scale = 1 / Float(headDim).squareRoot()
        q.withPointer { qp in k.withPointer { kp in v.withPointer { vp in dOut.withPointer { gp in
        saved.output.withPointer { op in saved.logSumExp.withPointer { lp in
        dq.withMutablePointer { dqp in dk.withMutablePointer { dkp in dv.withMutablePointer { dvp in
            let outputs = UncheckedSendable((dqp, dkp, dvp))
            LinearAlgebra.withSingleThreadedBLAS {
                Parallel.forEach(items * heads, cost: 1 << 20) { index in
                    let item = index / heads, head = index % heads, column = head * headDim
                    let rowsAt = item * queries * width + column, keysAt = item * keys * width + column
                    let qh = qp + rowsAt, gh = gp + rowsAt, oh = op + rowsAt, lse = lp + index * queries
                    let kh = kp + keysAt, vh = vp + keysAt
                    let dqh = outputs.value.0 + rowsAt, dkh = outputs.value.1 + keysAt, dvh = outputs.value.2 + keysAt
                    if !causal && registerTilesEnabled && keys >= fusedMinimumKeys {
                        let size = lt_attention_fused_backward_workspace(queries, keys, headDim)
                        var workspace = [Float](unsafeUninitializedCapacity: size) { _, n in n = size }
                        let done = workspace.withUnsafeMutableBufferPointer {
                            lt_attention_fused_backward_head(qh, width, kh, width, vh, width, gh, width, oh, width, lse, dqh, width, dkh, width,
                                                              dvh, width, queries, keys, headDim, scale, $0.baseAddress!)
                        }
                        if done != 0 { return }
                    }
                    var delta = [Float](repeating: 0, count: queries)
                    for i in 0..<queries {                                                   // δ_i = Σ_c dO·O
                        var sum: Float = 0
                        for c in 0..<headDim { sum += gh[i * width + c] * oh[i * width + c] }
                        delta[i] = sum
                    }
                    var p = [Float](repeating: 0, count: tile.rows * tile.keys), dp = p
                    var dvT = [Float](repeating: 0, count: headDim * tile.keys), dkT = dvT
                    delta.withUnsafeBufferPointer { db in p.withUnsafeMutableBufferPointer { pb in dp.withUnsafeMutableBufferPointer { dpb in
                    dvT.withUnsafeMutableBufferPointer { dvb in dkT.withUnsafeMutableBufferPointer { dkb in
                        let delta = db.baseAddress!, probabilities = pb.baseAddress!, dScores = dpb.baseAddress!
                        let dValuesT = dvb.baseAddress!, dKeysT = dkb.baseAddress!
                        var key = 0
                        while key < keys {
                            let cols = min(tile.keys, keys - key)
                            let kj = kh + key * width, vj = vh + key * width
                            dValuesT.update(repeating: 0, count: headDim * cols)
                            dKeysT.update(repeating: 0, count: headDim * cols)
                            var row = causal ? key / tile.rows * tile.rows : 0                // rows above the diagonal see no key here
                            while row < queries {
                                let rows = min(tile.rows, queries - row)
                                let qi = qh + row * width, gi = gh + row * width
                                LinearAlgebra.gemm(transposeB: true, m: rows, n: cols, k: headDim, a: qi, lda: width, b: kj, ldb: width,
                                                   c: probabilities, ldc: cols)                                       // S  [rows, cols]
                                lt_attention_probabilities(probabilities, rows, cols, cols, scale, lse + row, causal ? 1 : 0, row - key)
                                LinearAlgebra.gemm(transposeA: true, m: headDim, n: cols, k: rows, a: gi, lda: width, b: probabilities,
                                                   ldb: cols, beta: 1, c: dValuesT, ldc: cols)                       // dvᵀ [d, cols]
                                LinearAlgebra.gemm(transposeB: true, m: rows, n: cols, k: headDim, a: gi, lda: width, b: vj, ldb: width,
                                                   c: dScores, ldc: cols)                                             // dP [rows, cols]
                                lt_attention_score_gradient(probabilities, dScores, rows, cols, cols, delta + row, scale)
                                LinearAlgebra.gemm(m: rows, n: headDim, k: cols, a: dScores, lda: cols, b: kj, ldb: width, beta: 1,
                                                   c: dqh + row * width, ldc: width)                                  // dq [rows, d]
                                LinearAlgebra.gemm(transposeA: true, m: headDim, n: cols, k: rows, a: qi, lda: width, b: dScores,
                                                   ldb: cols, beta: 1, c: dKeysT, ldc: cols)                          // dkᵀ [d, cols]
                                row += rows
                            }
                            for j in 0..<cols {
                                for c in 0..<headDim {
                                    dvh[(key + j) * width + c] = dValuesT[c * cols + j]
                                    dkh[(key + j) * width + c] = dKeysT[c * cols + j]
                                }
                            }
                            key += cols
                        }
                    } } } } }
                }
            }
        } } } } } } } } }
        return (dq, dk, dv)
    }
}
