import CEngineKernels
import LinearAlgebra
import LoRACore

extension Attention {
    /// softmax(q·kᵀ/√d)·v over contiguous q [items, queries, heads·d] and
    /// k, v [items, keys, heads·d] (the training passes keep q, k and v apart).
    static func forward(q: Tensor, k: Tensor, v: Tensor, items: Int, queries: Int, keys: Int, heads: Int, headDim: Int,
                        causal: Bool = false) -> Tensor {
        let c = heads * headDim
        var out = Tensor.uninitialized([items, queries, c])
        q.withPointer { qp in k.withPointer { kp in v.withPointer { vp in out.withMutablePointer { op in
            forward(q: .init(pointer: qp, stride: c, itemStride: queries * c), k: .init(pointer: kp, stride: c, itemStride: keys * c),
                    v: .init(pointer: vp, stride: c, itemStride: keys * c), into: op, outStride: c, outItemStride: queries * c,
                    items: items, queries: queries, keys: keys, heads: heads, headDim: headDim, causal: causal)
        } } } }
        return out
    }

    /// Gradients of q, k, v for out = softmax(q·kᵀ·s)·v, s = 1/√d, per (item,
    /// head), with the probabilities recomputed block by block of query rows
    /// (never stored: a 4096-token self-attention's would be 64 MB per head):
    ///   P  = softmax(q·kᵀ·s)                  [rows, keys]
    ///   dvᵀ += dOᵀ·P                          [d, keys]
    ///   dP = dO·vᵀ                            [rows, keys]
    ///   dS = P ⊙ (dP − rowsum(dP ⊙ P))·s
    ///   dq = dS·k                             [rows, d]
    ///   dkᵀ += qᵀ·dS                          [d, keys]
    /// dk and dv are accumulated transposed ([d, keys]) and turned around at
    /// the end: GEMMs with m = keys and k = rows ran at 25 GFLOP/s, these at 60
    /// (oneDNN, one thread, SD1.5 shapes, measured 2026-12-01).
    /// q: [items, queries, heads·d], k and v: [items, keys, heads·d], dO like q.
    /// Returns (dq, dk, dv) in the inputs' shapes. `rowsPerBlock` overrides
    /// the block size (tests use a few rows so that small cases span blocks).
    static func backward(q: Tensor, k: Tensor, v: Tensor, outputGradient dOut: Tensor, items: Int, queries: Int, keys: Int,
                         heads: Int, headDim: Int, causal: Bool = false, rowsPerBlock: Int? = nil) -> (q: Tensor, k: Tensor, v: Tensor) {
        precondition(q.count == items * queries * heads * headDim && k.count == items * keys * heads * headDim && v.count == k.count
                     && dOut.count == q.count)
        return EngineProfile.measure(.attentionBackward, flops: 8 * Double(items * heads) * Double(queries * keys * headDim)) {
            run(q: q, k: k, v: v, outputGradient: dOut, items: items, queries: queries, keys: keys, heads: heads, headDim: headDim, causal: causal,
                rowsPerBlock: rowsPerBlock)
        }
    }

    /// The fewest query rows a block of the backward holds, whatever the block budget: with 2¹⁸ values a
    /// block of 768²'s 9,216-key self-attention held 28 rows, and its GEMMs (m = rows) ran thin. Measured
    /// 2026-12-02 on the AMD host (SD1.5 step, attention backward): at 768², 28 rows 20.8 / 23.2 s, 64 rows
    /// 19.4 s, 128 rows 17.6 / 19.6 s, 256 rows 21.5 s; at 512² (4,096 keys: 64 rows by the budget) 128 rows
    /// changed nothing (3.37 / 3.53 s against 3.67 / 3.29).
    static let backwardMinimumRows = 128

    private static func run(q: Tensor, k: Tensor, v: Tensor, outputGradient dOut: Tensor, items: Int, queries: Int, keys: Int,
                            heads: Int, headDim: Int, causal: Bool, rowsPerBlock: Int?) -> (q: Tensor, k: Tensor, v: Tensor) {
        let width = heads * headDim
        var dq = Tensor(zeros: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
        let scale = 1 / Float(headDim).squareRoot()
        let chunk = rowsPerBlock ?? max(1, min(queries, max(backwardMinimumRows, blockBudget / max(keys, 1))))
        q.withPointer { qp in k.withPointer { kp in v.withPointer { vp in dOut.withPointer { op in
        dq.withMutablePointer { dqp in dk.withMutablePointer { dkp in dv.withMutablePointer { dvp in
            let outputs = UncheckedSendable((dqp, dkp, dvp))
            LinearAlgebra.withSingleThreadedBLAS {
                Parallel.forEach(items * heads, cost: 1 << 20) { index in
                    let item = index / heads, head = index % heads, column = head * headDim
                    let qh = qp + item * queries * width + column, oh = op + item * queries * width + column
                    let kh = kp + item * keys * width + column, vh = vp + item * keys * width + column
                    let dqh = outputs.value.0 + item * queries * width + column
                    let dkh = outputs.value.1 + item * keys * width + column, dvh = outputs.value.2 + item * keys * width + column
                    var p = [Float](repeating: 0, count: chunk * keys), dp = p
                    var dvT = [Float](repeating: 0, count: headDim * keys), dkT = dvT
                    p.withUnsafeMutableBufferPointer { pb in dp.withUnsafeMutableBufferPointer { db in
                    dvT.withUnsafeMutableBufferPointer { dvb in dkT.withUnsafeMutableBufferPointer { dkb in
                        let probabilities = pb.baseAddress!, dProbabilities = db.baseAddress!
                        let dValuesT = dvb.baseAddress!, dKeysT = dkb.baseAddress!
                        var row = 0
                        while row < queries {
                            let rows = min(chunk, queries - row)
                            LinearAlgebra.gemm(transposeB: true, m: rows, n: keys, k: headDim, a: qh + row * width, lda: width, b: kh, ldb: width,
                                               c: probabilities, ldc: keys)
                            for r in 0..<rows {
                                let line = probabilities + r * keys
                                let visible = causal ? min(keys, row + r + 1) : keys
                                lt_softmax_rows(line, 1, visible, keys, scale)
                                if visible < keys { (line + visible).update(repeating: 0, count: keys - visible) }
                            }
                            LinearAlgebra.gemm(transposeA: true, m: headDim, n: keys, k: rows, a: oh + row * width, lda: width, b: probabilities,
                                               ldb: keys, beta: 1, c: dValuesT, ldc: keys)
                            LinearAlgebra.gemm(transposeB: true, m: rows, n: keys, k: headDim, a: oh + row * width, lda: width, b: vh, ldb: width,
                                               c: dProbabilities, ldc: keys)
                            lt_softmax_backward_rows(probabilities, dProbabilities, rows, keys, keys, scale)
                            LinearAlgebra.gemm(m: rows, n: headDim, k: keys, a: dProbabilities, lda: keys, b: kh, ldb: width,
                                               c: dqh + row * width, ldc: width)
                            LinearAlgebra.gemm(transposeA: true, m: headDim, n: keys, k: rows, a: qh + row * width, lda: width, b: dProbabilities,
                                               ldb: keys, beta: 1, c: dKeysT, ldc: keys)
                            row += rows
                        }
                        for j in 0..<keys {
                            for c in 0..<headDim {
                                dvh[j * width + c] = dValuesT[c * keys + j]
                                dkh[j * width + c] = dKeysT[c * keys + j]
                            }
                        }
                    } } } }
                }
            }
        } } } } } } }
        return (dq, dk, dv)
    }
}
