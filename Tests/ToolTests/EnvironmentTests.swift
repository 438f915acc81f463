import CKernels
import ToolSupport
import XCTest

final class EnvironmentTests: XCTestCase {
    /// Debian's OpenBLAS falls back to SSE3 "Prescott" kernels on CPUs it does
    /// not know; the tools then re-run themselves with the right core type.
    func testGenericOpenBLASKernelsAreReplacedOnVectorCPUs() {
        let expected: String? = lt_cpu_has_avx512f() != 0 ? "SkylakeX" : (lt_cpu_has_avx2_f16c() != 0 ? "Haswell" : nil)
        XCTAssertEqual(ToolEnvironment.preferredCoreType(current: "Prescott"), expected)
        XCTAssertNil(ToolEnvironment.preferredCoreType(current: "Haswell"))
        XCTAssertNil(ToolEnvironment.preferredCoreType(current: "Zen"))
        XCTAssertNil(ToolEnvironment.preferredCoreType(current: "SkylakeX"))
    }

    func testVerboseOutputNamesTheKernels() throws {
        let result = try ToolRunner.run("lora-inspect", ["-v", "--quiet", "Fixtures/models/sd1_tiny_lora.safetensors"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("OpenBLAS"), result.stderr)
        if lt_cpu_has_avx2_f16c() != 0 {
            XCTAssertFalse(result.stderr.contains("Prescott"), "no generic SSE3 kernels on a vector CPU: \(result.stderr)")
        }
    }
}
