import Dispatch
import Foundation

/// Where the engine's time goes, by kind of layer (for benchmarks and
/// `--verbose` runs). Off unless enabled; when on, each layer call adds its
/// wall time to its category, and the matrix layers their arithmetic: the
/// floating-point operations of the direct algorithm (2 per multiply-add; a
/// Winograd convolution counts what im2col would do, as torch's profiler
/// does), so GFLOP/s compare with other engines and with sgemm's peak.
public enum EngineProfile {
    public enum Category: String, CaseIterable, Sendable {
        case convolution = "conv (Winograd, im2col + GEMM)"
        case im2col = "  of which im2col"
        case linear = "linear (GEMM)"
        case attention = "attention (GEMM + softmax)"
        case normalization = "group/layer norm"
        case elementwise = "element-wise, copies"
        case weightDelta = "LyCORIS ΔW into the weight"
        case convolutionBackward = "conv backward"
        case linearBackward = "linear backward"
        case attentionBackward = "attention backward (recomputed)"
        case normalizationBackward = "norm backward"
        case elementwiseBackward = "activation backward"
        case weightDeltaBackward = "LyCORIS ΔW again + gradients"

        /// Time already counted in an enclosing category (kept out of totals).
        public var isBreakdown: Bool { self == .im2col }
    }

    nonisolated(unsafe) public static var enabled = false
    private static let lock = NSLock()
    nonisolated(unsafe) private static var totals: [Category: Double] = [:]
    nonisolated(unsafe) private static var counts: [Category: Int] = [:]
    nonisolated(unsafe) private static var operations: [Category: Double] = [:]

    @inline(__always)
    static func measure<T>(_ category: Category, flops: @autoclosure () -> Double = 0, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            lock.lock()
            totals[category, default: 0] += elapsed
            counts[category, default: 0] += 1
            operations[category, default: 0] += flops()
            lock.unlock()
        }
        return try body()
    }

    public static func reset() {
        lock.lock()
        totals = [:]
        counts = [:]
        operations = [:]
        lock.unlock()
    }

    /// Seconds, call counts and floating-point operations per category since the last reset.
    public static func snapshot() -> [(category: Category, seconds: Double, calls: Int, flops: Double)] {
        lock.lock()
        defer { lock.unlock() }
        return Category.allCases.map { ($0, totals[$0] ?? 0, counts[$0] ?? 0, operations[$0] ?? 0) }
    }
}
