import Foundation
import XCTest

/// Runs the built executables the way users do.
enum ToolRunner {
    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The build products folder: where the test bundle itself was built.
    static let products: URL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// `merged`: standard error goes into the same pipe as standard output (as `tool > log 2>&1`), so `stdout` holds
    /// both in the order the tool wrote them and `stderr` is empty.
    static func run(_ tool: String, _ arguments: [String], environment: [String: String] = [:], merged: Bool = false) throws -> Result {
        let process = Process()
        process.executableURL = products.appendingPathComponent(tool)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: repoRoot)
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = merged ? out : err
        if merged { try err.fileHandleForWriting.close() }
        try process.run()
        // Read before waiting so a large output cannot fill the pipe and block.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }

    static var tools: [String] { ["lora-inspect", "lora-merge", "lora-extract", "lora-xyz", "lora-train"] }
}
