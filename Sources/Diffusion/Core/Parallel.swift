import Dispatch
import Foundation

/// Work split over the machine's cores for the element-wise parts of the
/// engine (BLAS threads its own GEMMs).
enum Parallel {
    static let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Run `body` over `0..<count` in contiguous ranges, one per core, when the
    /// work is large enough to pay for the threads (`cost` ≈ operations per item).
    static func forRanges(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
        let parts = min(cores, count, max(1, count * cost / 32_768))
        if parts <= 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            // The callers hand raw pointers to disjoint ranges; the box tells the
            // compiler what the split guarantees.
            let box = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let start = count * part / parts, end = count * (part + 1) / parts
                if start < end { box.value(start..<end) }
            }
        }
    }

    /// Run `body(i)` for every i, spread over the cores.
    static func forEach(_ count: Int, cost: Int = 1, _ body: (Int) -> Void) {
        forRanges(count, cost: cost) { range in for i in range { body(i) } }
    }
}

/// A value the compiler cannot prove thread-safe but whose users do not share
/// mutable state across threads (disjoint ranges of one buffer).
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

import CKernels

/// The engine allocates and frees activations of tens of megabytes at every
/// layer. glibc serves blocks that large with fresh mmaps and returns them on
/// free, so each allocation page-faults (and zero-fills) its memory again:
/// seconds of kernel time per sampling step. Keeping freed memory in the heap
/// lets the next layer reuse it.
public enum EngineAllocator {
    nonisolated(unsafe) private static var configured = false

    public static func configure() {
        guard !configured else { return }
        configured = true
        lt_keep_freed_memory(512 << 20, 1 << 30)
    }
}
