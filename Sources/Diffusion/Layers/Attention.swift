import CKernels

/// Scaled dot-product attention, softmax(q·kᵀ·scale)·v, one head at a time
/// and in blocks of query rows, so the score matrix never exceeds
/// `scoreBudget` floats (a 4096-token self-attention would otherwise need
/// 64 MB per head). Heads are column slices of the [tokens, heads·d] inputs,
/// addressed through leading dimensions: no copies.
enum Attention {
    static let scoreBudget = 4 << 20

    struct Operand {
        let pointer: UnsafePointer<Float>
        /// Floats between consecutive tokens.
        let stride: Int
    }

    static func forward(q: Operand, k: Operand, v: Operand, into out: UnsafeMutablePointer<Float>, outStride: Int,
                        queries: Int, keys: Int, heads: Int, headDim: Int, causal: Bool = false) {
        let scale = 1 / Float(headDim).squareRoot()
        let chunk = max(1, min(queries, scoreBudget / max(keys, 1)))
        var scores = [Float](unsafeUninitializedCapacity: chunk * keys) { _, n in n = chunk * keys }
        scores.withUnsafeMutableBufferPointer { sp in
            let s = sp.baseAddress!
            for h in 0..<heads {
                let column = h * headDim
                var row = 0
                while row < queries {
                    let rows = min(chunk, queries - row)
                    gemm(transposeB: true, m: rows, n: keys, k: headDim, a: q.pointer + row * q.stride + column, lda: q.stride,
                         b: k.pointer + column, ldb: k.stride, c: s, ldc: keys)
                    let first = row
                    Parallel.forRanges(rows, cost: keys * 8) { range in
                        for r in range {
                            let line = s + r * keys
                            if causal {
                                let valid = min(keys, first + r + 1)
                                lt_softmax_rows(line, 1, valid, keys, scale)
                                if valid < keys { (line + valid).update(repeating: 0, count: keys - valid) }
                            } else {
                                lt_softmax_rows(line, 1, keys, keys, scale)
                            }
                        }
                    }
                    gemm(m: rows, n: headDim, k: keys, a: s, lda: keys, b: v.pointer + column, ldb: v.stride,
                         c: out + row * outStride + column, ldc: outStride)
                    row += rows
                }
            }
        }
    }
}
