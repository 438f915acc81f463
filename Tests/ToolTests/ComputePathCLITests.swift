import FixtureKit
import Foundation
import Imaging
import LinearAlgebra
import XCTest

/// The engine's GEMMs run on whatever the CPU offers: oneDNN picks AVX2,
/// AVX-512 or AMX kernels by itself, and `LORA_TOOLS_GEMM=openblas` swaps the
/// library. oneDNN's choice can only be capped before its first use, so each
/// path runs in its own lora-xyz process: the host's own oneDNN kernels, oneDNN
/// capped at AVX2 (what the AMD hosts run; on an AVX2 host the same as the
/// first), and OpenBLAS. Images must agree closely on every host, and exactly
/// where the two oneDNN runs take the same kernels. 128² cells reach the
/// Winograd convolutions and the GEMM + softmax attention.
final class ComputePathCLITests: XCTestCase {
    func testEveryGEMMPathRendersTheSameImages() throws {
        let folder = NSTemporaryDirectory() + "lora-xyz-paths-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try XCTUnwrap(FixtureSet.items.first { $0.name == "sd1_engine.safetensors" }).write(folder + "/base.safetensors")
        let runs: [(String, [String: String])] = [("host", [:]), ("avx2", ["ONEDNN_MAX_CPU_ISA": "AVX2"]), ("openblas", ["LORA_TOOLS_GEMM": "openblas"])]
        var cells: [String: [Bitmap]] = [:]
        for (name, environment) in runs {
            let host = try ToolRunner.run("lora-bench", ["host"], environment: environment)
            print("path \(name): " + (host.stdout.split(separator: "\n").first { $0.hasPrefix("GEMM:") }.map(String.init) ?? "?"))
            let run = try ToolRunner.run("lora-xyz", [
                "--model", folder + "/base.safetensors", "--prompt", "a red cube", "--seeds", "3,4", "--steps", "3", "--sampler", "Euler",
                "--width", "128", "--height", "128", "--tokenizer", "Fixtures/tokenizer/clip_bpe_merges.txt.gz", "--quiet",
                "--cache", folder + "/cache-" + name, "--cells", folder + "/cells-" + name, "-o", folder + "/sheet-" + name + ".png",
            ], environment: environment)
            XCTAssertEqual(run.status, 0, "\(name): \(run.stderr)")
            let files = try FileManager.default.contentsOfDirectory(atPath: folder + "/cells-" + name).filter { $0.hasSuffix(".png") }.sorted()
            XCTAssertEqual(files.count, 2, name)
            cells[name] = try files.map { try PNGCodec.read(folder + "/cells-" + name + "/" + $0) }
        }
        let reference = try XCTUnwrap(cells["host"])
        for (name, _) in runs.dropFirst() {
            for (a, b) in zip(try XCTUnwrap(cells[name]), reference) {
                let mean = zip(a.pixels, b.pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(a.pixels.count)
                print(String(format: "path %@ vs host: mean |Δpixel| %.4f", name, mean))
                XCTAssertLessThan(mean, 0.5, "\(name): fp32 on another GEMM path may differ in the last bits, not visibly")
            }
        }
        if LinearAlgebra.oneDNNISA == "avx2" {
            XCTAssertEqual(cells["avx2"], reference, "capped at the ISA it already uses: the same kernels, the same pixels")
        }
    }
}
