import CKernels
import Dispatch
import Foundation

/// Value statistics of one tensor (floats only).
public struct TensorStats: Sendable, Codable, Equatable {
    public var count: Int
    public var nanCount: Int
    public var infCount: Int
    public var zeroCount: Int
    public var mean: Double
    /// Root mean square over finite values.
    public var rms: Double
    public var min: Float?
    public var max: Float?

    public var isAllZero: Bool { count > 0 && zeroCount == count }
}

/// One pass over tensor data for the health checks, in parallel chunks, near
/// memory bandwidth (the C kernel converts and accumulates 8 values at a time).
public enum TensorScan {
    static let chunkElements = 4 << 20

    /// Stats for each float tensor (nil for integer/bool tensors).
    /// `progress` receives bytes scanned.
    public static func scan(_ tensors: [TensorView], progress: (@Sendable (Int) -> Void)? = nil) -> [TensorStats?] {
        struct Job { let tensor: Int; let start: Int; let count: Int }
        var jobs: [Job] = []
        for (i, t) in tensors.enumerated() where t.dtype.isFloatingPoint && t.elementCount > 0 {
            var start = 0
            while start < t.elementCount {
                let n = min(chunkElements, t.elementCount - start)
                jobs.append(Job(tensor: i, start: start, count: n))
                start += n
            }
        }
        let frozenJobs = jobs
        // Scans never throw; the map's error path is unused.
        let partial: [lt_stats] = (try? Parallel.map(frozenJobs.count) { index -> lt_stats in
            let job = frozenJobs[index]
            let t = tensors[job.tensor]
            var stats = lt_stats()
            lt_stats_init(&stats)
            if t.isContiguous, let kind = kernelKind(t.dtype) {
                let size = t.dtype.size
                let bytes = t.rawBytes
                lt_stats_accumulate(&stats, bytes.baseAddress! + job.start * size, job.count, kind)
                // Private file pages can be dropped: this is a one-pass scan.
                t.file.advise(.dontNeed, offset: t.byteOffset + job.start * size, count: job.count * size)
                progress?(job.count * size)
            } else {
                // Strided or unusual dtypes: convert the whole tensor once (first chunk only).
                if job.start == 0 {
                    let values = t.floats()
                    values.withUnsafeBytes { raw in lt_stats_accumulate(&stats, raw.baseAddress, values.count, 0) }
                }
                progress?(job.count * t.dtype.size)
            }
            return stats
        }) ?? []
        var merged = [lt_stats?](repeating: nil, count: tensors.count)
        for (index, job) in frozenJobs.enumerated() {
            if merged[job.tensor] == nil {
                var s = lt_stats()
                lt_stats_init(&s)
                merged[job.tensor] = s
            }
            var s = merged[job.tensor]!
            var part = partial[index]
            lt_stats_merge(&s, &part)
            merged[job.tensor] = s
        }
        return merged.map { stats in
            guard let s = stats else { return nil }
            let finite = Double(s.count - s.nan_count - s.inf_count)
            return TensorStats(count: Int(s.count), nanCount: Int(s.nan_count), infCount: Int(s.inf_count),
                               zeroCount: Int(s.zero_count), mean: finite > 0 ? s.sum / finite : 0,
                               rms: finite > 0 ? (s.sum_squares / finite).squareRoot() : 0,
                               min: s.min.isFinite ? s.min : nil, max: s.max.isFinite ? s.max : nil)
        }
    }

    static func kernelKind(_ dtype: DType) -> Int32? {
        switch dtype {
        case .f32: return 0
        case .f16: return 1
        case .bf16: return 2
        default: return nil
        }
    }
}
