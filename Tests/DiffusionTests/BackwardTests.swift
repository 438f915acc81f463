@testable import Diffusion
import Foundation
import LinearAlgebra
import LoRACore
import XCTest

/// Every backward pass against central finite differences of a
/// double-precision reference forward, on small shapes: the loss is
/// L = Σ r ⊙ y for a fixed random r (so dy = r), the analytic gradients come
/// from the layer's float32 backward, and the references differentiate the
/// plain-loop double forward with h = 1e-6. Agreement within 1e-4 of the
/// largest gradient is float32's error, not the method's.
final class BackwardTests: XCTestCase {
    struct Rng {
        var state: UInt64
        mutating func next() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 1_000_000
        }
        mutating func values(_ n: Int, scale: Double = 1) -> [Double] { (0..<n).map { _ in next() * scale } }
    }

    /// Analytic gradient vs central differences of `loss` at `point` (all
    /// coordinates, or the given ones).
    func checkGradient(_ label: String, analytic: [Float], at point: [Double], indices: [Int]? = nil, tolerance: Double = 1e-4,
                       file: StaticString = #filePath, line: UInt = #line, loss: ([Double]) -> Double) {
        XCTAssertEqual(analytic.count, point.count, label, file: file, line: line)
        var worst = 0.0, largest = 0.0
        var p = point
        for i in indices ?? Array(point.indices) {
            let h = 1e-6 * max(1, abs(point[i]))
            p[i] = point[i] + h
            let plus = loss(p)
            p[i] = point[i] - h
            let minus = loss(p)
            p[i] = point[i]
            let numeric = (plus - minus) / (2 * h)
            worst = max(worst, abs(Double(analytic[i]) - numeric))
            largest = max(largest, abs(numeric))
        }
        XCTAssertGreaterThan(largest, 0, "\(label): the gradient must not vanish for the check to mean anything", file: file, line: line)
        XCTAssertLessThan(worst / largest, tolerance, "\(label): worst |analytic − numeric| \(worst), largest gradient \(largest)",
                          file: file, line: line)
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
    static func floats(_ v: [Double]) -> [Float] { v.map { Float($0) } }

    // MARK: Linear

    func testLinear() {
        var rng = Rng(state: 1)
        let rows = 5, inputs = 7, outputs = 6
        let x = rng.values(rows * inputs), w = rng.values(outputs * inputs), b = rng.values(outputs), r = rng.values(rows * outputs)
        func forward(_ x: [Double], _ w: [Double], _ b: [Double]) -> [Double] {
            (0..<(rows * outputs)).map { index in
                let row = index / outputs, o = index % outputs
                return b[o] + (0..<inputs).reduce(0.0) { $0 + x[row * inputs + $1] * w[o * inputs + $1] }
            }
        }
        let layer = Linear(inFeatures: inputs, outFeatures: outputs, weight: Self.floats(w), bias: Self.floats(b),
                           parts: [.init(key: "w", biasKey: "b", rows: 0..<outputs)])
        let dW = Gradient(count: w.count), dB = Gradient(count: b.count)
        dW.values[0] = 1  // parameter gradients accumulate: the 1 must still be there after
        let dx = layer.backward(input: Tensor(shape: [rows, inputs], values: Self.floats(x)),
                                outputGradient: Tensor(shape: [rows, outputs], values: Self.floats(r)), weightGradient: dW, biasGradient: dB)
        checkGradient("linear dx", analytic: dx.values, at: x) { Self.dot(r, forward($0, w, b)) }
        dW.values[0] -= 1
        checkGradient("linear dW", analytic: dW.values, at: w) { Self.dot(r, forward(x, $0, b)) }
        checkGradient("linear db", analytic: dB.values, at: b) { Self.dot(r, forward(x, w, $0)) }
    }

    // MARK: Convolution

    static func conv(_ x: [Double], _ w: [Double], _ b: [Double], batch: Int, c: Int, h: Int, wd: Int, out: Int, k: Int,
                     stride: Int, pad: Int) -> [Double] {
        let oh = (h + 2 * pad - k) / stride + 1, ow = (wd + 2 * pad - k) / stride + 1
        var y = [Double](repeating: 0, count: batch * out * oh * ow)
        for n in 0..<batch { for o in 0..<out { for oy in 0..<oh { for ox in 0..<ow {
            var s = b[o]
            for ci in 0..<c { for ky in 0..<k { for kx in 0..<k {
                let iy = oy * stride - pad + ky, ix = ox * stride - pad + kx
                if iy >= 0 && iy < h && ix >= 0 && ix < wd { s += x[((n * c + ci) * h + iy) * wd + ix] * w[((o * c + ci) * k + ky) * k + kx] }
            } } }
            y[((n * out + o) * oh + oy) * ow + ox] = s
        } } } }
        return y
    }

    func checkConvolution(batch: Int, c: Int, h: Int, w wd: Int, out: Int, k: Int, stride: Int, pad: Int, sampled: Int? = nil,
                          inputOnly: Bool = false, line: UInt = #line) {
        var rng = Rng(state: UInt64(100 + c * out + k + stride))
        let x = rng.values(batch * c * h * wd), w = rng.values(out * c * k * k, scale: 0.3), b = rng.values(out)
        let oh = (h + 2 * pad - k) / stride + 1, ow = (wd + 2 * pad - k) / stride + 1
        let r = rng.values(batch * out * oh * ow)
        let layer = Conv2d(key: "w", biasKey: "b", inChannels: c, outChannels: out, kernel: k, stride: stride, padding: .same(pad),
                           weight: Self.floats(w), bias: Self.floats(b))
        let dW = Gradient(count: w.count), dB = Gradient(count: b.count)
        let dx = layer.backward(input: Tensor(shape: [batch, c, h, wd], values: Self.floats(x)),
                                outputGradient: Tensor(shape: [batch, out, oh, ow], values: Self.floats(r)), weightGradient: dW, biasGradient: dB)
        let label = "conv \(k)×\(k)/\(stride) \(c)→\(out) at \(h)×\(wd)"
        let pick: (Int) -> [Int]? = { count in
            guard let sampled else { return nil }
            var pr = Rng(state: 7)
            return (0..<sampled).map { _ in Int(abs(pr.next()) * Double(count - 1)) }
        }
        func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
            Self.dot(r, Self.conv(x, w, b, batch: batch, c: c, h: h, wd: wd, out: out, k: k, stride: stride, pad: pad))
        }
        checkGradient(label + " dx", analytic: dx.values, at: x, indices: pick(x.count), line: line) { loss($0, w, b) }
        guard !inputOnly else { return }
        checkGradient(label + " dW", analytic: dW.values, at: w, indices: pick(w.count), line: line) { loss(x, $0, b) }
        checkGradient(label + " db", analytic: dB.values, at: b, line: line) { loss(x, w, $0) }
    }

    func testConvolutions() {
        checkConvolution(batch: 2, c: 3, h: 5, w: 6, out: 4, k: 3, stride: 1, pad: 1)   // 3×3 off Winograd's path: col2im
        checkConvolution(batch: 1, c: 3, h: 7, w: 6, out: 2, k: 3, stride: 2, pad: 1)   // downsampler: col2im
        checkConvolution(batch: 2, c: 4, h: 3, w: 5, out: 3, k: 1, stride: 1, pad: 0)   // 1×1: col2im
    }

    /// dx as the transposed convolution on the forward's Winograd path, its filters transformed straight from
    /// W (taps reversed as they are read, `lt_winograd_filter_flipped`, multiplied transposed), forced on: on each kernel
    /// path, with channel counts that leave a scalar tail after the blocks of eight on both sides. dx at sampled
    /// coordinates; dW and db are the im2col GEMMs checked above.
    func testConvolutionInputGradientOnTheWinogradPath() {
        Conv2d.forcedWinograd = true
        defer { Conv2d.forcedWinograd = nil }
        KernelPaths.forEachPath { _ in
            checkConvolution(batch: 1, c: 35, h: 17, w: 16, out: 33, k: 3, stride: 1, pad: 1, sampled: 8, inputOnly: true)
            // The same numbers as the forward of a flipped, transposed copy of the weights on the same path (to the
            // rounding of the GEMMs, which read their transposed operand in another order).
            var rng = Rng(state: 5)
            let (c, out, h, w) = (35, 33, 9, 13)
            let weight = Self.floats(rng.values(out * c * 9)), dy = Tensor(shape: [2, out, h, w], values: Self.floats(rng.values(2 * out * h * w)))
            var flipped = [Float](repeating: 0, count: weight.count)
            for o in 0..<out { for i in 0..<c { for tap in 0..<9 { flipped[(i * out + o) * 9 + 8 - tap] = weight[(o * c + i) * 9 + tap] } } }
            let layer = Conv2d(key: "w", biasKey: "b", inChannels: c, outChannels: out, kernel: 3, padding: .same(1), weight: weight,
                               bias: [Float](repeating: 0, count: out))
            let copy = Conv2d(key: "t", biasKey: "tb", inChannels: out, outChannels: c, kernel: 3, padding: .same(1), weight: flipped,
                              bias: [Float](repeating: 0, count: c))
            let dx = layer.backward(input: Tensor(zeros: [2, c, h, w]), outputGradient: dy).values, expected = copy.forward(dy).values
            let scale = expected.map(abs).max() ?? 0, worst = zip(dx, expected).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertGreaterThan(scale, 0)
            XCTAssertLessThan(worst / scale, 1e-5, KernelPaths.description)  // Winograd F(4×4, 3×3) rounds at ~1e-6
        }
    }

    // MARK: Norms

    /// On each kernel path (the C kernel's AVX2 loop and its scalar tail), with 5 values per channel (tail only)
    /// and 21 (two vectors and a tail).
    func testGroupNormWithAndWithoutSiLU() {
        KernelPaths.forEachPath { _ in
            for spatial in [5, 21] { checkGroupNorm(spatial: spatial) }
        }
    }

    /// GroupNorm (ε 1e-5, optionally then SiLU) over [batch, channels, spatial] in double.
    func groupNormReference(_ x: [Double], _ gamma: [Double], _ beta: [Double], batch: Int, groups: Int, spatial: Int, silu: Bool) -> [Double] {
        var y = x
        let channels = gamma.count, per = channels / groups * spatial
        for n in 0..<batch { for g in 0..<groups {
            let offset = (n * channels + g * channels / groups) * spatial
            let values = x[offset..<(offset + per)]
            let mean = values.reduce(0, +) / Double(per)
            let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(per)
            for i in 0..<per {
                let c = g * channels / groups + i / spatial
                var z = (x[offset + i] - mean) / (variance + 1e-5).squareRoot() * gamma[c] + beta[c]
                if silu { z = z / (1 + exp(-z)) }
                y[offset + i] = z
            }
        } }
        return y
    }

    func checkGroupNorm(spatial: Int) {
        var rng = Rng(state: 3)
        let batch = 2, channels = 6, groups = 3
        let x = rng.values(batch * channels * spatial, scale: 2), gamma = rng.values(channels), beta = rng.values(channels)
        let r = rng.values(x.count)
        for silu in [false, true] {
            func forward(_ x: [Double], _ gamma: [Double], _ beta: [Double]) -> [Double] {
                groupNormReference(x, gamma, beta, batch: batch, groups: groups, spatial: spatial, silu: silu)
            }
            let layer = GroupNorm(channels: channels, groups: groups, epsilon: 1e-5, weight: Self.floats(gamma), bias: Self.floats(beta))
            let dG = Gradient(count: channels), dB = Gradient(count: channels)
            let dx = layer.backward(input: Tensor(shape: [batch, channels, spatial, 1], values: Self.floats(x)),
                                    outputGradient: Tensor(shape: [batch, channels, spatial, 1], values: Self.floats(r)), silu: silu,
                                    weightGradient: dG, biasGradient: dB)
            let label = "group norm (silu \(silu), \(spatial) values, \(KernelPaths.description))"
            checkGradient("\(label) dx", analytic: dx.values, at: x) { Self.dot(r, forward($0, gamma, beta)) }
            checkGradient("\(label) dγ", analytic: dG.values, at: gamma) { Self.dot(r, forward(x, $0, beta)) }
            checkGradient("\(label) dβ", analytic: dB.values, at: beta) { Self.dot(r, forward(x, gamma, $0)) }
        }
    }

    func testLayerNorm() {
        var rng = Rng(state: 4)
        let rows = 4, width = 9
        let x = rng.values(rows * width, scale: 3), gamma = rng.values(width), beta = rng.values(width), r = rng.values(rows * width)
        func forward(_ x: [Double], _ gamma: [Double], _ beta: [Double]) -> [Double] {
            var y = x
            for row in 0..<rows {
                let values = x[(row * width)..<((row + 1) * width)]
                let mean = values.reduce(0, +) / Double(width)
                let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(width)
                for i in 0..<width { y[row * width + i] = (x[row * width + i] - mean) / (variance + 1e-5).squareRoot() * gamma[i] + beta[i] }
            }
            return y
        }
        let layer = LayerNorm(width: width, weight: Self.floats(gamma), bias: Self.floats(beta))
        let dG = Gradient(count: width), dB = Gradient(count: width)
        let dx = layer.backward(input: Tensor(shape: [rows, width], values: Self.floats(x)), outputGradient: Tensor(shape: [rows, width], values: Self.floats(r)),
                                weightGradient: dG, biasGradient: dB)
        checkGradient("layer norm dx", analytic: dx.values, at: x) { Self.dot(r, forward($0, gamma, beta)) }
        checkGradient("layer norm dγ", analytic: dG.values, at: gamma) { Self.dot(r, forward(x, $0, beta)) }
        checkGradient("layer norm dβ", analytic: dB.values, at: beta) { Self.dot(r, forward(x, gamma, $0)) }
    }

    // MARK: Activations

    /// On each kernel path (the vector kernels' exp/erf approximations are the forward's).
    func testActivationsAndGEGLU() {
        KernelPaths.forEachPath { _ in checkActivationsAndGEGLU() }
    }

    func checkActivationsAndGEGLU() {
        var rng = Rng(state: 5)
        let x = rng.values(40, scale: 4), r = rng.values(40)
        let references: [(Activation, (Double) -> Double)] = [
            (.silu, { $0 / (1 + exp(-$0)) }),
            (.gelu, { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }),
            (.quickGELU, { $0 / (1 + exp(-1.702 * $0)) }),
        ]
        for (activation, f) in references {
            let dx = activation.backward(input: Tensor(shape: [40], values: Self.floats(x)), outputGradient: Tensor(shape: [40], values: Self.floats(r)))
            checkGradient("\(activation) dx", analytic: dx.values, at: x) { Self.dot(r, $0.map(f)) }
        }
        let rows = 3, hidden = 5
        let proj = rng.values(rows * 2 * hidden, scale: 2), rg = rng.values(rows * hidden)
        func geglu(_ p: [Double]) -> [Double] {
            (0..<(rows * hidden)).map { i in
                let row = i / hidden, j = i % hidden
                let a = p[row * 2 * hidden + j], g = p[row * 2 * hidden + hidden + j]
                return a * 0.5 * g * (1 + erf(g / 2.0.squareRoot()))
            }
        }
        let dp = gegluBackward(input: Tensor(shape: [rows, 2 * hidden], values: Self.floats(proj)),
                               outputGradient: Tensor(shape: [rows, hidden], values: Self.floats(rg)))
        checkGradient("GEGLU dx", analytic: dp.values, at: proj) { Self.dot(rg, geglu($0)) }
    }

    // MARK: Attention

    func testAttentionSelfCrossAndCausal() {
        KernelPaths.forEachPath { _ in checkAttention() }
    }

    func checkAttention() {
        // Tiles of two query rows × three keys: every case spans several tiles each way (and, causal, tiles
        // above, on and below the diagonal), as a 4096-token one does.
        for (queries, keys, heads, d, causal) in [(6, 6, 2, 4, false), (5, 7, 1, 8, false), (7, 7, 2, 4, true), (9, 20, 1, 8, false)] {
            var rng = Rng(state: UInt64(queries * keys + d))
            let items = 2, width = heads * d
            let q = rng.values(items * queries * width), k = rng.values(items * keys * width), v = rng.values(items * keys * width)
            let r = rng.values(items * queries * width)
            func forward(_ q: [Double], _ k: [Double], _ v: [Double]) -> [Double] {
                var out = [Double](repeating: 0, count: items * queries * width)
                for n in 0..<items { for h in 0..<heads { for i in 0..<queries {
                    let visible = causal ? min(keys, i + 1) : keys
                    let scores = (0..<visible).map { j in
                        (0..<d).reduce(0.0) { $0 + q[(n * queries + i) * width + h * d + $1] * k[(n * keys + j) * width + h * d + $1] } / Double(d).squareRoot()
                    }
                    let m = scores.max()!, e = scores.map { exp($0 - m) }, total = e.reduce(0, +)
                    for c in 0..<d {
                        out[(n * queries + i) * width + h * d + c] = (0..<visible).reduce(0.0) { $0 + e[$1] / total * v[(n * keys + $1) * width + h * d + c] }
                    }
                } } }
                return out
            }
            let qt = Tensor(shape: [items, queries, width], values: Self.floats(q)), kt = Tensor(shape: [items, keys, width], values: Self.floats(k))
            let vt = Tensor(shape: [items, keys, width], values: Self.floats(v))
            let saved = Attention.forwardSaving(q: qt, k: kt, v: vt, items: items, queries: queries, keys: keys, heads: heads, headDim: d, causal: causal)
            let reference = forward(q, k, v)
            for (index, value) in saved.output.values.enumerated() { XCTAssertEqual(Double(value), reference[index], accuracy: 1e-5) }
            let grads = Attention.backward(q: qt, k: kt, v: vt, saved: saved, outputGradient: Tensor(shape: [items, queries, width], values: Self.floats(r)),
                                           items: items, queries: queries, keys: keys, heads: heads, headDim: d, causal: causal,
                                           rowsPerBlock: 2, keysPerTile: 3)
            let label = "attention \(queries)×\(keys) heads \(heads) d \(d) causal \(causal)"
            checkGradient(label + " dq", analytic: grads.q.values, at: q) { Self.dot(r, forward($0, k, v)) }
            checkGradient(label + " dk", analytic: grads.k.values, at: k) { Self.dot(r, forward(q, $0, v)) }
            checkGradient(label + " dv", analytic: grads.v.values, at: v) { Self.dot(r, forward(q, k, $0)) }
        }
    }

    /// Long key sequences (≥ 256 keys, where the AVX-512 path takes the register-tile kernels, forward and backward, and
    /// so does the AVX2 path when single-threaded GEMMs go to OpenBLAS; otherwise the GEMM tiles), on each path and each
    /// GEMM library, against the gradients written out in double precision: P = softmax(q·kᵀ·s),
    /// dv = Pᵀ·dO, dS = P ⊙ (dO·vᵀ − δ)·s, dq = dS·k, dk = dSᵀ·q — the formulas the finite differences above prove on
    /// small cases, at sizes too large for them. SD's head widths 40, 80, 160 and 64; ragged row blocks (48 rows, tiles of
    /// 6) and key panels (64) and spans (256); `sharpness` scales q so that rows' probabilities are peaked.
    func testAttentionLongSequencesOnEachPath() {
        for (queries, keys, heads, d, sharpness) in [(100, 300, 2, 40, 1.0), (53, 590, 1, 80, 1.0), (13, 260, 1, 160, 1.0),
                                                     (30, 700, 1, 64, 1.0), (61, 333, 1, 40, 12.0)] {
            var rng = Rng(state: UInt64(queries * keys + d))
            let width = heads * d, scale = 1 / Double(d).squareRoot()
            let q = rng.values(queries * width, scale: sharpness), k = rng.values(keys * width), v = rng.values(keys * width)
            let r = rng.values(queries * width)
            var dq = [Double](repeating: 0, count: q.count), dk = [Double](repeating: 0, count: k.count), dv = dk
            for h in 0..<heads {
                func at(_ row: Int, _ c: Int) -> Int { row * width + h * d + c }
                for i in 0..<queries {
                    let scores = (0..<keys).map { j in (0..<d).reduce(0.0) { $0 + q[at(i, $1)] * k[at(j, $1)] } * scale }
                    let m = scores.max()!, e = scores.map { exp($0 - m) }, total = e.reduce(0, +), p = e.map { $0 / total }
                    let out = (0..<d).map { c in (0..<keys).reduce(0.0) { $0 + p[$1] * v[at($1, c)] } }
                    let delta = (0..<d).reduce(0.0) { $0 + r[at(i, $1)] * out[$1] }
                    for j in 0..<keys {
                        let dp = (0..<d).reduce(0.0) { $0 + r[at(i, $1)] * v[at(j, $1)] }
                        let ds = p[j] * (dp - delta) * scale
                        for c in 0..<d {
                            dv[at(j, c)] += p[j] * r[at(i, c)]
                            dq[at(i, c)] += ds * k[at(j, c)]
                            dk[at(j, c)] += ds * q[at(i, c)]
                        }
                    }
                }
            }
            let qt = Tensor(shape: [1, queries, width], values: Self.floats(q)), kt = Tensor(shape: [1, keys, width], values: Self.floats(k))
            let vt = Tensor(shape: [1, keys, width], values: Self.floats(v)), rt = Tensor(shape: [1, queries, width], values: Self.floats(r))
            for backend in GEMMBackend.allCases {
                LinearAlgebra.withRouting(.only(backend)) {
                    KernelPaths.forEachPath { path in
                        let saved = Attention.forwardSaving(q: qt, k: kt, v: vt, items: 1, queries: queries, keys: keys, heads: heads, headDim: d)
                        let grads = Attention.backward(q: qt, k: kt, v: vt, saved: saved, outputGradient: rt, items: 1, queries: queries,
                                                       keys: keys, heads: heads, headDim: d)
                        for (name, analytic, reference) in [("dq", grads.q, dq), ("dk", grads.k, dk), ("dv", grads.v, dv)] {
                            let largest = reference.map(abs).max()!
                            let worst = zip(analytic.values, reference).map { abs(Double($0) - $1) }.max()!
                            XCTAssertLessThan(worst, 1e-5 * largest,
                                              "\(name) \(queries)×\(keys) heads \(heads) d \(d) sharpness \(sharpness), \(path), \(backend.rawValue)")
                        }
                    }
                }
            }
        }
    }

    // MARK: Resampling and skips

    /// Linear maps: the backward is the adjoint, ⟨dy, f(x)⟩ = ⟨f*(dy), x⟩, and equal to finite differences.
    func testUpsampleAndConcatenation() {
        var rng = Rng(state: 6)
        let x = rng.values(2 * 3 * 4 * 5), r = rng.values(2 * 3 * 8 * 10)
        let dx = upsampleNearest2xBackward(Tensor(shape: [2, 3, 8, 10], values: Self.floats(r)))
        func up(_ x: [Double]) -> [Double] {
            (0..<r.count).map { i in
                let p = i / 80, row = (i % 80) / 10, col = i % 10
                return x[p * 20 + (row / 2) * 5 + col / 2]
            }
        }
        checkGradient("upsample dx", analytic: dx.values, at: x) { Self.dot(r, up($0)) }
        let a = rng.values(2 * 2 * 3), b = rng.values(2 * 3 * 3), rc = rng.values(2 * 5 * 3)
        let (da, db) = concatenateChannelsBackward(Tensor(shape: [2, 5, 3, 1], values: Self.floats(rc)), channelsA: 2)
        let forward = concatenateChannels(Tensor(shape: [2, 2, 3, 1], values: Self.floats(a)), Tensor(shape: [2, 3, 3, 1], values: Self.floats(b)))
        XCTAssertEqual(Self.dot(rc, forward.values.map(Double.init)), Self.dot(da.values.map(Double.init), a) + Self.dot(db.values.map(Double.init), b),
                       accuracy: 1e-5)
    }
    // MARK: LoRA modules

    /// kohya's LoRAModule: y = m·(α/r)·up·down·x (linear) and the LoCon conv form, dy = r.
    func testLoRAModuleGradientsLinearAndConv() {
        var rng = Rng(state: 9)
        let rows = 4, inputs = 6, outputs = 5, rank = 3, alpha: Float = 2, multiplier: Float = 0.7
        let x = rng.values(rows * inputs), down = rng.values(rank * inputs), up = rng.values(outputs * rank), r = rng.values(rows * outputs)
        var module = LoRAModule(name: "lora_unet_x", shape: .linear(in: inputs, out: outputs), rank: rank, alpha: alpha,
                                down: down.map(Float.init), up: up.map(Float.init))
        module.multiplier = multiplier
        func loss(_ x: [Double], _ down: [Double], _ up: [Double]) -> Double {
            var total = 0.0
            for row in 0..<rows {
                let h = (0..<rank).map { k in (0..<inputs).reduce(0.0) { $0 + down[k * inputs + $1] * x[row * inputs + $1] } }
                for o in 0..<outputs {
                    let y = Double(multiplier) * Double(alpha) / Double(rank) * (0..<rank).reduce(0.0) { $0 + up[o * rank + $1] * h[$1] }
                    total += r[row * outputs + o] * y
                }
            }
            return total
        }
        let (output, saved) = module.forward(Tensor(shape: [rows, inputs], values: x.map(Float.init)))
        XCTAssertEqual(Double(zip(output.values, r).reduce(Float(0)) { $0 + $1.0 * Float($1.1) }), loss(x, down, up), accuracy: 1e-4)
        let dx = module.backward(saved, outputGradient: Tensor(shape: [rows, outputs], values: r.map(Float.init)))
        checkGradient("LoRA dx", analytic: dx.values, at: x) { loss($0, down, up) }
        checkGradient("LoRA d down", analytic: module.down.gradient.values, at: down) { loss(x, $0, up) }
        checkGradient("LoRA d up", analytic: module.up.gradient.values, at: up) { loss(x, down, $0) }

        // LoCon 3×3 (stride 1, pad 1) on a 2-item batch.
        let c = 3, out = 4, h = 5, w = 4, batch = 2
        let cx = rng.values(batch * c * h * w), cdown = rng.values(rank * c * 9), cup = rng.values(out * rank), cr = rng.values(batch * out * h * w)
        let conv = LoRAModule(name: "lora_unet_conv", shape: .conv(in: c, out: out, kernel: 3, stride: 1, padding: 1), rank: rank, alpha: alpha,
                              down: cdown.map(Float.init), up: cup.map(Float.init))
        func convLoss(_ x: [Double], _ down: [Double], _ up: [Double]) -> Double {
            var total = 0.0
            for n in 0..<batch { for oy in 0..<h { for ox in 0..<w {
                var hidden = [Double](repeating: 0, count: rank)
                for k in 0..<rank { for ci in 0..<c { for ky in 0..<3 { for kx in 0..<3 {
                    let iy = oy - 1 + ky, ix = ox - 1 + kx
                    if iy >= 0 && iy < h && ix >= 0 && ix < w { hidden[k] += down[((k * c + ci) * 3 + ky) * 3 + kx] * x[((n * c + ci) * h + iy) * w + ix] }
                } } } }
                for o in 0..<out {
                    let y = Double(alpha) / Double(rank) * (0..<rank).reduce(0.0) { $0 + up[o * rank + $1] * hidden[$1] }
                    total += cr[((n * out + o) * h + oy) * w + ox] * y
                }
            } } }
            return total
        }
        let (_, convSaved) = conv.forward(Tensor(shape: [batch, c, h, w], values: cx.map(Float.init)))
        let cdx = conv.backward(convSaved, outputGradient: Tensor(shape: [batch, out, h, w], values: cr.map(Float.init)))
        checkGradient("LoCon dx", analytic: cdx.values, at: cx) { convLoss($0, cdown, cup) }
        checkGradient("LoCon d down", analytic: conv.down.gradient.values, at: cdown) { convLoss(cx, $0, cup) }
        checkGradient("LoCon d up", analytic: conv.up.gradient.values, at: cup) { convLoss(cx, cdown, $0) }
    }

    /// LyCORIS's LoCon with a Tucker core: up(mid(down(x))) with a 1×1 down and the 3×3 core carrying the layer's
    /// stride (2 here, a downsampler's) and padding, against the conv of the composed kernel Σ_j mid[k, j]·down[j, c].
    func testLoConTuckerCoreGradients() {
        var rng = Rng(state: 21)
        let c = 3, out = 4, h = 5, w = 4, batch = 2, rank = 2, alpha: Float = 1.5, stride = 2
        let oh = (h + 2 - 3) / stride + 1, ow = (w + 2 - 3) / stride + 1
        let x = rng.values(batch * c * h * w), down = rng.values(rank * c), mid = rng.values(rank * rank * 9), up = rng.values(out * rank)
        let r = rng.values(batch * out * oh * ow)
        let module = LoRAModule(name: "lora_unet_op", shape: .conv(in: c, out: out, kernel: 3, stride: stride, padding: 1), rank: rank, alpha: alpha,
                                down: down.map(Float.init), up: up.map(Float.init), mid: mid.map(Float.init))
        XCTAssertEqual(module.parameters.map(\.shape), [[rank, c, 1, 1], [rank, rank, 3, 3], [out, rank, 1, 1]], "LyCORIS's order and shapes")
        // The composed kernel [rank, c, 3, 3]: Σ_j mid[k, j, q]·down[j, c].
        func compose(_ down: [Double], _ mid: [Double]) -> [Double] {
            var kernel = [Double](repeating: 0, count: rank * c * 9)
            for k in 0..<rank { for j in 0..<rank { for ci in 0..<c { for q in 0..<9 {
                kernel[(k * c + ci) * 9 + q] += mid[(k * rank + j) * 9 + q] * down[j * c + ci]
            } } } }
            return kernel
        }
        func loss(_ x: [Double], _ down: [Double], _ mid: [Double], _ up: [Double]) -> Double {
            let kernel = compose(down, mid)
            var total = 0.0
            for n in 0..<batch { for oy in 0..<oh { for ox in 0..<ow {
                var hidden = [Double](repeating: 0, count: rank)
                for k in 0..<rank { for ci in 0..<c { for ky in 0..<3 { for kx in 0..<3 {
                    let iy = oy * stride - 1 + ky, ix = ox * stride - 1 + kx
                    if iy >= 0 && iy < h && ix >= 0 && ix < w { hidden[k] += kernel[(k * c + ci) * 9 + ky * 3 + kx] * x[((n * c + ci) * h + iy) * w + ix] }
                } } } }
                for o in 0..<out {
                    let y = Double(alpha) / Double(rank) * (0..<rank).reduce(0.0) { $0 + up[o * rank + $1] * hidden[$1] }
                    total += r[((n * out + o) * oh + oy) * ow + ox] * y
                }
            } } }
            return total
        }
        let (output, saved) = module.forward(Tensor(shape: [batch, c, h, w], values: x.map(Float.init)))
        XCTAssertEqual(output.shape, [batch, out, oh, ow])
        XCTAssertEqual(Double(zip(output.values, r).reduce(Float(0)) { $0 + $1.0 * Float($1.1) }), loss(x, down, mid, up), accuracy: 1e-4)
        // The composed kernel is what samples and the max norm use.
        XCTAssertLessThan(zip(module.composedDown, compose(down, mid)).map { abs(Double($0) - $1) }.max() ?? 1, 1e-5)
        let dx = module.backward(saved, outputGradient: Tensor(shape: [batch, out, oh, ow], values: r.map(Float.init)))
        checkGradient("LoCon Tucker dx", analytic: dx.values, at: x) { loss($0, down, mid, up) }
        checkGradient("LoCon Tucker d down", analytic: module.down.gradient.values, at: down) { loss(x, $0, mid, up) }
        checkGradient("LoCon Tucker d mid", analytic: module.mid!.gradient.values, at: mid) { loss(x, down, $0, up) }
        checkGradient("LoCon Tucker d up", analytic: module.up.gradient.values, at: up) { loss(x, down, mid, $0) }
    }
}
