import CEngineKernels

/// The engine allocates and frees activations of tens of megabytes at every
/// layer. glibc serves blocks that large with fresh mmaps and returns them on
/// free, so each allocation page-faults (and zero-fills) its memory again:
/// seconds of kernel time per sampling step. Keeping freed memory in the heap
/// lets the next layer reuse it.
public enum EngineAllocator {
    nonisolated(unsafe) private static var configured = false

    public static func configure() {
        guard !configured else { return }
        configured = true
        lt_keep_freed_memory(512 << 20, 1 << 30)
    }
}
