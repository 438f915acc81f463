import CBLAS
import CKernels
import Foundation
import LinearAlgebra
import LoRACore

/// Process set-up every tool runs first.
public enum ToolEnvironment {
    /// Make sure OpenBLAS uses the CPU's vector kernels.
    ///
    /// Debian's OpenBLAS 0.3.21 does not recognise some current CPUs and falls
    /// back to its SSE3 "Prescott" kernels, about 5× slower. The kernel set is
    /// chosen when the library loads, before `main`, so the only fix from
    /// inside is to re-run ourselves once with OPENBLAS_CORETYPE set. A user's
    /// own OPENBLAS_CORETYPE is always respected. LORA_TOOLS_RERUN=1 forces the re-run on any CPU (for tests).
    public static func prepare() {
        // Once: the tools call it before parsing (ParsableCommand.toolMain) and again where a command runs.
        guard !prepared else { return }
        prepared = true
        // Reports go to standard output and progress to standard error; piped into one log (`> log 2>&1`), a
        // block-buffered stdout would hold the plan back until exit and print it after the progress it preceded.
        lt_line_buffer_stdout()
        // An interrupted run removes its half-written output; one killed outright is cleaned up by the next.
        lt_cleanup_install_signal_handlers()
        AtomicOutput.onStaleTemporaryRemoved = { path, bytes in
            printError(TerminalText.escape("note: removed \(path) (\(ReportText.byteSize(bytes))), left by an earlier run that was killed"))
        }
        LinearAlgebra.disableLAPACKENaNChecks()
        let env = ProcessInfo.processInfo.environment
        guard env["LORA_TOOLS_BLAS_CHECKED"] == nil else { return }
        if env["OPENBLAS_CORETYPE"] == nil, let wanted = preferredCoreType(current: LinearAlgebra.blasCoreName) {
            setenv("OPENBLAS_CORETYPE", wanted, 1)
        } else if env["LORA_TOOLS_RERUN"] != "1" {
            // LORA_TOOLS_RERUN=1 re-runs on any CPU (tests: what a tool prints before this point must come out once on
            // every host, not only on CPUs Debian's OpenBLAS does not know).
            return
        }
        setenv("LORA_TOOLS_BLAS_CHECKED", "1", 1)
        var args = CommandLine.arguments.map { strdup($0) }
        args.append(nil)
        execv("/proc/self/exe", &args)
        // execv only returns on failure: carry on with the slow kernels.
    }

    nonisolated(unsafe) private static var prepared = false

    /// The core type to force, or nil when the loaded kernels already fit the CPU.
    public static func preferredCoreType(current: String, cpu: CPUFeatures = .host) -> String? {
        let generic: Set<String> = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Coppermine",
                                    "Northwood", "Banias", "Athlon", "Opteron", "Barcelona", "Bobcat", "Unknown", "generic"]
        guard generic.contains(current) else { return nil }
        if cpu.contains(.avx512f) { return "SkylakeX" }
        if cpu.runsAVX2Kernels { return "Haswell" }
        return nil
    }

    /// One line for verbose output: which kernels are in use.
    public static var kernelDescription: String {
        "OpenBLAS \(LinearAlgebra.blasCoreName) kernels "
            + "(\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { "OPENBLAS_CORETYPE=\($0)" } ?? "auto-detected")), C kernels: "
            + "\(KernelPaths.description)"
    }

    /// The processor's name as the kernel reports it ("AMD EPYC", "Intel(R) Xeon(R) …").
    public static var cpuModelName: String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return "unknown CPU" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }

    /// What a benchmark or CI log needs to trace a result to a host: the CPU,
    /// its class and features, and the kernels in use.
    public static var hostReport: [String] {
        let cpu = CPUFeatures.host
        let oneDNN = LinearAlgebra.oneDNNKernels
        return ["CPU: \(cpuModelName) (\(cpu.cpuClass); \(ProcessInfo.processInfo.activeProcessorCount) cores; \(cpu))",
                "kernels: \(kernelDescription)",
                "GEMM: \(LinearAlgebra.routing); oneDNN \(LinearAlgebra.oneDNNISA): matmul f32 \(oneDNN.fp32), bf16 \(bf16Kernel(oneDNN.bf16))"]
    }

    /// The bf16 kernel, and whether --precision/--mixed-precision bf16 uses it (ComputePrecision.resolved).
    static func bf16Kernel(_ name: String) -> String {
        if name.isEmpty { return "none (no bf16 units; bf16 computes fp32)" }
        return name + (LinearAlgebra.bf16Faster ? " (faster than fp32: bf16 runs on it)" : " (slower than fp32: bf16 computes fp32)")
    }

    /// What Ctrl-C keeps, said after the outputs it removed (nil: nothing to say).
    public static func setInterruptNote(_ note: String?) {
        if let note { lt_cleanup_set_interrupt_note(TerminalText.escape(note)) } else { lt_cleanup_set_interrupt_note(nil) }
    }

    /// For jobs that can stop cleanly: the first Ctrl-C only makes `interruptRequested` true
    /// (the job saves what it needs and exits); a second one interrupts at once.
    public static func deferInterrupt(_ on: Bool) { lt_cleanup_defer_interrupt(on ? 1 : 0) }
    public static var interruptRequested: Bool { lt_interrupt_requested() != 0 }

    public static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) != 0 }
    public static var stdoutIsTerminal: Bool { isatty(STDOUT_FILENO) != 0 }
}

/// Write to standard error.
public func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
    ConsoleLog.record(text)
}
