import Foundation
import LoRACore

/// kohya's `--console_log_file` (library/utils.py `setup_logging`: a logging.FileHandler opened with mode "w", the
/// message alone per line): the lines a tool reports — its plan, notes, warnings and errors — are written to the file
/// as well as to the console (kohya moves its log there; here the console keeps it too, so the run stays readable).
/// The progress bar is not, as kohya's tqdm bar is not.
public enum ConsoleLog {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var file: FileHandle?

    /// Opens (truncates) the file every later reported line is copied to.
    public static func open(_ path: String) throws(ModelError) {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw ModelError(.io, "cannot write the console log: \(String(cString: strerror(errno)))", file: path)
        }
        lock.lock()
        defer { lock.unlock() }
        file = handle
    }

    /// One reported line (without its newline).
    static func record(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        file?.write(Data((line + "\n").utf8))
    }
}
