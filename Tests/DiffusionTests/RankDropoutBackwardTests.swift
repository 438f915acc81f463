import XCTest
@testable import Diffusion

/// LyCORIS's rank dropout as lycoris.kohya trains with it (`LoRADropout.RankDropout.weightRows`): rows of each module's
/// ΔW dropped for a pass — LoHa and LoKr folded into their layer, inside DoRA's decomposition, LoCon's output channels
/// beside its layer, NormModule's offsets per channel — each against finite differences of a double-precision
/// reference that drops the same rows. kohya's LoRA keeps its own rank dropout; (IA)^3 has none in LyCORIS.
extension BackwardTests {
    private func lycorisDropout(seed: UInt64) -> LoRADropout {
        LoRADropout(neuron: nil, rank: 0.5, module: nil, seed: seed, rankDropout: .weightRows)
    }

    /// The rows of `mask` (one per output row) of a ΔW [rows, columns], the others zero.
    private func keptRows(_ delta: [Double], _ mask: [Float]) -> [Double] {
        let columns = delta.count / mask.count
        return delta.indices.map { delta[$0] * Double(mask[$0 / columns]) }
    }

    /// The mask the tape will draw for `name`, checked to keep some rows and drop others (so the test can fail).
    private func mixedMask(_ dropout: LoRADropout, _ name: String, rows: Int) throws -> [Float] {
        let mask = try XCTUnwrap(dropout.rowMask(name, rows: rows), name)
        XCTAssertTrue(mask.contains(0) && mask.contains(1), "\(name): \(mask)")
        return mask
    }

    func testLyCORISRankDropoutDropsRowsOfFoldedModules() throws {
        var rng = Rng(state: 31)
        let rank = 2, dropout = lycorisDropout(seed: 1)
        // LoHa on the module's rows of a packed linear part, 6 → 5, scale 1.5.
        let shape = LoRAModule.Shape.linear(in: 6, out: 5)
        let h = [rng.values(5 * rank), rng.values(rank * 6), rng.values(5 * rank), rng.values(rank * 6)]
        let loha = LoHaModule(name: "lora_unet_x", shape: shape, rank: rank, alpha: 3, w1a: h[0].map(Float.init), w1b: h[1].map(Float.init),
                              w2a: h[2].map(Float.init), w2b: h[3].map(Float.init))
        let hadaMask = try mixedMask(dropout, loha.name, rows: 5)
        let x = rng.values(3 * 6), r = rng.values(3 * 5)
        checkWeightDeltaModule("rank-dropped LoHa linear", loha, x: x, xShape: [3, 6], outputShape: [3, 5], r: r, point: h, dropout: dropout) { x, p, _ in
            let delta = zip(self.product(p[0], p[1], 5, rank, 6), self.product(p[2], p[3], 5, rank, 6)).map { $0 * $1 * 1.5 }
            return self.denseLoss(x, self.keptRows(delta, hadaMask), shape: shape, batch: 3, r: r)
        }
        // LoKr 6 → 4 (w1 [2, 2] full, w2 [2, 3] low-rank), scale 1.5.
        let lokrShape = LoRAModule.Shape.linear(in: 6, out: 4)
        let k = [rng.values(2 * 2), rng.values(2 * rank), rng.values(rank * 3)]
        let lokr = LoKrModule(name: "lora_unet_y", shape: lokrShape, rank: rank, alpha: 3,
                              w1: .full(Parameter(key: "lora_unet_y.lokr_w1", shape: [2, 2], values: k[0].map(Float.init))),
                              w2: .lowRank(Parameter(key: "lora_unet_y.lokr_w2_a", shape: [2, rank], values: k[1].map(Float.init)),
                                           Parameter(key: "lora_unet_y.lokr_w2_b", shape: [rank, 3], values: k[2].map(Float.init))))
        let kronMask = try mixedMask(dropout, lokr.name, rows: 4)
        let kx = rng.values(3 * 6), kr = rng.values(3 * 4)
        checkWeightDeltaModule("rank-dropped LoKr linear", lokr, x: kx, xShape: [3, 6], outputShape: [3, 4], r: kr, point: k, dropout: dropout) { x, p, _ in
            let w2 = self.product(p[1], p[2], 2, rank, 3)
            var delta = [Double](repeating: 0, count: 24)
            for i in 0..<2 { for q in 0..<2 { for j in 0..<2 { for e in 0..<3 {
                delta[(i * 2 + q) * 6 + j * 3 + e] = 1.5 * p[0][i * 2 + j] * w2[q * 3 + e]
            } } } }
            return self.denseLoss(x, self.keptRows(delta, kronMask), shape: lokrShape, batch: 3, r: kr)
        }
        // DoRA around LoHa on a 3×3 stride-2 convolution, 3 → 5: the rows are dropped from ΔW inside V = W + ΔW.
        let convShape = LoRAModule.Shape.conv(in: 3, out: 5, kernel: 3, stride: 2, padding: 1)
        let c = [rng.values(5 * rank), rng.values(rank * 27), rng.values(5 * rank), rng.values(rank * 27), rng.values(5).map { 2 + $0 }]
        let inner = LoHaModule(name: "lora_unet_conv", shape: convShape, rank: rank, alpha: 3, w1a: c[0].map(Float.init), w1b: c[1].map(Float.init),
                               w2a: c[2].map(Float.init), w2b: c[3].map(Float.init))
        let dora = DoRAModule(inner, magnitude: c[4].map(Float.init))
        let doraMask = try mixedMask(dropout, dora.name, rows: 5)
        let cx = rng.values(2 * 3 * 5 * 4), cr = rng.values(2 * 5 * 3 * 2)
        checkWeightDeltaModule("rank-dropped DoRA LoHa conv", dora, x: cx, xShape: [2, 3, 5, 4], outputShape: [2, 5, 3, 2], r: cr, point: c,
                               dropout: dropout) { x, p, base in
            let delta = zip(self.product(p[0], p[1], 5, rank, 27), self.product(p[2], p[3], 5, rank, 27)).map { $0 * $1 * 1.5 }
            return self.denseLoss(x, self.decomposed(base, self.keptRows(delta, doraMask), p[4]), shape: convShape, batch: 2, height: 5, width: 4, r: cr)
        }
        // (IA)^3: LyCORIS's IA3Module has no rank dropout, so the layer runs as without it.
        let ia3 = IA3Module(name: "lora_unet_z", shape: shape, values: rng.values(5).map(Float.init))
        let layer = Linear(inFeatures: 6, outFeatures: 5, weight: rng.values(30).map(Float.init), bias: nil, parts: [.init(key: "w", biasKey: nil, rows: 0..<5)])
        let tape = TrainingTape(modules: ["w": [.init(ia3)]]), input = Tensor(shape: [3, 6], values: x.map(Float.init))
        let plain = layer.forward(input, tape: tape)
        tape.reset()
        tape.dropout = dropout
        XCTAssertEqual(layer.forward(input, tape: tape).values, plain.values, "(IA)^3 under rank dropout")
    }

    /// LyCORIS's LoCon beside its layer: the output channels of the dropped rows are zero, y = mask ⊙ (scale·up(down(x))),
    /// on a linear layer and a convolution; kohya's own rank dropout is not drawn for it, and kohya's modules get no row mask.
    func testLyCORISRankDropoutOnLoConOutputChannels() throws {
        var rng = Rng(state: 32)
        let rank = 2, dropout = lycorisDropout(seed: 2)
        dropout.pass = 2
        let shapes: [(LoRAModule.Shape, xShape: [Int], fanIn: Int, outputShape: [Int])] = [
            (.linear(in: 6, out: 5), [2, 3, 6], 6, [2, 3, 5]),
            (.conv(in: 3, out: 4, kernel: 3, stride: 1, padding: 1), [2, 3, 4, 3], 27, [2, 4, 4, 3]),
        ]
        for (index, (shape, xShape, fanIn, outputShape)) in shapes.enumerated() {
            let out = shape.outputs, name = "lora_unet_locon\(index)"
            let c = [rng.values(rank * fanIn), rng.values(out * rank)]
            var module = LoRAModule(name: name, shape: shape, rank: rank, alpha: 3, down: c[0].map(Float.init), up: c[1].map(Float.init))
            module.multiplier = 0.5
            let mask = try mixedMask(dropout, name, rows: out)
            let x = rng.values(xShape.reduce(1, *)), r = rng.values(outputShape.reduce(1, *))
            func loss(_ x: [Double], _ p: [[Double]]) -> Double {
                let delta = keptRows(product(p[1], p[0], out, rank, fanIn).map { $0 * 0.5 * 1.5 }, mask)
                if case .conv = shape {
                    return denseLoss(x, delta, shape: shape, batch: xShape[0], height: xShape[2], width: xShape[3], r: r)
                }
                return denseLoss(x, delta, shape: shape, batch: xShape[0] * xShape[1], r: r)
            }
            let (y, saved) = module.forward(Tensor(shape: xShape, values: x.map(Float.init)), dropout: dropout)
            XCTAssertNil(saved.mask, "\(name): no kohya rank channels under LyCORIS's rank dropout")
            XCTAssertEqual(saved.outputMask, mask)
            XCTAssertEqual(Double(zip(y.values, r).reduce(Float(0)) { $0 + $1.0 * Float($1.1) }), loss(x, c), accuracy: 1e-4 * max(1, abs(loss(x, c))), name)
            let dx = module.backward(saved, outputGradient: Tensor(shape: outputShape, values: r.map(Float.init)))
            checkGradient("\(name) dx", analytic: dx.values, at: x) { loss($0, c) }
            for (i, parameter) in [module.down, module.up].enumerated() {
                checkGradient("\(name) d \(parameter.key)", analytic: parameter.gradient.values, at: c[i]) { values in
                    var p = c
                    p[i] = values
                    return loss(x, p)
                }
            }
        }
        XCTAssertNil(LoRADropout(neuron: nil, rank: 0.5, module: nil, seed: 2).rowMask("lora_unet_locon0", rows: 5), "kohya's LoRA: rank channels")
        let other = lycorisDropout(seed: 2)
        other.pass = 3
        XCTAssertNotEqual(other.rowMask("m", rows: 64), dropout.rowMask("m", rows: 64), "another pass, another mask")
    }

    /// train_norm's NormModule under rank dropout: the offsets of the dropped channels left out of γ and β, and their
    /// gradients zero.
    func testLyCORISRankDropoutOnNormModuleChannels() throws {
        var rng = Rng(state: 33)
        let batch = 2, channels = 6, groups = 3, spatial = 5
        let gamma = rng.values(channels), beta = rng.values(channels), w = rng.values(channels), b = rng.values(channels)
        let x = rng.values(batch * channels * spatial, scale: 2), r = rng.values(x.count)
        let layer = GroupNorm(key: "n.weight", biasKey: "n.bias", channels: channels, groups: groups, epsilon: 1e-5, weight: gamma.map(Float.init),
                              bias: beta.map(Float.init))
        let module = NormModule(name: "lora_unet_n", channels: channels, weight: w.map(Float.init), bias: b.map(Float.init))
        let tape = TrainingTape(modules: ["n.weight": [.init(module)]])
        tape.dropout = lycorisDropout(seed: 5)
        let mask = try mixedMask(try XCTUnwrap(tape.dropout), module.name, rows: channels).map(Double.init)
        func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
            let y = groupNormReference(x, (0..<channels).map { gamma[$0] + mask[$0] * w[$0] }, (0..<channels).map { beta[$0] + mask[$0] * b[$0] },
                                       batch: batch, groups: groups, spatial: spatial, silu: false)
            return zip(r, y).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let input = Tensor(shape: [batch, channels, spatial, 1], values: x.map(Float.init))
        let y = layer.forward(input, tape: tape)
        XCTAssertEqual(Double(zip(y.values, r).reduce(Float(0)) { $0 + $1.0 * Float($1.1) }), loss(x, w, b), accuracy: 1e-4 * max(1, abs(loss(x, w, b))))
        let dx = layer.backward(input: input, outputGradient: Tensor(shape: input.shape, values: r.map(Float.init)), tape: tape)
        checkGradient("rank-dropped norm module dx", analytic: dx.values, at: x) { loss($0, w, b) }
        checkGradient("rank-dropped norm module d w_norm", analytic: module.weight.gradient.values, at: w) { loss(x, $0, b) }
        checkGradient("rank-dropped norm module d b_norm", analytic: module.bias.gradient.values, at: b) { loss(x, w, $0) }
    }
}
