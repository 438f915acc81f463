@testable import Diffusion
import Foundation
import LoRACore
import XCTest

/// The U-Net's blocks chain the layer backwards (each checked against a
/// double reference in BackwardTests); here the chaining is checked: the
/// saving forward equals the engine's forward, and the block's input
/// gradients match five-point differences of that float forward at sampled
/// coordinates.
final class BlockBackwardTests: XCTestCase {
    /// The layer tests' deterministic source (the same draws).
    typealias Rng = LayerTests.Rng

    /// Five-point central differences (error O(h⁴), so h can be large enough
    /// that float32 rounding in the forward stays small): worst error below
    /// `tolerance` × the largest gradient, or × `scale` when given (a module
    /// whose gradients are all tiny is judged against the network's scale, as
    /// training sees it, not against float32 noise).
    func checkSampled(_ label: String, analytic: [Float], at point: [Float], samples: Int = 24, tolerance: Double = 2e-3, scale: Double? = nil,
                      h: Float = 1e-2, loss: ([Float]) -> Double) {
        var rng = Rng(state: 99)
        var p = point, worst = 0.0, largest = 0.0
        for _ in 0..<samples {
            let i = Int(abs(rng.next()) * Float(point.count - 1))
            func at(_ offset: Float) -> Double {
                p[i] = point[i] + offset
                defer { p[i] = point[i] }
                return loss(p)
            }
            let numeric = (at(-2 * h) - 8 * at(-h) + 8 * at(h) - at(2 * h)) / Double(12 * h)
            worst = max(worst, abs(Double(analytic[i]) - numeric))
            largest = max(largest, abs(numeric))
        }
        print(String(format: "%@: worst/largest %.2e (h %g)", label, worst / max(largest, scale ?? 0), h))
        XCTAssertGreaterThan(largest, 0, label)
        XCTAssertLessThan(worst / max(largest, scale ?? 0), tolerance, "\(label): worst \(worst), largest \(largest)")
    }

    static func dot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }

    func linear(_ rng: inout Rng, _ inputs: Int, _ outputs: Int, bias: Bool = true) -> Linear {
        Linear(inFeatures: inputs, outFeatures: outputs, weight: rng.values(inputs * outputs, scale: 0.5), bias: bias ? rng.values(outputs, scale: 0.2) : nil,
               parts: [.init(key: "w\(inputs)x\(outputs)", biasKey: nil, rows: 0..<outputs)])
    }

    func conv(_ rng: inout Rng, _ inputs: Int, _ outputs: Int, kernel: Int) -> Conv2d {
        Conv2d(key: "c", biasKey: "cb", inChannels: inputs, outChannels: outputs, kernel: kernel, padding: .same(kernel / 2),
               weight: rng.values(outputs * inputs * kernel * kernel, scale: 0.4), bias: rng.values(outputs, scale: 0.2))
    }

    func norm(_ rng: inout Rng, _ channels: Int, groups: Int) -> GroupNorm {
        GroupNorm(channels: channels, groups: groups, epsilon: 1e-5, weight: rng.values(channels).map { 1 + 0.3 * $0 }, bias: rng.values(channels, scale: 0.2))
    }

    func testResBlockWithAndWithoutSkipConvolution() {
        for (inputs, outputs) in [(4, 6), (6, 6)] {
            var rng = Rng(state: UInt64(inputs * 10 + outputs))
            let block = ResBlock(norm1: norm(&rng, inputs, groups: 2), conv1: conv(&rng, inputs, outputs, kernel: 3), embedding: linear(&rng, 5, outputs),
                                 norm2: norm(&rng, outputs, groups: 3), conv2: conv(&rng, outputs, outputs, kernel: 3),
                                 skip: inputs == outputs ? nil : conv(&rng, inputs, outputs, kernel: 1))
            let shape = [2, inputs, 4, 3]
            let x = rng.values(shape.reduce(1, *)), e = rng.values(2 * 5), r = rng.values(2 * outputs * 12)
            let (y, saved) = block.forwardSaving(Tensor(shape: shape, values: x), activatedEmbedding: Tensor(shape: [2, 5], values: e))
            XCTAssertEqual(y, block.forward(Tensor(shape: shape, values: x), activatedEmbedding: Tensor(shape: [2, 5], values: e), adapters: .empty),
                           "the saving forward is the engine's forward")
            let (dx, de) = block.backward(saved, outputGradient: Tensor(shape: y.shape, values: r))
            func loss(_ x: [Float], _ e: [Float]) -> Double {
                Self.dot(r, block.forward(Tensor(shape: shape, values: x), activatedEmbedding: Tensor(shape: [2, 5], values: e), adapters: .empty).values)
            }
            checkSampled("ResBlock \(inputs)→\(outputs) dx", analytic: dx.values, at: x) { loss($0, e) }
            checkSampled("ResBlock \(inputs)→\(outputs) d emb", analytic: de.values, at: e, samples: 10) { loss(x, $0) }
        }
    }

    func testSpatialTransformerConvAndLinearProjections() {
        let c = 8, heads = 2, contextDim = 6, text = 3, shape = [2, c, 3, 4]
        for linearProjection in [false, true] {
            var rng = Rng(state: linearProjection ? 5 : 6)
            func layerNorm() -> LayerNorm { LayerNorm(width: c, weight: rng.values(c).map { 1 + 0.3 * $0 }, bias: rng.values(c, scale: 0.2)) }
            let block = SpatialTransformer.Block(
                norm1: layerNorm(), selfQKV: linear(&rng, c, 3 * c, bias: false), selfOut: linear(&rng, c, c), norm2: layerNorm(),
                crossQ: linear(&rng, c, c, bias: false), crossKV: linear(&rng, contextDim, 2 * c, bias: false), crossOut: linear(&rng, c, c),
                norm3: layerNorm(), feedForwardIn: linear(&rng, c, 8 * c), feedForwardOut: linear(&rng, 4 * c, c))
            let projection: (Int) -> SpatialTransformer.Projection = { _ in
                linearProjection ? .linear(self.linear(&rng, c, c)) : .conv(self.conv(&rng, c, c, kernel: 1))
            }
            let transformer = SpatialTransformer(channels: c, heads: heads, norm: norm(&rng, c, groups: 4), projectIn: projection(0),
                                                 blocks: [block, block], projectOut: projection(1))
            let x = rng.values(shape.reduce(1, *)), context = rng.values(2 * text * contextDim), r = rng.values(x.count)
            let contextTensor = Tensor(shape: [2, text, contextDim], values: context)
            let (y, saved) = transformer.forwardSaving(Tensor(shape: shape, values: x), context: contextTensor)
            XCTAssertEqual(y, transformer.forward(Tensor(shape: shape, values: x), context: contextTensor, adapters: .empty))
            let (dx, dContext) = transformer.backward(saved, outputGradient: Tensor(shape: shape, values: r))
            func loss(_ x: [Float], _ context: [Float]) -> Double {
                Self.dot(r, transformer.forward(Tensor(shape: shape, values: x), context: Tensor(shape: [2, text, contextDim], values: context),
                                                adapters: .empty).values)
            }
            let label = linearProjection ? "transformer (linear projections)" : "transformer (1×1 conv projections)"
            checkSampled(label + " dx", analytic: dx.values, at: x) { loss($0, context) }
            checkSampled(label + " d context", analytic: dContext.values, at: context) { loss(x, $0) }
        }
    }

    /// The whole SD1-architecture U-Net of the engine fixture (frozen): the
    /// saving forward equals the engine's, and d(latents), d(context) match
    /// central differences through skips, downsamplers and upsamplers.
    func testUNetLatentAndContextGradients() throws {
        let model = try StableDiffusionModel(checkpoint: try EngineGolden.fixture("sd1_engine.safetensors"), tokenizer: EngineGolden.tokenizer)
        let unet = model.unet
        var rng = Rng(state: 21)
        let shape = [2, 4, 8, 8], contextShape = [2, 5, unet.config.contextDim]
        let x = rng.values(shape.reduce(1, *)), context = rng.values(contextShape.reduce(1, *)), timesteps: [Float] = [500, 21]
        let (y, saved) = unet.forwardSaving(Tensor(shape: shape, values: x), timesteps: timesteps, context: Tensor(shape: contextShape, values: context))
        XCTAssertEqual(y, unet.forward(Tensor(shape: shape, values: x), timesteps: timesteps, context: Tensor(shape: contextShape, values: context)))
        let r = rng.values(y.count)
        let (dx, dContext) = unet.backward(saved, outputGradient: Tensor(shape: y.shape, values: r))
        func loss(_ x: [Float], _ context: [Float]) -> Double {
            Self.dot(r, unet.forward(Tensor(shape: shape, values: x), timesteps: timesteps, context: Tensor(shape: contextShape, values: context)).values)
        }
        // Each input's own h, between float32 rounding noise (∝ 1/h) and the five-point rule's truncation (∝ h⁴).
        // Latents, Intel AVX-512 host (2026-12-03): worst/largest 2.3e-3 at h 3e-3, 9.5e-4 at 5e-3, 1.2e-3 at 7e-3,
        // 2.2e-3 at 1e-2, 1.7e-2 at 2e-2 (1e-2 had passed on the AMD host, whose kernels sum in another order).
        checkSampled("U-Net d latents", analytic: dx.values, at: x, samples: 16, h: 5e-3) { loss($0, context) }
        // The context: no truncation seen; worst/largest 4.0e-3 at h 5e-3, 2.4e-3 at 1e-2, 1.0e-3 at 2e-2, 4.3e-4
        // at 4e-2 with the tiled attention (AMD host).
        checkSampled("U-Net d context", analytic: dContext.values, at: context, samples: 16, h: 2e-2) { loss(x, $0) }
    }

    /// Trained modules through the whole U-Net: the tape's forward equals the
    /// inference engine with the same factors as run-time adapters (the path
    /// tested equal to merged checkpoints), and every module's down and up
    /// gradients match five-point differences within 1% (float32 through the
    /// whole network: a wrong gradient is off by far more; each layer's own
    /// backward is held to 1e-4 in double in BackwardTests) — LoRA on a packed q/k/v part, on
    /// the cross-attention's text side, the feed-forward, a 1×1 projection,
    /// LoCon on a ResBlock's 3×3 conv and on its time-embedding projection.
    func testLoRAModulesThroughTheUNet() throws {
        let model = try StableDiffusionModel(checkpoint: try EngineGolden.fixture("sd1_engine.safetensors"), tokenizer: EngineGolden.tokenizer)
        let unet = model.unet
        let p = UNet.prefix, block = p + "input_blocks.1.1.transformer_blocks.0."
        let c = 32, context = unet.config.contextDim, embedding = unet.config.timeEmbedDim
        let specs: [(String, LoRAModule.Shape)] = [
            (block + "attn1.to_k.weight", .linear(in: c, out: c)),
            (block + "attn2.to_v.weight", .linear(in: context, out: c)),
            (block + "ff.net.2.weight", .linear(in: 4 * c, out: c)),
            (p + "input_blocks.1.1.proj_in.weight", .conv(in: c, out: c, kernel: 1, stride: 1, padding: 0)),
            (p + "input_blocks.1.0.in_layers.2.weight", .conv(in: c, out: c, kernel: 3, stride: 1, padding: 1)),
            (p + "output_blocks.3.0.emb_layers.1.weight", .linear(in: embedding, out: 64)),
        ]
        var rng = Rng(state: 31)
        var attachments: [String: [TrainingTape.Attachment]] = [:], adapters: [String: [AdapterSet.LowRank]] = [:]
        var modules: [LoRAModule] = []
        for (index, (key, shape)) in specs.enumerated() {
            let rank = 2 + index % 2
            let (fanIn, outputs): (Int, Int) = {
                switch shape {
                case let .linear(i, o): return (i, o)
                case let .conv(i, o, k, _, _): return (i * k * k, o)
                }
            }()
            let module = LoRAModule(name: "m\(index)", shape: shape, rank: rank, alpha: 1.5, down: rng.values(rank * fanIn, scale: 0.3),
                                    up: rng.values(outputs * rank, scale: 0.3))
            modules.append(module)
            attachments[key] = [TrainingTape.Attachment(module)]
            adapters[key] = [AdapterSet.LowRank(down: module.down.values, up: module.up.values, rank: rank, scale: module.scale, rows: nil)]
        }
        let tape = TrainingTape(modules: attachments)
        let shape = [1, 4, 8, 8], contextShape = [1, 4, context]
        let x = Tensor(shape: shape, values: rng.values(shape.reduce(1, *))), text = Tensor(shape: contextShape, values: rng.values(contextShape.reduce(1, *)))
        let (y, saved) = unet.forwardSaving(x, timesteps: [321], context: text, tape: tape)
        let inference = unet.forward(x, timesteps: [321], context: text, adapters: AdapterSet(lowRank: adapters))
        XCTAssertLessThan(Double(y.maxAbsDifference(inference)), 1e-4 * Double(inference.values.map(abs).max()!),
                          "trained modules in the tape = the same factors as inference adapters")
        let r = rng.values(y.count)
        _ = unet.backward(saved, outputGradient: Tensor(shape: y.shape, values: r), tape: tape)
        for (module, (key, _)) in zip(modules, specs) {
            for parameter in [module.down, module.up] {
                let analytic = parameter.gradient.values, point = parameter.values
                checkSampled("\(key.dropFirst(p.count)) \(parameter.key)", analytic: analytic, at: point, samples: 6, tolerance: 1e-2, scale: 0.2, h: 2e-2) { values in
                    parameter.values = values
                    defer { parameter.values = point }
                    tape.reset()
                    return Self.dot(r, unet.forwardSaving(x, timesteps: [321], context: text, tape: tape).0.values)
                }
            }
        }
    }

    /// Trained modules through the text encoder (kohya's text-encoder LoRA):
    /// the tape's forward equals inference with the same factors as adapters;
    /// gradients of modules on q, on out_proj and on the MLP match five-point
    /// differences, through clip skip (fewer layers) and the final LayerNorm.
    func testLoRAModulesThroughTheTextEncoder() throws {
        let model = try StableDiffusionModel(checkpoint: try EngineGolden.fixture("sd1_engine.safetensors"), tokenizer: EngineGolden.tokenizer)
        let encoder = model.text.encoders[0]
        let w = encoder.config.width, m = encoder.config.mlpWidth, layers = encoder.config.layers
        let p = encoder.prefix + "text_model.encoder.layers."
        let specs: [(String, Int, Int)] = [(p + "0.self_attn.q_proj.weight", w, w), (p + "0.self_attn.v_proj.weight", w, w),
                                           (p + "1.self_attn.out_proj.weight", w, w),
                                           (p + "\(layers - 2).mlp.fc1.weight", w, m), (p + "\(layers - 2).mlp.fc2.weight", m, w)]
        var rng = Rng(state: 41)
        var attachments: [String: [TrainingTape.Attachment]] = [:], adapters: [String: [AdapterSet.LowRank]] = [:]
        var modules: [LoRAModule] = []
        for (index, (key, inputs, outputs)) in specs.enumerated() {
            let module = LoRAModule(name: "te\(index)", shape: .linear(in: inputs, out: outputs), rank: 2, alpha: 1, down: rng.values(2 * inputs, scale: 0.3),
                                    up: rng.values(outputs * 2, scale: 0.3))
            modules.append(module)
            attachments[key] = [TrainingTape.Attachment(module)]
            adapters[key] = [AdapterSet.LowRank(down: module.down.values, up: module.up.values, rank: 2, scale: module.scale, rows: nil)]
        }
        let tape = TrainingTape(modules: attachments)
        let ids = [[49406, 320, 1929, 539, 49407, 49407], [49406, 1125, 49407, 49407, 49407, 49407]]
        let used = layers - 1 // clip skip 2
        let (y, saved) = encoder.forwardSaving(ids, layerCount: used, finalNorm: true, tape: tape)
        let inference = try encoder.encode(ids, layerCount: used, finalNorm: true, adapters: AdapterSet(lowRank: adapters)).hidden
        XCTAssertLessThan(Double(y.maxAbsDifference(inference)), 1e-4 * Double(inference.values.map(abs).max()!))
        let r = rng.values(y.count)
        encoder.backward(saved, outputGradient: Tensor(shape: y.shape, values: r), tape: tape)
        for (module, (key, _, _)) in zip(modules, specs) {
            for parameter in [module.down, module.up] {
                let point = parameter.values
                XCTAssertTrue(parameter.gradient.values.contains { $0 != 0 }, "\(key) \(parameter.key) has a gradient")
                checkSampled("\(key.dropFirst(p.count)) \(parameter.key)", analytic: parameter.gradient.values, at: point, samples: 6, tolerance: 1e-2,
                             scale: 0.2, h: 2e-2) { values in
                    parameter.values = values
                    defer { parameter.values = point }
                    tape.reset()
                    return Self.dot(r, encoder.forwardSaving(ids, layerCount: used, finalNorm: true, tape: tape).0.values)
                }
            }
        }
    }

    /// Gradient checkpointing recomputes each ResBlock and transformer in the
    /// backward: the same output, the same input gradients and module
    /// gradients as keeping every activation (bit for bit: the same
    /// arithmetic in the same order), and the tape holds no module inputs of
    /// checkpointed blocks after the pass.
    func testGradientCheckpointingGivesTheSameGradients() throws {
        let model = try StableDiffusionModel(checkpoint: try EngineGolden.fixture("sd1_engine.safetensors"), tokenizer: EngineGolden.tokenizer)
        let unet = model.unet
        let p = UNet.prefix, block = p + "input_blocks.1.1.transformer_blocks.0."
        var rng = Rng(state: 77)
        let keys: [(String, LoRAModule.Shape)] = [(block + "attn1.to_k.weight", .linear(in: 32, out: 32)),
                                                  (p + "output_blocks.3.1.transformer_blocks.0.ff.net.2.weight", .linear(in: 256, out: 64)),
                                                  (p + "input_blocks.1.0.in_layers.2.weight", .conv(in: 32, out: 32, kernel: 3, stride: 1, padding: 1))]
        func modules() -> ([LoRAModule], TrainingTape) {
            var r = Rng(state: 5)
            var attachments: [String: [TrainingTape.Attachment]] = [:], list: [LoRAModule] = []
            for (key, shape) in keys {
                let (fanIn, out): (Int, Int) = { switch shape { case let .linear(i, o): return (i, o); case let .conv(i, o, k, _, _): return (i * k * k, o) } }()
                let m = LoRAModule(name: key, shape: shape, rank: 2, alpha: 1, down: r.values(2 * fanIn, scale: 0.3), up: r.values(out * 2, scale: 0.3))
                list.append(m)
                attachments[key] = [TrainingTape.Attachment(m)]
            }
            let tape = TrainingTape(modules: attachments)
            // With kohya's dropouts too: a recomputed block must draw the forward's masks again.
            tape.dropout = LoRADropout(neuron: 0.1, rank: 0.25, module: nil, seed: 4)
            return (list, tape)
        }
        let shape = [1, 4, 8, 8], contextShape = [1, 4, unet.config.contextDim]
        let x = Tensor(shape: shape, values: rng.values(64 * 4)), text = Tensor(shape: contextShape, values: rng.values(contextShape.reduce(1, *)))
        let r = Tensor(shape: shape, values: rng.values(64 * 4))
        var results: [(Tensor, Tensor, Tensor, [[Float]])] = [], recomputed: [Int] = []
        // Nothing, every block (sd-scripts'), and the 8×8 level only (the 4×4 level keeps its activations).
        for policy in [CheckpointPolicy.none, .every, CheckpointPolicy(minimumPixels: 64)] {
            let (list, tape) = modules()
            let (y, saved) = unet.forwardSaving(x, timesteps: [421], context: text, tape: tape, checkpointing: policy)
            recomputed.append((saved.inputBlocks + saved.outputBlocks + [saved.middleBlock]).joined().filter {
                if case .checkpoint = $0 { return true } else { return false }
            }.count)
            let (dx, dc) = unet.backward(saved, outputGradient: r, tape: tape)
            results.append((y, dx, dc, list.flatMap { [$0.down.gradient.values, $0.up.gradient.values] }))
            if policy != .none {
                XCTAssertFalse(tape.recordedKeys.contains(keys[0].0), "a checkpointed block's module inputs are dropped after its backward")
            }
        }
        XCTAssertEqual(recomputed[0], 0)
        XCTAssertTrue(recomputed[2] > 0 && recomputed[2] < recomputed[1], "the policy chooses: \(recomputed)")
        for other in results.dropFirst() {
            XCTAssertEqual(results[0].0, other.0, "output")
            XCTAssertEqual(results[0].1, other.1, "latent gradient")
            XCTAssertEqual(results[0].2, other.2, "context gradient")
            XCTAssertEqual(results[0].3, other.3, "module gradients")
        }
        XCTAssertTrue(results[1].3.allSatisfy { $0.contains { $0 != 0 } })
    }

    /// kohya's module dropouts: the masks are the same for a module within a
    /// pass (so the backward and a checkpointed recompute see the forward's),
    /// rank dropout drops whole (item, rank) channels and rescales by 1/(1 − p),
    /// neuron dropout single values; the gradients through the masks match
    /// five-point differences; a skipped module gives nothing and gets nothing.
    func testLoRADropoutMasksAndGradients() {
        var rng = Rng(state: 13)
        let module = LoRAModule(name: "m", shape: .linear(in: 8, out: 6), rank: 4, alpha: 2, down: rng.values(32, scale: 0.4), up: rng.values(24, scale: 0.4))
        let dropout = LoRADropout(neuron: 0.2, rank: 0.5, module: nil, seed: 9)
        dropout.pass = 3
        let x = Tensor(shape: [2, 5, 8], values: rng.values(80)), r = rng.values(60)
        let (y, saved) = module.forward(x, dropout: dropout)
        XCTAssertEqual(module.forward(x, dropout: dropout).output, y, "same pass, same masks")
        let mask = try! XCTUnwrap(saved.mask)
        XCTAssertEqual(saved.outputFactor, 2, "rank dropout's 1/(1 − p)")
        XCTAssertTrue(mask.contains(0) && mask.contains { $0 > 1 }, "some values dropped, the rest scaled by 1/(1 − p)")
        dropout.pass = 4
        XCTAssertNotEqual(module.forward(x, dropout: dropout).output, y, "another pass, other masks")
        dropout.pass = 3
        _ = module.backward(saved, outputGradient: Tensor(shape: y.shape, values: r))
        for parameter in [module.down, module.up] {
            let point = parameter.values
            checkSampled("dropout \(parameter.key)", analytic: parameter.gradient.values, at: point, samples: 10, tolerance: 1e-3) { values in
                parameter.values = values
                defer { parameter.values = point }
                return Self.dot(r, module.forward(x, dropout: dropout).output.values)
            }
        }
        // Rank dropout alone: a dropped (item, rank) channel is dropped for every token.
        let rankOnly = LoRADropout(neuron: nil, rank: 0.5, module: nil, seed: 1)
        let rankMask = try! XCTUnwrap(module.forward(x, dropout: rankOnly).saved.mask)
        for item in 0..<2 {
            for k in 0..<4 {
                let column = (0..<5).map { rankMask[item * 20 + $0 * 4 + k] }
                XCTAssertEqual(Set(column).count, 1, "item \(item) rank \(k): \(column)")
            }
        }
        // Module dropout that always fires: no output, no gradient.
        let skip = LoRADropout(neuron: nil, rank: nil, module: 0.999_999, seed: 2)
        let skipped = module.forward(x, dropout: skip)
        XCTAssertTrue(skipped.saved.skipped)
        XCTAssertTrue(skipped.output.values.allSatisfy { $0 == 0 })
        module.down.gradient.zero()
        XCTAssertTrue(module.backward(skipped.saved, outputGradient: Tensor(shape: y.shape, values: r)).values.allSatisfy { $0 == 0 })
        XCTAssertTrue(module.down.gradient.values.allSatisfy { $0 == 0 })
    }
}
