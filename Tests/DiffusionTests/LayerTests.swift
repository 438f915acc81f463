@testable import Diffusion
import LoRACore
import CEngineKernels
import Foundation
import LinearAlgebra
import XCTest

/// Every layer's forward against a plain-loop (double precision) reference.
/// Layers whose C kernels have CPU-specific paths (attention, activations,
/// softmax) are checked on each path this host has, so the portable path an
/// AVX2-less CPU takes is tested on every host.
final class LayerTests: XCTestCase {
    struct Rng {
        var state: UInt64
        mutating func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 1_000_000
        }
        mutating func values(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in next() * scale } }
    }

    func assertClose(_ a: [Float], _ b: [Double], _ tolerance: Double = 1e-5, _ message: String = "", line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, message, line: line)
        let scale = max(1e-30, b.map(abs).max() ?? 0)
        let worst = zip(a, b).map { abs(Double($0) - $1) }.max() ?? 0
        XCTAssertLessThan(worst / scale, tolerance, message, line: line)
    }

    func testLinearPackedWithBiasAndLowRankAdapter() {
        var rng = Rng(state: 1)
        let rows = 5, inputs = 7, outs = [3, 4]
        let w = rng.values(7 * 7), b = rng.values(7)
        let linear = Linear(inFeatures: inputs, outFeatures: 7, weight: w, bias: b,
                            parts: [.init(key: "a", biasKey: "ab", rows: 0..<3), .init(key: "b", biasKey: "bb", rows: 3..<7)])
        let x = rng.values(rows * inputs)
        let down = rng.values(2 * inputs), up = rng.values(4 * 2)
        let adapters = AdapterSet(lowRank: ["b": [.init(down: down, up: up, rank: 2, scale: 0.7, rows: nil)]])
        let y = linear.forward(Tensor(shape: [rows, inputs], values: x), adapters: adapters)
        var expected = [Double](repeating: 0, count: rows * 7)
        for r in 0..<rows {
            for o in 0..<7 {
                var sum = Double(b[o])
                for i in 0..<inputs { sum += Double(x[r * inputs + i]) * Double(w[o * inputs + i]) }
                if o >= outs[0] {
                    for k in 0..<2 {
                        var h = 0.0
                        for i in 0..<inputs { h += Double(x[r * inputs + i]) * Double(down[k * inputs + i]) }
                        sum += 0.7 * h * Double(up[(o - 3) * 2 + k])
                    }
                }
                expected[r * 7 + o] = sum
            }
        }
        assertClose(y.values, expected)
        // A replacement weight for one part.
        let replaced = AdapterSet(replacements: ["a": [Float](repeating: 0, count: 3 * inputs), "ab": [0, 0, 0]])
        let z = linear.forward(Tensor(shape: [rows, inputs], values: x), adapters: replaced)
        XCTAssertEqual(z.values[0..<3], [0, 0, 0])
    }

    func naiveConv(_ x: [Float], batch: Int, c: Int, h: Int, w: Int, weight: [Float], bias: [Float], out: Int, k: Int, stride: Int,
                   pad: Conv2d.Padding) -> ([Double], Int, Int) {
        let oh = (h + pad.top + pad.bottom - k) / stride + 1, ow = (w + pad.left + pad.right - k) / stride + 1
        var y = [Double](repeating: 0, count: batch * out * oh * ow)
        for b in 0..<batch { for o in 0..<out { for oy in 0..<oh { for ox in 0..<ow {
            var sum = Double(bias[o])
            for ci in 0..<c { for ky in 0..<k { for kx in 0..<k {
                let iy = oy * stride - pad.top + ky, ix = ox * stride - pad.left + kx
                if iy >= 0, iy < h, ix >= 0, ix < w {
                    sum += Double(x[((b * c + ci) * h + iy) * w + ix]) * Double(weight[((o * c + ci) * k + ky) * k + kx])
                }
            } } }
            y[((b * out + o) * oh + oy) * ow + ox] = sum
        } } } }
        return (y, oh, ow)
    }

    func testConvolutions() {
        var rng = Rng(state: 2)
        let cases: [(k: Int, stride: Int, pad: Conv2d.Padding, h: Int, w: Int)] = [
            (3, 1, .same(1), 9, 7), (3, 2, .same(1), 9, 8), (3, 2, .init(top: 0, left: 0, bottom: 1, right: 1), 8, 8),
            (1, 1, .same(0), 5, 6), (3, 1, .same(1), 1, 1), (3, 1, .same(1), 2, 40),
        ]
        for (k, stride, pad, h, w) in cases {
            let c = 3, out = 5, batch = 2
            let weight = rng.values(out * c * k * k), bias = rng.values(out), x = rng.values(batch * c * h * w)
            let conv = Conv2d(key: "w", biasKey: "b", inChannels: c, outChannels: out, kernel: k, stride: stride, padding: pad,
                              weight: weight, bias: bias)
            let y = conv.forward(Tensor(shape: [batch, c, h, w], values: x))
            let (expected, oh, ow) = naiveConv(x, batch: batch, c: c, h: h, w: w, weight: weight, bias: bias, out: out, k: k, stride: stride, pad: pad)
            XCTAssertEqual(y.shape, [batch, out, oh, ow])
            assertClose(y.values, expected, 1e-5, "k\(k) s\(stride) \(pad) \(h)x\(w)")
        }
    }

    func testConvLoConAdapterIsAConvThenA1x1() {
        var rng = Rng(state: 3)
        let c = 4, out = 6, h = 6, w = 5, rank = 2
        let weight = rng.values(out * c * 9), bias = rng.values(out), x = rng.values(c * h * w)
        let down = rng.values(rank * c * 9), up = rng.values(out * rank)
        let conv = Conv2d(key: "w", biasKey: "b", inChannels: c, outChannels: out, kernel: 3, padding: .same(1), weight: weight, bias: bias)
        let y = conv.forward(Tensor(shape: [1, c, h, w], values: x),
                             adapters: AdapterSet(lowRank: ["w": [.init(down: down, up: up, rank: rank, scale: 0.5, rows: nil)]]))
        // Reference: the merged weight W + 0.5·up·down, convolved naively.
        var merged = weight
        for o in 0..<out { for i in 0..<(c * 9) {
            var s: Float = 0
            for r in 0..<rank { s += up[o * rank + r] * down[r * c * 9 + i] }
            merged[o * c * 9 + i] += 0.5 * s
        } }
        let (expected, _, _) = naiveConv(x, batch: 1, c: c, h: h, w: w, weight: merged, bias: bias, out: out, k: 3, stride: 1, pad: .same(1))
        assertClose(y.values, expected, 1e-5)
    }

    /// Large 3×3 convolutions take the Winograd F(4×4, 3×3) path; odd sizes
    /// exercise the partial edge tiles (and eight-tile vector blocks that
    /// cross tile rows and batch items), and a LoCon down rides along as extra
    /// output channels of the same transform. On each kernel path.
    func testWinogradConvolutionWithLoConMatchesNaive() {
        KernelPaths.forEachPath { _ in checkWinograd(KernelPaths.description) }
    }

    /// Which convolutions take Winograd's path: 512 output pixels or more over the batch (16×16 in a CFG batch of
    /// two, 32×32 alone), 32 channels or more on both sides, float32 arithmetic; a forced path wins over the size.
    func testWinogradRule() {
        XCTAssertTrue(Conv2d.usesWinograd(batch: 2, height: 16, width: 16, inChannels: 1280, outChannels: 1280))
        XCTAssertFalse(Conv2d.usesWinograd(batch: 1, height: 16, width: 16, inChannels: 1280, outChannels: 1280), "one item at 16×16")
        XCTAssertTrue(Conv2d.usesWinograd(batch: 1, height: 32, width: 32, inChannels: 640, outChannels: 640))
        XCTAssertFalse(Conv2d.usesWinograd(batch: 4, height: 8, width: 8, inChannels: 1280, outChannels: 1280))
        XCTAssertFalse(Conv2d.usesWinograd(batch: 1, height: 64, width: 64, inChannels: 16, outChannels: 320), "too few channels")
        LinearAlgebra.withRouting(GEMMRouting(parallel: .oneDNN, singleThreaded: .oneDNN, arithmetic: .bf16Emulated)) {
            XCTAssertFalse(Conv2d.usesWinograd(batch: 1, height: 64, width: 64, inChannels: 320, outChannels: 320), "bf16")
        }
        Conv2d.forcedWinograd = true
        defer { Conv2d.forcedWinograd = nil }
        XCTAssertTrue(Conv2d.usesWinograd(batch: 1, height: 8, width: 8, inChannels: 32, outChannels: 32))
    }

    /// The upsamplers' convolution reads its input through the nearest-neighbour 2× upsampling on Winograd's path
    /// instead of making the upsampled copy: the same bits as convolving the copy, on each kernel path (the gather
    /// has its own code for tiles inside and on the edge), with and without a LoCon riding along, and on the
    /// im2col path (where the copy is made). Odd source sizes leave partial tiles at the bottom and right.
    func testUpsamplingConvolutionIsTheConvolutionOfTheUpsampledCopy() {
        var rng = Rng(state: 12)
        let c = 32, out = 40, rank = 2
        let weight = rng.values(out * c * 9, scale: 0.2), bias = rng.values(out)
        let down = rng.values(rank * c * 9, scale: 0.2), up = rng.values(out * rank)
        let conv = Conv2d(key: "w", biasKey: "b", inChannels: c, outChannels: out, kernel: 3, padding: .same(1), weight: weight, bias: bias)
        let locon = AdapterSet(lowRank: ["w": [.init(down: down, up: up, rank: rank, scale: 0.5, rows: nil)]])
        defer { Conv2d.forcedWinograd = nil }
        KernelPaths.forEachPath { path in
            for (batch, h, w) in [(2, 5, 7), (1, 9, 4), (1, 1, 1)] {
                let x = Tensor(shape: [batch, c, h, w], values: rng.values(batch * c * h * w))
                for winograd in [true, false] {
                    Conv2d.forcedWinograd = winograd
                    for adapters in [AdapterSet.empty, locon] {
                        let fused = conv.forward(upsampling: x, adapters: adapters)
                        let copied = conv.forward(upsampleNearest2x(x), adapters: adapters)
                        XCTAssertEqual(fused.shape, [batch, out, 2 * h, 2 * w])
                        XCTAssertEqual(fused.values, copied.values,
                                       "\(path), \(batch)×\(h)×\(w), winograd \(winograd), LoCon \(adapters.lowRank.isEmpty ? "no" : "yes")")
                    }
                }
                // And against the naive convolution of the copy, so a gather that read the wrong pixel in both
                // would still fail.
                Conv2d.forcedWinograd = true
                let upsampled = upsampleNearest2x(x)
                let (expected, _, _) = naiveConv(upsampled.values, batch: batch, c: c, h: 2 * h, w: 2 * w, weight: weight, bias: bias,
                                                 out: out, k: 3, stride: 1, pad: .same(1))
                assertClose(conv.forward(upsampling: x).values, expected, 1e-5, "\(path), \(batch)×\(h)×\(w) against naive")
            }
        }
    }

    func checkWinograd(_ path: String) {
        var rng = Rng(state: 11)
        let c = 32, out = 40, h = 33, w = 35, batch = 2, rank = 3
        Conv2d.forcedWinograd = true
        defer { Conv2d.forcedWinograd = nil }
        let weight = rng.values(out * c * 9, scale: 0.2), bias = rng.values(out), x = rng.values(batch * c * h * w)
        let down = rng.values(rank * c * 9, scale: 0.2), up = rng.values(out * rank)
        let conv = Conv2d(key: "w", biasKey: "b", inChannels: c, outChannels: out, kernel: 3, padding: .same(1), weight: weight, bias: bias)
        let input = Tensor(shape: [batch, c, h, w], values: x)
        let plain = conv.forward(input)
        let (expected, _, _) = naiveConv(x, batch: batch, c: c, h: h, w: w, weight: weight, bias: bias, out: out, k: 3, stride: 1, pad: .same(1))
        assertClose(plain.values, expected, 1e-5, "winograd, \(path)")
        let adapted = conv.forward(input, adapters: AdapterSet(lowRank: ["w": [.init(down: down, up: up, rank: rank, scale: 0.25, rows: nil)]]))
        var merged = weight
        for o in 0..<out { for i in 0..<(c * 9) {
            var s: Float = 0
            for r in 0..<rank { s += up[o * rank + r] * down[r * c * 9 + i] }
            merged[o * c * 9 + i] += 0.25 * s
        } }
        let (expectedLoCon, _, _) = naiveConv(x, batch: batch, c: c, h: h, w: w, weight: merged, bias: bias, out: out, k: 3, stride: 1, pad: .same(1))
        assertClose(adapted.values, expectedLoCon, 1e-5, "winograd + LoCon, \(path)")
    }

    func testNormalizations() throws {
        var rng = Rng(state: 4)
        let batch = 2, channels = 64, spatial = 10, groups = 32
        let x = rng.values(batch * channels * spatial, scale: 3).map { $0 + 1.5 }
        let gamma = rng.values(channels), beta = rng.values(channels)
        // Built in memory, as gradient tests and training will; the file path is the same init underneath.
        let norm = GroupNorm(channels: channels, epsilon: 1e-5, weight: gamma, bias: beta)
        XCTAssertEqual(try GroupNorm(weightsFor(["n.weight": gamma, "n.bias": beta]), "n", channels: channels, epsilon: 1e-5).weight, gamma)
        for silu in [false, true] {
            let y = norm.forward(Tensor(shape: [batch, channels, spatial, 1], values: x), silu: silu)
            var expected = [Double](repeating: 0, count: x.count)
            let per = channels / groups
            for b in 0..<batch { for g in 0..<groups {
                let range = ((b * channels + g * per) * spatial)..<((b * channels + (g + 1) * per) * spatial)
                let mean = range.reduce(0.0) { $0 + Double(x[$1]) } / Double(range.count)
                let variance = range.reduce(0.0) { $0 + pow(Double(x[$1]) - mean, 2) } / Double(range.count)
                for i in range {
                    let c = (i / spatial) % channels
                    var v = (Double(x[i]) - mean) / (variance + 1e-5).squareRoot() * Double(gamma[c]) + Double(beta[c])
                    if silu { v = v / (1 + exp(-v)) }
                    expected[i] = v
                }
            } }
            assertClose(y.values, expected, 1e-5, "silu \(silu)")
            var inPlace = Tensor(shape: [batch, channels, spatial, 1], values: x)
            norm.forwardInPlace(&inPlace, silu: silu)
            XCTAssertEqual(inPlace.values.map(\.bitPattern), y.values.map(\.bitPattern), "in place, silu \(silu)")
        }
        let width = 48
        let rows = rng.values(3 * width, scale: 2)
        let ln = LayerNorm(width: width, weight: Array(gamma.prefix(width)), bias: Array(beta.prefix(width)))
        XCTAssertEqual(try LayerNorm(weightsFor(["l.weight": Array(gamma.prefix(width)), "l.bias": Array(beta.prefix(width))]), "l", width: width).bias,
                       Array(beta.prefix(width)))
        let z = ln.forward(Tensor(shape: [3, width], values: rows))
        var expected = [Double]()
        for r in 0..<3 {
            let row = rows[(r * width)..<((r + 1) * width)].map(Double.init)
            let mean = row.reduce(0, +) / Double(width)
            let variance = row.reduce(0) { $0 + pow($1 - mean, 2) } / Double(width)
            for (i, v) in row.enumerated() { expected.append((v - mean) / (variance + 1e-5).squareRoot() * Double(gamma[i]) + Double(beta[i])) }
        }
        assertClose(z.values, expected, 1e-5)
    }

    /// On each kernel path and each GEMM library: for long key sequences the AVX-512 path takes the register tiles on
    /// either library, the AVX2 path their AVX2 instance when single-threaded GEMMs go to OpenBLAS, and otherwise GEMM
    /// tiles + online softmax.
    func testAttentionHeadsCausalAndChunked() {
        for backend in GEMMBackend.allCases {
            LinearAlgebra.withRouting(.only(backend)) {
                KernelPaths.forEachPath { path in
                    XCTAssertEqual(Attention.registerTilesEnabled, path == .avx512 || (path == .avx2 && backend == .openBLAS), "\(path)")
                    checkAttention("\(KernelPaths.description), \(backend.rawValue)")
                }
            }
        }
    }

    private func checkAttention(_ path: String) {
        var rng = Rng(state: 5)
        // (1500, 3000) and (1300, 1300) causal span several tiles of the GEMM path's online softmax each way
        // (128 rows × 1,024 keys; causal rows past 1,024 see two key tiles, the diagonal in the second).
        // `sharpness` scales q: at 12 a row's scores spread over tens of units, so the AVX-512 kernel's reference
        // maximum moves (and rescales the sums and outputs) on later key tiles, not only on the first.
        for (queries, keys, heads, d, causal, sharpness) in [
            (7, 7, 2, 4, true, 1), (9, 5, 3, 8, false, 1), (1500, 3000, 1, 4, false, 1), (1300, 1300, 2, 8, true, 1),
            // the AVX2 fused kernel: ragged query/key blocks, d % 8 == 0
            (130, 333, 2, 8, false, 1), (65, 257, 1, 40, false, 1),
            // the AVX-512 kernel: SD's head widths 40, 80, 160 and 64 (v in passes of 3, 3 + 2, 4 + 3 + 3 and 4 vectors),
            // query groups of 96 rows with a ragged last register tile of 6, key spans (704 keys at d = 40, 384 at 80,
            // 192 at 160) with a ragged last tile of 64
            (200, 777, 2, 40, false, 1), (101, 400, 1, 80, false, 1), (7, 300, 1, 160, false, 1), (50, 260, 1, 64, false, 1),
            (97, 1000, 1, 40, false, 12), (13, 450, 2, 80, false, 12)] as [(Int, Int, Int, Int, Bool, Float)] {
            let width = heads * d
            let q = rng.values(queries * width).map { $0 * sharpness }, k = rng.values(keys * width), v = rng.values(keys * width)
            // Without and with the log-sum-exp the training forward keeps.
            var out = [Float](repeating: 0, count: queries * width), saving = out, lse = [Float](repeating: 0, count: heads * queries)
            q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
                func run(_ into: inout [Float], logSumExp: UnsafeMutablePointer<Float>?) {
                    into.withUnsafeMutableBufferPointer { op in
                        Attention.forward(q: .init(pointer: qp.baseAddress!, stride: width), k: .init(pointer: kp.baseAddress!, stride: width),
                                          v: .init(pointer: vp.baseAddress!, stride: width), into: op.baseAddress!, outStride: width,
                                          queries: queries, keys: keys, heads: heads, headDim: d, causal: causal, logSumExp: logSumExp)
                    }
                }
                run(&out, logSumExp: nil)
                lse.withUnsafeMutableBufferPointer { run(&saving, logSumExp: $0.baseAddress!) }
            } } }
            var expected = [Double](repeating: 0, count: queries * width), expectedLSE = [Double](repeating: 0, count: heads * queries)
            let scale = 1 / Double(d).squareRoot()
            for h in 0..<heads { for i in 0..<queries {
                let visible = causal ? min(keys, i + 1) : keys
                var scores = [Double](repeating: 0, count: visible)
                for j in 0..<visible {
                    var s = 0.0
                    for c in 0..<d { s += Double(q[i * width + h * d + c]) * Double(k[j * width + h * d + c]) }
                    scores[j] = s * scale
                }
                let m = scores.max()!
                let e = scores.map { exp($0 - m) }, total = e.reduce(0, +)
                expectedLSE[h * queries + i] = m + log(total)
                for c in 0..<d {
                    var s = 0.0
                    for j in 0..<visible { s += e[j] / total * Double(v[j * width + h * d + c]) }
                    expected[i * width + h * d + c] = s
                }
            } }
            assertClose(out, expected, 1e-5, "\(queries)x\(keys) heads \(heads) causal \(causal), kernels \(path)")
            assertClose(saving, expected, 1e-5, "\(queries)x\(keys) heads \(heads) causal \(causal), kernels \(path), saving")
            assertClose(lse, expectedLSE, 1e-5, "\(queries)x\(keys) heads \(heads) causal \(causal), kernels \(path), log-sum-exp")
        }
    }

    func testActivationsAndGEGLU() {
        var rng = Rng(state: 6)
        let x = rng.values(1003, scale: 6)
        KernelPaths.forEachPath { _ in
            // A&S 7.1.26 erf is accurate to 1.5e-7 absolute; exp to ~2e-7 relative.
            assertClose(Activation.silu(Tensor(shape: [x.count], values: x)).values, x.map { Double($0) / (1 + exp(-Double($0))) }, 1e-6)
            assertClose(Activation.quickGELU(Tensor(shape: [x.count], values: x)).values, x.map { Double($0) / (1 + exp(-1.702 * Double($0))) }, 1e-6)
            assertClose(Activation.gelu(Tensor(shape: [x.count], values: x)).values,
                        x.map { 0.5 * Double($0) * (1 + erf(Double($0) / 2.0.squareRoot())) }, 1e-6)
            let proj = rng.values(3 * 2 * 11, scale: 3)
            let y = geglu(Tensor(shape: [3, 22], values: proj))
            var expected = [Double]()
            for r in 0..<3 { for i in 0..<11 {
                let a = Double(proj[r * 22 + i]), g = Double(proj[r * 22 + 11 + i])
                expected.append(a * 0.5 * g * (1 + erf(g / 2.0.squareRoot())))
            } }
            assertClose(y.values, expected, 1e-6)
            var rows = rng.values(2 * 37, scale: 20)
            let reference = rows
            rows.withUnsafeMutableBufferPointer { lt_softmax_rows($0.baseAddress!, 2, 37, 37, 0.5) }
            for r in 0..<2 {
                let s = reference[(r * 37)..<((r + 1) * 37)].map { Double($0) * 0.5 }
                let m = s.max()!, e = s.map { exp($0 - m) }, total = e.reduce(0, +)
                assertClose(Array(rows[(r * 37)..<((r + 1) * 37)]), e.map { $0 / total }, 1e-6)
            }
        }
    }

    /// The attention tiles' exponentials on each path: within exp's 3e-7 relative of exp in double, plus the float
    /// argument's rounding (zero below exp's range), and on an AVX-512 host the AVX-512 path's values equal the AVX2 path's vector values bit for bit
    /// (exp16 repeats exp8's operations on 16 lanes), full vectors and masked tails alike; the score gradient likewise.
    func testAttentionExponentialsOnEachPath() throws {
        var rng = Rng(state: 8)
        let rows = 3, cols = 45, scale: Float = 0.5                       // 45 = 2·16 + 13 = 5·8 + 5: vector bodies and tails
        var scores = rng.values(rows * cols, scale: 60)
        scores[0] = -400; scores[1] = 200; scores[2] = 0                   // below exp's range (0), and the largest inputs
        let lse: [Float] = [100, -2, 3], delta: [Float] = [0.25, -1, 2]
        let upstream = rng.values(rows * cols)
        var results: [KernelPath: (probabilities: [Float], gradient: [Float])] = [:]
        KernelPaths.forEachPath { path in
            var p = scores, dp = upstream
            p.withUnsafeMutableBufferPointer { lt_attention_probabilities($0.baseAddress!, rows, cols, cols, scale, lse, 0, 0) }
            dp.withUnsafeMutableBufferPointer { lt_attention_score_gradient(p, $0.baseAddress!, rows, cols, cols, delta, scale) }
            for r in 0..<rows { for j in 0..<cols {
                let x = Double(scores[r * cols + j]) * Double(scale) - Double(lse[r]), value = Double(p[r * cols + j])
                let expected = x < -87.33 ? 0 : Foundation.exp(x)
                // exp's own 2e-7, and the argument's rounding to float (half an ulp of |x|, relative to exp(x)).
                XCTAssertLessThanOrEqual(abs(value - expected), (3e-7 + 6e-8 * abs(x)) * expected, "\(path): exp(\(x)) at row \(r), column \(j)")
                let gradient = Double(p[r * cols + j]) * (Double(upstream[r * cols + j]) - Double(delta[r])) * Double(scale)
                XCTAssertEqual(Double(dp[r * cols + j]), gradient, accuracy: 1e-6 * abs(gradient) + 1e-30, "\(path): dS at \(r), \(j)")
            } }
            results[path] = (p, dp)
        }
        guard let avx512 = results[.avx512], let avx2 = results[.avx2] else {
            throw XCTSkip("no AVX-512 on this host (\(CPUFeatures.host.cpuClass)): the bit-for-bit comparison with AVX2 needs one")
        }
        // The AVX2 path's last cols % 8 values take the scalar exp (its last bit may differ): compared up to there,
        // which includes AVX-512's masked tail (columns 32..<40).
        let vectorColumns = cols / 8 * 8
        for r in 0..<rows {
            let columns = (r * cols)..<(r * cols + vectorColumns)
            XCTAssertEqual(avx512.probabilities[columns].map(\.bitPattern), avx2.probabilities[columns].map(\.bitPattern), "row \(r)")
            XCTAssertEqual(avx512.gradient[columns].map(\.bitPattern), avx2.gradient[columns].map(\.bitPattern), "row \(r)")
        }
    }

    func testResamplingAndTimestepEmbedding() {
        let x = Tensor(shape: [1, 1, 2, 2], values: [1, 2, 3, 4])
        XCTAssertEqual(upsampleNearest2x(x).values, [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
        let e = timestepEmbedding([0, 500.5], dim: 8)
        XCTAssertEqual(Array(e.values[0..<8]), [1, 1, 1, 1, 0, 0, 0, 0])
        for i in 0..<4 {
            let f = exp(-log(10000.0) * Double(i) / 4)
            XCTAssertEqual(Double(e.values[8 + i]), cos(500.5 * f), accuracy: 2e-4)
            XCTAssertEqual(Double(e.values[12 + i]), sin(500.5 * f), accuracy: 2e-4)
        }
    }

    /// A Weights view over in-memory tensors (written to a temporary safetensors file).
    func weightsFor(_ tensors: [String: [Float]]) throws -> Weights {
        let path = NSTemporaryDirectory() + "layer-\(UUID().uuidString).safetensors"
        let names = tensors.keys.sorted()
        let writer = try SafeTensorsWriter(path: path, metadata: Metadata(), entries: names.map { .init(name: $0, dtype: .f32, shape: [tensors[$0]!.count]) })
        for name in names { try tensors[name]!.withUnsafeBufferPointer { try writer.write(name: name, floats: $0) } }
        try writer.finish()
        defer { try? FileManager.default.removeItem(atPath: path) }
        return Weights(try ModelFile.open(path))
    }
}
