import Foundation
import LinearAlgebra
import LoRACore
import XCTest

/// The one helper every parallel job list goes through.
final class ParallelTests: XCTestCase {
    func testMapKeepsIndexOrderAndRunsLargestFirst() throws {
        let order = NSMutableArray()
        let lock = NSLock()
        let squares = try Parallel.map(100, cost: { $0 }) { i throws(ModelError) -> Int in
            lock.lock(); order.add(i); lock.unlock()
            return i * i
        }
        XCTAssertEqual(squares, (0..<100).map { $0 * $0 })
        // Jobs are handed out largest first: the first one started is among the largest.
        XCTAssertGreaterThanOrEqual(order.firstObject as? Int ?? -1, 100 - Parallel.cores)
        XCTAssertEqual(try Parallel.map(0) { _ throws(ModelError) in 1 }, [])
    }

    func testTheLowestFailedJobsErrorIsThrownAndLaterJobsDoNotStart() {
        let started = NSCountedSet()
        let lock = NSLock()
        XCTAssertThrowsError(try Parallel.map(10_000) { i throws(ModelError) -> Int in
            lock.lock(); started.add(i); lock.unlock()
            if i == 7 || i == 9 { throw ModelError(.invalid, "job \(i)") }
            usleep(50)
            return i
        }) { error in
            XCTAssertEqual((error as? ModelError)?.message, "job 7", "the lowest failed index, whichever finished first")
        }
        XCTAssertLessThan(started.count, 10_000, "no new job starts after a failure")
    }

    /// A single-threaded scope is the calling thread's and its jobs': another thread meanwhile
    /// keeps its own count (a batch prepared beside a training step computes what it computes alone).
    func testSingleThreadedScopesArePerThreadAndReachTheirJobs() {
        XCTAssertNil(LinearAlgebra.threadsHere)
        let seen = NSMutableArray(), lock = NSLock()
        let inside = DispatchSemaphore(value: 0), checked = DispatchSemaphore(value: 0)
        let shared = UncheckedSendable(seen)
        let other = Thread {
            inside.wait()
            lock.lock(); shared.value.add(LinearAlgebra.threadsHere ?? 0); lock.unlock()
            checked.signal()
        }
        other.start()
        LinearAlgebra.withSingleThreadedBLAS {
            XCTAssertEqual(LinearAlgebra.threadsHere, 1)
            Parallel.forRanges(Parallel.cores * 4, cost: 1 << 20) { _ in
                lock.lock(); seen.add(LinearAlgebra.threadsHere ?? 0); lock.unlock()
            }
            inside.signal()
            checked.wait()
        }
        XCTAssertNil(LinearAlgebra.threadsHere, "restored after the scope")
        let counts = seen.compactMap { $0 as? Int }
        XCTAssertEqual(counts.last, 0, "the other thread saw no scope")
        XCTAssertEqual(Set(counts.dropLast()), [1], "every job ran single-threaded")
        // Outside any scope, jobs see none, and a pool thread does not keep an earlier job's scope.
        var outside: [Int] = []
        Parallel.forRanges(Parallel.cores * 4, cost: 1 << 20) { _ in lock.lock(); outside.append(LinearAlgebra.threadsHere ?? 0); lock.unlock() }
        XCTAssertEqual(Set(outside), [0])
        _ = try? Parallel.map(8) { _ throws(ModelError) in XCTAssertEqual(LinearAlgebra.threadsHere, 1) }
        XCTAssertNil(LinearAlgebra.threadsHere)
    }

    func testShardsRunSeriallyInsideWithSingleThreadedGEMMsAndRestoreTheThread() throws {
        let lock = NSLock()
        var seen: [(shard: Int, serial: Bool, gemm: Int?, loopThreads: Set<UInt>, mapOrder: [Int])] = []
        let results = Parallel.shards(3) { shard -> Int in
            // A loop and a map inside a shard run on the shard's own thread, in order.
            var threads = Set<UInt>(), order: [Int] = []
            Parallel.forRanges(1 << 12, cost: 1 << 20) { _ in threads.insert(UInt(pthread_self())) }
            _ = try? Parallel.map(6) { i throws(ModelError) in order.append(i) }
            lock.lock()
            seen.append((shard, Parallel.serialHere, LinearAlgebra.threadsHere, threads, order))
            lock.unlock()
            return shard * 10
        }
        XCTAssertEqual(results, [0, 10, 20], "results in shard order")
        XCTAssertEqual(seen.map(\.shard).sorted(), [0, 1, 2])
        for shard in seen {
            XCTAssertTrue(shard.serial)
            XCTAssertEqual(shard.gemm, 1, "single-threaded GEMMs in a shard")
            XCTAssertEqual(shard.loopThreads.count, 1, "a loop inside a shard is not split")
            XCTAssertEqual(shard.mapOrder, Array(0..<6), "a map inside a shard runs its jobs in order")
        }
        XCTAssertFalse(Parallel.serialHere, "restored on the calling thread")
        XCTAssertNil(LinearAlgebra.threadsHere)
        XCTAssertEqual(Parallel.shards(1) { $0 + 7 }, [7], "one shard runs on the caller")
    }
}
