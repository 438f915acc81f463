import FixtureKit
import Foundation
import Imaging
import XCTest

/// Where Ctrl-C is handled. oneDNN 2.6's JIT GEMM kernels point the stack pointer into a heap workspace while
/// they run (oneDNN issue #4845, fixed upstream after Debian's 2.6), so a signal handled on a thread inside one
/// writes its frame into the heap: lora-train stopped by Ctrl-C mid-step aborted about one run in fifty
/// ("corrupted size vs. prev_size", or an index out of range in AdamW), and a C loop of dnnl_sgemm calls with a
/// no-op handler and a thread sending signals aborts at once. So every tool blocks SIGINT, SIGTERM and SIGHUP on
/// its threads and handles them on one thread of its own (CKernels/cleanup.c). This checks the masks of a
/// training run's threads while it computes, then that Ctrl-C still stops it cleanly.
final class SignalSafetyTests: XCTestCase {
    func testInterruptsAreHandledOffTheComputingThreads() throws {
        let folder = NSTemporaryDirectory() + "signals-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder + "/data/4_zkw", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try XCTUnwrap(FixtureSet.items.first { $0.name == "sd1_engine.safetensors" }).write(folder + "/base.safetensors")
        for i in 0..<2 {
            let bitmap = Bitmap(width: 64, height: 64, fill: RGB(UInt8(90 * i), 120, 200))
            FileManager.default.createFile(atPath: folder + "/data/4_zkw/img\(i).png", contents: Data(try PNGCodec.encode(bitmap)))
        }
        let process = Process()
        process.executableURL = ToolRunner.products.appendingPathComponent("lora-train")
        process.arguments = ["--model", folder + "/base.safetensors", "--tokenizer", "Fixtures/tokenizer/clip_bpe_merges.txt.gz",
                             "--train-data-dir", folder + "/data", "--resolution", "64", "--network-dim", "4", "--network-train-unet-only",
                             "--max-train-steps", "400", "--output-dir", folder + "/out", "--output-name", "s", "--quiet"]
        process.currentDirectoryURL = URL(fileURLWithPath: ToolRunner.repoRoot)
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, ((try? String(contentsOfFile: folder + "/out/s-log.csv", encoding: .utf8))?.split(separator: "\n").count ?? 0) < 3 {
            usleep(20_000)
        }
        // SigBlk of each thread (hexadecimal; bit n − 1 for signal n), by name; threads that ended meanwhile are skipped.
        let pid = process.processIdentifier
        var threads: [(id: Int32, name: String, blocked: UInt64)] = []
        for task in try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigBlk:") }),
                  let mask = UInt64(line.dropFirst("SigBlk:".count).trimmingCharacters(in: .whitespaces), radix: 16),
                  let name = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/comm", encoding: .utf8) else { continue }
            threads.append((Int32(task) ?? 0, name.trimmingCharacters(in: .whitespacesAndNewlines), mask))
        }
        let interrupts: UInt64 = 1 << (UInt64(SIGINT) - 1) | 1 << (UInt64(SIGTERM) - 1) | 1 << (UInt64(SIGHUP) - 1)
        let report = threads.map { "\($0.id) \($0.name) \(String($0.blocked, radix: 16))" }.joined(separator: "; ")
        XCTAssertGreaterThan(threads.count, 2, "a training run computes on several threads: \(report)")
        let main = try XCTUnwrap(threads.first { $0.id == pid }, report)
        XCTAssertEqual(main.blocked & interrupts, interrupts, "the main thread computes, so it blocks them: \(report)")
        let receivers = threads.filter { $0.name == "lt-signals" }
        XCTAssertEqual(receivers.count, 1, report)
        XCTAssertEqual(receivers.first.map { $0.blocked & interrupts }, 0, "the receiving thread takes them: \(report)")
        // Only threads started before the tool's set-up (OpenBLAS's, one fewer than the cores; its kernels keep the
        // stack pointer on the stack) may take them besides.
        let others = threads.filter { $0.name != "lt-signals" && $0.blocked & interrupts != interrupts }
        XCTAssertLessThanOrEqual(others.count, ProcessInfo.processInfo.activeProcessorCount - 1, report)
        kill(pid, SIGINT)
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130, stderr)
        XCTAssertTrue(stderr.contains("interrupted at step"), stderr)
    }
}
