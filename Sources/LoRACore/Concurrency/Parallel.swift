import CKernels
import Dispatch
import Foundation
import LinearAlgebra

/// Work spread over the machine's cores: the one place the tools, the engine
/// and (next) training split work. Two shapes:
///
/// - `map`: independent jobs (modules, tensors, chunks), one result per index,
///   largest jobs first, BLAS single-threaded inside each job; the first error
///   stops new jobs and is thrown once the running ones end.
/// - `forRanges` / `forEach`: element-wise loops over disjoint parts of one
///   buffer, split in contiguous ranges when the work pays for the threads.
/// - `shards`: the top-level split of a step's batch, one part per core, each
///   part run serially on its core (nothing below it splits again).
public enum Parallel {
    public static let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Whether this thread runs `map` and `forRanges` itself, in order, rather
    /// than over the cores: set on the threads of `shards`, which already keep
    /// every core busy. Per thread, like `LinearAlgebra.threadsHere`.
    public static var serialHere: Bool {
        get { lt_serial_here() != 0 }
        set { lt_set_serial_here(newValue ? 1 : 0) }
    }

    /// `body(i)` for every i in `0..<count`, on all cores. `cost(i)` orders the
    /// jobs largest first so the cores finish together. Results are written
    /// through an unsafe buffer, one slot per index (each written by exactly
    /// one job), so no job waits on another. The error thrown is the one of
    /// the lowest-numbered failed job, whichever finished first.
    public static func map<T>(_ count: Int, cost: ((Int) -> Int)? = nil, _ body: (Int) throws(ModelError) -> T) throws(ModelError) -> [T] {
        guard count > 0 else { return [] }
        if serialHere { return try (0..<count).map { i throws(ModelError) in try body(i) } }
        let order = cost.map { cost in (0..<count).map { ($0, cost($0)) }.sorted { $0.1 > $1.1 }.map(\.0) } ?? Array(0..<count)
        let slots = UnsafeMutableBufferPointer<Result<T, ModelError>?>.allocate(capacity: count)
        slots.initialize(repeating: nil)
        defer { slots.deinitialize().deallocate() }
        let stop = StopFlag()
        withoutActuallyEscaping(body) { body in
            // Results, not typed throws, cross the thread boundary, and each value
            // gets its own box: unpacking one box holding a tuple of this generic
            // closure, the buffer and the order read garbage under Swift 6.3
            // (index out of range on `order`, seen in the extraction tests).
            let run: (Int) -> Result<T, ModelError> = { i in
                do {
                    return .success(try body(i))
                } catch let error as ModelError {
                    return .failure(error)
                } catch {
                    return .failure(ModelError(.invalid, "\(error)"))
                }
            }
            let job = UncheckedSendable(run), results = UncheckedSendable(slots)
            LinearAlgebra.withSingleThreadedBLAS {
                DispatchQueue.concurrentPerform(iterations: count) { n in
                    let run = job.value, slots = results.value
                    let i = order[n]
                    guard !stop.isSet else { return }
                    let result = onWorker(gemmThreads: 1) { run(i) }
                    if case .failure = result { stop.set() }
                    slots[i] = result
                }
            }
        }
        // In index order: the lowest failed job's error wins. A slot is empty only
        // when its job never started because another failed, so a failure follows.
        var values: [T] = []
        values.reserveCapacity(count)
        for slot in slots {
            switch slot {
            case .success(let value)?: values.append(value)
            case .failure(let error)?: throw error
            case nil: continue
            }
        }
        return values
    }

    /// Run `body` over `0..<count` in contiguous ranges, one per core, when the
    /// work is large enough to pay for the threads (`cost` ≈ operations per item).
    public static func forRanges(_ count: Int, cost: Int = 1, _ body: (Range<Int>) -> Void) {
        let parts = min(cores, count, max(1, count * cost / 32_768))
        if parts <= 1 || serialHere {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            // The callers hand raw pointers to disjoint ranges; the box tells the
            // compiler what the split guarantees.
            let box = UncheckedSendable(body), threads = LinearAlgebra.threadsHere
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let start = count * part / parts, end = count * (part + 1) / parts
                if start < end { onWorker(gemmThreads: threads) { box.value(start..<end) } }
            }
        }
    }

    /// `body(i)` for every i in `0..<count` at once, each on its own thread
    /// with single-threaded GEMMs and serial loops (`serialHere`), results in
    /// index order. For a model so small that splitting each GEMM and loop
    /// over the cores costs more than it gains (the tiny shapes model: a
    /// U-Net step on 8 latents of 8×8 spent a quarter of its time with the
    /// second core spinning at OpenMP barriers), its batch split into one
    /// shard per core. Each shard computes what it would compute alone.
    public static func shards<T>(_ count: Int, _ body: (Int) -> T) -> [T] {
        guard count > 1 else { return (0..<count).map(body) }
        let slots = UnsafeMutableBufferPointer<T?>.allocate(capacity: count)
        slots.initialize(repeating: nil)
        defer { slots.deinitialize().deallocate() }
        withoutActuallyEscaping(body) { body in
            let job = UncheckedSendable(body), results = UncheckedSendable(slots)
            // OpenBLAS's process-wide count to 1 as well (map does the same), should the routing send GEMMs there.
            LinearAlgebra.withSingleThreadedBLAS {
                DispatchQueue.concurrentPerform(iterations: count) { i in
                    results.value[i] = serially { job.value(i) }
                }
            }
        }
        return slots.map { $0! }
    }

    /// `body` on this thread alone: its loops and maps in order, its GEMMs
    /// single-threaded (a shard; or the few model calls a sharded step makes
    /// between its shards, whose GEMMs would otherwise round by the core count).
    public static func serially<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let serial = serialHere, threads = LinearAlgebra.threadsHere
        serialHere = true
        LinearAlgebra.threadsHere = 1
        defer {
            serialHere = serial
            LinearAlgebra.threadsHere = threads
        }
        return try body()
    }

    /// Run `body(i)` for every i, spread over the cores.
    public static func forEach(_ count: Int, cost: Int = 1, _ body: (Int) -> Void) {
        forRanges(count, cost: cost) { range in for i in range { body(i) } }
    }

    /// Runs a job on a pool thread with the GEMM thread count of the thread
    /// that started it (a pool thread may run one caller's job, then
    /// another's), restoring the thread's own after.
    private static func onWorker<T>(gemmThreads: Int?, _ job: () -> T) -> T {
        let own = LinearAlgebra.threadsHere
        LinearAlgebra.threadsHere = gemmThreads
        defer { LinearAlgebra.threadsHere = own }
        return job()
    }

    private final class StopFlag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
        func set() { lock.lock(); value = true; lock.unlock() }
    }
}

/// A value the compiler cannot prove thread-safe but whose users do not share
/// mutable state across threads (disjoint ranges of one buffer, one slot per job).
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
