import Foundation
import LoRACore

/// A progress bar with ETA on a terminal; plain lines (percentage, count, ETA) every 10% otherwise.
/// Thread-safe: workers call `advance` from any thread.
public final class ProgressBar: @unchecked Sendable {
    private let label: String
    private var total: Int
    private var done = 0
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var lastDecile = -1
    private let terminal: Bool
    private let enabled: Bool
    private let lock = NSLock()
    private var drewSomething = false
    /// Bars appear only for work that takes a while.
    private let delay: TimeInterval
    public enum Unit: Sendable { case bytes, items }
    private let unit: Unit
    private var status = ""

    public init(label: String, total: Int = 0, unit: Unit = .bytes, enabled: Bool = true, delay: TimeInterval = 0.5) {
        self.label = TerminalText.escape(label) // often a file name
        self.unit = unit
        self.total = total
        self.enabled = enabled
        self.delay = delay
        terminal = ToolEnvironment.stderrIsTerminal
    }

    public func setTotal(_ total: Int) {
        lock.lock(); defer { lock.unlock() }
        self.total = total
    }

    public func advance(by amount: Int) {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        done += amount
        let now = Date()
        guard now.timeIntervalSince(start) >= delay, total > 0 else { return }
        if terminal {
            guard now.timeIntervalSince(lastDraw) >= 0.1 || done >= total else { return }
            lastDraw = now
            draw(now)
        } else {
            // A line at each 10% crossed, with the true percentage (1 of 6 is 16%, not 10%) and, as tqdm writes to a
            // log, the time left.
            let decile = min(10, done * 10 / total)
            if decile > lastDecile {
                lastDecile = decile
                let eta = done < total ? "  ETA \(ReportText.clock(remaining(now)))" : ""
                printError("\(label): \(min(100, done * 100 / total))% (\(format(done)) of \(format(total)))\(status)\(eta)")
                drewSomething = true
            }
        }
    }

    /// Text shown after the count (training: loss and s/it), escaped.
    public func setStatus(_ text: String) {
        lock.lock(); defer { lock.unlock() }
        status = text.isEmpty ? "" : "  " + TerminalText.escape(text)
    }

    /// The callback shape the core's long operations take (negative = total).
    public var callback: @Sendable (Int) -> Void {
        { [self] n in if n < 0 { self.setTotal(-n) } else { self.advance(by: n) } }
    }

    private func draw(_ now: Date) {
        let fraction = min(1, Double(done) / Double(total))
        let width = 28
        let filled = Int(fraction * Double(width))
        let elapsed = now.timeIntervalSince(start)
        let eta = remaining(now)
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let speed = unit == .bytes ? "  \(format(Int(rate)))/s" : ""
        let text = "\r\(label) \(bar) \(Int(fraction * 100))%  \(format(done))/\(format(total))\(speed)\(status)  ETA \(ReportText.clock(eta))   "
        FileHandle.standardError.write(Data(text.utf8))
        drewSomething = true
    }

    /// Seconds left at the average pace so far.
    private func remaining(_ now: Date) -> TimeInterval {
        let fraction = min(1, Double(done) / Double(total))
        let elapsed = now.timeIntervalSince(start)
        return fraction > 0 ? elapsed / fraction - elapsed : 0
    }

    /// Clear the bar line (terminal) so the report starts on a clean line.
    public func finish() {
        lock.lock(); defer { lock.unlock() }
        guard enabled, drewSomething, terminal else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8))
    }

    private func format(_ amount: Int) -> String {
        unit == .items ? String(amount) : ReportText.byteSize(amount)
    }
}
