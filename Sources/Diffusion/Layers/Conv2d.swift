import CEngineKernels
import Foundation
import LinearAlgebra
import LoRACore
/// A 2-D convolution over NCHW tensors: im2col in bounded tiles, then one
/// sgemm per tile, out[O, pixels] = W[O, C·k·k] × col[C·k·k, pixels]. 1×1
/// convolutions multiply the input directly.
public struct Conv2d: Sendable {
    public struct Padding: Sendable, Equatable {
        public var top, left, bottom, right: Int
        public static func same(_ p: Int) -> Padding { Padding(top: p, left: p, bottom: p, right: p) }
    }

    public let key: String
    public let biasKey: String
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: Int
    public let stride: Int
    public let padding: Padding
    /// [out, in·k·k]
    public var store: WeightStore
    public var bias: [Float]
    /// The weight as float32 (widened if stored as fp16).
    public var weight: [Float] { store.floats() }

    /// im2col tiles hold at most this many floats (16 MB): large enough for
    /// efficient GEMMs, small enough that a 512×512 VAE layer never needs a
    /// gigabyte-sized column buffer.
    static let tileBudget = 4 << 20

    public init(key: String, biasKey: String, inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1,
                padding: Padding, weight: [Float], bias: [Float]) {
        self.init(key: key, biasKey: biasKey, inChannels: inChannels, outChannels: outChannels, kernel: kernel, stride: stride,
                  padding: padding, store: WeightStore(weight), bias: bias)
    }

    public init(key: String, biasKey: String, inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1,
                padding: Padding, store: WeightStore, bias: [Float]) {
        precondition(store.count == outChannels * inChannels * kernel * kernel && bias.count == outChannels)
        self.key = key
        self.biasKey = biasKey
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.store = store
        self.bias = bias
    }

    /// Load `prefix.weight`/`prefix.bias`; padding k/2 on every side unless given.
    public init(_ weights: Weights, _ prefix: String, in inChannels: Int, out outChannels: Int, kernel: Int,
                stride: Int = 1, padding: Padding? = nil) throws(ModelError) {
        self.init(key: prefix + ".weight", biasKey: prefix + ".bias", inChannels: inChannels, outChannels: outChannels,
                  kernel: kernel, stride: stride, padding: padding ?? .same(kernel / 2),
                  store: try weights.loadStore(prefix + ".weight", shape: [outChannels, inChannels, kernel, kernel]),
                  bias: try weights.load(prefix + ".bias", shape: [outChannels]))
    }

    public func outputSize(height: Int, width: Int) -> (Int, Int) {
        ((height + padding.top + padding.bottom - kernel) / stride + 1, (width + padding.left + padding.right - kernel) / stride + 1)
    }

    public func forward(_ x: Tensor, adapters: AdapterSet = .empty) -> Tensor {
        let (oh, ow) = outputSize(height: x.shape[2], width: x.shape[3])
        let flops = 2 * Double(x.shape[0] * oh * ow) * Double(outChannels * inChannels * kernel * kernel)
        return EngineProfile.measure(.convolution, flops: flops) { run(x, adapters: adapters) }
    }

    /// This convolution of x's nearest-neighbour 2× upsampling (the U-Net's and the VAE decoder's upsamplers): the
    /// same bits as `forward(upsampleNearest2x(x))`. On Winograd's path the input transform reads x through the
    /// upsampling, so the upsampled copy is never made (at 768² the decoder's is 604 MB, the largest tensor of a
    /// decode); on the other paths it is made and dropped after the call.
    public func forward(upsampling x: Tensor, adapters: AdapterSet = .empty) -> Tensor {
        let batch = x.shape[0], oh = 2 * x.shape[2], ow = 2 * x.shape[3]
        guard kernel == 3 && stride == 1 && padding == .same(1)
            && Conv2d.usesWinograd(batch: batch, height: oh, width: ow, inChannels: inChannels, outChannels: outChannels) else {
            return forward(upsampleNearest2x(x), adapters: adapters)
        }
        precondition(x.shape[1] == inChannels, "\(key): input has \(x.shape[1]) channels, expected \(inChannels)")
        let flops = 2 * Double(batch * oh * ow) * Double(outChannels * inChannels * kernel * kernel)
        return EngineProfile.measure(.convolution, flops: flops) {
            winograd(x, weight: adapters.replacements[key] ?? store.floats(), bias: adapters.replacements[biasKey] ?? bias,
                     lowRank: adapters.lowRank[key] ?? [], upsampled: true)
        }
    }

    private func run(_ x: Tensor, adapters: AdapterSet) -> Tensor {
        let batch = x.shape[0], height = x.shape[2], width = x.shape[3]
        precondition(x.shape[1] == inChannels, "\(key): input has \(x.shape[1]) channels, expected \(inChannels)")
        let (oh, ow) = outputSize(height: height, width: width)
        let w = adapters.replacements[key] ?? store.floats()
        let b = adapters.replacements[biasKey] ?? bias
        let lowRank = adapters.lowRank[key] ?? []
        // Winograd only in fp32: F(4×4, 3×3)'s transforms (coefficients up to 5 and 1/4) magnify bf16's operand
        // rounding; a kohya bf16 step's gradients moved 11% from torch's autocast step through it, 5.6% without
        // (torch's own bf16-vs-fp32 spread; TrainingStepTests.testBF16StepIsCloseToKohyasAutocastStep).
        if kernel == 3 && stride == 1 && padding == .same(1)
            && Conv2d.usesWinograd(batch: batch, height: oh, width: ow, inChannels: inChannels, outChannels: outChannels) {
            return winograd(x, weight: w, bias: b, lowRank: lowRank)
        }
        let k = inChannels * kernel * kernel
        if batch > 1 && oh * ow < Conv2d.foldedMaximumPixels && k * batch * oh * ow <= 2 * Conv2d.tileBudget {
            return folded(x, weight: w, bias: b, lowRank: lowRank, outputSize: (oh, ow))
        }
        var y = Tensor.uninitialized([batch, outChannels, oh, ow])
        let inSize = inChannels * height * width, outSize = outChannels * oh * ow
        x.withPointer { xp in
            y.withMutablePointer { yp in
                w.withUnsafeBufferPointer { wp in
                    for item in 0..<batch {
                        let input = xp + item * inSize, output = yp + item * outSize
                        for o in 0..<outChannels { (output + o * oh * ow).update(repeating: b[o], count: oh * ow) }
                        if kernel == 1 && stride == 1 && padding == .same(0) {
                            multiply(wp.baseAddress!, columns: input, k: k, pixels: oh * ow, ldc: oh * ow, into: output, lowRank: lowRank)
                            continue
                        }
                        let tileRows = max(1, min(oh, Conv2d.tileBudget / max(1, k * ow)))
                        var col = [Float](unsafeUninitializedCapacity: k * tileRows * ow) { _, n in n = k * tileRows * ow }
                        col.withUnsafeMutableBufferPointer { cp in
                            var row = 0
                            while row < oh {
                                let rows = min(tileRows, oh - row)
                                EngineProfile.measure(.im2col) {
                                    im2col(input, height: height, width: width, outputRows: row..<(row + rows), outputWidth: ow, into: cp.baseAddress!)
                                }
                                multiply(wp.baseAddress!, columns: cp.baseAddress!, k: k, pixels: rows * ow, ldc: oh * ow,
                                         into: output + row * ow, lowRank: lowRank)
                                row += rows
                            }
                        }
                    }
                }
            }
        }
        return y
    }

    /// Calls with at least this many output pixels over their batch use Winograd. The filter transform is paid
    /// once per call (4× the weights written and read again; too big to keep), and the tiles amortise it: at 16×16,
    /// the U-Net's 1280-channel level, a CFG batch of two (the engine's sampling step) is faster on Winograd's path
    /// than on im2col's and a training batch of one is not (there the transform took 60–75% of a layer's time;
    /// whole 512² training steps, paired on the Intel host: convolutions forward 1.9 → 1.6 s and backward 2.5 → 2.0 s).
    /// At 8×8 im2col wins either way. Measured in whole steps (Benchmarks/README.md): one layer timed outside the
    /// model once came out 3× slower on Winograd's path where, in the U-Net, it is the faster one.
    static let winogradMinimumPixels = 512
    /// Images below this many pixels fold all batch items into one GEMM (the weights, which dominate there, read once).
    static let foldedMaximumPixels = 256
    static let winogradEnabled = ProcessInfo.processInfo.environment["LT_NO_WINOGRAD"] == nil

    /// Whether a 3×3, stride-1, pad-1 convolution of this batch and size runs on Winograd's path (its forward, and
    /// in the backward the input gradient, which is such a convolution with channels swapped).
    static func usesWinograd(batch: Int, height: Int, width: Int, inChannels: Int, outChannels: Int) -> Bool {
        guard winogradEnabled && inChannels >= 32 && outChannels >= 32 && LinearAlgebra.routing.arithmetic == .fp32 else { return false }
        return forcedWinograd ?? (batch * height * width >= winogradMinimumPixels)
    }

    /// Set by tests to force Winograd's path on (true) or off (false) whatever the size; nil: by size.
    nonisolated(unsafe) public static var forcedWinograd: Bool?
    /// Points of the transformed 6×6 tile: one GEMM each.
    static let winogradPoints = 36
    /// Floats in the V and M buffers of one chunk of tiles (64 MB).
    static let winogradBudget = 16 << 20

    /// Winograd F(4×4, 3×3) (CEngineKernels/winograd.c): 36 GEMMs over
    /// transformed tiles, 4× fewer multiplications than im2col. LoCon side
    /// paths ride along: their 3×3 down-projections are extra output channels
    /// of the same transform, and the 1×1 up-projections are applied afterwards.
    /// `upsampled`: x is read as its nearest-neighbour 2× upsampling (`forward(upsampling:)`).
    private func winograd(_ x: Tensor, weight: [Float], bias: [Float], lowRank: [AdapterSet.LowRank], upsampled: Bool = false) -> Tensor {
        let factor = upsampled ? 2 : 1
        let batch = x.shape[0], c = inChannels, h = factor * x.shape[2], w = factor * x.shape[3]
        let extra = lowRank.reduce(0) { $0 + $1.rank }
        let total = outChannels + extra
        var filters = weight
        for a in lowRank { filters += a.down }
        let y = Conv2d.winogradTiles(x, outChannels: total, bias: bias + [Float](repeating: 0, count: extra), upsampled: upsampled) { u in
            filters.withUnsafeBufferPointer { fp in
                let source = UncheckedSendable(fp.baseAddress!), target = UncheckedSendable(u)
                Parallel.forRanges(total, cost: c * 64) { range in
                    lt_winograd_filter(source.value, total, c, range.lowerBound, range.upperBound, target.value)
                }
            }
        }
        guard extra > 0 else { return y }
        // Split off the down-projections and add s·up·down to the outputs.
        let plane = h * w
        var out = Tensor.uninitialized([batch, outChannels, h, w])
        out.withMutablePointer { op in
            y.withPointer { yp in
                for item in 0..<batch {
                    let source = yp + item * total * plane, target = op + item * outChannels * plane
                    target.update(from: source, count: outChannels * plane)
                    var offset = outChannels
                    for a in lowRank {
                        a.up.withUnsafeBufferPointer { upBuffer in
                            LinearAlgebra.gemm(m: outChannels, n: plane, k: a.rank, alpha: a.scale, a: upBuffer.baseAddress!, lda: a.rank,
                                 b: source + offset * plane, ldb: plane, beta: 1, c: target, ldc: plane)
                        }
                        offset += a.rank
                    }
                }
            }
        }
        return out
    }

    /// The tile loop of Winograd's path for input x [batch, channels, h, w] and `outChannels` outputs: the input
    /// tiles transformed chunk by chunk, 36 GEMMs against the transformed filters U [36][outChannels][channels]
    /// that `filters` writes (`transposedFilters`: U [36][channels][outChannels], multiplied transposed), and the
    /// output transform with the bias (nil: none, as for an input gradient). `upsampled`: the tiles are those of x's
    /// nearest-neighbour 2× upsampling, read from x (the output is twice x's size).
    static func winogradTiles(_ x: Tensor, outChannels total: Int, bias: [Float]?, transposedFilters: Bool = false,
                              upsampled: Bool = false, filters: (UnsafeMutablePointer<Float>) -> Void) -> Tensor {
        let factor = upsampled ? 2 : 1
        let batch = x.shape[0], c = x.shape[1], h = factor * x.shape[2], w = factor * x.shape[3]
        var u = [Float](unsafeUninitializedCapacity: Conv2d.winogradPoints * total * c) { _, n in n = Conv2d.winogradPoints * total * c }
        u.withUnsafeMutableBufferPointer { filters($0.baseAddress!) }
        let tiles = batch * ((h + 3) / 4) * ((w + 3) / 4)
        let chunk = max(1, min(tiles, Conv2d.winogradBudget / (Conv2d.winogradPoints * (c + total))))
        var y = Tensor.uninitialized([batch, total, h, w])
        var v = [Float](unsafeUninitializedCapacity: Conv2d.winogradPoints * c * chunk) { _, n in n = Conv2d.winogradPoints * c * chunk }
        var m = [Float](unsafeUninitializedCapacity: Conv2d.winogradPoints * total * chunk) { _, n in n = Conv2d.winogradPoints * total * chunk }
        let noBias: [Float] = []
        x.withPointer { xp in y.withMutablePointer { yp in u.withUnsafeBufferPointer { up in (bias ?? noBias).withUnsafeBufferPointer { bp in
            v.withUnsafeMutableBufferPointer { vp in m.withUnsafeMutableBufferPointer { mp in
                let input = UncheckedSendable(xp), output = UncheckedSendable(yp), transformedFilters = UncheckedSendable(up.baseAddress!)
                let tilesV = UncheckedSendable(vp.baseAddress!), products = UncheckedSendable(mp.baseAddress!)
                // lt_winograd_output adds no bias for a null pointer.
                let biasPointer = UncheckedSendable(bias == nil ? nil : bp.baseAddress)
                var first = 0
                while first < tiles {
                    let count = min(chunk, tiles - first)
                    let start = first
                    Parallel.forRanges(c, cost: count * 32) { range in
                        lt_winograd_input(input.value, c, h, w, upsampled ? 1 : 0, start, count, range.lowerBound, range.upperBound,
                                          tilesV.value)
                    }
                    LinearAlgebra.withSingleThreadedBLAS {
                        Parallel.forEach(Conv2d.winogradPoints, cost: 1 << 20) { p in
                            LinearAlgebra.gemm(transposeA: transposedFilters, m: total, n: count, k: c,
                                               a: transformedFilters.value + p * total * c, lda: transposedFilters ? total : c,
                                 b: tilesV.value + p * c * count, ldb: count, c: products.value + p * total * count, ldc: count)
                        }
                    }
                    Parallel.forRanges(total, cost: count * 32) { range in
                        lt_winograd_output(products.value, total, h, w, start, count, range.lowerBound, range.upperBound,
                                           biasPointer.value, output.value)
                    }
                    first += count
                }
            } }
        } } } }
        return y
    }

    /// Small images (the U-Net's deepest levels): all batch items in one GEMM,
    /// so the weights, which dominate there, are read once.
    private func folded(_ x: Tensor, weight: [Float], bias: [Float], lowRank: [AdapterSet.LowRank], outputSize: (Int, Int)) -> Tensor {
        let batch = x.shape[0], height = x.shape[2], width = x.shape[3]
        let (oh, ow) = outputSize
        let pixels = oh * ow, columns = batch * pixels, k = inChannels * kernel * kernel
        var col = [Float](unsafeUninitializedCapacity: k * columns) { _, n in n = k * columns }
        var product = [Float](unsafeUninitializedCapacity: outChannels * columns) { _, n in n = outChannels * columns }
        var y = Tensor.uninitialized([batch, outChannels, oh, ow])
        let inSize = inChannels * height * width
        x.withPointer { xp in col.withUnsafeMutableBufferPointer { cp in product.withUnsafeMutableBufferPointer { pp in
            let c = cp.baseAddress!, p = pp.baseAddress!
            for item in 0..<batch {
                let input = xp + item * inSize
                if kernel == 1 && stride == 1 && padding == .same(0) {
                    for channel in 0..<inChannels {
                        (c + channel * columns + item * pixels).update(from: input + channel * pixels, count: pixels)
                    }
                } else {
                    im2col(input, height: height, width: width, outputRows: 0..<oh, outputWidth: ow, into: c + item * pixels, rowStride: columns)
                }
            }
            for o in 0..<outChannels { (p + o * columns).update(repeating: bias[o], count: columns) }
            weight.withUnsafeBufferPointer { wp in
                multiply(wp.baseAddress!, columns: c, k: k, pixels: columns, ldc: columns, into: p, lowRank: lowRank)
            }
            y.withMutablePointer { yp in
                for item in 0..<batch {
                    for o in 0..<outChannels {
                        (yp + (item * outChannels + o) * pixels).update(from: p + o * columns + item * pixels, count: pixels)
                    }
                }
            }
        } } }
        return y
    }

    /// out[O, pixels] += W × columns, and the LoRA side paths on the same columns.
    private func multiply(_ w: UnsafePointer<Float>, columns: UnsafePointer<Float>, k: Int, pixels: Int, ldc: Int,
                          into output: UnsafeMutablePointer<Float>, lowRank: [AdapterSet.LowRank]) {
        LinearAlgebra.gemm(m: outChannels, n: pixels, k: k, a: w, lda: k, b: columns, ldb: pixels, beta: 1, c: output, ldc: ldc)
        for a in lowRank {
            var hidden = [Float](repeating: 0, count: a.rank * pixels)
            hidden.withUnsafeMutableBufferPointer { h in
                a.down.withUnsafeBufferPointer { d in
                    LinearAlgebra.gemm(m: a.rank, n: pixels, k: k, a: d.baseAddress!, lda: k, b: columns, ldb: pixels, c: h.baseAddress!, ldc: pixels)
                }
                a.up.withUnsafeBufferPointer { u in
                    LinearAlgebra.gemm(m: outChannels, n: pixels, k: a.rank, alpha: a.scale, a: u.baseAddress!, lda: a.rank,
                         b: h.baseAddress!, ldb: pixels, beta: 1, c: output, ldc: ldc)
                }
            }
        }
    }

    /// Columns for output rows `outputRows`: row (c, ky, kx) holds the input
    /// pixel each output pixel sees through that tap (zero outside the image).
    func im2col(_ input: UnsafePointer<Float>, height: Int, width: Int, outputRows: Range<Int>, outputWidth ow: Int,
                        into col: UnsafeMutablePointer<Float>, rowStride: Int? = nil) {
        let taps = kernel * kernel
        let pixels = outputRows.count * ow
        let stridePerRow = rowStride ?? pixels
        let (kernel, stride, padding) = (self.kernel, self.stride, self.padding)
        Parallel.forEach(inChannels * taps, cost: pixels) { row in
            let c = row / taps, ky = (row % taps) / kernel, kx = row % kernel
            let plane = input + c * height * width
            var out = col + row * stridePerRow
            for oy in outputRows {
                let iy = oy * stride - padding.top + ky
                if iy < 0 || iy >= height {
                    out.update(repeating: 0, count: ow)
                    out += ow
                    continue
                }
                let source = plane + iy * width
                if stride == 1 {
                    // Valid output columns: 0 ≤ ox - left + kx < width.
                    let first = min(ow, max(0, padding.left - kx))
                    let last = max(first, min(ow, width + padding.left - kx))
                    if first > 0 { out.update(repeating: 0, count: first) }
                    if last > first { (out + first).update(from: source + (first - padding.left + kx), count: last - first) }
                    if last < ow { (out + last).update(repeating: 0, count: ow - last) }
                } else {
                    for ox in 0..<ow {
                        let ix = ox * stride - padding.left + kx
                        out[ox] = ix >= 0 && ix < width ? source[ix] : 0
                    }
                }
                out += ow
            }
        }
    }
}
