import LoRACore
import CBLAS

/// C = alpha·op(A)·op(B) + beta·C on row-major float buffers (OpenBLAS sgemm).
/// Leading dimensions let callers multiply column slices in place (one head of
/// a [tokens, width] matrix, one part of a packed projection) without copies.
@inline(__always)
func gemm(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
          a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
          beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        // BLAS leaves C untouched when k = 0; the product is zero.
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
        return
    }
    cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Transpose a rows×cols block into cols×rows (blocked for the cache).
func transpose(_ source: UnsafePointer<Float>, rows: Int, cols: Int, into destination: UnsafeMutablePointer<Float>) {
    let tile = 32
    Parallel.forRanges((rows + tile - 1) / tile, cost: tile * cols) { tiles in
        for tr in tiles {
            let r0 = tr * tile, r1 = min(rows, r0 + tile)
            var c0 = 0
            while c0 < cols {
                let c1 = min(cols, c0 + tile)
                for r in r0..<r1 {
                    for c in c0..<c1 { destination[c * rows + r] = source[r * cols + c] }
                }
                c0 = c1
            }
        }
    }
}
