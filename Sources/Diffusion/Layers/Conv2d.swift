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
    public var weight: [Float]
    public var bias: [Float]

    /// im2col tiles hold at most this many floats (16 MB): large enough for
    /// efficient GEMMs, small enough that a 512×512 VAE layer never needs a
    /// gigabyte-sized column buffer.
    static let tileBudget = 4 << 20

    public init(key: String, biasKey: String, inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1,
                padding: Padding, weight: [Float], bias: [Float]) {
        precondition(weight.count == outChannels * inChannels * kernel * kernel && bias.count == outChannels)
        self.key = key
        self.biasKey = biasKey
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.weight = weight
        self.bias = bias
    }

    /// Load `prefix.weight`/`prefix.bias`; padding k/2 on every side unless given.
    public init(_ weights: Weights, _ prefix: String, in inChannels: Int, out outChannels: Int, kernel: Int,
                stride: Int = 1, padding: Padding? = nil) throws(ModelError) {
        self.init(key: prefix + ".weight", biasKey: prefix + ".bias", inChannels: inChannels, outChannels: outChannels,
                  kernel: kernel, stride: stride, padding: padding ?? .same(kernel / 2),
                  weight: try weights.load(prefix + ".weight", shape: [outChannels, inChannels, kernel, kernel]),
                  bias: try weights.load(prefix + ".bias", shape: [outChannels]))
    }

    public func outputSize(height: Int, width: Int) -> (Int, Int) {
        ((height + padding.top + padding.bottom - kernel) / stride + 1, (width + padding.left + padding.right - kernel) / stride + 1)
    }

    public func forward(_ x: Tensor, adapters: AdapterSet = .empty) -> Tensor {
        let batch = x.shape[0], height = x.shape[2], width = x.shape[3]
        precondition(x.shape[1] == inChannels, "\(key): input has \(x.shape[1]) channels, expected \(inChannels)")
        let (oh, ow) = outputSize(height: height, width: width)
        var y = Tensor.uninitialized([batch, outChannels, oh, ow])
        let w = adapters.replacements[key] ?? weight
        let b = adapters.replacements[biasKey] ?? bias
        let lowRank = adapters.lowRank[key] ?? []
        let k = inChannels * kernel * kernel
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
                                im2col(input, height: height, width: width, outputRows: row..<(row + rows), outputWidth: ow, into: cp.baseAddress!)
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

    /// out[O, pixels] += W × columns, and the LoRA side paths on the same columns.
    private func multiply(_ w: UnsafePointer<Float>, columns: UnsafePointer<Float>, k: Int, pixels: Int, ldc: Int,
                          into output: UnsafeMutablePointer<Float>, lowRank: [AdapterSet.LowRank]) {
        gemm(m: outChannels, n: pixels, k: k, a: w, lda: k, b: columns, ldb: pixels, beta: 1, c: output, ldc: ldc)
        for a in lowRank {
            var hidden = [Float](repeating: 0, count: a.rank * pixels)
            hidden.withUnsafeMutableBufferPointer { h in
                a.down.withUnsafeBufferPointer { d in
                    gemm(m: a.rank, n: pixels, k: k, a: d.baseAddress!, lda: k, b: columns, ldb: pixels, c: h.baseAddress!, ldc: pixels)
                }
                a.up.withUnsafeBufferPointer { u in
                    gemm(m: outChannels, n: pixels, k: a.rank, alpha: a.scale, a: u.baseAddress!, lda: a.rank,
                         b: h.baseAddress!, ldb: pixels, beta: 1, c: output, ldc: ldc)
                }
            }
        }
    }

    /// Columns for output rows `outputRows`: row (c, ky, kx) holds the input
    /// pixel each output pixel sees through that tap (zero outside the image).
    private func im2col(_ input: UnsafePointer<Float>, height: Int, width: Int, outputRows: Range<Int>, outputWidth ow: Int,
                        into col: UnsafeMutablePointer<Float>) {
        let taps = kernel * kernel
        let pixels = outputRows.count * ow
        let (kernel, stride, padding) = (self.kernel, self.stride, self.padding)
        Parallel.forEach(inChannels * taps, cost: pixels) { row in
            let c = row / taps, ky = (row % taps) / kernel, kx = row % kernel
            let plane = input + c * height * width
            var out = col + row * pixels
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
