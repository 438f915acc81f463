#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file.
///
/// Tensors are views into this mapping, so the mapping must outlive them; every
/// view keeps a reference to its `MappedFile`. Nothing is read from disk until a
/// view's bytes are touched, which is what makes header-only reports instant.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let base: UnsafeRawPointer?
    /// True when `base` came from malloc (in-memory data), false for mmap.
    private let ownsHeapMemory: Bool
    /// The open file (kept for in-kernel copies); -1 for in-memory data.
    public let descriptor: Int32

    /// In-memory bytes presented like a file (decompressed archive members,
    /// test data). `path` is only used in messages.
    public init(copying data: UnsafeRawBufferPointer, path: String) {
        self.path = path
        size = data.count
        ownsHeapMemory = true
        descriptor = -1
        if data.count == 0 {
            base = nil
        } else {
            let memory = malloc(data.count)!
            memory.copyMemory(from: data.baseAddress!, byteCount: data.count)
            base = UnsafeRawPointer(memory)
        }
    }

    public static func inMemory(_ bytes: [UInt8], path: String) -> MappedFile {
        bytes.withUnsafeBytes { MappedFile(copying: $0, path: path) }
    }

    static func describeNonRegular(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "is a directory"
        case S_IFIFO: return "is a FIFO (named pipe), not a file"
        case S_IFCHR, S_IFBLK: return "is a device, not a file"
        case S_IFSOCK: return "is a socket, not a file"
        default: return "not a regular file"
        }
    }

    public init(path: String) throws(ModelError) {
        self.path = path
        ownsHeapMemory = false
        // Look before opening: open() of a FIFO waits for a writer forever.
        var before = stat()
        if stat(path, &before) == 0, (before.st_mode & S_IFMT) != S_IFREG {
            throw ModelError(.io, MappedFile.describeNonRegular(before.st_mode), file: path)
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            throw ModelError(.io, "cannot open: \(String(cString: strerror(errno)))", file: path)
        }
        descriptor = fd
        var keepOpen = false
        defer { if !keepOpen { close(fd) } }
        var info = stat()
        if fstat(fd, &info) != 0 {
            throw ModelError(.io, "cannot stat: \(String(cString: strerror(errno)))", file: path)
        }
        if (info.st_mode & S_IFMT) != S_IFREG {
            throw ModelError(.io, MappedFile.describeNonRegular(info.st_mode), file: path)
        }
        size = Int(info.st_size)
        if size == 0 {
            base = nil
            keepOpen = true
            return
        }
        let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        if mapped == MAP_FAILED || mapped == nil {
            throw ModelError(.io, "cannot map: \(String(cString: strerror(errno)))", file: path)
        }
        base = UnsafeRawPointer(mapped!)
        keepOpen = true
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
        guard let base else { return }
        if ownsHeapMemory {
            free(UnsafeMutableRawPointer(mutating: base))
        } else {
            munmap(UnsafeMutableRawPointer(mutating: base), size)
        }
    }

    /// All bytes of the file.
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base, count: size)
    }

    /// A sub-range; the caller has validated it against `size`.
    public func slice(_ offset: Int, _ count: Int) -> UnsafeRawBufferPointer {
        precondition(offset >= 0 && count >= 0 && offset <= size - count, "slice out of bounds")
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }

    public enum AccessPattern { case sequential, random, willNeed, dontNeed }

    /// Tell the kernel how a range will be read (read-ahead for scans, dropping
    /// pages after a streaming pass keeps RSS low on big checkpoints).
    public func advise(_ pattern: AccessPattern, offset: Int = 0, count: Int? = nil) {
        guard let base, size > 0, !ownsHeapMemory else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (offset / page) * page
        let end = min(size, offset + (count ?? (size - offset)))
        guard end > start else { return }
        let advice: Int32
        switch pattern {
        case .sequential: advice = MADV_SEQUENTIAL
        case .random: advice = MADV_RANDOM
        case .willNeed: advice = MADV_WILLNEED
        case .dontNeed: advice = MADV_DONTNEED
        }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, advice)
    }
}

extension UnsafeRawBufferPointer {
    /// Little-endian integer at a byte offset (unaligned allowed).
    func loadLE<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
