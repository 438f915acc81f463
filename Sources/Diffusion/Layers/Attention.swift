import LoRACore
import Foundation
import CEngineKernels
import LinearAlgebra

/// Scaled dot-product attention, softmax(q·kᵀ·scale)·v, computed per (item,
/// head) in blocks of query rows so that a block's scores stay in cache (a
/// 4096-token self-attention would otherwise write and re-read a 64 MB score
/// matrix per head). Heads are column slices of [tokens, heads·d] inputs,
/// addressed through leading dimensions: no copies. The (item, head) pairs are
/// spread over the cores, each with single-threaded GEMMs: these GEMMs are
/// thin (k = head width), and splitting one across threads costs more than it
/// gains.
enum Attention {
    /// Floats in one block of scores (1 MB).
    static let blockBudget = 1 << 18
    /// The fused kernel (online softmax, scores never leave registers/L1) beats
    /// OpenBLAS GEMMs + softmax for long key sequences, but not oneDNN's
    /// (its small-k kernels are faster: Benchmarks/README.md), so it runs only
    /// when single-threaded GEMMs go to OpenBLAS. With 77 text keys padded to
    /// its 64-key blocks it would waste 40% of its work, hence the minimum.
    /// LT_NO_FUSED_ATTENTION turns it off for comparisons.
    static let fusedAllowed = ProcessInfo.processInfo.environment["LT_NO_FUSED_ATTENTION"] == nil
    static var fusedEnabled: Bool {
        fusedAllowed && LinearAlgebra.routing.singleThreaded == .openBLAS && LinearAlgebra.routing.arithmetic == .fp32
    }
    static let fusedMinimumKeys = 256
    /// The largest score matrix the VAE's single-head attention computes at once.
    static let scoreBudget = 4 << 20

    struct Operand {
        let pointer: UnsafePointer<Float>
        /// Floats between consecutive tokens.
        let stride: Int
        /// Floats between consecutive batch items.
        var itemStride = 0
    }

    static func forward(q: Operand, k: Operand, v: Operand, into out: UnsafeMutablePointer<Float>, outStride: Int, outItemStride: Int = 0,
                        items: Int = 1, queries: Int, keys: Int, heads: Int, headDim: Int, causal: Bool = false) {
        EngineProfile.measure(.attention, flops: 4 * Double(items * heads) * Double(queries * keys * headDim)) {
            let tasks = items * heads
            let work = queries * keys * headDim
            let outBox = UncheckedSendable(out)
            func task(_ index: Int) {
                let item = index / heads, head = index % heads
                let column = head * headDim
                run(q: q.pointer + item * q.itemStride + column, qStride: q.stride,
                    k: k.pointer + item * k.itemStride + column, kStride: k.stride,
                    v: v.pointer + item * v.itemStride + column, vStride: v.stride,
                    out: outBox.value + item * outItemStride + column, outStride: outStride,
                    queries: queries, keys: keys, headDim: headDim, causal: causal)
            }
            if tasks >= 2 && work >= 1 << 20 && Parallel.cores > 1 {
                LinearAlgebra.withSingleThreadedBLAS {
                    Parallel.forEach(tasks, cost: 1 << 20) { task($0) }
                }
            } else {
                for index in 0..<tasks { task(index) }
            }
        }
    }

    /// One head of one item.
    private static func run(q: UnsafePointer<Float>, qStride: Int, k: UnsafePointer<Float>, kStride: Int,
                            v: UnsafePointer<Float>, vStride: Int, out: UnsafeMutablePointer<Float>, outStride: Int,
                            queries: Int, keys: Int, headDim: Int, causal: Bool) {
        let scale = 1 / Float(headDim).squareRoot()
        if !causal && fusedEnabled && keys >= fusedMinimumKeys {
            let size = lt_attention_workspace(keys, headDim)
            var workspace = [Float](unsafeUninitializedCapacity: size) { _, n in n = size }
            let done = workspace.withUnsafeMutableBufferPointer {
                lt_attention_head(q, qStride, k, kStride, v, vStride, out, outStride, queries, keys, headDim, scale, $0.baseAddress!)
            }
            if done != 0 { return }
        }
        let chunk = max(1, min(queries, max(16, blockBudget / max(keys, 1))))
        var scores = [Float](unsafeUninitializedCapacity: chunk * keys) { _, n in n = chunk * keys }
        scores.withUnsafeMutableBufferPointer { sp in
            let s = sp.baseAddress!
            var row = 0
            while row < queries {
                let rows = min(chunk, queries - row)
                LinearAlgebra.gemm(transposeB: true, m: rows, n: keys, k: headDim, a: q + row * qStride, lda: qStride, b: k, ldb: kStride, c: s, ldc: keys)
                for r in 0..<rows {
                    let line = s + r * keys
                    if causal {
                        let valid = min(keys, row + r + 1)
                        lt_softmax_rows(line, 1, valid, keys, scale)
                        if valid < keys { (line + valid).update(repeating: 0, count: keys - valid) }
                    } else {
                        lt_softmax_rows(line, 1, keys, keys, scale)
                    }
                }
                LinearAlgebra.gemm(m: rows, n: headDim, k: keys, a: s, lda: keys, b: v, ldb: vStride, c: out + row * outStride, ldc: outStride)
                row += rows
            }
        }
    }
}
