import ArgumentParser
import Diffusion
import Foundation
import LinearAlgebra
#if canImport(Glibc)
import Glibc
#endif

/// One measured child process: wall time and peak resident memory, from
/// wait4's rusage (the same figure /usr/bin/time -v reports).
struct Measurement: Codable {
    var label: String
    var seconds: Double
    var peakRSSMB: Double
    var status: Int32
}

/// What the side-by-side benchmarks against kohya's scripts share.
struct KohyaComparisonOptions: ParsableArguments {
    @Option(help: "Folder for generated models (gitignored).")
    var work = "Benchmarks/work"

    @Option(help: "Python with kohya's requirements installed.")
    var python: String?

    @Option(help: "A checkout of kohya-ss/sd-scripts.")
    var sdScripts: String?

    @Option(help: "Runs per measurement of our tools (median reported); kohya runs once.")
    var repeats = 3
}

enum Measure {
    /// A benchmark's `--precision`. bf16 runs on oneDNN's units wherever the CPU has them, also where lora-train and
    /// lora-xyz compute in fp32 because the units multiply slower than fp32 (AVX512-BF16 without AMX): so they can be
    /// measured there. Says what ran unless `quiet`.
    static func precision(_ name: String, quiet: Bool) throws -> ComputePrecision {
        guard let requested = ComputePrecision(rawValue: name) else { throw ValidationError("--precision: fp32 or bf16") }
        if requested == .bf16, LinearAlgebra.bf16Available, !LinearAlgebra.bf16Faster {
            LinearAlgebra.routing.arithmetic = .bf16
            if !quiet {
                print("note: --precision bf16: oneDNN's bf16 units forced (\(LinearAlgebra.oneDNNKernels.bf16)); lora-train and lora-xyz "
                      + "compute in fp32 on this CPU, whose bf16 units multiply slower than its fp32 units")
            }
        }
        let (precision, note) = requested.resolved()
        if let note, !quiet { print("note: --precision bf16: \(note)") }
        return precision
    }

    /// The best 2048² GEMM rate in each arithmetic a run uses: fp32's, and bf16's when it runs bf16.
    static func bestGEMMRates(_ precision: ComputePrecision) -> [ComputePrecision: Double] {
        var rates = [ComputePrecision.fp32: ComputePrecision.fp32.run { bestGEMMRate() }]
        if precision == .bf16 { rates[.bf16] = precision.run { bestGEMMRate() } }
        return rates
    }

    /// The best of ten 2048² GEMMs in the current routing and arithmetic, after two to warm up, in GFLOP/s:
    /// the host's matrix peak that a step's GFLOP/s is set beside.
    static func bestGEMMRate() -> Double {
        let n = 2048
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        for _ in 0..<2 { LinearAlgebra.gemm(m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: &c, ldc: n) }
        var best = 0.0
        for _ in 0..<10 {
            let start = Date()
            LinearAlgebra.gemm(m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n, c: &c, ldc: n)
            best = max(best, 2 * Double(n * n * n) / Date().timeIntervalSince(start) / 1e9)
        }
        return best
    }

    /// The median of `repeats` runs, each started after `sync` so that no
    /// dirty pages from the previous run are still being written back.
    static func settled(_ label: String, _ command: [String], repeats: Int, environment: [String: String] = [:]) -> Measurement {
        let runs = (0..<repeats).map { _ -> Measurement in sync(); return run(label, command, environment: environment) }
        return runs.sorted { $0.seconds < $1.seconds }[runs.count / 2]
    }

    /// Run a command, output discarded (or captured to `outputPath`, and standard error to `errorPath`: the same path
    /// interleaves both in one file), and measure it.
    static func run(_ label: String, _ command: [String], environment: [String: String] = [:], outputPath: String = "/dev/null",
                    errorPath: String = "/dev/null") -> Measurement {
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        let envStrings = env.map { "\($0.key)=\($0.value)" }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if errorPath == outputPath {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        }
        defer { posix_spawn_file_actions_destroy(&actions) }
        var argv = command.map { strdup($0) } + [nil]
        var envp = envStrings.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var pid: pid_t = 0
        let start = Date()
        guard posix_spawnp(&pid, command[0], &actions, nil, &argv, &envp) == 0 else {
            return Measurement(label: label, seconds: 0, peakRSSMB: 0, status: -1)
        }
        var status: Int32 = 0
        var usage = rusage()
        _ = wait4(pid, &status, 0, &usage)
        let seconds = Date().timeIntervalSince(start)
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Measurement(label: label, seconds: seconds, peakRSSMB: Double(usage.ru_maxrss) / 1024, status: exit)
    }

    /// Median of `repeats` runs (by wall time).
    static func median(_ label: String, repeats: Int, _ command: [String], environment: [String: String] = [:]) -> Measurement {
        let runs = (0..<repeats).map { _ in run(label, command, environment: environment) }
        return runs.sorted { $0.seconds < $1.seconds }[runs.count / 2]
    }
}
