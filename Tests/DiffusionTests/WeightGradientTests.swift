@testable import Diffusion
import Foundation
import LoRACore
import XCTest

/// Full weight gradients (the tiny model trained from scratch): with every
/// key of a network on the tape's `parameterGradients`, each sampled tensor's
/// gradient, dotted with a random direction in that tensor, matches the
/// five-point difference of the loss along that direction — the U-Net (time
/// embedding, convs, norms, packed q/k/v parts, cross-attention, feed-forward,
/// resamplers) and both halves of the autoencoder (its attention included).
/// The forward is rebuilt from the perturbed values for each evaluation, so
/// the reference is the engine's own inference forward. Float32 through a
/// whole random network leaves a few percent of noise in the differences
/// (GroupNorm over few values is steep), so the bar is 10%: what this test
/// catches is wiring — a gradient not formed, formed twice, or taken at the
/// wrong activation is off by far more; each layer's own backward is held to
/// 1e-4 in double in BackwardTests.
final class WeightGradientTests: XCTestCase {
    typealias Rng = LayerTests.Rng

    /// The tensors of `prefix` in the engine fixture, as float32.
    func tensors(_ file: ModelFile, prefix: String) -> [String: (shape: [Int], values: [Float])] {
        var out: [String: (shape: [Int], values: [Float])] = [:]
        for t in file.tensors where t.name.hasPrefix(prefix) && t.dtype.isFloatingPoint {
            out[t.name] = (t.shape, t.floats())
        }
        return out
    }

    func weights(_ values: [String: (shape: [Int], values: [Float])]) throws -> Weights {
        Weights(try ModelFile.inMemory(values.sorted { $0.key < $1.key }.map { ($0.key, $0.value.shape, $0.value.values) }))
    }

    /// Every `stride`-th key plus those containing one of `required`: each kind of layer is checked.
    func sample(_ keys: [String], stride: Int, required: [String]) -> [String] {
        let sorted = keys.sorted()
        var chosen = Set(sorted.enumerated().filter { $0.offset % stride == 0 }.map(\.element))
        for pattern in required {
            guard let key = sorted.first(where: { $0.contains(pattern) }) else { XCTFail("no key contains \(pattern)"); continue }
            chosen.insert(key)
        }
        return chosen.sorted()
    }

    func checkDirections(_ label: String, parameters: [String: (shape: [Int], values: [Float])], keys: [String],
                         gradients: [String: Gradient], h: Float = 1e-2, tolerance: Double = 0.1,
                         loss: ([String: (shape: [Int], values: [Float])]) throws -> Double) throws {
        var rng = Rng(state: 7)
        var worst = (0.0, "")
        var scale = 0.0
        var results: [(String, Double, Double)] = []
        for key in keys {
            let (shape, values) = parameters[key]!
            // A unit direction: a step of h moves the tensor by h in L2, like one coordinate of the block tests.
            var direction = rng.values(values.count)
            let norm = Float(direction.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot())
            direction = direction.map { $0 / norm }
            let analytic = zip(gradients[key]!.values, direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            func at(_ e: Float) throws -> Double {
                var moved = parameters
                moved[key] = (shape, zip(values, direction).map { $0 + e * $1 })
                return try loss(moved)
            }
            let numeric = (try at(-2 * h) - 8 * at(-h) + 8 * at(h) - at(2 * h)) / Double(12 * h)
            results.append((key, analytic, numeric))
            scale = max(scale, abs(numeric))
        }
        for (key, analytic, numeric) in results {
            // Judged against the tensor's own derivative, or 1% of the largest one (float32 noise on a near-zero one).
            let error = abs(analytic - numeric) / max(abs(numeric), 1e-2 * scale)
            if error > worst.0 { worst = (error, key) }
            XCTAssertLessThan(error, tolerance, "\(label) \(key): analytic \(analytic), numeric \(numeric)")
        }
        XCTAssertGreaterThan(scale, 0, label)
        print("\(label): \(keys.count) tensors, worst relative error \(worst.0) (\(worst.1))")
    }

    func testUNetWeightGradients() throws {
        let file = try ModelFile.open(try EngineGolden.fixture("sd1_engine.safetensors"))
        let config = try StableDiffusionModel(checkpoint: file.path, tokenizer: EngineGolden.tokenizer).config
        let parameters = tensors(file, prefix: UNet.prefix)
        var rng = Rng(state: 31)
        // 16×16 latents: the deepest level is 2×2, so each of its GroupNorm groups (2 channels) has 8 values. At 8×8 it
        // would have 2, and normalising two values is nearly their sign: the loss jumps where they cross, and no
        // finite difference of the weights before it holds (measured: 0.08 jumps between steps of 2e-3).
        let shape = [1, 4, 16, 16], contextShape = [1, 5, config.contextDim], timesteps: [Float] = [500]
        let x = Tensor(shape: shape, values: rng.values(shape.reduce(1, *)))
        let context = Tensor(shape: contextShape, values: rng.values(contextShape.reduce(1, *)))
        let r = rng.values(shape.reduce(1, *))
        let gradients = parameters.mapValues { Gradient(count: $0.values.count) }
        let tape = TrainingTape(parameterGradients: gradients)
        let unet = try UNet(try weights(parameters), config: config)
        let (y, saved) = unet.forwardSaving(x, timesteps: timesteps, context: context, tape: tape)
        _ = unet.backward(saved, outputGradient: Tensor(shape: y.shape, values: r), tape: tape)
        let keys = sample(Array(parameters.keys), stride: 40, required: [
            "time_embed.0.weight", "time_embed.2.bias", "input_blocks.0.0.bias", "emb_layers.1.weight", "in_layers.0.weight", "out_layers.3.weight",
            "skip_connection.weight", "op.weight", "conv.weight", "attn1.to_q.weight", "attn1.to_k.weight", "attn1.to_v.weight", "attn1.to_out.0.bias",
            "attn2.to_k.weight", "attn2.to_v.weight", "norm1.bias", "norm3.weight", "ff.net.0.proj.weight", "ff.net.2.weight", "proj_in.weight",
            "proj_out.bias", "1.norm.weight", "out.0.weight", "out.2.weight"])
        try checkDirections("U-Net", parameters: parameters, keys: keys, gradients: gradients) { moved in
            let unet = try UNet(try weights(moved), config: config)
            return BlockBackwardTests.dot(r, unet.forward(x, timesteps: timesteps, context: context).values)
        }
    }

    /// The engine's VAE blocks normalise in place and run the shortcut first (to hold fewer full-size tensors); the
    /// training forward keeps every intermediate in the plain order. Both must give the same bits, with and without a
    /// shortcut, whether the input is passed on (`consume`, written over) or still held by the caller (copied first).
    func testVAEBlocksWriteOverTheirInputAndKeepTheirValues() throws {
        let file = try ModelFile.open(try EngineGolden.fixture("sd1_engine.safetensors"))
        let config = try StableDiffusionModel(checkpoint: file.path, tokenizer: EngineGolden.tokenizer).config
        let decoder = try VAEDecoder(try weights(tensors(file, prefix: VAEDecoder.prefix)), config: config)
        let blocks = decoder.levels.flatMap(\.0) + [decoder.middle.0]
        XCTAssertTrue(blocks.contains { $0.shortcut != nil } && blocks.contains { $0.shortcut == nil })
        var rng = Rng(state: 43)
        for (index, block) in blocks.enumerated() {
            let x = Tensor(shape: [2, block.norm1.channels, 6, 5], values: rng.values(2 * block.norm1.channels * 30))
            let original = x.values.map(\.bitPattern), expected = block.forwardSaving(x, tape: nil).0.values.map(\.bitPattern)
            XCTAssertEqual(block.forward(x).values.map(\.bitPattern), expected, "block \(index), input kept")
            XCTAssertEqual(x.values.map(\.bitPattern), original, "block \(index): the caller's input is untouched")
            var passed = Tensor(shape: x.shape, values: x.values.map { $0 })      // its own storage, as the decoder's h
            let result = block.forward(consume passed)       // not inside XCTAssert's autoclosure, which would capture it
            XCTAssertEqual(result.values.map(\.bitPattern), expected, "block \(index), input passed on")
        }
    }

    func testAutoencoderWeightGradients() throws {
        let file = try ModelFile.open(try EngineGolden.fixture("sd1_engine.safetensors"))
        let config = try StableDiffusionModel(checkpoint: file.path, tokenizer: EngineGolden.tokenizer).config
        let parameters = tensors(file, prefix: VAEDecoder.prefix)
        var rng = Rng(state: 41)
        let image = Tensor(shape: [2, 3, 32, 32], values: rng.values(2 * 3 * 32 * 32))
        let z = Tensor(shape: [2, 4, 4, 4], values: rng.values(2 * 4 * 16))
        let rImage = rng.values(image.count), rMoments = rng.values(2 * 8 * 16)
        let gradients = parameters.mapValues { Gradient(count: $0.values.count) }
        let tape = TrainingTape(parameterGradients: gradients)
        let decoder = try VAEDecoder(try weights(parameters), config: config), encoder = try VAEEncoder(try weights(parameters), config: config)
        // The saving forwards are the engine's forwards (decode scales z; moments splits the channels).
        let (decoded, decoderSaved) = decoder.forwardSaving(z, tape: tape)
        var scaled = z
        for i in scaled.values.indices { scaled.values[i] *= config.vaeScaleFactor }
        XCTAssertLessThan(zip(decoded.values, decoder.decode(scaled).values).map { abs($0 - $1) }.max()!, 1e-4)
        let (moments, encoderSaved) = encoder.forwardSaving(image, tape: tape)
        XCTAssertLessThan(zip(moments.values.prefix(4 * 16), encoder.moments(image).mean.values.prefix(4 * 16)).map { abs($0 - $1) }.max()!, 1e-4)
        let dz = decoder.backward(decoderSaved, outputGradient: Tensor(shape: decoded.shape, values: rImage), tape: tape)
        _ = encoder.backward(encoderSaved, outputGradient: Tensor(shape: moments.shape, values: rMoments), tape: tape)
        func loss(_ moved: [String: (shape: [Int], values: [Float])]) throws -> Double {
            let w = try weights(moved)
            let decoder = try VAEDecoder(w, config: config), encoder = try VAEEncoder(w, config: config)
            return BlockBackwardTests.dot(rImage, decoder.forwardSaving(z, tape: nil).0.values)
                + BlockBackwardTests.dot(rMoments, encoder.forwardSaving(image, tape: nil).0.values)
        }
        let keys = sample(Array(parameters.keys), stride: 17, required: [
            "post_quant_conv.weight", "quant_conv.bias", "decoder.conv_in.weight", "encoder.conv_in.weight", "mid.attn_1.q.weight",
            "mid.attn_1.k.weight", "mid.attn_1.v.bias", "mid.attn_1.proj_out.weight", "mid.attn_1.norm.weight", "nin_shortcut.weight",
            "downsample.conv.weight", "upsample.conv.bias", "norm_out.weight", "decoder.conv_out.weight", "encoder.conv_out.bias", "norm1.bias"])
        try checkDirections("autoencoder", parameters: parameters, keys: keys, gradients: gradients, loss: loss)
        // d z through the decoder: one direction.
        let direction = rng.values(z.count)
        let analytic = zip(dz.values, direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        func at(_ e: Float) -> Double {
            BlockBackwardTests.dot(rImage, decoder.forwardSaving(Tensor(shape: z.shape, values: zip(z.values, direction).map { $0 + e * $1 }), tape: nil).0.values)
        }
        let numeric = (at(-2e-2) - 8 * at(-1e-2) + 8 * at(1e-2) - at(2e-2)) / 0.12
        XCTAssertEqual(analytic, numeric, accuracy: 1e-2 * abs(numeric))
    }
}
