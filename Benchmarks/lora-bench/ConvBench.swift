import ArgumentParser
import Diffusion
import Foundation
import ToolSupport

/// SD1.5's U-Net 3×3, stride-1 convolutions (those Winograd's path can take), one distinct shape at a time, forward
/// and input gradient (what a LoRA step runs through the frozen weights), on Winograd's path and on im2col/col2im;
/// then what a whole step's convolutions cost on either path and on the size rule Conv2d uses: the evidence behind
/// Conv2d.winogradMinimumTiles. Both paths of a shape run back to back, so a shared host's drift hits them alike.
struct ConvBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "conv", abstract: "Time the U-Net's 3×3 convolutions (forward and input gradient) on both paths.")

    @Option(help: "Latent side (64: 512² images).")
    var latent = 64

    @Option(help: "Batch items (1: a LoRA step at batch 1; 2: a CFG inference step).")
    var batch = 1

    @Option(help: "Timed repeats of each (the best is reported).")
    var repeats = 3

    /// (input channels, output channels, latent divisor, count) of SD1.5's ResBlock and upsampler convolutions.
    static let unet: [(Int, Int, Int, Int)] = [
        (320, 320, 1, 4 + 3 + 0), (640, 320, 1, 2), (960, 320, 1, 1), (640, 640, 1, 1),          // 64²: down 0, up 3, up 2's upsampler
        (320, 640, 2, 1), (640, 640, 2, 3 + 3), (1920, 640, 2, 1), (1280, 640, 2, 1), (960, 640, 2, 1), (1280, 1280, 2, 1),   // 32²
        (640, 1280, 4, 1), (1280, 1280, 4, 3 + 3 + 1), (2560, 1280, 4, 2), (1920, 1280, 4, 1),  // 16²
        (1280, 1280, 8, 4 + 4 + 3), (2560, 1280, 8, 3),                                          // 8²: down 3, mid, up 0
    ]

    func run() throws {
        ToolEnvironment.prepare()
        for line in ToolEnvironment.hostReport { print(line) }
        print("\nshape (batch \(batch), ×count)      Winograd fwd / dx      im2col fwd / dx     rule")
        var totals = (winograd: 0.0, im2col: 0.0, rule: 0.0, best: 0.0)
        for (inputs, outputs, divisor, count) in Self.unet {
            let side = latent / divisor
            var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
            func random(_ n: Int) -> [Float] {
                (0..<n).map { _ in seed = seed &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: seed >> 11) % 2001 - 1000) / 30000 }
            }
            let conv = Conv2d(key: "c", biasKey: "b", inChannels: inputs, outChannels: outputs, kernel: 3, padding: .same(1),
                              weight: random(inputs * outputs * 9), bias: random(outputs))
            let x = Tensor(shape: [batch, inputs, side, side], values: random(batch * inputs * side * side))
            let dy = Tensor(shape: [batch, outputs, side, side], values: random(batch * outputs * side * side))
            var times: [(forward: Double, dx: Double)] = []
            for winograd in [true, false] {
                Conv2d.forcedWinograd = winograd
                defer { Conv2d.forcedWinograd = nil }
                var forward = Double.infinity, dx = Double.infinity
                for _ in 0..<repeats {
                    var start = Date()
                    _ = conv.forward(x)
                    forward = min(forward, Date().timeIntervalSince(start))
                    start = Date()
                    _ = conv.backward(input: x, outputGradient: dy)
                    dx = min(dx, Date().timeIntervalSince(start))
                }
                times.append((forward, dx))
            }
            // The rule, for the forward and for dx (the transposed convolution: channels swapped, same tiles).
            let forwardRule = Conv2d.usesWinograd(batch: batch, height: side, width: side, inChannels: inputs, outChannels: outputs)
            let dxRule = Conv2d.usesWinograd(batch: batch, height: side, width: side, inChannels: outputs, outChannels: inputs)
            let n = Double(count)
            totals.winograd += n * (times[0].forward + times[0].dx)
            totals.im2col += n * (times[1].forward + times[1].dx)
            totals.rule += n * ((forwardRule ? times[0] : times[1]).forward + (dxRule ? times[0] : times[1]).dx)
            totals.best += n * (min(times[0].forward, times[1].forward) + min(times[0].dx, times[1].dx))
            print(String(format: "%4d→%4d %3d² ×%-2d            %7.1f / %6.1f ms   %7.1f / %6.1f ms   %@", inputs, outputs, side, count,
                         times[0].forward * 1e3, times[0].dx * 1e3, times[1].forward * 1e3, times[1].dx * 1e3,
                         forwardRule ? "Winograd" : "im2col"))
        }
        print(String(format: "\none step's convolutions (forward + dx): all Winograd %.2f s, all im2col %.2f s, the rule (≥ %d tiles) %.2f s, best per shape %.2f s",
                     totals.winograd, totals.im2col, Conv2d.winogradMinimumTiles, totals.rule, totals.best))
    }
}
