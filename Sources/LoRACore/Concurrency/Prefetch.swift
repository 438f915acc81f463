import Dispatch

/// The next items of a sequence made on another thread while the caller
/// works on the current one: a training step's next batch (render, encode)
/// beside the step. A step of a small model leaves the cores idle in its
/// serial parts; the batch fills them.
///
/// Items are made one at a time, in order, by one closure, so a generator the
/// closure draws from advances exactly as it would if the caller made them
/// itself: the results do not depend on the overlap. The closure must not
/// touch what the caller changes meanwhile. At most one item is made ahead,
/// and none past `count`.
public final class Prefetch<Item>: @unchecked Sendable {
    private let make: (Int) -> Item
    private let count: Int
    private var made = 0
    private var ready: Item?
    private let done = DispatchSemaphore(value: 0)
    private var working = false

    /// Items `make(0)`, `make(1)`, … `make(count − 1)`; the first starts now.
    public init(count: Int, _ make: @escaping (Int) -> Item) {
        self.count = count
        self.make = make
        startNext()
    }

    private func startNext() {
        guard made < count else { return }
        let index = made
        made += 1
        working = true
        DispatchQueue.global().async { [self] in
            ready = make(index)
            done.signal()
        }
    }

    /// The next item (waiting for it if it is still being made); the one after it starts.
    public func next() -> Item {
        precondition(working, "Prefetch: all \(count) items were taken")
        done.wait()
        working = false
        let item = ready!
        ready = nil
        startNext()
        return item
    }

    /// Waits for an item still being made and starts no other: call it (in a
    /// `defer`) before the inputs the closure reads change or go away.
    public func finish() {
        if working { done.wait() }
        working = false
        ready = nil
        made = count
    }
}
