import LoRACore

/// Backward passes (training), one `Layer+Backward.swift` beside each
/// layer's forward. The rule, stated once:
///
/// - a backward **returns** the gradient of its input as a new tensor (`=`);
/// - it **adds** the gradients of its parameters into `Gradient` buffers the
///   caller owns (`+=`), so micro-batch accumulation and weights used twice
///   need no extra code; a frozen parameter gets no buffer (`nil`) and its
///   weight-gradient GEMM is skipped (LoRA training: every U-Net and CLIP
///   weight is frozen, only the network's factors get buffers);
/// - what a backward needs from the forward is the layer's input (and the
///   output where named); statistics that are cheap to recompute (norm means,
///   attention probabilities) are recomputed, never stored.
///
/// Every backward is checked against finite differences of a double-precision
/// reference forward (Tests/DiffusionTests/BackwardTests.swift).
public final class Gradient: @unchecked Sendable {
    public var values: [Float]

    public init(count: Int) {
        values = [Float](repeating: 0, count: count)
    }

    public func zero() {
        values.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    func withPointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try values.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }
}

/// Adds the sum over rows of a [rows, width] matrix into a bias gradient.
func accumulateRowSums(_ dy: UnsafePointer<Float>, rows: Int, width: Int, into gradient: Gradient) {
    gradient.withPointer { g in
        var sums = [Double](repeating: 0, count: width)
        for r in 0..<rows {
            let row = dy + r * width
            for j in 0..<width { sums[j] += Double(row[j]) }
        }
        for j in 0..<width { g[j] += Float(sums[j]) }
    }
}
