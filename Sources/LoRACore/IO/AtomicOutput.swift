import CKernels
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An output file that appears only when complete.
///
/// Bytes go to a hidden temporary file in the destination's folder; `commit()`
/// flushes it and renames it over the destination in one step. If anything
/// fails first (a thrown error, a full disk, a crash of the caller's logic), the
/// temporary file is removed and the destination is untouched. A process
/// killed outright (SIGKILL, the OOM killer) cannot clean up: the next output
/// into that folder removes such leftovers (`removeStaleTemporaries`).
///
/// Policy for an existing destination: replaced, like cp and kohya's scripts,
/// keeping its permissions; never when it is one of the inputs.
public final class AtomicOutput: @unchecked Sendable {
    public let destination: String
    public let temporaryPath: String
    /// fsync before the rename: survives power loss, at the disk's write speed
    /// (like cp, torch.save and safetensors, the default is not to wait for it).
    public var durable = false
    private var fd: Int32
    private var committed = false
    private var cleanupSlot: Int32 = -1

    /// - Parameters:
    ///   - inputs: paths the caller reads from; writing over one of them is refused.
    ///   - overwrite: whether an existing destination may be replaced.
    public init(destination: String, inputs: [String] = [], overwrite: Bool = true) throws(ModelError) {
        self.destination = destination
        try AtomicOutput.checkDestination(destination, inputs: inputs)
        if !overwrite && access(destination, F_OK) == 0 {
            throw ModelError(.io, "output already exists (pass --force to replace it)", file: destination)
        }
        let (folder, base) = AtomicOutput.split(destination)
        AtomicOutput.removeStaleTemporaries(in: folder)
        var path = ""
        var handle: Int32 = -1
        for attempt in 0..<16 {
            let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
            path = (folder.isEmpty ? "" : folder + "/") + ".\(base).\(getpid()).\(suffix).tmp"
            handle = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            if handle >= 0 || errno != EEXIST || attempt == 15 { break }
        }
        guard handle >= 0 else {
            throw ModelError(.io, "cannot create a temporary file in \(folder): \(String(cString: strerror(errno)))", file: destination)
        }
        temporaryPath = path
        fd = handle
        cleanupSlot = lt_cleanup_register(path, destination)
        // A replaced output keeps its permissions (a shared models folder stays group-writable).
        var existing = stat()
        if stat(destination, &existing) == 0 { fchmod(handle, existing.st_mode & 0o7777) }
    }

    static func split(_ destination: String) -> (folder: String, base: String) {
        let slash = destination.lastIndex(of: "/")
        let folder = slash.map { String(destination[..<$0]) } ?? "."
        let base = slash.map { String(destination[destination.index(after: $0)...]) } ?? destination
        return (folder.isEmpty ? "/" : folder, base)
    }

    /// What every tool checks before any work: the output is not a folder, its
    /// folder exists and is writable, and it is none of the inputs.
    public static func checkDestination(_ destination: String, inputs: [String] = []) throws(ModelError) {
        var info = stat()
        if stat(destination, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
            throw ModelError(.mismatch, "the output is a folder; give the name of a file in it", file: destination)
        }
        for input in inputs where sameFile(destination, input) {
            throw ModelError(.mismatch, "output is the same file as input \(input); choose another output path", file: destination)
        }
        let folder = split(destination).folder
        guard stat(folder, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw ModelError(.io, "the output's folder \(folder) does not exist", file: destination)
        }
        guard access(folder, W_OK) == 0 else {
            throw ModelError(.io, "the output's folder \(folder) is not writable", file: destination)
        }
    }

    /// Creates `folder` and its parents (an existing folder is fine); a failure says why in words: the
    /// part of the path that is a file, or the folder that is not writable (Foundation's own message is
    /// only an error number). `what` names the folder in the message ("the output folder").
    public static func createFolder(_ folder: String, what: String) throws(ModelError) {
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            var ancestor = folder, info = stat()
            while stat(ancestor, &info) != 0, ancestor != "/", !ancestor.isEmpty {
                ancestor = (ancestor as NSString).deletingLastPathComponent
            }
            let reason: String
            if (info.st_mode & S_IFMT) != S_IFDIR {
                reason = "\(ancestor) is a file, not a folder"
            } else if access(ancestor, W_OK) != 0 {
                reason = "\(ancestor) is not writable"
            } else {
                reason = error.localizedDescription
            }
            throw ModelError(.io, "cannot create \(what): \(reason)", file: folder)
        }
    }

    /// The same, for the tools that write a .safetensors file (any letter case).
    public static func checkSafetensorsDestination(_ destination: String, inputs: [String]) throws(ModelError) {
        try checkDestination(destination, inputs: inputs)
        guard destination.lowercased().hasSuffix(".safetensors") else {
            throw ModelError(.mismatch, "the output must be a .safetensors file (writing pickles is not supported)", file: destination)
        }
    }

    nonisolated(unsafe) private static var scannedFolders = Set<String>()
    private static let scannedLock = NSLock()

    /// Called with each stale temporary file removed and its size.
    nonisolated(unsafe) public static var onStaleTemporaryRemoved: ((String, Int) -> Void)?

    /// Removes temporary files of ours (`.NAME.PID.HEX.tmp`) in `folder` whose
    /// process no longer runs: what a SIGKILL or the OOM killer left, at full
    /// output size. A live process's files are left alone.
    /// Each folder is looked at once per process (lora-xyz writes thousands of cells into one).
    public static func removeStaleTemporaries(in folder: String) {
        scannedLock.lock()
        let first = scannedFolders.insert(folder).inserted
        scannedLock.unlock()
        guard first, let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for name in entries where name.hasPrefix(".") && name.hasSuffix(".tmp") {
            let parts = name.dropFirst().dropLast(4).split(separator: ".")
            guard parts.count >= 3, let pid = Int32(parts[parts.count - 2]), pid > 0, pid != getpid(),
                  parts[parts.count - 1].allSatisfy(\.isHexDigit) else { continue }
            if kill(pid, 0) == 0 || errno != ESRCH { continue } // alive, or not ours to judge
            let path = folder + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            if unlink(path) == 0 { onStaleTemporaryRemoved?(path, Int(info.st_size)) }
        }
    }

    deinit {
        if !committed { abandon() }
    }

    /// Reserve space up front so a full disk fails now, not halfway through.
    public func reserve(_ bytes: Int) throws(ModelError) {
        guard bytes > 0 else { return }
        let status = posix_fallocate(fd, 0, off_t(bytes))
        // Some file systems cannot preallocate; that is not an error.
        if status != 0 && status != EOPNOTSUPP && status != EINVAL {
            throw ModelError(.io, "cannot reserve \(bytes) bytes: \(String(cString: strerror(status)))", file: destination)
        }
    }

    /// Write bytes at an absolute offset. Safe to call from several threads at once.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(ModelError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ModelError(.io, "write failed: \(String(cString: strerror(errno)))", file: destination, offset: UInt64(offset + done))
            }
            done += n
        }
    }

    /// SHA-256 of the temporary file's bytes from `offset` to its end (read back).
    public func sha256(from offset: Int) throws(ModelError) -> String {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ModelError(.io, "cannot stat the output", file: destination) }
        let readable = open(temporaryPath, O_RDONLY | O_CLOEXEC)
        guard readable >= 0 else { throw ModelError(.io, "cannot re-read the output", file: destination) }
        defer { close(readable) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        var position = offset
        let end = Int(info.st_size)
        while position < end {
            let n = buffer.withUnsafeMutableBytes { pread(readable, $0.baseAddress, min($0.count, end - position), off_t(position)) }
            guard n > 0 else { throw ModelError(.io, "cannot re-read the output", file: destination, offset: UInt64(position)) }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            position += n
        }
        return hasher.finalize().hexString
    }

    /// Copy bytes from another file into this one at `offset`, inside the
    /// kernel when possible. Safe to call from several threads at once.
    public func copy(from source: MappedFile, sourceOffset: Int, count: Int, at offset: Int) throws(ModelError) {
        if source.descriptor >= 0 {
            let n = lt_copy_file_range(source.descriptor, Int64(sourceOffset), fd, Int64(offset), Int64(count))
            if n == Int64(count) { return }
            if n == -1 {
                throw ModelError(.io, "write failed: \(String(cString: strerror(errno)))", file: destination, offset: UInt64(offset))
            }
        }
        try write(source.slice(sourceOffset, count), at: offset)
    }

    /// Flush to disk and move into place.
    public func commit() throws(ModelError) {
        guard !committed else { return }
        if durable && fsync(fd) != 0 {
            let message = String(cString: strerror(errno))
            abandon()
            throw ModelError(.io, "cannot flush output: \(message)", file: destination)
        }
        close(fd)
        fd = -1
        if rename(temporaryPath, destination) != 0 {
            let message = String(cString: strerror(errno))
            unlink(temporaryPath)
            throw ModelError(.io, "cannot move the finished output into place: \(message)", file: destination)
        }
        committed = true
        lt_cleanup_unregister(cleanupSlot)
    }

    /// Remove the temporary file; the destination is left as it was.
    public func abandon() {
        if fd >= 0 { close(fd); fd = -1 }
        if !committed { unlink(temporaryPath) }
        lt_cleanup_unregister(cleanupSlot)
        cleanupSlot = -1
    }

    /// True when both paths name the same existing file (hard links and symlinks included).
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }
}

extension AtomicOutput {
    /// A whole small file (an image, a manifest) written through a temporary
    /// file renamed into place, its folder created when missing.
    public static func write(_ bytes: [UInt8], to path: String, inputs: [String] = []) throws(ModelError) {
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty && !FileManager.default.fileExists(atPath: folder) {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            } catch {
                throw ModelError(.io, "cannot create the folder", file: folder)
            }
        }
        let output = try AtomicOutput(destination: path, inputs: inputs)
        do {
            // (A typed-throws closure here crashes the 6.3 compiler.)
            var failure: ModelError?
            bytes.withUnsafeBytes { b in
                do { try output.write(b, at: 0) } catch { failure = error as? ModelError ?? ModelError(.io, "\(error)", file: path) }
            }
            if let failure { throw failure }
            try output.commit()
        } catch let error as ModelError {
            output.abandon()
            throw error
        } catch {
            output.abandon()
            throw ModelError(.io, "\(error)", file: path)
        }
    }
}
