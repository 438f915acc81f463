import XCTest
@testable import Diffusion

/// LyCORIS's LoHa and LoKr as training runs them, folded into a frozen Linear (on rows of a packed part) or Conv2d
/// through a TrainingTape: forward, dx and every factor's gradient against finite differences of a double-precision
/// reference that builds ΔW by its own formula (Hadamard product of two products; Kronecker product by explicit index
/// arithmetic) and runs the layer's operation naively.
extension BackwardTests {
    /// Σ r·op(x, ΔW) for a linear layer (x [rows, in]) or a convolution (x [n, c, h, w]) of `shape`.
    func denseLoss(_ x: [Double], _ delta: [Double], shape: LoRAModule.Shape, batch: Int, height: Int = 1, width: Int = 1, r: [Double]) -> Double {
        var total = 0.0
        switch shape {
        case let .linear(inputs, outputs):
            for row in 0..<batch { for o in 0..<outputs {
                let y = (0..<inputs).reduce(0.0) { $0 + delta[o * inputs + $1] * x[row * inputs + $1] }
                total += r[row * outputs + o] * y
            } }
        case let .conv(c, out, k, stride, pad):
            let oh = (height + 2 * pad - k) / stride + 1, ow = (width + 2 * pad - k) / stride + 1
            for n in 0..<batch { for o in 0..<out { for oy in 0..<oh { for ox in 0..<ow {
                var y = 0.0
                for ci in 0..<c { for ky in 0..<k { for kx in 0..<k {
                    let iy = oy * stride - pad + ky, ix = ox * stride - pad + kx
                    if iy >= 0 && iy < height && ix >= 0 && ix < width { y += delta[((o * c + ci) * k + ky) * k + kx] * x[((n * c + ci) * height + iy) * width + ix] }
                } } }
                total += r[((n * out + o) * oh + oy) * ow + ox] * y
            } } } }
        }
        return total
    }

    /// [m, k]·[k, n] in double.
    func product(_ a: [Double], _ b: [Double], _ m: Int, _ k: Int, _ n: Int) -> [Double] {
        (0..<(m * n)).map { i in (0..<k).reduce(0.0) { $0 + a[(i / n) * k + $1] * b[$1 * n + i % n] } }
    }

    /// Runs `module` the way training does, folded into a frozen layer through a tape (a Linear whose weight has two
    /// packed parts, the module on rows 4..<4+out of the second; or a Conv2d), and checks the forward, dx and each
    /// parameter's gradient (values `point`, in `module.parameters`' order) against finite differences of
    /// `loss(x, parameters, W)`, which must give Σ r·op(x, ΔW) for the module's ΔW alone (W: the frozen weight's rows
    /// the module changes, for (IA)^3). With `dropout`, the tape draws its masks (one pass).
    func checkWeightDeltaModule(_ label: String, _ module: some WeightDeltaModule, x: [Double], xShape: [Int], outputShape: [Int], r: [Double],
                                point: [[Double]], dropout: LoRADropout? = nil, loss lossWithBase: @escaping ([Double], [[Double]], [Double]) -> Double) {
        var rng = Rng(state: 77)
        let input = Tensor(shape: xShape, values: x.map(Float.init))
        let output: Tensor, dx: Tensor, frozen: (([Double]) -> Double), base: [Double]
        switch module.shape {
        case let .linear(inputs, outputs):
            // Rows: 0..<3 part "q", 3..<3+8+outputs part "kv", the module on its rows 4..<4+outputs.
            let total = 3 + 8 + outputs, w = rng.values(total * inputs), rows = x.count / inputs
            base = Array(w[(7 * inputs)..<((7 + outputs) * inputs)])
            let layer = Linear(inFeatures: inputs, outFeatures: total, weight: w.map(Float.init), bias: nil,
                               parts: [.init(key: "q", biasKey: nil, rows: 0..<3), .init(key: "kv", biasKey: nil, rows: 3..<total)])
            let tape = TrainingTape(modules: ["kv": [.init(module, rows: 4..<(4 + outputs))]])
            tape.dropout = dropout
            let full = layer.forward(input, tape: tape)
            // The module's rows of the layer's output; the layer's own part is W·x.
            var own = [Float](), upstream = [Float](repeating: 0, count: rows * total)
            for row in 0..<rows {
                own += full.values[(row * total + 7)..<(row * total + 7 + outputs)]
                for o in 0..<outputs { upstream[row * total + 7 + o] = Float(r[row * outputs + o]) }
            }
            let plain = Linear(inFeatures: inputs, outFeatures: total, weight: w.map(Float.init), bias: nil,
                               parts: [.init(key: "w", biasKey: nil, rows: 0..<total)]).forward(input)
            for row in 0..<rows { for o in 0..<outputs { own[row * outputs + o] -= plain.values[row * total + 7 + o] } }
            output = Tensor(shape: outputShape, values: own)
            dx = layer.backward(input: input, outputGradient: Tensor(shape: [rows, total], values: upstream), tape: tape)
            frozen = { x in self.denseLoss(x, Array(w[(7 * inputs)..<((7 + outputs) * inputs)]), shape: module.shape, batch: rows, r: r) }
        case let .conv(inputs, outputs, kernel, stride, padding):
            let w = rng.values(outputs * inputs * kernel * kernel)
            base = w
            let layer = Conv2d(key: "c", biasKey: "cb", inChannels: inputs, outChannels: outputs, kernel: kernel, stride: stride, padding: .same(padding),
                               weight: w.map(Float.init), bias: [Float](repeating: 0, count: outputs))
            let tape = TrainingTape(modules: ["c": [.init(module)]])
            tape.dropout = dropout
            let full = layer.forward(input, tape: tape), plain = layer.forward(input)
            output = Tensor(shape: outputShape, values: zip(full.values, plain.values).map { $0 - $1 })
            dx = layer.backward(input: input, outputGradient: Tensor(shape: outputShape, values: r.map(Float.init)), tape: tape)
            frozen = { x in self.denseLoss(x, w, shape: module.shape, batch: xShape[0], height: xShape[2], width: xShape[3], r: r) }
        }
        let loss = { (x: [Double], p: [[Double]]) in lossWithBase(x, p, base) }
        XCTAssertEqual(output.shape, outputShape, label)
        XCTAssertEqual(Double(zip(output.values, r).reduce(Float(0)) { $0 + $1.0 * Float($1.1) }), loss(x, point),
                       accuracy: 1e-4 * max(1, abs(loss(x, point))), "\(label) forward")
        // dx runs through W + ΔW.
        checkGradient("\(label) dx", analytic: dx.values, at: x) { frozen($0) + loss($0, point) }
        for (index, parameter) in module.parameters.enumerated() {
            checkGradient("\(label) d \(parameter.key)", analytic: parameter.gradient.values, at: point[index]) { values in
                var p = point
                p[index] = values
                return loss(x, p)
            }
        }
    }

    func testLoHaModuleGradientsLinearAndStridedConv() {
        var rng = Rng(state: 21)
        let rank = 2, alpha: Float = 3, scale = 1.5
        // Linear: 3 rows, 6 → 4.
        let shape = LoRAModule.Shape.linear(in: 6, out: 4)
        let w = [rng.values(4 * rank), rng.values(rank * 6), rng.values(4 * rank), rng.values(rank * 6)]
        let linear = LoHaModule(name: "lora_unet_x", shape: shape, rank: rank, alpha: alpha, w1a: w[0].map(Float.init), w1b: w[1].map(Float.init),
                                w2a: w[2].map(Float.init), w2b: w[3].map(Float.init))
        func delta(_ p: [[Double]], out: Int, columns: Int) -> [Double] {
            let p1 = product(p[0], p[1], out, rank, columns), p2 = product(p[2], p[3], out, rank, columns)
            return zip(p1, p2).map { $0 * $1 * scale }
        }
        let x = rng.values(3 * 6), r = rng.values(3 * 4)
        checkWeightDeltaModule("LoHa linear", linear, x: x, xShape: [3, 6], outputShape: [3, 4], r: r, point: w) { x, p, _ in
            self.denseLoss(x, delta(p, out: 4, columns: 6), shape: shape, batch: 3, r: r)
        }
        // A 3×3 convolution with stride 2 and padding 1 (a downsampler), 3 → 5 channels, 2 × 3 × 5 × 4.
        let convShape = LoRAModule.Shape.conv(in: 3, out: 5, kernel: 3, stride: 2, padding: 1)
        let cw = [rng.values(5 * rank), rng.values(rank * 27), rng.values(5 * rank), rng.values(rank * 27)]
        let conv = LoHaModule(name: "lora_unet_conv", shape: convShape, rank: rank, alpha: alpha, w1a: cw[0].map(Float.init), w1b: cw[1].map(Float.init),
                              w2a: cw[2].map(Float.init), w2b: cw[3].map(Float.init))
        let cx = rng.values(2 * 3 * 5 * 4), cr = rng.values(2 * 5 * 3 * 2)
        checkWeightDeltaModule("LoHa conv", conv, x: cx, xShape: [2, 3, 5, 4], outputShape: [2, 5, 3, 2], r: cr, point: cw) { x, p, _ in
            self.denseLoss(x, delta(p, out: 5, columns: 27), shape: convShape, batch: 2, height: 5, width: 4, r: cr)
        }
    }

    /// LoHa with Tucker cores (use_tucker on a 3×3 kernel), with a max-norm scalar of 0.6: ΔW built by LyCORIS's einsum
    /// "i j ..., j r, i p -> p r ..." written out index by index.
    func testLoHaModuleWithTuckerCoresAndScalar() {
        var rng = Rng(state: 23)
        let rank = 2, alpha: Float = 3, scalar = 0.6, scale = 1.5 * 0.6
        let shape = LoRAModule.Shape.conv(in: 3, out: 4, kernel: 3, stride: 1, padding: 1)
        // t1, w1_a [rank, out], w1_b [rank, in], t2, w2_a, w2_b: LyCORIS's order.
        let p = [rng.values(rank * rank * 9), rng.values(rank * 4), rng.values(rank * 3), rng.values(rank * rank * 9), rng.values(rank * 4), rng.values(rank * 3)]
        let module = LoHaModule(name: "lora_unet_conv", shape: shape, rank: rank, alpha: alpha,
                                tucker: (p[0].map(Float.init), p[1].map(Float.init), p[2].map(Float.init), p[3].map(Float.init), p[4].map(Float.init),
                                         p[5].map(Float.init)))
        module.scalar.value = Float(scalar)
        XCTAssertEqual(module.parameters.map(\.key), ["hada_t1", "hada_w1_a", "hada_w1_b", "hada_t2", "hada_w2_a", "hada_w2_b"].map { "lora_unet_conv." + $0 })
        XCTAssertEqual(module.parameters.map(\.shape), [[2, 2, 3, 3], [2, 4], [2, 3], [2, 2, 3, 3], [2, 4], [2, 3]])
        // P[o, c, k] = Σ_i,j t[i, j, k]·w_b[j, c]·w_a[i, o].
        func rebuild(_ t: [Double], _ wa: [Double], _ wb: [Double]) -> [Double] {
            var out = [Double](repeating: 0, count: 4 * 3 * 9)
            for o in 0..<4 { for c in 0..<3 { for k in 0..<9 { for i in 0..<rank { for j in 0..<rank {
                out[(o * 3 + c) * 9 + k] += t[(i * rank + j) * 9 + k] * wb[j * 3 + c] * wa[i * 4 + o]
            } } } } }
            return out
        }
        let x = rng.values(2 * 3 * 4 * 5), r = rng.values(2 * 4 * 4 * 5)
        checkWeightDeltaModule("LoHa Tucker conv", module, x: x, xShape: [2, 3, 4, 5], outputShape: [2, 4, 4, 5], r: r, point: p) { x, p, _ in
            let delta = zip(rebuild(p[0], p[1], p[2]), rebuild(p[3], p[4], p[5])).map { $0 * $1 * scale }
            return self.denseLoss(x, delta, shape: shape, batch: 2, height: 4, width: 5, r: r)
        }
    }

    /// LyCORIS's NormModule (train_norm) on a GroupNorm fused with SiLU through a tape: the forward with γ + w_norm and
    /// β + b_norm, dx, and w_norm's and b_norm's gradients against finite differences (multiplier 0.5); module_dropout
    /// leaves the layer as it is and the module without gradient.
    func testNormModuleOnGroupNorm() {
        var rng = Rng(state: 24)
        let batch = 2, channels = 6, groups = 3, spatial = 7, multiplier = 0.5
        let gamma = rng.values(channels), beta = rng.values(channels), w = rng.values(channels), b = rng.values(channels)
        let x = rng.values(batch * channels * spatial, scale: 2), r = rng.values(x.count)
        let layer = GroupNorm(key: "n.weight", biasKey: "n.bias", channels: channels, groups: groups, epsilon: 1e-5, weight: gamma.map(Float.init),
                              bias: beta.map(Float.init))
        var module = NormModule(name: "lora_unet_n", channels: channels, weight: w.map(Float.init), bias: b.map(Float.init))
        module.multiplier = Float(multiplier)
        XCTAssertEqual(module.parameters.map(\.key), ["lora_unet_n.w_norm", "lora_unet_n.b_norm"])
        let tape = TrainingTape(modules: ["n.weight": [.init(module)]])
        func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
            let y = groupNormReference(x, zip(gamma, w).map { $0 + multiplier * $1 }, zip(beta, b).map { $0 + multiplier * $1 }, batch: batch, groups: groups,
                                       spatial: spatial, silu: true)
            return zip(r, y).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let input = Tensor(shape: [batch, channels, spatial, 1], values: x.map(Float.init))
        let y = layer.forward(input, silu: true, tape: tape)
        XCTAssertEqual(Double(zip(y.values, r).reduce(Float(0)) { $0 + $1.0 * Float($1.1) }), loss(x, w, b), accuracy: 1e-4 * max(1, abs(loss(x, w, b))))
        let dx = layer.backward(input: input, outputGradient: Tensor(shape: input.shape, values: r.map(Float.init)), silu: true, tape: tape)
        checkGradient("norm module dx", analytic: dx.values, at: x) { loss($0, w, b) }
        checkGradient("norm module d w_norm", analytic: module.weight.gradient.values, at: w) { loss(x, $0, b) }
        checkGradient("norm module d b_norm", analytic: module.bias.gradient.values, at: b) { loss(x, w, $0) }

        module.weight.gradient.zero()
        module.bias.gradient.zero()
        tape.reset()
        tape.dropout = LoRADropout(neuron: nil, rank: nil, module: 0.999, seed: 3)
        XCTAssertEqual(layer.forward(input, silu: true, tape: tape).values, layer.forward(input, silu: true).values, "dropped: the layer's own γ and β")
        _ = layer.backward(input: input, outputGradient: Tensor(shape: input.shape, values: r.map(Float.init)), silu: true, tape: tape)
        XCTAssertTrue(module.weight.gradient.values.allSatisfy { $0 == 0 } && module.bias.gradient.values.allSatisfy { $0 == 0 })
    }

    func testLoKrModuleGradientsWithFullLowRankAndTuckerFactors() {
        var rng = Rng(state: 22)
        // ΔW[i·b + p, (j·d + e)·area + s] = scale · w1[i, j] · w2[p, e, s], written out index by index.
        func kron(_ w1: [Double], _ w2: [Double], a: Int, b: Int, c: Int, d: Int, area: Int, scale: Double) -> [Double] {
            var out = [Double](repeating: 0, count: a * b * c * d * area)
            for i in 0..<a { for p in 0..<b { for j in 0..<c { for e in 0..<d { for s in 0..<area {
                out[((i * b + p) * (c * d) + j * d + e) * area + s] = scale * w1[i * c + j] * w2[(p * d + e) * area + s]
            } } } } }
            return out
        }
        // Linear 6 → 4 (a = 2, c = 2; b = 2, d = 3): w1 full, w2 low-rank at rank 2 with alpha 3.
        let shape = LoRAModule.Shape.linear(in: 6, out: 4), rank = 2
        let p = [rng.values(2 * 2), rng.values(2 * rank), rng.values(rank * 3)]
        let linear = LoKrModule(name: "lora_unet_x", shape: shape, rank: rank, alpha: 3,
                                w1: .full(Parameter(key: "lora_unet_x.lokr_w1", shape: [2, 2], values: p[0].map(Float.init))),
                                w2: .lowRank(Parameter(key: "lora_unet_x.lokr_w2_a", shape: [2, rank], values: p[1].map(Float.init)),
                                             Parameter(key: "lora_unet_x.lokr_w2_b", shape: [rank, 3], values: p[2].map(Float.init))))
        XCTAssertEqual(linear.parameters.map(\.key), ["lora_unet_x.lokr_w1", "lora_unet_x.lokr_w2_a", "lora_unet_x.lokr_w2_b"], "LyCORIS's order")
        let x = rng.values(3 * 6), r = rng.values(3 * 4)
        checkWeightDeltaModule("LoKr linear", linear, x: x, xShape: [3, 6], outputShape: [3, 4], r: r, point: p) { x, p, _ in
            self.denseLoss(x, kron(p[0], self.product(p[1], p[2], 2, rank, 3), a: 2, b: 2, c: 2, d: 3, area: 1, scale: 1.5), shape: shape, batch: 3, r: r)
        }
        // 3×3 convolution 4 → 6 (a = 2, c = 2; b = 3, d = 2): w1 low-rank [2, 1]·[1, 2], w2 full [3, 2, 3, 3]; rank 1, alpha 0.5.
        let convShape = LoRAModule.Shape.conv(in: 4, out: 6, kernel: 3, stride: 1, padding: 1)
        let q = [rng.values(2), rng.values(2), rng.values(3 * 2 * 9)]
        let conv = LoKrModule(name: "lora_unet_conv", shape: convShape, rank: 1, alpha: 0.5,
                              w1: .lowRank(Parameter(key: "lora_unet_conv.lokr_w1_a", shape: [2, 1], values: q[0].map(Float.init)),
                                           Parameter(key: "lora_unet_conv.lokr_w1_b", shape: [1, 2], values: q[1].map(Float.init))),
                              w2: .full(Parameter(key: "lora_unet_conv.lokr_w2", shape: [3, 2, 3, 3], values: q[2].map(Float.init))))
        let cx = rng.values(2 * 4 * 4 * 3), cr = rng.values(2 * 6 * 4 * 3)
        checkWeightDeltaModule("LoKr conv", conv, x: cx, xShape: [2, 4, 4, 3], outputShape: [2, 6, 4, 3], r: cr, point: q) { x, q, _ in
            self.denseLoss(x, kron(self.product(q[0], q[1], 2, 1, 2), q[2], a: 2, b: 3, c: 2, d: 2, area: 9, scale: 0.5), shape: convShape, batch: 2,
                           height: 4, width: 3, r: cr)
        }
        // The same convolution with use_tucker: w1 full [2, 2], w2 through the core lokr_t2 [2, 2, 3, 3] with lokr_w2_a [2, 3]
        // and lokr_w2_b [2, 2] (w2[p, e, k] = Σ_i,j t[i, j, k]·a[i, p]·b[j, e]); rank 2, alpha 1.
        let t = [rng.values(2 * 2), rng.values(2 * 2 * 9), rng.values(2 * 3), rng.values(2 * 2)]
        let tucker = LoKrModule(name: "lora_unet_conv", shape: convShape, rank: 2, alpha: 1,
                                w1: .full(Parameter(key: "lora_unet_conv.lokr_w1", shape: [2, 2], values: t[0].map(Float.init))),
                                w2: .tucker(core: Parameter(key: "lora_unet_conv.lokr_t2", shape: [2, 2, 3, 3], values: t[1].map(Float.init)),
                                            a: Parameter(key: "lora_unet_conv.lokr_w2_a", shape: [2, 3], values: t[2].map(Float.init)),
                                            b: Parameter(key: "lora_unet_conv.lokr_w2_b", shape: [2, 2], values: t[3].map(Float.init))))
        XCTAssertEqual(tucker.parameters.map(\.key), ["lokr_w1", "lokr_t2", "lokr_w2_a", "lokr_w2_b"].map { "lora_unet_conv." + $0 }, "LyCORIS's order")
        func rebuild(_ t: [Double], _ a: [Double], _ b: [Double]) -> [Double] {
            var out = [Double](repeating: 0, count: 3 * 2 * 9)
            for p in 0..<3 { for e in 0..<2 { for k in 0..<9 { for i in 0..<2 { for j in 0..<2 {
                out[(p * 2 + e) * 9 + k] += t[(i * 2 + j) * 9 + k] * a[i * 3 + p] * b[j * 2 + e]
            } } } } }
            return out
        }
        checkWeightDeltaModule("LoKr Tucker conv", tucker, x: cx, xShape: [2, 4, 4, 3], outputShape: [2, 6, 4, 3], r: cr, point: t) { x, t, _ in
            self.denseLoss(x, kron(t[0], rebuild(t[1], t[2], t[3]), a: 2, b: 3, c: 2, d: 2, area: 9, scale: 0.5), shape: convShape, batch: 2,
                           height: 4, width: 3, r: cr)
        }
    }

    /// LyCORIS's DoRA (dora_wd): W' = m ⊙ (W + ΔW) / (‖W + ΔW‖_row + ε), around LoHa on a packed Linear's rows and
    /// around a LoCon with a Tucker core on a stride-2 convolution; m, every factor and dx against finite differences.
    /// DoRA's W' − W for the rows of `base` [rows, columns] with ΔW `delta` and magnitudes `m`, in double.
    func decomposed(_ base: [Double], _ delta: [Double], _ m: [Double]) -> [Double] {
        let columns = base.count / m.count
        var out = [Double](repeating: 0, count: base.count)
        for o in 0..<m.count {
            let v = (0..<columns).map { base[o * columns + $0] + delta[o * columns + $0] }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            for c in 0..<columns { out[o * columns + c] = m[o] * v[c] / (norm + Double(Float.ulpOfOne)) - base[o * columns + c] }
        }
        return out
    }

    func testDoRAAroundLoHaAndLoConWithACore() {
        var rng = Rng(state: 25)
        let rank = 2, alpha: Float = 3
        let shape = LoRAModule.Shape.linear(in: 6, out: 4)
        let w = [rng.values(4 * rank), rng.values(rank * 6), rng.values(4 * rank), rng.values(rank * 6), rng.values(4).map { 2 + $0 }]
        let loha = LoHaModule(name: "lora_te_x", shape: shape, rank: rank, alpha: alpha, w1a: w[0].map(Float.init), w1b: w[1].map(Float.init),
                              w2a: w[2].map(Float.init), w2b: w[3].map(Float.init))
        let linear = DoRAModule(loha, magnitude: w[4].map(Float.init))
        XCTAssertEqual(linear.parameters.map(\.key).last, "lora_te_x.dora_scale")
        XCTAssertEqual(linear.magnitude.shape, [4, 1])
        let x = rng.values(3 * 6), r = rng.values(3 * 4)
        checkWeightDeltaModule("DoRA LoHa linear", linear, x: x, xShape: [3, 6], outputShape: [3, 4], r: r, point: w) { x, p, base in
            let delta = zip(self.product(p[0], p[1], 4, rank, 6), self.product(p[2], p[3], 4, rank, 6)).map { $0 * $1 * 1.5 }
            return self.denseLoss(x, self.decomposed(base, delta, p[4]), shape: shape, batch: 3, r: r)
        }
        // LoCon with a core on a 3×3 stride-2 convolution, 3 → 4 channels: ΔW = (alpha/rank)·up·(mid ∘ down).
        let convShape = LoRAModule.Shape.conv(in: 3, out: 4, kernel: 3, stride: 2, padding: 1)
        let c = [rng.values(4).map { 2 + $0 }, rng.values(rank * 3), rng.values(rank * rank * 9), rng.values(4 * rank)]
        let lora = LoRAModule(name: "lora_unet_op", shape: convShape, rank: rank, alpha: alpha, down: c[1].map(Float.init), up: c[3].map(Float.init),
                              mid: c[2].map(Float.init))
        let conv = DoRAModule(LoRAWeightDelta(lora), magnitude: c[0].map(Float.init))
        XCTAssertEqual(conv.parameters.map(\.key), ["dora_scale", "lora_down.weight", "lora_mid.weight", "lora_up.weight"].map { "lora_unet_op." + $0 },
                       "torch's order: LoCon's own Parameter before its layers'")
        XCTAssertEqual(conv.magnitude.shape, [4, 1, 1, 1])
        let cx = rng.values(2 * 3 * 5 * 4), cr = rng.values(2 * 4 * 3 * 2)
        checkWeightDeltaModule("DoRA LoCon Tucker conv", conv, x: cx, xShape: [2, 3, 5, 4], outputShape: [2, 4, 3, 2], r: cr, point: c) { x, p, base in
            var kernel = [Double](repeating: 0, count: rank * 3 * 9)
            for k in 0..<rank { for j in 0..<rank { for ci in 0..<3 { for q in 0..<9 { kernel[(k * 3 + ci) * 9 + q] += p[2][(k * rank + j) * 9 + q] * p[1][j * 3 + ci] } } } }
            let delta = self.product(p[3], kernel, 4, rank, 27).map { $0 * 1.5 }
            return self.denseLoss(x, self.decomposed(base, delta, p[0]), shape: convShape, batch: 2, height: 5, width: 4, r: cr)
        }
        // Started at the frozen rows' norms with ΔW = 0, the layer is unchanged (to ε).
        let fresh = DoRAModule(IA3Module(name: "lora_unet_y", shape: shape), magnitude: DoRAModule.rowNorms((0..<24).map { Float($0) - 11.5 }, rows: 4))
        let base = (0..<24).map { Float($0) - 11.5 }
        XCTAssertLessThan(fresh.delta(base: base).map(abs).max() ?? 1, 1e-5)
    }

    /// LyCORIS's use_scalar: the scalar on ΔW is trained, for LoHa (after its factors), LoKr (after its factors; its
    /// gradients carry the scalar) and LoCon (a side path: the scalar before its layers), against finite differences.
    func testTrainedScalars() {
        var rng = Rng(state: 26)
        let rank = 2, shape = LoRAModule.Shape.linear(in: 6, out: 4)
        let h = [rng.values(4 * rank), rng.values(rank * 6), rng.values(4 * rank), rng.values(rank * 6), [0.7]]
        let loha = LoHaModule(name: "lora_unet_x", shape: shape, rank: rank, alpha: 3, w1a: h[0].map(Float.init), w1b: h[1].map(Float.init),
                              w2a: h[2].map(Float.init), w2b: h[3].map(Float.init), scalar: ModuleScalar(trainedAs: "lora_unet_x", value: 0.7))
        XCTAssertEqual(loha.parameters.map(\.key).last, "lora_unet_x.scalar")
        let x = rng.values(3 * 6), r = rng.values(3 * 4)
        checkWeightDeltaModule("LoHa trained scalar", loha, x: x, xShape: [3, 6], outputShape: [3, 4], r: r, point: h) { x, p, _ in
            let delta = zip(self.product(p[0], p[1], 4, rank, 6), self.product(p[2], p[3], 4, rank, 6)).map { $0 * $1 * 1.5 * p[4][0] }
            return self.denseLoss(x, delta, shape: shape, batch: 3, r: r)
        }
        // LoKr 6 → 4 (a = 2, c = 2; b = 2, d = 3): w1 full, w2 low-rank, alpha 3 (scale 1.5), scalar −0.4.
        let k = [rng.values(2 * 2), rng.values(2 * rank), rng.values(rank * 3), [-0.4]]
        let lokr = LoKrModule(name: "lora_unet_y", shape: shape, rank: rank, alpha: 3,
                              w1: .full(Parameter(key: "lora_unet_y.lokr_w1", shape: [2, 2], values: k[0].map(Float.init))),
                              w2: .lowRank(Parameter(key: "lora_unet_y.lokr_w2_a", shape: [2, rank], values: k[1].map(Float.init)),
                                           Parameter(key: "lora_unet_y.lokr_w2_b", shape: [rank, 3], values: k[2].map(Float.init))),
                              scalar: ModuleScalar(trainedAs: "lora_unet_y", value: -0.4))
        XCTAssertEqual(lokr.lycorisScalar?.savedInto.key, "lora_unet_y.lokr_w1", "saved folded into w1, as LyCORIS saves it")
        checkWeightDeltaModule("LoKr trained scalar", lokr, x: x, xShape: [3, 6], outputShape: [3, 4], r: r, point: k) { x, p, _ in
            let w2 = self.product(p[1], p[2], 2, rank, 3)
            var delta = [Double](repeating: 0, count: 24)
            for i in 0..<2 { for pp in 0..<2 { for j in 0..<2 { for e in 0..<3 {
                delta[(i * 2 + pp) * 6 + j * 3 + e] = 1.5 * p[3][0] * p[0][i * 2 + j] * w2[pp * 3 + e]
            } } } }
            return self.denseLoss(x, delta, shape: shape, batch: 3, r: r)
        }
        // LoCon as a side path: y = multiplier·scale·scalar·up(down(x)), multiplier 0.5, scale 1.5.
        let c = [[0.3], rng.values(rank * 6), rng.values(4 * rank)]
        var locon = LoRAModule(name: "lora_unet_z", shape: shape, rank: rank, alpha: 3, down: c[1].map(Float.init), up: c[2].map(Float.init),
                               scalar: ModuleScalar(trainedAs: "lora_unet_z", value: 0.3))
        locon.multiplier = 0.5
        XCTAssertEqual(locon.parameters.map(\.key), ["lora_unet_z.scalar", "lora_unet_z.lora_down.weight", "lora_unet_z.lora_up.weight"])
        func loss(_ x: [Double], _ p: [[Double]]) -> Double {
            let delta = self.product(p[2], p[1], 4, rank, 6).map { $0 * 0.5 * 1.5 * p[0][0] }
            return self.denseLoss(x, delta, shape: shape, batch: 3, r: r)
        }
        // The same LoCon folded into the weight (as under DoRA), scalar −0.6: LoRAWeightDelta gives the scalar its gradient too.
        let f = [[-0.6], rng.values(rank * 6), rng.values(4 * rank)]
        let folded = LoRAWeightDelta(LoRAModule(name: "lora_unet_w", shape: shape, rank: rank, alpha: 3, down: f[1].map(Float.init),
                                                up: f[2].map(Float.init), scalar: ModuleScalar(trainedAs: "lora_unet_w", value: -0.6)))
        checkWeightDeltaModule("folded LoCon trained scalar", folded, x: x, xShape: [3, 6], outputShape: [3, 4], r: r, point: f) { x, p, _ in
            self.denseLoss(x, self.product(p[2], p[1], 4, rank, 6).map { $0 * 1.5 * p[0][0] }, shape: shape, batch: 3, r: r)
        }
        let (_, saved) = locon.forward(Tensor(shape: [3, 6], values: x.map(Float.init)))
        let dx = locon.backward(saved, outputGradient: Tensor(shape: [3, 4], values: r.map(Float.init)))
        checkGradient("LoCon trained scalar dx", analytic: dx.values, at: x) { loss($0, c) }
        for (index, parameter) in locon.parameters.enumerated() {
            checkGradient("LoCon trained scalar d \(parameter.key)", analytic: parameter.gradient.values, at: c[index]) { values in
                var p = c
                p[index] = values
                return loss(x, p)
            }
        }
    }

    /// (IA)^3 on the output side: ΔW = W ⊙ w along the rows, so its loss reads the frozen weight.
    func testIA3ModuleGradientsLinearAndConv() {
        var rng = Rng(state: 23)
        let shape = LoRAModule.Shape.linear(in: 5, out: 4)
        let v = [rng.values(4)]
        let linear = IA3Module(name: "lora_te_x", shape: shape, values: v[0].map(Float.init))
        XCTAssertEqual(linear.parameters.map(\.shape), [[4]])
        let x = rng.values(3 * 5), r = rng.values(3 * 4)
        checkWeightDeltaModule("iA3 linear", linear, x: x, xShape: [3, 5], outputShape: [3, 4], r: r, point: v) { x, p, w in
            self.denseLoss(x, (0..<20).map { w[$0] * p[0][$0 / 5] }, shape: shape, batch: 3, r: r)
        }
        let convShape = LoRAModule.Shape.conv(in: 3, out: 4, kernel: 3, stride: 1, padding: 1)
        let cv = [rng.values(4)]
        let conv = IA3Module(name: "lora_unet_conv", shape: convShape, values: cv[0].map(Float.init))
        XCTAssertEqual(conv.parameters.map(\.shape), [[1, 4, 1, 1]], "LyCORIS's conv shape")
        let cx = rng.values(2 * 3 * 4 * 4), cr = rng.values(2 * 4 * 4 * 4)
        checkWeightDeltaModule("iA3 conv", conv, x: cx, xShape: [2, 3, 4, 4], outputShape: [2, 4, 4, 4], r: cr, point: cv) { x, p, w in
            self.denseLoss(x, (0..<(4 * 27)).map { w[$0] * p[0][$0 / 27] }, shape: convShape, batch: 2, height: 4, width: 4, r: cr)
        }
    }
}
