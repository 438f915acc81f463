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

    /// Hands back what the heaps keep once a phase that will not come again has ended (a training run's latent
    /// caching: a gigabyte of the VAE's activations at 768², measured). Without it that memory stays resident
    /// until the heap happens to reuse it.
    public static func returnFreedMemory() { lt_return_freed_memory() }
}
