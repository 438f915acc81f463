import LinearAlgebra

/// The arithmetic of the engine's matrix products (linear layers,
/// convolutions, attention). fp32 is the default and is reproducible bit for
/// bit on a host. bf16 is torch's CPU autocast: each GEMM's operands rounded
/// to bfloat16, products accumulated in float32, on the CPU's bf16 matrix
/// units (AMX, AVX512-BF16); norms, softmax, activations, the sampler and the
/// noise stay float32. Images come out close to fp32's, not equal
/// (Benchmarks/README.md has the measured difference), which is why the
/// precision is part of a cell's cache key, infotext and manifest.
public enum ComputePrecision: String, CaseIterable, Sendable, Codable {
    case fp32
    case bf16

    /// What runs on a CPU: bf16 needs the units, else fp32 with a note saying
    /// so. A test that forces the emulated bf16 GEMM (`GEMMArithmetic.bf16Emulated`)
    /// counts as having them.
    public func resolved(bf16Available: Bool = ComputePrecision.bf16Runs) -> (precision: ComputePrecision, note: String?) {
        guard self == .bf16, !bf16Available else { return (self, nil) }
        return (.fp32, "this CPU has no bf16 matrix units (AMX or AVX512-BF16); computing in fp32")
    }

    public static var bf16Runs: Bool { LinearAlgebra.bf16Available || LinearAlgebra.routing.arithmetic == .bf16Emulated }

    var arithmetic: GEMMArithmetic { self == .bf16 ? .bf16 : .fp32 }

    /// Runs `body` with this precision's GEMMs (callers resolve first: a
    /// bf16 GEMM on a CPU without the units is a programming error).
    public func run<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let saved = LinearAlgebra.routing
        defer { LinearAlgebra.routing = saved }
        // An explicit emulation set by a test stays in force under bf16.
        if !(self == .bf16 && saved.arithmetic == .bf16Emulated) { LinearAlgebra.routing.arithmetic = arithmetic }
        return try body()
    }
}
