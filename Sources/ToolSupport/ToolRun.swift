import ArgumentParser
import Foundation
import LoRACore

/// The exit statuses every tool uses (each man page lists them).
public enum ExitStatus {
    public static let ok: Int32 = 0
    /// Findings at or above the threshold, or a job that could not be done
    /// with these inputs (wrong family, no match, NaN refused, …).
    public static let failure: Int32 = 1
    /// A file could not be read, is not what it claims to be, or is of a kind
    /// the tool cannot use.
    public static let unreadable: Int32 = 2
    /// A pickle that would run code (or references anything outside a state dict).
    public static let dangerous: Int32 = 3
    /// Bad command-line arguments (ArgumentParser's usage errors).
    public static let usage: Int32 = 64

    public static func of(_ error: ModelError) -> Int32 {
        switch error.kind {
        case .dangerous: return dangerous
        case .io, .invalid, .unsupported: return unreadable
        case .mismatch: return failure
        }
    }

    /// The paragraph each tool's help ends with.
    public static let documentation = """
        Exit status: 0 success; 1 findings (lora-inspect --fail-on) or a job that cannot be done with these inputs; \
        2 a file is unreadable, invalid or of a kind the tool cannot use; 3 a pickle is dangerous (nothing was run); \
        64 bad arguments.
        """
}

/// How every tool runs its job: errors from the libraries become one line on
/// standard error (`Error: …`, file text escaped) — and `{"error": …}` on
/// standard output with `--json` — and the tool exits with the status of
/// the error's kind. A progress bar given here is closed first, so the
/// message starts on a clean line.
public enum ToolRun {
    public struct ErrorReport: Encodable {
        public var kind: String
        public var message: String
        public var file: String?
        public var key: String?
        public var offset: UInt64?
        public var exitStatus: Int32
    }

    @discardableResult
    public static func perform<T>(json: Bool, bar: ProgressBar? = nil, _ body: () throws -> T) throws -> T {
        do {
            let value = try body()
            bar?.finish()
            return value
        } catch let error as ModelError {
            bar?.finish()
            throw fail(error, json: json)
        } catch {
            bar?.finish()
            throw error
        }
    }

    /// Reports `error` as above and returns the ExitCode to throw.
    public static func fail(_ error: ModelError, json: Bool) -> ExitCode {
        let status = ExitStatus.of(error)
        printError("Error: " + TerminalText.escape(error.description))
        if json {
            let report = ErrorReport(kind: error.kind.rawValue, message: error.message, file: error.file, key: error.key,
                                     offset: error.offset, exitStatus: status)
            if let text = try? JSONOutput.string(["error": report]) { print(text) }
        }
        return ExitCode(status)
    }

    /// Set when standard output carries one JSON document that is printed at the end (lora-train's
    /// `--json`): the human report, written as the work goes, moves to standard error.
    nonisolated(unsafe) public static var reportsToStandardError = false

    /// Print human output, with any file-derived text escaped.
    public static func say(_ text: String) {
        if reportsToStandardError { printError(TerminalText.escape(text)) } else {
            print(TerminalText.escape(text))
            ConsoleLog.record(TerminalText.escape(text))
        }
    }
}
