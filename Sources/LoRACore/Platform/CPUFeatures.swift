import CKernels

/// The CPU features the tools dispatch on, as a value, so that every decision
/// taken from them (C kernel paths, OpenBLAS core type, torch's noise kernel)
/// is a function that tests can call with the features of any CPU, not only
/// with those of the host they happen to run on.
public struct CPUFeatures: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let avx2 = CPUFeatures(rawValue: LT_CPU_AVX2)
    public static let fma = CPUFeatures(rawValue: LT_CPU_FMA)
    public static let f16c = CPUFeatures(rawValue: LT_CPU_F16C)
    public static let avx512f = CPUFeatures(rawValue: LT_CPU_AVX512F)
    public static let avx512bf16 = CPUFeatures(rawValue: LT_CPU_AVX512_BF16)
    public static let amxBF16 = CPUFeatures(rawValue: LT_CPU_AMX_BF16)
    public static let sha = CPUFeatures(rawValue: LT_CPU_SHA)
    public static let sse41 = CPUFeatures(rawValue: LT_CPU_SSE41)

    /// What this CPU reports.
    public static var host: CPUFeatures { CPUFeatures(rawValue: lt_cpu_features()) }

    /// The two CPUs this project's machines come with (see
    /// shared/reference/baseline.md), and an x86-64 CPU without AVX2.
    public static let amdEPYCAVX2: CPUFeatures = [.sse41, .avx2, .fma, .f16c, .sha]
    public static let intelXeonAMX: CPUFeatures = [.sse41, .avx2, .fma, .f16c, .avx512f, .avx512bf16, .amxBF16, .sha]
    public static let x86Baseline: CPUFeatures = [.sse41]

    /// The class the tests and benchmarks name: "AVX-512 + AMX", "AVX-512", "AVX2", "no AVX2".
    public var cpuClass: String {
        if contains(.amxBF16) && contains(.avx512f) { return "AVX-512 + AMX" }
        if contains(.avx512f) { return "AVX-512" }
        if contains([.avx2, .fma]) { return "AVX2" }
        return "no AVX2"
    }

    /// The C kernels' vector path (AVX2 + F16C + FMA) can run.
    public var runsAVX2Kernels: Bool { contains([.avx2, .fma, .f16c]) }

    public var description: String {
        let names: [(CPUFeatures, String)] = [(.sse41, "sse4.1"), (.avx2, "avx2"), (.fma, "fma"), (.f16c, "f16c"), (.avx512f, "avx512f"),
                                              (.avx512bf16, "avx512_bf16"), (.amxBF16, "amx_bf16"), (.sha, "sha")]
        return names.filter { contains($0.0) }.map(\.1).joined(separator: " ")
    }
}

/// A path of the dispatched C kernels; each includes the ones before it (an AVX-512 kernel's tail runs
/// on AVX2, and kernels without an AVX-512 version stay on AVX2 under the `.avx512` ceiling).
public enum KernelPath: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case portable = 0   // LT_KERNELS_PORTABLE
    case avx2 = 1       // LT_KERNELS_AVX2
    case avx512 = 2     // LT_KERNELS_AVX512

    /// The paths a CPU with these features can run.
    public static func available(on features: CPUFeatures) -> [KernelPath] {
        guard features.runsAVX2Kernels else { return [.portable] }
        return features.contains(.avx512f) ? [.portable, .avx2, .avx512] : [.portable, .avx2]
    }

    public var description: String { ["portable", "avx2", "avx512"][Int(rawValue)] }
}

/// Which path the dispatched C kernels take: the CPU's fastest, or one below
/// it. Tests run each kernel on every path the host has, so a result checked
/// here holds on an AVX2-only and on an AVX-512 CPU alike;
/// `LORA_TOOLS_KERNELS=portable` (or `=avx2`) lowers the ceiling for a whole run.
public enum KernelPaths {
    /// The highest path a kernel may take (it takes the highest the CPU has at or under it).
    public static var ceiling: KernelPath {
        get { KernelPath(rawValue: lt_kernels_ceiling()) ?? .avx512 }
        set { lt_kernels_set_ceiling(newValue.rawValue) }
    }

    /// The paths a test can exercise on this host: always the portable one, and the vector ones the CPU has.
    public static var available: [KernelPath] { KernelPath.available(on: .host) }

    /// Runs `body` once per available path, with the ceiling there, restoring the setting after.
    public static func forEachPath(_ body: (_ path: KernelPath) throws -> Void) rethrows {
        let saved = ceiling
        defer { ceiling = saved }
        for path in available {
            ceiling = path
            try body(path)
        }
    }

    /// Runs `body` with the portable paths forced, restoring the setting after.
    public static func withPortable<T>(_ body: () throws -> T) rethrows -> T {
        try with(.portable, body)
    }

    /// Runs `body` with the ceiling at `path`, restoring the setting after.
    public static func with<T>(_ path: KernelPath, _ body: () throws -> T) rethrows -> T {
        let saved = ceiling
        defer { ceiling = saved }
        ceiling = path
        return try body()
    }

    /// "avx512f+avx2+f16c+fma, sha-ni", "avx2+f16c+fma, sha-ni" and so on: the paths in use under the ceiling.
    public static var description: String { String(cString: lt_cpu_kernels_description()) }
}
