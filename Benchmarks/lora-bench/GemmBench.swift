import ArgumentParser
import CBLAS
import Foundation
import LinearAlgebra
import ToolSupport

/// sgemm throughput on the shapes the engine uses, to tell how far each
/// layer is from what BLAS can do on this machine.
struct GemmBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gemm", abstract: "Time OpenBLAS sgemm on the engine's shapes.")

    @Option(help: "BLAS threads.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        ToolEnvironment.prepare()
        LinearAlgebra.blasThreads = threads
        print("OpenBLAS core: \(LinearAlgebra.blasCoreName), threads: \(threads)")
        let shapes: [(String, Int, Int, Int, Bool)] = [
            ("square 2048", 2048, 2048, 2048, false),
            ("conv 3x3 level 0 (O×9C×HW)", 320, 4096, 2880, false),
            ("conv 3x3 level 0, 1456-px tile", 320, 1456, 2880, false),
            ("conv 3x3 level 2 (16²)", 1280, 256, 11520, false),
            ("linear ff level 0 (T×C→8C)", 8192, 2560, 320, true),
            ("linear q/k/v level 0", 8192, 960, 320, true),
            ("attention q·kᵀ, d=40, 64 rows", 64, 4096, 40, true),
            ("attention p·v, d=40, 64 rows", 64, 40, 4096, false),
            ("VAE conv 3x3 at 512², 128 ch tile", 128, 3640, 1152, false),
        ]
        for (label, m, n, k, transB) in shapes {
            let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: k * n)
            var c = [Float](repeating: 0, count: m * n)
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            let repeats = max(1, Int(2e10 / flops))
            let start = Date()
            for _ in 0..<repeats {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k), 1,
                            a, Int32(k), b, Int32(transB ? k : n), 0, &c, Int32(n))
            }
            let seconds = Date().timeIntervalSince(start) / Double(repeats)
            print(String(format: "%-40@ %6.1f GFLOP/s", label as NSString, flops / seconds / 1e9))
        }
    }
}
