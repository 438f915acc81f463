import LoRACore
import ToolSupport
import XCTest

final class EnvironmentTests: XCTestCase {
    /// Debian's OpenBLAS falls back to SSE3 "Prescott" kernels on CPUs it does
    /// not know; the tools then re-run themselves with the right core type.
    /// Each CPU of this project's machine kind, whichever this host is
    /// (baseline.md: Debian's 0.3.21 loads Prescott kernels on both).
    func testGenericOpenBLASKernelsAreReplacedOnVectorCPUs() {
        XCTAssertEqual(ToolEnvironment.preferredCoreType(current: "Prescott", cpu: .intelXeonAMX), "SkylakeX")
        XCTAssertEqual(ToolEnvironment.preferredCoreType(current: "Prescott", cpu: .amdEPYCAVX2), "Haswell")
        XCTAssertEqual(ToolEnvironment.preferredCoreType(current: "Nehalem", cpu: .amdEPYCAVX2), "Haswell")
        XCTAssertNil(ToolEnvironment.preferredCoreType(current: "Prescott", cpu: .x86Baseline), "no vector kernels to switch to")
        for cpu in [CPUFeatures.intelXeonAMX, .amdEPYCAVX2] {
            for known in ["Haswell", "Zen", "SkylakeX", "CooperLake", "SapphireRapids"] {
                XCTAssertNil(ToolEnvironment.preferredCoreType(current: known, cpu: cpu), "\(known) is kept on \(cpu.cpuClass)")
            }
        }
    }

    func testVerboseOutputNamesTheKernels() throws {
        let result = try ToolRunner.run("lora-inspect", ["-v", "--quiet", "Fixtures/models/sd1_tiny_lora.safetensors"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("OpenBLAS"), result.stderr)
        XCTAssertTrue(result.stderr.contains("C kernels: \(KernelPaths.description)"), "\(KernelPaths.description): \(result.stderr)")
        if CPUFeatures.host.runsAVX2Kernels {
            XCTAssertFalse(result.stderr.contains("Prescott"), "no generic SSE3 kernels on a vector CPU: \(result.stderr)")
        }
        // LORA_TOOLS_KERNELS=portable reaches the tools (to trace a host problem).
        let portable = try ToolRunner.run("lora-inspect", ["-v", "--quiet", "Fixtures/models/sd1_tiny_lora.safetensors"],
                                          environment: ["LORA_TOOLS_KERNELS": "portable"])
        XCTAssertEqual(portable.status, 0)
        XCTAssertTrue(portable.stderr.contains("C kernels: portable vector kernels, portable sha256"), portable.stderr)
        XCTAssertEqual(portable.stdout, result.stdout, "the report does not depend on the kernel path")
        // =avx2 keeps an AVX-512 CPU's kernels on AVX2.
        let avx2 = try ToolRunner.run("lora-inspect", ["-v", "--quiet", "Fixtures/models/sd1_tiny_lora.safetensors"],
                                      environment: ["LORA_TOOLS_KERNELS": "avx2"])
        XCTAssertEqual(avx2.status, 0)
        let expected = CPUFeatures.host.runsAVX2Kernels ? "C kernels: avx2+f16c+fma" : "C kernels: portable vector kernels"
        XCTAssertTrue(avx2.stderr.contains(expected), avx2.stderr)
        XCTAssertEqual(avx2.stdout, result.stdout, "the report does not depend on the kernel path")
    }
}
