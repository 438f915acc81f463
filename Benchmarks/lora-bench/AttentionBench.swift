import ArgumentParser
import Diffusion
import Foundation
import LoRACore
import ToolSupport

/// The training step's attentions alone, forward (keeping the log-sum-exp) and backward, on each kernel path this
/// host has, in one run: whole-step pairs move by ±10% between runs on a shared host, which hides a change to one
/// layer; here the paths alternate on the same inputs. Shapes are SD1.5's at `--size` (8 heads; widths 320, 640,
/// 1280 → head widths 40, 80, 160; self-attention over the latent's tokens, cross-attention over 77 text tokens),
/// weighted by how often a U-Net step runs each: five transformer blocks at each of the three upper levels, one
/// in the middle block. The AVX-512 path runs its fused register-tile kernels for 256 keys and more;
/// `LT_NO_FUSED_ATTENTION=1` times the GEMM tiles there instead.
struct AttentionBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "attention",
                                                    abstract: "Time the training step's attentions, forward and backward, on each kernel path.")

    @Option(help: "Image size in pixels (square; latents are size/8).")
    var size = 512

    @Option(help: "Timed repeats per shape and path (the median is reported).")
    var repeats = 5

    func run() throws {
        ToolEnvironment.prepare()
        for line in ToolEnvironment.hostReport { print(line) }
        let side = size / 8
        // (level, tokens, head width, blocks at that level per step)
        let levels = [(side * side, 40, 5), (side * side / 4, 80, 5), (side * side / 16, 160, 5), (side * side / 64, 160, 1)]
        let paths = KernelPaths.available
        print("per call, median of \(repeats) (ms): forward | backward, on kernel paths \(paths.map(\.description).joined(separator: ", "))")
        var totals = [KernelPath: Double]()
        for (tokens, headDim, blocks) in levels {
            for keys in [tokens, 77] {
                let name = "\(tokens)×\(keys) d\(headDim)"
                var line = name.padding(toLength: 22, withPad: " ", startingAt: 0)
                for path in paths {
                    let (forward, backward) = KernelPaths.with(path) { time(queries: tokens, keys: keys, headDim: headDim) }
                    totals[path, default: 0] += Double(blocks) * (forward + backward)
                    line += String(format: "  %@ %8.2f | %8.2f", path.description, forward * 1000, backward * 1000)
                }
                print(line)
            }
        }
        print("a step's attentions (\(levels.map(\.2).reduce(0, +)) blocks, self and cross, forward and backward):", paths.map {
            String(format: "%@ %.3f s", $0.description, totals[$0] ?? 0)
        }.joined(separator: ", "))
    }

    /// Median seconds of the forward (with the log-sum-exp) and of the backward, one item, 8 heads.
    private func time(queries: Int, keys: Int, headDim: Int) -> (Double, Double) {
        let heads = 8, width = heads * headDim
        func values(_ count: Int, _ seed: Double) -> Tensor {
            Tensor(shape: [1, count / width, width], values: (0..<count).map { Float(sin(Double($0) * 0.7 + seed)) })
        }
        let q = values(queries * width, 1), k = values(keys * width, 2), v = values(keys * width, 3), dOut = values(queries * width, 4)
        var forward: [Double] = [], backward: [Double] = []
        for run in 0...repeats {   // the first run warms up
            var start = Date()
            let saved = Attention.forwardSaving(q: q, k: k, v: v, items: 1, queries: queries, keys: keys, heads: heads, headDim: headDim)
            let f = Date().timeIntervalSince(start)
            start = Date()
            let gradients = Attention.backward(q: q, k: k, v: v, saved: saved, outputGradient: dOut, items: 1, queries: queries, keys: keys,
                                               heads: heads, headDim: headDim)
            let b = Date().timeIntervalSince(start)
            precondition(gradients.q.count == q.count)
            if run > 0 { forward.append(f); backward.append(b) }
        }
        return (forward.sorted()[forward.count / 2], backward.sorted()[backward.count / 2])
    }
}
