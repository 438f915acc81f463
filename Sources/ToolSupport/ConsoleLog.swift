import Foundation
import LoRACore

/// kohya's `--console_log_file` (library/utils.py `setup_logging`: a logging.FileHandler opened with mode "w", the
/// message alone per line): the lines a tool reports — its plan, notes, warnings and errors — are written to the file
/// as well as to the console (kohya moves its log there; here the console keeps it too, so the run stays readable).
/// The progress bar is not, as kohya's tqdm bar is not.
public enum ConsoleLog {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var file: FileHandle?

    /// Opens (truncates) the file every later reported line is copied to. Like Python's open(path, "w"): through a
    /// symlink, into a FIFO that has a reader; a FIFO without one is an error rather than a wait (O_NONBLOCK on open).
    public static func open(_ path: String) throws(ModelError) {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let reason = errno == ENXIO ? "a FIFO nobody reads" : String(cString: strerror(errno))
            throw ModelError(.io, "cannot write the console log: \(reason)", file: path)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)  // the lines are written whole, as to a file
        lock.lock()
        defer { lock.unlock() }
        file = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// One reported line (without its newline).
    static func record(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        file?.write(Data((line + "\n").utf8))
    }
}
