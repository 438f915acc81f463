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

    func testPrefetchMakesTheItemsInOrderOneAheadAndNonePastTheEnd() {
        let lock = NSLock()
        var made: [Int] = []
        var counter = 0  // a generator the closure draws from, as a scene stream is
        let items = Prefetch(count: 5) { index -> (Int, Int) in
            lock.lock(); made.append(index); lock.unlock()
            counter += 1
            return (index, counter)
        }
        for expected in 0..<5 {
            let (index, draw) = items.next()
            XCTAssertEqual(index, expected)
            XCTAssertEqual(draw, expected + 1, "made one at a time, in order")
            usleep(2_000)
            lock.lock(); let ahead = made.count; lock.unlock()
            XCTAssertLessThanOrEqual(ahead, min(5, expected + 2), "at most one item ahead")
        }
        items.finish()
        XCTAssertEqual(made, [0, 1, 2, 3, 4], "nothing made past the count")
        let abandoned = Prefetch(count: 100) { index -> Int in usleep(1_000); return index }
        XCTAssertEqual(abandoned.next(), 0)
        abandoned.finish()
    }
}
