import Diffusion
import Foundation
import LoRACore
import Training
import XCTest

/// kohya's initialisation; AdamW, the learning-rate schedules and gradient
/// clipping against values torch and diffusers computed
/// (Fixtures/golden/make_training_golden.py). The LoRA module's backward is
/// checked with the other layers' (DiffusionTests/BackwardTests).
final class TrainingTests: XCTestCase {
    nonisolated(unsafe) static let golden: [String: Any] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let data = try! Data(contentsOf: root.appendingPathComponent("Fixtures/golden/training/optimizer.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    func testKohyaInitialisationBoundsAndZeroUp() {
        var draws: [Float] = [0, 1, 0.5, 0.25]
        var index = 0
        let module = LoRAModule.kohyaInitialized(name: "m", shape: .linear(in: 16, out: 8), rank: 2, alpha: 1) {
            defer { index += 1 }
            return draws[index % draws.count]
        }
        draws = []
        XCTAssertEqual(Array(module.down.values.prefix(4)), [-0.25, 0.25, 0, -0.125], "U(−1/√16, 1/√16)")
        XCTAssertTrue(module.up.values.allSatisfy { $0 == 0 }, "up starts at zero: training starts at the base model")
        XCTAssertEqual(module.scale, 0.5)
    }

    func testAdamWFollowsTorch() throws {
        let adamw = try XCTUnwrap(Self.golden["adamw"] as? [String: Any])
        let initial = try XCTUnwrap(adamw["initial"] as? [[Double]]), rates = try XCTUnwrap(adamw["learning_rates"] as? [Double])
        let expected = try XCTUnwrap(adamw["after_each_step"] as? [[[Double]]])
        let parameters = [Parameter(key: "a", shape: [3, 4], values: initial[0].map(Float.init)),
                          Parameter(key: "b", shape: [5], values: initial[1].map(Float.init))]
        var optimizer = AdamW(weightDecay: try XCTUnwrap(adamw["weight_decay"] as? Double))
        for step in 0..<expected.count {
            for p in parameters {
                for i in 0..<p.count {
                    // The golden script's gradient formula.
                    p.gradient.values[i] = Float(sin(0.37 * Double(step + 1) + 1.3 * Double(i)) * (1.0 + 0.1 * Double(i)) / Double(1 + step % 3))
                }
            }
            optimizer.update([ParameterGroup(name: "a", parameters: [parameters[0]], learningRate: rates[0]),
                              ParameterGroup(name: "b", parameters: [parameters[1]], learningRate: rates[1])])
            for (p, values) in zip(parameters, expected[step]) {
                for (a, b) in zip(p.values, values) { XCTAssertEqual(Double(a), b, accuracy: 1e-6, "step \(step + 1), \(p.key)") }
            }
        }
        XCTAssertEqual(optimizer.step, 10)
    }

    func testSchedulesFollowDiffusers() throws {
        let schedules = try XCTUnwrap(Self.golden["schedules"] as? [String: [String: Any]])
        XCTAssertEqual(Set(schedules.keys), Set(LearningRateSchedule.Kind.allCases.map(\.rawValue)))
        for (name, entry) in schedules {
            let kind = try XCTUnwrap(LearningRateSchedule.Kind(rawValue: name))
            var schedule = LearningRateSchedule(kind: kind, totalSteps: try XCTUnwrap(entry["total"] as? Int), warmupSteps: try XCTUnwrap(entry["warmup"] as? Int))
            let base = try XCTUnwrap(entry["base"] as? Double)
            if let cycles = entry["num_cycles"] as? Int { schedule.cycles = cycles }
            if let power = entry["power"] as? Double { schedule.power = power }
            schedule.polynomialInitial = base
            let rates = try XCTUnwrap(entry["rates"] as? [Double])
            for (k, rate) in rates.enumerated() {
                XCTAssertEqual(base * schedule.factor(at: k), rate, accuracy: 1e-12, "\(name) step \(k)")
            }
        }
    }

    func testGradientClippingAsTorch() {
        let a = Parameter(key: "a", shape: [2], values: [0, 0]), b = Parameter(key: "b", shape: [1], values: [0])
        a.gradient.values = [3, 0]
        b.gradient.values = [4]
        XCTAssertEqual(clipGradientNorm([a, b], maximum: 1), 5)
        XCTAssertEqual(Double(a.gradient.values[0]), 3 / (5 + 1e-6), accuracy: 1e-7)
        XCTAssertEqual(Double(b.gradient.values[0]), 4 / (5 + 1e-6), accuracy: 1e-7)
        XCTAssertEqual(clipGradientNorm([a, b], maximum: 2), 1, accuracy: 1e-5)
        XCTAssertEqual(Double(a.gradient.values[0]), 3 / (5 + 1e-6), accuracy: 1e-7, "below the maximum: unchanged")
    }

    /// Per-item loss weights against sd-scripts' own functions
    /// (custom_train_functions.py, golden from make_training_golden.py with SD_SCRIPTS).
    func testLossWeightsFollowSDScripts() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("Fixtures/golden/training/loss_weights.json"))
        let golden = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let timesteps = try XCTUnwrap(golden["timesteps"] as? [Int]), cases = try XCTUnwrap(golden["cases"] as? [String: [Double]])
        XCTAssertEqual(cases.count, 6)
        for (name, expected) in cases {
            var objective = DiffusionObjective(prediction: name.hasSuffix("v1") ? .velocity : .epsilon)
            if name.hasPrefix("min_snr") || name.hasPrefix("combined") { objective.minSNRGamma = 5 }
            if name.hasPrefix("debiased") || name.hasPrefix("combined") { objective.debiasedEstimation = true }
            if name == "combined_v1" {
                objective.scaleVPredictionLoss = true
                objective.vPredictionLikeLoss = 0.1
            }
            // ᾱ: ours is LDM's (double cumulative product), diffusers' a float32 one; 1e-4 covers the difference at t = 999.
            for (t, (weight, reference)) in zip(timesteps, zip(objective.itemWeights(timesteps: timesteps), expected)) {
                XCTAssertEqual(Double(weight), reference, accuracy: 1e-4 * abs(reference), "\(name) at t = \(t)")
            }
        }
    }
}


final class TextEncoderBlockTests: XCTestCase {
    /// Which text-encoder block a target is in (clip skip leaves the last ones out of the optimizer).
    func testTextEncoderBlocksOfKohyaTargets() {
        for config in [ArchitectureConfig.real(.sd1), .real(.sd2)] {
            let targets = ModelLayout(config).targets.filter { $0.component == .textEncoder1 && $0.set == .attention }
            let blocks = targets.compactMap(LoRANetwork.textEncoderBlock(of:))
            XCTAssertEqual(blocks.count, targets.count, "\(config.family)")
            XCTAssertEqual(Set(blocks), Set(0..<config.textEncoders[0].loraLayers), "\(config.family): kohya's SD2 encoder has 23 blocks")
        }
        XCTAssertNil(ModelLayout(.real(.sd1)).targets.first { $0.component == .unet }.flatMap(LoRANetwork.textEncoderBlock(of:)))
    }
}
