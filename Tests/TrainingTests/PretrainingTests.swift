import Diffusion
import FixtureKit
import Foundation
import LoRACore
@testable import Training
import XCTest

/// Training a model's own weights from scratch (Sources/Training/Pretraining):
/// the initialisation, the autoencoder's objective and its gradients, and the
/// latent-scale fold. (The layers' weight gradients themselves are checked in
/// DiffusionTests/WeightGradientTests.)
final class PretrainingTests: XCTestCase {
    static let config = ArchitectureConfig.engineTiny(.sd1)

    func testInitialisationFollowsTorchAndLDM() {
        let parameters = ModelParameters(config: Self.config, prefixes: [UNet.prefix, ModelLayout.vaePrefix], seed: 3)
        let p = UNet.prefix
        for key in [p + "input_blocks.1.0.out_layers.3.weight", p + "input_blocks.1.1.proj_out.weight", p + "out.2.weight", p + "out.2.bias"] {
            XCTAssertEqual(parameters[key]!.values.map(abs).max(), 0, "\(key) starts at zero (LDM's zero_module)")
        }
        XCTAssertEqual(Set(parameters[p + "input_blocks.1.0.in_layers.0.weight"]!.values), [1])
        XCTAssertEqual(Set(parameters[p + "input_blocks.1.0.in_layers.0.bias"]!.values), [0])
        let conv = parameters[p + "input_blocks.1.0.in_layers.2.weight"]!   // [64? out, in, 3, 3]
        let bound = 1 / Float(conv.shape.dropFirst().reduce(1, *)).squareRoot()
        XCTAssertLessThanOrEqual(conv.values.map(abs).max()!, bound)
        XCTAssertGreaterThan(conv.values.map(abs).max()!, 0.9 * bound, "uniform over the whole ±1/√fan_in range")
        let logVariance = parameters[ModelLayout.vaePrefix + "quant_conv.bias"]!.values
        XCTAssertEqual(Array(logVariance.suffix(4)), [-6, -6, -6, -6])
        XCTAssertEqual(ModelParameters(config: Self.config, prefixes: [UNet.prefix], seed: 3)[conv.key]!.values, conv.values, "seeded")
    }

    /// The whole objective (reparameterised sample, reconstruction, KL) against
    /// five-point differences along random unit directions of a few tensors,
    /// the noise held fixed — including quant_conv's bias, whose log-variance
    /// half only reaches the loss through σ·ε and the KL.
    func testAutoencoderObjectiveGradients() throws {
        let parameters = ModelParameters(config: Self.config, prefixes: [ModelLayout.vaePrefix], seed: 4)
        var random = TrainingRandom(seed: 9)
        let images = Tensor(shape: [2, 3, 16, 16], values: random.normal(2 * 3 * 256).map { max(-1, min(1, 0.6 * $0)) })
        let noise = Tensor(shape: [2, 4, 2, 2], values: random.normal(2 * 4 * 4))
        // A larger KL weight than training's, so that its gradient is not lost in the reconstruction's.
        let objective = AutoencoderTraining(klWeight: 0.5)
        func loss() throws -> Double {
            let w = try parameters.weights()
            return objective.step(encoder: try VAEEncoder(w, config: Self.config), decoder: try VAEDecoder(w, config: Self.config),
                                  tape: TrainingTape(), images: images, noise: noise).loss
        }
        let tape = parameters.tape()
        let w = try parameters.weights()
        _ = objective.step(encoder: try VAEEncoder(w, config: Self.config), decoder: try VAEDecoder(w, config: Self.config), tape: tape,
                           images: images, noise: noise)
        let v = ModelLayout.vaePrefix
        for key in [v + "quant_conv.bias", v + "quant_conv.weight", v + "encoder.conv_in.weight", v + "decoder.conv_out.weight",
                    v + "post_quant_conv.weight", v + "encoder.mid.attn_1.k.weight"] {
            let p = parameters[key]!
            let original = p.values
            var direction = random.normal(p.count)
            let norm = Float(direction.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot())
            direction = direction.map { $0 / norm }
            let analytic = zip(p.gradient.values, direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            func at(_ e: Float) throws -> Double {
                p.values = zip(original, direction).map { $0 + e * $1 }
                defer { p.values = original }
                return try loss()
            }
            let h: Float = 1e-2
            let numeric = (try at(-2 * h) - 8 * at(-h) + 8 * at(h) - at(2 * h)) / Double(12 * h)
            XCTAssertEqual(analytic, numeric, accuracy: 0.05 * abs(numeric) + 1e-4, key)
        }
    }

    /// Folding the latent scale into quant_conv and post_quant_conv leaves
    /// every decoded picture as it was and gives the scaled latents unit spread.
    func testLatentScaleFoldKeepsTheDecoderAndNormalisesTheLatents() throws {
        var recipe = TinyModelTrainer.Recipe()
        recipe.imageSize = 32
        recipe.batch = 4
        let trainer = TinyModelTrainer(config: Self.config, recipe: recipe)
        var stream = ShapeScene.Stream(seed: 11)
        let images = trainer.images((0..<4).map { _ in stream.next() })
        func decoded() throws -> (Tensor, Tensor) {
            let w = try trainer.parameters.weights()
            let mean = try VAEEncoder(w, config: Self.config).moments(images).mean
            return (mean, try VAEDecoder(w, config: Self.config).forwardSaving(mean, tape: nil).0)
        }
        let (before, pictureBefore) = try decoded()
        let c = try trainer.normaliseLatentScale(samples: 16)
        let (after, pictureAfter) = try decoded()
        XCTAssertNotEqual(c, 1)
        for (a, b) in zip(before.values, after.values) { XCTAssertEqual(b, c * a, accuracy: 1e-4 * max(1, abs(c * a))) }
        XCTAssertLessThan(zip(pictureBefore.values, pictureAfter.values).map { abs($0 - $1) }.max()!, 1e-4)
        // The spread over the fold's own sample (seed + 99), scaled as the engine scales.
        var sample = ShapeScene.Stream(seed: recipe.seed &+ 99)
        let encoder = try VAEEncoder(try trainer.parameters.weights(), config: Self.config)
        var values: [Double] = []
        for _ in 0..<4 {
            values += encoder.moments(trainer.images((0..<4).map { _ in sample.next() })).mean.values.map { Double($0 * Self.config.vaeScaleFactor) }
        }
        let mean = values.reduce(0, +) / Double(values.count)
        let spread = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
        XCTAssertEqual(spread, 1, accuracy: 1e-3)
    }

    /// The average's first updates follow the warm-up decay (1 + n)/(10 + n) exactly, then it tracks
    /// weights that stop moving, and copying it in replaces the weights.
    func testExponentialMovingAverage() {
        let p = Parameter(key: "w", shape: [2], values: [0, 10])
        var average = ExponentialMovingAverage([p], decay: 0.9)
        p.values = [1, 20]
        average.update([p])   // d = 2/11
        let first: Float = 9 / 11
        XCTAssertEqual(average.averages[0][0], first, accuracy: 1e-6)
        XCTAssertEqual(average.averages[0][1], 10 + 10 * first, accuracy: 1e-5)
        p.values = [3, 20]
        average.update([p])   // d = 3/12
        let second: Float = first + 0.75 * (3 - first)
        XCTAssertEqual(average.averages[0][0], second, accuracy: 1e-6)
        for _ in 0..<300 { average.update([p]) }   // d = 0.9 from the 80th update on
        XCTAssertEqual(average.averages[0][0], 3, accuracy: 1e-4)
        p.values = [0, 0]
        average.copy(into: [p])
        XCTAssertEqual(p.values[0], 3, accuracy: 1e-4)
        XCTAssertEqual(p.values[1], 20, accuracy: 1e-4)
    }
}

/// A step's batch split into shards (one per core, `BatchShards`) leaves the gradient of the whole
/// batch's mean loss in the parameters' buffers: each shard's own gradient weighted by its share of the
/// items, computed as that shard alone computes it (no shard disturbs another), and nothing left behind
/// for the next step.
final class BatchShardsTests: XCTestCase {
    func testShardedUNetStepIsTheItemWeightedSumOfItsShards() throws {
        let config = ArchitectureConfig.engineTiny(.sd1)
        let parameters = ModelParameters(config: config, prefixes: [UNet.prefix], seed: 5)
        // Non-zero everywhere, so that the zero-initialised output layers pass gradients through.
        var random = TrainingRandom(seed: 6)
        for p in parameters.parameters where p.values.allSatisfy({ $0 == 0 }) { p.values = random.normal(p.count).map { 0.05 * $0 } }
        let unet = try UNet(try parameters.weights(), config: config)
        let batch = 3   // shards of 1 and 2 items: weights 1/3 and 2/3
        let latents = Tensor(shape: [batch, 4, 8, 8], values: random.normal(batch * 256))
        let noise = Tensor(shape: latents.shape, values: random.normal(latents.count))
        let context = Tensor(shape: [batch, 77, config.contextDim], values: random.normal(batch * 77 * config.contextDim))
        let timesteps = [999, 400, 20]
        var objective = DiffusionObjective()
        objective.minSNRGamma = 5
        func step(_ items: Range<Int>, _ tape: TrainingTape) -> [Double] {
            [unetTrainingStep(unet, tape: tape, objective: objective, latents: latents.items(items), noise: noise.items(items),
                              timesteps: Array(timesteps[items]), context: context.items(items)).loss]
        }
        func gradients() -> [[Float]] {
            defer { parameters.zeroGradients() }
            return parameters.parameters.map(\.gradient.values)
        }
        let whole = step(0..<batch, parameters.tape())[0]
        parameters.zeroGradients()
        // Each shard alone, one after the other, as a shard runs (serially, single-threaded GEMMs).
        let first = Parallel.serially { step(0..<1, parameters.tape())[0] }
        let a = gradients()
        let second = Parallel.serially { step(1..<3, parameters.tape())[0] }
        let b = gradients()
        let w0 = Float(1) / 3, w1 = Float(2) / 3
        let expected = zip(a, b).map { zip($0, $1).map { x, y in w0 * x + w1 * y } }
        XCTAssertGreaterThan(expected.joined().map(abs).max()!, 0)

        let shards = BatchShards(parameters.parameters, count: 2)
        XCTAssertEqual(shards.ranges(batch: batch), [0..<1, 1..<3])
        for attempt in 0..<2 {
            let loss = shards.run(batch: batch, step)[0]
            XCTAssertEqual(loss, Double(w0) * first + Double(w1) * second, accuracy: 1e-12, "attempt \(attempt)")
            XCTAssertEqual(loss, whole, accuracy: 1e-6 * whole, "the whole batch's mean loss")
            // Bit for bit: the same kernels on the same items, whichever thread ran them. (Against one pass over
            // the whole batch only up to rounding, and this randomly initialised U-Net amplifies rounding: scaling
            // its latents by 1 + 1e-6 moves its gradients by 0.4%.)
            XCTAssertTrue(gradients() == expected, "attempt \(attempt): the shards' gradients, weighted by their items")
        }
    }
}
