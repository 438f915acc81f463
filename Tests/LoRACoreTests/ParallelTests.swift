import Foundation
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
}
