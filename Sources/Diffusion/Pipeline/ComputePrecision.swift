import LinearAlgebra

/// The arithmetic of the engine's matrix products (linear layers,
/// convolutions, attention). fp32 is the default and is reproducible bit for
/// bit on a host. bf16 is torch's CPU autocast: each GEMM's operands rounded
/// to bfloat16, products accumulated in float32, on the CPU's bf16 matrix
/// units (AMX; see `resolved`); norms, softmax, activations, the sampler and the
/// noise stay float32. Images come out close to fp32's, not equal
/// (Benchmarks/README.md has the measured difference), which is why the
/// precision is part of a cell's cache key, infotext and manifest.
public enum ComputePrecision: String, CaseIterable, Sendable, Codable {
    case fp32
    case bf16

    /// What a CPU offers bf16: no units, units that multiply slower than its
    /// fp32 units (AVX512-BF16 without AMX), or faster ones (AMX).
    public enum BF16Units: Sendable {
        case none, slowerThanFP32, faster

        /// This host's; a bf16 arithmetic set explicitly by a test or a benchmark
        /// (the emulated GEMM, or oneDNN's units forced) counts as `faster`.
        public static var here: BF16Units {
            if LinearAlgebra.routing.arithmetic != .fp32 || LinearAlgebra.bf16Faster { return .faster }
            return LinearAlgebra.bf16Available ? .slowerThanFP32 : .none
        }
    }

    /// What runs on a CPU: bf16 where its units are faster than fp32 (the
    /// reason to ask for it: kohya users pick bf16 for speed), else fp32 with a
    /// note saying why. fp32 is the more accurate of the two, so nothing is lost.
    public func resolved(units: BF16Units = .here) -> (precision: ComputePrecision, note: String?) {
        guard self == .bf16 else { return (self, nil) }
        switch units {
        case .faster: return (.bf16, nil)
        case .none: return (.fp32, "this CPU has no bf16 matrix units (AMX or AVX512-BF16); computing in fp32")
        case .slowerThanFP32:
            return (.fp32, "this CPU's bf16 units (AVX512-BF16, no AMX) multiply slower than its fp32 units "
                    + "(oneDNN's bf16 matmul measured at 0.5–0.6× fp32); computing in fp32, which is faster here and more accurate")
        }
    }

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
