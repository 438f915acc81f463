import Diffusion

/// Adafactor's factored moment (transformers' Adafactor; pytorch-optimizer's and came_pytorch's CAME use it twice):
/// a tensor of two or more dimensions is a stack of matrices over its last two; for each matrix it keeps moving
/// averages of the row means and the column means of a non-negative u (g² + ε), and estimates 1/√u at (i, j) as
/// rsqrt(row_i / mean(row)) · rsqrt(column_j) — O(rows + columns) state instead of O(rows · columns).
struct FactoredMoment {
    let batches: Int, rows: Int, columns: Int

    /// nil for a vector (or a scalar): those keep a full moment.
    init?(shape: [Int]) {
        guard shape.count >= 2 else { return nil }
        (rows, columns) = (shape[shape.count - 2], shape[shape.count - 1])
        batches = shape.dropLast(2).reduce(1, *)
    }

    var rowCount: Int { batches * rows }
    var columnCount: Int { batches * columns }

    /// row ← keep·row + mix·mean_j u;  column ← keep·column + mix·mean_i u (torch's `mul_(β).add_(u.mean(dim), alpha: 1 − β)`).
    func accumulate(_ u: UnsafeBufferPointer<Float>, row: inout [Float], column: inout [Float], keep: Float, mix: Float) {
        let (r, c) = (rows, columns)
        var sums = [Float](repeating: 0, count: c)
        for b in 0..<batches {
            for j in 0..<c { sums[j] = 0 }
            for i in 0..<r {
                var sum: Float = 0
                let line = (b * r + i) * c
                for j in 0..<c {
                    sum += u[line + j]
                    sums[j] += u[line + j]   // each column's sum in row order, as a strided loop over rows would add them
                }
                row[b * r + i] = row[b * r + i] * keep + (sum / Float(c)) * mix
            }
            for j in 0..<c { column[b * c + j] = column[b * c + j] * keep + (sums[j] / Float(r)) * mix }
        }
    }

    /// `accumulate` on the averages stored for `key` (zeros at first), stored back; returns them.
    func accumulate(_ u: UnsafeBufferPointer<Float>, key: String, rows: inout ParameterBuffers, columns: inout ParameterBuffers,
                    keep: Float, mix: Float) -> (row: [Float], column: [Float]) {
        var row = rows.take(key, count: rowCount), column = columns.take(key, count: columnCount)
        accumulate(u, row: &row, column: &column, keep: keep, mix: mix)
        (rows.values[key], columns.values[key]) = (row, column)
        return (row, column)
    }

    /// out[i, j] = rsqrt(row_i / mean(row)) · rsqrt(column_j) · x[i, j] (the estimate of 1/√u, times x).
    func inverseRoot(row: [Float], column: [Float], times x: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>) {
        let (r, c) = (rows, columns)
        var columnFactors = [Float](repeating: 0, count: c)
        for b in 0..<batches {
            let rowMean = (0..<r).reduce(Float(0)) { $0 + row[b * r + $1] } / Float(r)
            for j in 0..<c { columnFactors[j] = 1 / column[b * c + j].squareRoot() }
            for i in 0..<r {
                let rowFactor = 1 / (row[b * r + i] / rowMean).squareRoot(), line = (b * r + i) * c
                for j in 0..<c { out[line + j] = rowFactor * columnFactors[j] * x[line + j] }
            }
        }
    }
}

extension Array where Element == Float {
    /// √(mean of squares), summed in double (torch's `x.norm(2) / √n` and Adafactor's `_rms`, to float rounding).
    var rootMeanSquare: Double { (reduce(0.0) { $0 + Double($1) * Double($1) } / Double(count)).squareRoot() }
}
