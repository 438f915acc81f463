import ArgumentParser
import Foundation
import LinearAlgebra
import ToolSupport

/// GEMM throughput of each library on the shapes the engine uses, the way
/// the engine calls them (all cores for linear layers and im2col; one thread
/// per product for Winograd's 36 and attention's heads): the evidence behind
/// GEMMRouting.measured (Benchmarks/README.md, "Compute backend").
struct GemmBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gemm", abstract: "Time OpenBLAS and oneDNN GEMMs on the engine's shapes.")

    @Option(help: "Threads for the all-cores shapes.")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        ToolEnvironment.prepare()
        for line in ToolEnvironment.hostReport { print(line) }
        // (label, m, n, k, transB, single-threaded as the engine calls it)
        let shapes: [(String, Int, Int, Int, Bool, Bool)] = [
            ("square 2048", 2048, 2048, 2048, false, false),
            ("linear ff level 0 (T×C→8C)", 8192, 2560, 320, true, false),
            ("linear q/k/v level 0", 8192, 960, 320, true, false),
            ("linear level 2 (T×1280→1280)", 512, 1280, 1280, true, false),
            ("conv 3x3 im2col 8² 1280ch (folded)", 1280, 128, 11520, false, false),
            // Winograd: M[p] = U[p] (out × in) · V[p] (in × tiles of a chunk), as Conv2d.winograd sizes them.
            ("Winograd point, 320ch 64² (1 thread)", 320, 512, 320, false, true),
            ("Winograd point, 640ch 32² (1 thread)", 640, 128, 640, false, true),
            ("Winograd point, 1280ch 16² (1 thread)", 1280, 32, 1280, false, true),
            ("Winograd point, VAE 128ch 512² (1 thread)", 128, 1820, 128, false, true),
            ("Winograd point, VAE 256ch 256² (1 thread)", 256, 910, 256, false, true),
            ("Winograd point, VAE 512ch 128² (1 thread)", 512, 455, 512, false, true),
            ("attention q·kᵀ d=40, 64 rows (1 thread)", 64, 4096, 40, true, true),
            ("attention p·v d=40, 64 rows (1 thread)", 64, 40, 4096, false, true),
            ("cross-attention q·kᵀ 77 keys (1 thread)", 3276, 77, 40, true, true),
        ]
        print("\n" + "shape".padding(toLength: 42, withPad: " ", startingAt: 0) + "  openblas   onednn  GFLOP/s")
        for (label, m, n, k, transB, single) in shapes {
            let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: k * n)
            var c = [Float](repeating: 0, count: m * n)
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            let repeats = max(2, Int(1e10 / flops))
            var rates: [Double] = []
            for backend in GEMMBackend.allCases {
                let saved = LinearAlgebra.blasThreads
                LinearAlgebra.blasThreads = single ? 1 : threads
                defer { LinearAlgebra.blasThreads = saved }
                rates.append(LinearAlgebra.withRouting(.only(backend)) {
                    var best = 0.0
                    for _ in 0..<3 {
                        let start = Date()
                        for _ in 0..<repeats {
                            LinearAlgebra.gemm(transposeB: transB, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: transB ? k : n, c: &c, ldc: n)
                        }
                        best = max(best, flops * Double(repeats) / Date().timeIntervalSince(start) / 1e9)
                    }
                    return best
                })
            }
            print(label.padding(toLength: 42, withPad: " ", startingAt: 0) + String(format: "  %8.1f %8.1f", rates[0], rates[1]))
        }
    }
}
