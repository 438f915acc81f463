import LoRACore
import Foundation
import CEngineKernels
import LinearAlgebra

/// Scaled dot-product attention, softmax(q·kᵀ·scale)·v, computed per (item,
/// head) in tiles of query rows × keys with an online softmax, so that a tile's
/// scores stay in cache (a 4096-token self-attention would otherwise write and
/// re-read a 64 MB score matrix per head). Heads are column slices of [tokens, heads·d] inputs,
/// addressed through leading dimensions: no copies. The (item, head) pairs are
/// spread over the cores, each with single-threaded GEMMs: these GEMMs are
/// thin (k = head width), and splitting one across threads costs more than it
/// gains. On the AVX-512 and AVX2 kernel paths, long non-causal sequences skip the
/// GEMMs: the same schedule runs on register tiles (attention_fused_forward.h, and
/// the backward's attention_fused_backward.h), the scores never leaving registers.
/// Public for `lora-bench attention`, which times it on each kernel path.
public enum Attention {
    /// Query rows × keys of one tile of scores (512 KB, in L2) in the GEMM path, which runs flash-attention's
    /// online softmax over key tiles: a block of rows over all the keys, as before, was 1 MB and its GEMMs
    /// ran thin once keys were many (768²'s 9,216 keys left 28 rows). On the AMD host (2026-12-02, SD1.5
    /// training step at 768², the forward's 32 attentions, paired runs): 13.3 s before, 7.4 s after with
    /// 128×512 tiles. Once the exponentials ran on AVX-512, 128×1024 beat 128×512 on the Intel host
    /// (2026-12-03, `lora-bench attention --size 768`: a 9,216-token head 645–747 against 800–857 ms; 256×256,
    /// 256×512, 64×1024, 64×2048, 128×2048 and 256×1024 no better) and equalled it at 512² (Benchmarks/README.md).
    static let forwardTile = (rows: 128, keys: 1024)
    /// Below 256 keys the register tiles pad too much: the AVX-512 tiles' 64-key panels would waste 40% of their work on
    /// 77 text keys.
    static let fusedMinimumKeys = 256
    /// LT_NO_FUSED_ATTENTION turns the register tiles off, for comparisons.
    static let fusedAllowed = ProcessInfo.processInfo.environment["LT_NO_FUSED_ATTENTION"] == nil
    /// The register-tile kernels (attention_fused_forward.h, and the log-sum-exp the training forward keeps), in fp32:
    /// on the AVX-512 path whatever the GEMM library, as they beat oneDNN's GEMM tiles there (Intel host,
    /// Benchmarks/README.md). On the AVX2 path only where single-threaded GEMMs go to OpenBLAS (LORA_TOOLS_GEMM):
    /// with oneDNN's AVX2 kernels they only tied its GEMM tiles (Intel host with oneDNN capped at AVX2, 2026-12-04),
    /// and the AMD host has not measured them. There they replace the AVX2-only forward kernel that ran in that place.
    static var registerTilesEnabled: Bool {
        guard fusedAllowed && LinearAlgebra.routing.arithmetic == .fp32 else { return false }
        return lt_kernels_use_avx512() != 0 || (lt_kernels_use_avx2() != 0 && LinearAlgebra.routing.singleThreaded == .openBLAS)
    }
    /// The largest score matrix the VAE's single-head attention computes at once.
    static let scoreBudget = 4 << 20

    struct Operand {
        let pointer: UnsafePointer<Float>
        /// Floats between consecutive tokens.
        let stride: Int
        /// Floats between consecutive batch items.
        var itemStride = 0
    }

    /// `logSumExp`, when given, receives each query row's log-sum-exp of its scaled scores, [items, heads,
    /// queries] (the training forward keeps it for the backward; it turns the fused kernel off).
    static func forward(q: Operand, k: Operand, v: Operand, into out: UnsafeMutablePointer<Float>, outStride: Int, outItemStride: Int = 0,
                        items: Int = 1, queries: Int, keys: Int, heads: Int, headDim: Int, causal: Bool = false,
                        logSumExp: UnsafeMutablePointer<Float>? = nil) {
        EngineProfile.measure(.attention, flops: 4 * Double(items * heads) * Double(queries * keys * headDim)) {
            let tasks = items * heads
            let work = queries * keys * headDim
            let outBox = UncheckedSendable((out, logSumExp))
            func task(_ index: Int) {
                let item = index / heads, head = index % heads
                let column = head * headDim
                run(q: q.pointer + item * q.itemStride + column, qStride: q.stride,
                    k: k.pointer + item * k.itemStride + column, kStride: k.stride,
                    v: v.pointer + item * v.itemStride + column, vStride: v.stride,
                    out: outBox.value.0 + item * outItemStride + column, outStride: outStride,
                    logSumExp: outBox.value.1.map { $0 + index * queries },
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
                            logSumExp: UnsafeMutablePointer<Float>?, queries: Int, keys: Int, headDim: Int, causal: Bool) {
        let scale = 1 / Float(headDim).squareRoot()
        if !causal && registerTilesEnabled && keys >= fusedMinimumKeys {
            let size = lt_attention_fused_workspace(keys, headDim)
            var workspace = [Float](unsafeUninitializedCapacity: size) { _, n in n = size }
            let done = workspace.withUnsafeMutableBufferPointer {
                lt_attention_fused_head(q, qStride, k, kStride, v, vStride, out, outStride, queries, keys, headDim, scale, logSumExp,
                                        $0.baseAddress!)
            }
            if done != 0 { return }
        }
        let rowsPerBlock = min(queries, forwardTile.rows), keysPerTile = min(keys, forwardTile.keys)
        var scores = [Float](unsafeUninitializedCapacity: rowsPerBlock * keysPerTile) { _, n in n = rowsPerBlock * keysPerTile }
        var statistics = [Float](repeating: 0, count: 2 * rowsPerBlock)
        scores.withUnsafeMutableBufferPointer { sp in statistics.withUnsafeMutableBufferPointer { mp in
            let s = sp.baseAddress!, rowMax = mp.baseAddress!, rowSum = rowMax + rowsPerBlock
            var row = 0
            while row < queries {
                let rows = min(rowsPerBlock, queries - row), o = out + row * outStride
                rowMax.update(repeating: -.infinity, count: rows)
                rowSum.update(repeating: 0, count: rows)
                let end = causal ? min(keys, row + rows) : keys                                    // later keys are masked for every row
                var key = 0
                while key < end {
                    let cols = min(keysPerTile, end - key)
                    LinearAlgebra.gemm(transposeB: true, m: rows, n: cols, k: headDim, a: q + row * qStride, lda: qStride,
                                       b: k + key * kStride, ldb: kStride, c: s, ldc: cols)                       // S [rows, cols]
                    lt_attention_online_tile(s, rows, cols, cols, scale, rowMax, rowSum, o, outStride, headDim, causal ? 1 : 0, row - key)
                    LinearAlgebra.gemm(m: rows, n: headDim, k: cols, a: s, lda: cols, b: v + key * vStride, ldb: vStride, beta: 1,
                                       c: o, ldc: outStride)                                                      // O [rows, d]
                    key += cols
                }
                lt_attention_online_finish(o, rows, outStride, headDim, rowMax, rowSum, logSumExp.map { $0 + row })
                row += rows
            }
        } }
    }
}
