/// A dense row-major Float matrix: the plain buffer every routine here takes.
public struct Matrix: Sendable, Equatable {
    public var rows: Int
    public var cols: Int
    public var values: [Float]

    public init(rows: Int, cols: Int, values: [Float]) {
        precondition(values.count == rows * cols, "matrix \(rows)x\(cols) needs \(rows * cols) values, got \(values.count)")
        self.rows = rows
        self.cols = cols
        self.values = values
    }

    public init(zeros rows: Int, _ cols: Int) {
        self.init(rows: rows, cols: cols, values: [Float](repeating: 0, count: rows * cols))
    }

    public subscript(row: Int, col: Int) -> Float {
        get { values[row * cols + col] }
        set { values[row * cols + col] = newValue }
    }

    public var transposed: Matrix {
        var out = Matrix(zeros: cols, rows)
        for r in 0..<rows {
            for c in 0..<cols { out.values[c * rows + r] = values[r * cols + c] }
        }
        return out
    }

    /// Sum of squares in double precision (the squared Frobenius norm).
    public var squaredNorm: Double { LinearAlgebra.sumOfSquares(values) }
    public var frobeniusNorm: Double { squaredNorm.squareRoot() }

    /// LAPACK's own NaN checks are off (they cost a pass per call and give
    /// only "info -5"); each factorisation checks its input here instead.
    func requireFinite() throws(LinearAlgebraError) {
        // NaN and ±Inf make the sum NaN or Inf; finite values cannot overflow a Double sum of Floats squared.
        guard squaredNorm.isFinite else { throw .nonFinite }
    }
}

public enum LinearAlgebraError: Error, CustomStringConvertible, Sendable {
    case lapack(routine: String, info: Int32)
    case shape(String)
    /// The input holds NaN or Inf values.
    case nonFinite

    public var description: String {
        switch self {
        case let .lapack(routine, info): return "\(routine) failed (info \(info))"
        case let .shape(message): return message
        case .nonFinite: return "the matrix holds NaN or Inf values"
        }
    }
}
