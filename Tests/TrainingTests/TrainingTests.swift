import Diffusion
import Foundation
import Imaging
import LoRACore
@testable import Training
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

    /// sd-scripts' LoRA-FA: lora_down drawn from N(0, 2/(in + rank)) with `in` the input features or channels (a 3×3
    /// kernel's 9 taps not counted) and frozen, lora_up zero; a frozen lora_down gets no gradient, while dx and lora_up's
    /// gradient are those of the same module trained whole.
    func testLoRAFAInitialisationAndFrozenDown() {
        for (shape, inputs) in [(LoRAModule.Shape.linear(in: 16, out: 8), 16), (.conv(in: 6, out: 4, kernel: 3, stride: 1, padding: 1), 6)] {
            let module = LoRAModule.loraFAInitialized(name: "m", shape: shape, rank: 2, alpha: 1) { [Float](repeating: 1, count: $0) }
            XCTAssertEqual(module.down.values, [Float](repeating: (2 / Float(inputs + 2)).squareRoot(), count: 2 * shape.columns), "std √(2/(in + rank))")
            XCTAssertTrue(module.up.values.allSatisfy { $0 == 0 })
            XCTAssertTrue(module.down.isFrozen && !module.up.isFrozen)
        }
        var seed = 0.0
        func values(_ n: Int) -> [Float] {
            seed += 1
            return (0..<n).map { Float(sin(1.7 * Double($0) + seed)) }
        }
        let shape = LoRAModule.Shape.conv(in: 3, out: 4, kernel: 3, stride: 1, padding: 1)
        let (down, up) = (values(2 * 27), values(8))
        let frozen = LoRAModule(name: "f", shape: shape, rank: 2, alpha: 1, down: down, up: up)
        frozen.down.isFrozen = true
        let whole = LoRAModule(name: "w", shape: shape, rank: 2, alpha: 1, down: down, up: up)
        let x = Tensor(shape: [1, 3, 5, 5], values: values(75)), dy = Tensor(shape: [1, 4, 5, 5], values: values(100))
        let dxFrozen = frozen.backward(frozen.forward(x).saved, outputGradient: dy)
        let dxWhole = whole.backward(whole.forward(x).saved, outputGradient: dy)
        XCTAssertEqual(dxFrozen, dxWhole)
        XCTAssertEqual(frozen.up.gradient.values, whole.up.gradient.values)
        XCTAssertTrue(frozen.down.gradient.values.allSatisfy { $0 == 0 })
        XCTAssertTrue(whole.down.gradient.values.contains { $0 != 0 })
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
        let transformers = ["inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay"]   // testTransformersSchedules
        XCTAssertEqual(Set(schedules.keys).union(transformers), Set(LearningRateSchedule.Kind.allCases.map(\.rawValue)))
        for (name, entry) in schedules {
            let kind = try XCTUnwrap(LearningRateSchedule.Kind(rawValue: name))
            var schedule = LearningRateSchedule(kind: kind, totalSteps: try XCTUnwrap(entry["total"] as? Int), warmupSteps: try XCTUnwrap(entry["warmup"] as? Int))
            let base = try XCTUnwrap(entry["base"] as? Double)
            if let cycles = entry["num_cycles"] as? Int { schedule.cycles = cycles }
            if let power = entry["power"] as? Double { schedule.power = power }
            if let rules = entry["step_rules"] as? String { schedule.stepRules = try XCTUnwrap(LearningRateSchedule.StepRules(parsing: rules)) }
            schedule.polynomialInitial = base
            let rates = try XCTUnwrap(entry["rates"] as? [Double])
            for (k, rate) in rates.enumerated() {
                XCTAssertEqual(base * schedule.factor(at: k), rate, accuracy: 1e-12, "\(name) step \(k)")
            }
        }
    }

    /// kohya's --lr_scheduler_type with torch's own classes (Fixtures/golden/make_schedule_golden.py, built as
    /// get_scheduler_fix builds them): both groups' rates over 40 steps, eta_min absolute; and the refusals.
    func testTorchSchedulers() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("Fixtures/golden/training/schedules_torch.json"))
        let cases = try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 13)
        XCTAssertEqual(Set(cases.map { $0["name"] as! String }), Set(TorchLRScheduler.names))
        for entry in cases {
            let name = try XCTUnwrap(entry["name"] as? String), args = try XCTUnwrap(entry["args"] as? [String])
            let scheduler = try TorchLRScheduler(name: name, arguments: args)
            let bases = try XCTUnwrap(entry["bases"] as? [Double]), rates = try XCTUnwrap(entry["rates"] as? [[Double]])
            for (base, expected) in zip(bases, rates) {
                for (k, rate) in expected.enumerated() {
                    XCTAssertEqual(scheduler.rate(base: base, at: k), rate, accuracy: 1e-12 * base, "\(name) \(args) base \(base) step \(k)")
                }
            }
        }
        for (name, args, says) in [("OneCycleLR", [String](), "not supported"), ("torch.optim.lr_scheduler.StepLR", [], "not supported"),
                                   ("StepLR", [], "needs --lr-scheduler-args step_size"), ("StepLR", ["step_size=0"], "at least 1"),
                                   ("StepLR", ["step_size=2", "T_max=3"], "T_max is not an argument of StepLR"),
                                   ("CosineAnnealingWarmRestarts", ["T_0=5", "T_mult=1.5"], "T_mult must be a whole number"),
                                   ("LinearLR", ["start_factor=0"], "start_factor must be in (0, 1]")] {
            XCTAssertThrowsError(try TorchLRScheduler(name: name, arguments: args), name) {
                XCTAssertTrue(($0 as? OptimizerError)?.message.contains(says) ?? false, "\($0)")
            }
        }
        // Long runs: no loop over the steps (a restart period of 1 at step 10⁹).
        XCTAssertEqual(try TorchLRScheduler(name: "CosineAnnealingWarmRestarts", arguments: ["T_0=1"]).rate(base: 1, at: 1_000_000_000), 1)
    }

    /// The schedules get_scheduler_fix takes from transformers.optimization, with the arguments it derives
    /// (Fixtures/golden/make_schedule_golden.py): every rate of 26 steps over 24 to 1e-12.
    func testTransformersSchedules() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("Fixtures/golden/training/schedules_transformers.json"))
        let golden = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let base = try XCTUnwrap(golden["base"] as? Double), total = try XCTUnwrap(golden["total"] as? Int)
        let cases = try XCTUnwrap(golden["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 11)
        for entry in cases {
            let kind = try XCTUnwrap(LearningRateSchedule.Kind(rawValue: entry["kind"] as! String))
            var s = LearningRateSchedule(kind: kind, totalSteps: total, warmupSteps: entry["warmup"] as! Int)
            s.timescale = entry["timescale"] as? Int
            s.minLRRatio = entry["min_lr_ratio"] as? Double
            s.cycles = entry["num_cycles"] as? Int ?? 1
            s.decaySteps = entry["decay"] as? Int ?? 0
            s.warmupRamp = LearningRateSchedule.Ramp(rawValue: entry["warmup_type"] as? String ?? "linear")!
            s.decayRamp = LearningRateSchedule.Ramp(rawValue: entry["decay_type"] as? String ?? "cosine")!
            for (k, rate) in (entry["rates"] as! [Double]).enumerated() {
                XCTAssertEqual(base * s.factor(at: k), rate, accuracy: 1e-12, "\(entry["kind"]!) \(entry) step \(k)")
            }
        }
    }

    /// --zero_terminal_snr: sd-scripts' rescaled ᾱ on diffusers' schedule (Fixtures/golden/make_zero_terminal_snr_golden.py),
    /// pure noise at t = 999, and the loss weights' SNR still the standard one (sd-scripts computes all_snr first).
    func testZeroTerminalSNRFollowsSDScripts() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("Fixtures/golden/training/zero_terminal_snr.json"))
        let golden = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: [Double]])
        let diffusers = try XCTUnwrap(golden["alphas_cumprod"]).map(Float.init), expected = try XCTUnwrap(golden["fixed_alphas_cumprod"])
        let fixed = NoiseSchedule(alphasCumprod: diffusers).zeroTerminalSNR().alphasCumprod
        XCTAssertEqual(fixed.count, 1000)
        // Not bit for bit: torch's vectorised float32 sqrt is not correctly rounded (182 of these 1000 values are an
        // ulp off IEEE's on the AVX2 host), and the rescale magnifies that ulp a little.
        for (t, (ours, theirs)) in zip(fixed, expected).enumerated() {
            XCTAssertEqual(Double(ours), theirs, accuracy: 1e-6 * max(theirs, 1e-3), "t \(t)")
        }
        XCTAssertEqual(fixed[999], 0)
        // Our own standard schedule (LDM's, cumulated in double) lands as near.
        let ours = NoiseSchedule.standard.zeroTerminalSNR().alphasCumprod
        XCTAssertLessThan(zip(ours, expected).map { abs(Double($0) - $1) }.max()!, 2e-6)
        var objective = DiffusionObjective()
        objective.minSNRGamma = 5
        objective.snrSchedule = objective.schedule
        objective.schedule = objective.schedule.zeroTerminalSNR()
        let snr = try XCTUnwrap(golden["all_snr"])
        let timesteps = [0, 250, 500, 999]
        for (t, w) in zip(timesteps, objective.itemWeights(timesteps: timesteps)) {
            XCTAssertEqual(Double(w), min(snr[t], 5) / snr[t], accuracy: 1e-5 * min(snr[t], 5) / snr[t], "min-SNR weight at t \(t)")
        }
        let latents = Tensor(shape: [1, 1, 2, 2], values: [1, 2, 3, 4]), noise = Tensor(shape: [1, 1, 2, 2], values: [0.5, -1, 0.25, 2])
        XCTAssertEqual(objective.noisyAndTarget(latents: latents, noise: noise, timesteps: [999]).noisy.values, noise.values, "pure noise at the end")
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

/// Lion, SGD with Nesterov momentum, Prodigy and DAdaptAdam against their own
/// packages (lion-pytorch, torch, prodigyopt, dadaptation; make_training_golden.py):
/// ten steps on two parameter groups with fixed gradients, the weights after
/// each step, and the adaptive methods' d; a state saved mid-way restores.
final class OtherOptimizerTests: XCTestCase {
    func run(_ name: String, _ make: () -> any Optimizer, tolerance: Double = 2e-6, file: StaticString = #filePath, line: UInt = #line) throws {
        let all = try XCTUnwrap(TrainingTests.golden["optimizers"] as? [String: [String: Any]], "regenerate optimizer.json with the optimizer packages")
        let entry = try XCTUnwrap(all[name], name)
        let initial = try XCTUnwrap(entry["initial"] as? [[Double]]), rates = try XCTUnwrap(entry["learning_rates"] as? [Double])
        let expected = try XCTUnwrap(entry["after_each_step"] as? [[[Double]]]), ds = try XCTUnwrap(entry["d"] as? [Double])
        // The *_warmup entries scale both rates step by step (a first step at rate 0); some entries have other shapes.
        let factors = entry["factors"] as? [Double] ?? [Double](repeating: 1, count: expected.count)
        let shapes = entry["shapes"] as? [[Int]] ?? [[3, 4], [5]]
        let parameters = [Parameter(key: "a", shape: shapes[0], values: initial[0].map(Float.init)),
                          Parameter(key: "b", shape: shapes[1], values: initial[1].map(Float.init))]
        var optimizer = make()
        var saved: OptimizerState?
        for step in 0..<expected.count {
            for p in parameters {
                for i in 0..<p.count {
                    p.gradient.values[i] = Float(sin(0.37 * Double(step + 1) + 1.3 * Double(i)) * (1.0 + 0.1 * Double(i)) / Double(1 + step % 3))
                }
            }
            if step == 5, let state = saved {
                // Resume: a fresh optimizer from the state saved after step 5 continues the same way.
                var fresh = make()
                try fresh.restore(state)
                optimizer = fresh
            }
            try optimizer.update([ParameterGroup(name: "a", parameters: [parameters[0]], learningRate: rates[0] * factors[step]),
                                  ParameterGroup(name: "b", parameters: [parameters[1]], learningRate: rates[1] * factors[step])])
            if step == 4 { saved = optimizer.state }
            for (p, values) in zip(parameters, expected[step]) {
                let scale = max(1, values.map(abs).max() ?? 1)
                for (a, b) in zip(p.values, values) {
                    XCTAssertEqual(Double(a), b, accuracy: tolerance * scale, "\(name) step \(step + 1), \(p.key)", file: file, line: line)
                }
            }
            if let d = optimizer.adaptiveScale { XCTAssertEqual(d, ds[step], accuracy: 1e-5 * max(abs(ds[step]), 1e-12), "\(name) d at step \(step + 1)") }
        }
    }

    func testLion() throws { try run("lion") { Lion(weightDecay: 0.01) } }
    func testSGDNesterov() throws { try run("sgd_nesterov") { SGDNesterov(momentum: 0.9, weightDecay: 0.001) } }
    func testProdigy() throws { try run("prodigy") { Prodigy() } }
    func testProdigyWithItsDiffusionSettingsAndAZeroParameter() throws {
        try run("prodigy_zero") {
            var p = Prodigy()
            (p.useBiasCorrection, p.safeguardWarmup, p.weightDecay, p.dCoefficient, p.d0) = (true, true, 0.01, 2, 1e-5)
            return p
        }
    }
    func testDAdaptAdam() throws { try run("dadapt_adam") { DAdaptAdam() } }
    func testDAdaptLion() throws { try run("dadapt_lion") { DAdaptLion() } }
    func testDAdaptLionWithDecayBetasAndAZeroParameter() throws {
        try run("dadapt_lion_decay") {
            var o = DAdaptLion()
            (o.weightDecay, o.d0, o.beta1, o.beta2) = (0.01, 1e-2, 0.95, 0.98)
            return o
        }
    }
    func testAdafactorRelativeStep() throws { try run("adafactor", { Adafactor() }, tolerance: 1e-5) }
    func testAdafactorExternalRate() throws {
        try run("adafactor_external", {
            var o = Adafactor()
            (o.relativeStep, o.scaleParameter, o.beta1, o.weightDecay) = (false, false, 0.9, 0.01)
            return o
        }, tolerance: 1e-5)
    }
    func testDAdaptAdamDecoupledWithAFrozenGroup() throws {
        try run("dadapt_adam_decoupled") {
            var o = DAdaptAdam()
            (o.decouple, o.weightDecay, o.useBiasCorrection) = (true, 0.01, true)
            return o
        }
    }

    func testDAdaptSGD() throws { try run("dadapt_sgd") { DAdaptSGD() } }
    func testDAdaptSGDWithMomentumDecayAndAFrozenGroup() throws {
        try run("dadapt_sgd_momentum") {
            var o = DAdaptSGD()
            (o.momentum, o.weightDecay, o.d0) = (0.9, 0.01, 1e-3)
            return o
        }
    }
    func testDAdaptAdaGrad() throws { try run("dadapt_adagrad") { DAdaptAdaGrad() } }
    func testDAdaptAdaGradWithMomentumDecayAndAZeroParameter() throws {
        try run("dadapt_adagrad_momentum") {
            var o = DAdaptAdaGrad()
            (o.momentum, o.weightDecay, o.epsilon, o.d0) = (0.9, 0.01, 1e-5, 1e-3)
            return o
        }
    }
    /// kohya's "DAdaptation" (dadaptation.experimental.DAdaptAdamPreprint).
    func testDAdaptation() throws { try run("dadapt_adam_preprint") { DAdaptAdamPreprint() } }
    func testDAdaptationDecoupledWithAFrozenGroup() throws {
        try run("dadapt_adam_preprint_decoupled") {
            var o = DAdaptAdamPreprint()
            (o.decouple, o.weightDecay, o.beta1, o.beta2, o.d0) = (true, 0.01, 0.95, 0.99, 1e-4)
            return o
        }
    }

    /// A first step at rate 0, as constant_with_warmup's (diffusers starts the warmup at 0): torch, lion-pytorch and
    /// transformers move their moments on it though the weights stay; prodigyopt and dadaptation skip it whole.
    func testAStepAtRateZeroAsEachPackageTakesIt() throws {
        try run("adamw_warmup") { AdamW(weightDecay: 0.01) }
        try run("lion_warmup") { Lion(weightDecay: 0.01) }
        try run("sgd_nesterov_warmup") { SGDNesterov(momentum: 0.9, weightDecay: 0.001) }
        try run("adafactor_external_warmup", {
            var o = Adafactor()
            (o.relativeStep, o.scaleParameter, o.beta1, o.weightDecay) = (false, false, 0.9, 0.01)
            return o
        }, tolerance: 1e-5)
        try run("prodigy_warmup") {
            var o = Prodigy()
            o.safeguardWarmup = true
            return o
        }
        try run("dadapt_adam_warmup") { DAdaptAdam() }
        try run("dadapt_lion_warmup") { DAdaptLion() }
        try run("dadapt_adagrad_warmup") {
            var o = DAdaptAdaGrad()
            o.momentum = 0.9
            return o
        }
        try run("dadapt_adam_preprint_warmup") { DAdaptAdamPreprint() }
        try run("dadapt_adan_warmup") { DAdaptAdan() }
    }

    /// pytorch-optimizer's CAME (3.10.0, kohya_ss's pin) and came_pytorch's, through the names the kohya_ss GUI passes:
    /// factored over a matrix and over a conv kernel's last two dimensions, a vector's full moment (pytorch-optimizer
    /// scaling its m by lr in place there, came_pytorch not), AMS bound, fixed decay and a warmup's step at rate 0.
    func testCAME() throws {
        try run("came", { try! OptimizerChoice(kohyaName: "pytorch_optimizer.CAME")!.make(arguments: []) }, tolerance: 1e-5)
        try run("came_vector", { try! OptimizerChoice.came.make(arguments: ["weight_decay=0.01", "betas=0.8,0.99,0.999"]) }, tolerance: 1e-5)
        try run("came_options", {
            try! OptimizerChoice.came.make(arguments: ["weight_decay=0.1", "fixed_decay=True", "ams_bound=True", "clip_threshold=0.5",
                                                       "eps1=1e-20", "eps2=1e-12"])
        }, tolerance: 1e-5)
        try run("came_original", { try! OptimizerChoice(kohyaName: "came_pytorch.CAME")!.make(arguments: ["weight_decay=0.01"]) }, tolerance: 1e-5)
        try run("came_original_vector", { try! OptimizerChoice.camePytorch.make(arguments: ["eps=1e-30,1e-12"]) }, tolerance: 1e-5)
        XCTAssertThrowsError(try OptimizerChoice.camePytorch.make(arguments: ["eps1=1e-30"]), "came_pytorch takes eps=(a, b)")
        XCTAssertThrowsError(try OptimizerChoice.came.make(arguments: ["betas=0.9,0.999"]), "three betas")
    }

    /// bitsandbytes' AdEMAMix (its 32-bit CPU kernel; the GUI's AdEMAMix8bit trains as it) with a warmup's step at
    /// rate 0, and with its α and β3 schedulers.
    func testAdEMAMix() throws {
        try run("ademamix") { try! OptimizerChoice(kohyaName: "bitsandbytes.optim.AdEMAMix8bit")!.make(arguments: []) }
        try run("ademamix_scheduled") {
            try! OptimizerChoice(kohyaName: "bitsandbytes.optim.PagedAdEMAMix8bit")!.make(arguments: ["t_alpha=6", "t_beta3=8", "alpha=8",
                                                                                                     "betas=0.9,0.99,0.999", "weight_decay=0", "eps=1e-6"])
        }
        XCTAssertThrowsError(try OptimizerChoice.adEMAMix.make(arguments: ["t_alpha=2.5"]), "a whole number of steps")
    }

    /// ss_optimizer's arguments as kohya writes them, str(ast.literal_eval(value)); the right-hand sides are what
    /// CPython 3.11 prints for the left.
    func testOptimizerArgumentsAreWrittenAsPythonPrintsThem() {
        let cases = [("1e-8", "1e-08"), ("0.01", "0.01"), ("2", "2"), ("-3", "-3"), ("True", "True"), ("None", "None"),
                     ("0.9,0.999", "(0.9, 0.999)"), ("(0.9, 0.99)", "(0.9, 0.99)"), ("[0.9,0.99]", "[0.9, 0.99]"), ("(0.5)", "0.5"),
                     ("0.5,", "(0.5,)"), ("'abc'", "abc"), ("1e-30,1e-16", "(1e-30, 1e-16)"), ("+2.5", "2.5"), ("1E3", "1000.0"),
                     ("100000000000000000.0", "1e+17"), ("()", "()"), ("[]", "[]")]
        for (value, python) in cases { XCTAssertEqual(pythonLiteral(value), python, value) }
    }

    func testDAdaptAdan() throws { try run("dadapt_adan") { DAdaptAdan() } }
    func testDAdaptAdanWithoutProxAndAZeroParameter() throws {
        try run("dadapt_adan_no_prox") {
            var o = DAdaptAdan()
            (o.noProx, o.weightDecay, o.beta1, o.beta2, o.beta3, o.d0) = (true, 0.05, 0.9, 0.9, 0.95, 1e-4)
            return o
        }
    }
    func testDAdaptAdanIP() throws {
        try run("dadapt_adan_ip") {
            var o = DAdaptAdan()
            o.interpolation = true
            return o
        }
    }

    /// schedulefree's AdamWScheduleFree and SGDScheduleFree as kohya drives them: train() before the first step, and
    /// after each step eval() (the golden records the averaged weights x there) and train() again. A state saved in
    /// eval mode after step 5, with the weights x a saved file holds, resumes to the same trajectory; stepping in
    /// eval mode is refused as schedulefree refuses it.
    /// `startsInTrainMode`: prodigy-plus-schedule-free starts in train mode, schedulefree in eval mode.
    func runScheduleFree(_ name: String, tolerance: Double = 2e-6, startsInTrainMode: Bool = false, _ make: () throws -> any Optimizer) throws {
        let all = try XCTUnwrap(TrainingTests.golden["optimizers"] as? [String: [String: Any]], "regenerate optimizer.json with schedulefree")
        let entry = try XCTUnwrap(all[name], name)
        let initial = try XCTUnwrap(entry["initial"] as? [[Double]]), rates = try XCTUnwrap(entry["learning_rates"] as? [Double])
        let expected = try XCTUnwrap(entry["after_each_step"] as? [[[Double]]]), ds = try XCTUnwrap(entry["d"] as? [Double])
        let shapes = entry["shapes"] as? [[Int]] ?? [[3, 4], [5]]
        let parameters = [Parameter(key: "a", shape: shapes[0], values: initial[0].map(Float.init)),
                          Parameter(key: "b", shape: shapes[1], values: initial[1].map(Float.init))]
        var optimizer = try make()
        let groups = [ParameterGroup(name: "a", parameters: [parameters[0]], learningRate: rates[0]),
                      ParameterGroup(name: "b", parameters: [parameters[1]], learningRate: rates[1])]
        if startsInTrainMode {
            // kohya's train() before the first step changes nothing: there is no z yet.
            let before = parameters.map(\.values)
            optimizer.useAveragedWeights(parameters)
            XCTAssertEqual(parameters.map(\.values), before)
        }
        XCTAssertThrowsError(try optimizer.update(groups), "eval mode, as schedulefree")
        optimizer.useGradientPointWeights(parameters)
        var saved: (state: OptimizerState, weights: [[Float]])?
        for step in 0..<expected.count {
            for p in parameters {
                for i in 0..<p.count {
                    p.gradient.values[i] = Float(sin(0.37 * Double(step + 1) + 1.3 * Double(i)) * (1.0 + 0.1 * Double(i)) / Double(1 + step % 3))
                }
            }
            try optimizer.update(groups)
            optimizer.useAveragedWeights(parameters)
            for (p, values) in zip(parameters, expected[step]) {
                let scale = max(1, values.map(abs).max() ?? 1)
                for (a, b) in zip(p.values, values) { XCTAssertEqual(Double(a), b, accuracy: tolerance * scale, "\(name) step \(step + 1), \(p.key)") }
            }
            if let d = optimizer.adaptiveScale { XCTAssertEqual(d, ds[step], accuracy: 1e-5 * ds[step], "\(name) d at step \(step + 1)") }
            if step == 4 { saved = (optimizer.state, parameters.map(\.values)) }
            if step == 5, let (state, weights) = saved {
                // Resume from after step 5: the saved weights (x) and state; train() again; the next steps must follow.
                for (p, w) in zip(parameters, weights) { p.values = w }
                optimizer = try make()
                try optimizer.restore(state)
                optimizer.useGradientPointWeights(parameters)
                try optimizer.update(groups)
                optimizer.useAveragedWeights(parameters)
                for (p, values) in zip(parameters, expected[step]) {
                    for (a, b) in zip(p.values, values) { XCTAssertEqual(Double(a), b, accuracy: tolerance * max(1, abs(b)), "\(name) resumed step 6, \(p.key)") }
                }
            }
            optimizer.useGradientPointWeights(parameters)
        }
        XCTAssertTrue(optimizer.schedulesItself)
    }

    /// prodigy-plus-schedule-free's ProdigyPlusScheduleFree by the GUI's module path, as kohya drives it (eval() after
    /// each step, train() before the next): the averaged weights and d (the harmonic mean of the groups' when split)
    /// after each step, and a resume from the state saved after step 5.
    func testProdigyPlusScheduleFree() throws {
        let make = { (arguments: [String]) throws -> any Optimizer in
            try XCTUnwrap(OptimizerChoice(kohyaName: "prodigyplus.ProdigyPlusScheduleFree")).make(arguments: arguments)
        }
        try runScheduleFree("prodigy_plus", startsInTrainMode: true) { try make([]) }
        try runScheduleFree("prodigy_plus_factored", startsInTrainMode: true) { try make([]) }
        try runScheduleFree("prodigy_plus_conv", tolerance: 1e-5, startsInTrainMode: true) {
            try make(["weight_decay=0.01", "use_bias_correction=True", "d_coef=2", "split_groups_mean=False", "betas=0.95,0.98"])
        }
        try runScheduleFree("prodigy_plus_atan2_shared", startsInTrainMode: true) {
            try make(["eps=None", "split_groups=False", "weight_decay=0.01", "weight_decay_by_lr=False", "prodigy_steps=5", "d0=1e-4"])
        }
        XCTAssertThrowsError(try make(["use_muon_pp=True"]), "an experimental switch")
        XCTAssertNoThrow(try make(["use_cautious=False", "stochastic_rounding=True", "factored_fp32=True"]))
        XCTAssertTrue(OptimizerChoice.prodigyPlusScheduleFree.isScheduleFree)
    }

    func testAdamWScheduleFree() throws {
        try runScheduleFree("adamw_schedulefree") { try OptimizerChoice(kohyaName: "adamwschedulefree")!.make(arguments: ["warmup_steps=3", "weight_decay=0.01"]) }
    }
    func testAdamWScheduleFreeWithAFrozenGroup() throws {
        try runScheduleFree("adamw_schedulefree_frozen") { try OptimizerChoice.adamWScheduleFree.make(arguments: ["betas=0.95,0.99"]) }
    }
    /// RAdam's rectification: no step at all while ρ_t ≤ 4 (silent SGD phase), plain SGD steps there without it.
    func testRAdamScheduleFree() throws {
        try runScheduleFree("radam_schedulefree") { try OptimizerChoice(kohyaName: "RAdamScheduleFree")!.make(arguments: []) }
        try runScheduleFree("radam_schedulefree_sgd_phase") {
            try OptimizerChoice.rAdamScheduleFree.make(arguments: ["betas=0.9,0.99", "weight_decay=0.01", "silent_sgd_phase=False"])
        }
        XCTAssertThrowsError(try OptimizerChoice.rAdamScheduleFree.make(arguments: ["warmup_steps=2"]), "RAdam's has no warmup of its own")
    }
    func testSGDScheduleFree() throws {
        try runScheduleFree("sgd_schedulefree") { try OptimizerChoice(kohyaName: "SGDScheduleFree")!.make(arguments: ["momentum=0.8", "weight_decay=0.001", "r=0.5"]) }
        XCTAssertThrowsError(try OptimizerChoice.sgdScheduleFree.make(arguments: ["momentum=1"]))
        XCTAssertThrowsError(try OptimizerChoice.adamWScheduleFree.make(arguments: ["warmup_steps=2.5"]))
    }

    /// kohya's names and arguments reach them; DAdaptAdaGrad, which would run every group at the first one's rate,
    /// refuses unequal rates.
    func testKohyaNamesOfTheDAdaptationFamily() throws {
        XCTAssertEqual(OptimizerChoice(kohyaName: "dadaptation"), .dAdaptation)
        XCTAssertEqual(OptimizerChoice(kohyaName: "DAdaptAdamPreprint"), .dAdaptation)
        XCTAssertEqual(OptimizerChoice(kohyaName: "DAdaptSGD"), .dAdaptSGD)
        XCTAssertEqual(OptimizerChoice(kohyaName: "dadaptadagrad"), .dAdaptAdaGrad)
        XCTAssertEqual(OptimizerChoice(kohyaName: "DAdaptAdanIP"), .dAdaptAdanIP)
        let adan = try XCTUnwrap(try OptimizerChoice.dAdaptAdanIP.make(arguments: ["betas=0.9,0.9,0.95", "no_prox=True"]) as? DAdaptAdan)
        XCTAssertTrue(adan.interpolation && adan.noProx)
        XCTAssertEqual(adan.weightDecay, 0.02, "the package's default")
        XCTAssertEqual(adan.beta3, 0.95)
        XCTAssertThrowsError(try OptimizerChoice.dAdaptAdan.make(arguments: ["betas=0.9,0.99"]))
        // bitsandbytes' forms train as their fp32 optimizers, AdEMAMix's by module path or by kohya's help names too;
        // other module paths are not built.
        for (name, choice) in [("PagedAdamW8bit", OptimizerChoice.adamW), ("PagedAdamW", .adamW), ("pagedadamw32bit", .adamW), ("Lion8bit", .lion),
                               ("PagedLion8bit", .lion), ("SGDNesterov8bit", .sgdNesterov), ("AdamW8bit", .adamW8bit),
                               ("bitsandbytes.optim.AdEMAMix8bit", .adEMAMix), ("bitsandbytes.optim.PagedAdEMAMix8bit", .adEMAMix),
                               ("bitsandbytes.optim.AdEMAMix", .adEMAMix), ("AdEMAMix8bit", .adEMAMix), ("Pytorch_Optimizer.CAME", .came),
                               ("came_pytorch.CAME", .camePytorch), ("prodigyplus.ProdigyPlusScheduleFree", .prodigyPlusScheduleFree)] {
            XCTAssertEqual(OptimizerChoice(kohyaName: name), choice, name)
        }
        for name in ["AdEMAMix", "CAME", "pytorch_optimizer.AdEMAMix", "ProdigyPlusScheduleFree", "pytorch_optimizer.SOAP"] { XCTAssertNil(OptimizerChoice(kohyaName: name), name) }
        let sgd = try XCTUnwrap(try OptimizerChoice.dAdaptSGD.make(arguments: ["momentum=0.9", "d0=1e-4"]) as? DAdaptSGD)
        XCTAssertEqual(sgd.momentum, 0.9)
        XCTAssertEqual(sgd.d, 1e-4)
        let preprint = try XCTUnwrap(try OptimizerChoice.dAdaptation.make(arguments: ["decouple=True", "betas=0.9,0.99"]) as? DAdaptAdamPreprint)
        XCTAssertTrue(preprint.decouple)
        XCTAssertEqual(preprint.beta2, 0.99)
        XCTAssertEqual(preprint.kohyaName, "dadaptation.experimental.dadapt_adam_preprint.DAdaptAdamPreprint")
        XCTAssertThrowsError(try OptimizerChoice.dAdaptAdaGrad.make(arguments: ["betas=0.9,0.99"]))
        let a = Parameter(key: "a", shape: [1], values: [1]), b = Parameter(key: "b", shape: [1], values: [1])
        var adagrad = DAdaptAdaGrad()
        XCTAssertThrowsError(try adagrad.update([ParameterGroup(name: "textencoder", parameters: [a], learningRate: 1),
                                                 ParameterGroup(name: "unet", parameters: [b], learningRate: 0)]))
        var sgdZero = DAdaptSGD()
        XCTAssertThrowsError(try sgdZero.update([ParameterGroup(name: "unet", parameters: [a], learningRate: 1)]), "all-zero first gradients")
    }

    func testAdaptiveMethodsRefuseUnequalGroupRates() {
        let a = Parameter(key: "a", shape: [1], values: [1]), b = Parameter(key: "b", shape: [1], values: [1])
        var prodigy = Prodigy()
        XCTAssertThrowsError(try prodigy.update([ParameterGroup(name: "textencoder", parameters: [a], learningRate: 0.5),
                                                 ParameterGroup(name: "unet", parameters: [b], learningRate: 1)]))
    }
}

/// `--loss_type` l2/l1/huber/smooth_l1 with each `--huber_schedule`, through
/// sd-scripts' reduction: the loss and its gradient against sd-scripts'
/// `conditional_loss` and `get_huber_threshold_if_needed` under torch autograd;
/// the pyramid noise's bilinear upsampling against torch's.
final class LossTypeTests: XCTestCase {
    static func golden() throws -> [String: Any] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("Fixtures/golden/training/loss_weights.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testLossTypesAndHuberSchedulesFollowSDScripts() throws {
        let golden = try Self.golden()
        let losses = try XCTUnwrap(golden["losses"] as? [String: [String: Any]]), timesteps = try XCTUnwrap(golden["loss_timesteps"] as? [Int])
        XCTAssertEqual(losses.count, 12)
        let n = 2 * 4 * 4 * 4
        let prediction = Tensor(shape: [2, 4, 4, 4], values: (0..<n).map { Float(sin(0.1 * Double($0))) })
        let target = Tensor(shape: [2, 4, 4, 4], values: (0..<n).map { Float(cos(0.07 * Double($0))) })
        for (name, entry) in losses {
            var objective = DiffusionObjective()
            let parts = name.split(separator: "_")
            objective.lossType = try XCTUnwrap(DiffusionObjective.LossType(rawValue: parts.dropLast().joined(separator: "_")))
            objective.huberSchedule = try XCTUnwrap(DiffusionObjective.HuberSchedule(rawValue: String(parts.last!)))
            (objective.huberC, objective.huberScale) = (0.1, 1.5)
            let (loss, gradient) = objective.loss(prediction: prediction, target: target, timesteps: timesteps)
            let expected = try XCTUnwrap(entry["loss"] as? Double), expectedGradient = try XCTUnwrap(entry["gradient"] as? [Double])
            XCTAssertEqual(loss, expected, accuracy: 2e-6 * abs(expected), name)
            let scale = expectedGradient.map(abs).max()!
            for (a, b) in zip(gradient.values, expectedGradient) { XCTAssertEqual(Double(a), b, accuracy: 2e-5 * scale, name) }
        }
    }

    func testPyramidNoiseUpsamplesAsTorch() throws {
        let entry = try XCTUnwrap(try Self.golden()["upsample"] as? [String: [Double]])
        let out = TrainingNoise.upsampleBilinear(try XCTUnwrap(entry["input"]).map(Float.init), channels: 2, from: (3, 2), to: (7, 5))
        for (a, b) in zip(out, try XCTUnwrap(entry["output"])) { XCTAssertEqual(Double(a), b, accuracy: 1e-6) }
        XCTAssertEqual(out.count, 70)
    }

    /// Input perturbation perturbs the noisy latents, not the target; multires noise ends at unit variance.
    func testNoiseVariants() {
        var options = NoiseOptions()
        options.inputPerturbation = 0.1
        options.multiresIterations = 6
        options.offset = 0.1
        var random = TrainingRandom(seed: 3)
        let latents = Tensor(shape: [2, 4, 16, 16], values: (0..<2048).map { Float(sin(Double($0))) })
        let (noise, perturbed) = TrainingNoise.draw(like: latents, options: options, random: &random)
        let p = try! XCTUnwrap(perturbed)
        let std = (noise.values.reduce(0.0) { $0 + Double($1 * $1) } / 2048).squareRoot()
        XCTAssertEqual(std, 1, accuracy: 0.05, "divided by its standard deviation")
        let difference = zip(noise.values, p.values).map { Double($1 - $0) }
        let perturbation = (difference.reduce(0.0) { $0 + $1 * $1 } / 2048).squareRoot()
        XCTAssertEqual(perturbation, 0.1, accuracy: 0.01, "γ·ξ")
        let objective = DiffusionObjective()
        let (noisy, target) = objective.noisyAndTarget(latents: latents, noise: noise, timesteps: [500, 500], perturbed: p)
        XCTAssertEqual(target, noise, "the target stays ε")
        XCTAssertNotEqual(noisy, objective.noisyAndTarget(latents: latents, noise: noise, timesteps: [500, 500]).noisy)
    }
}

/// `--scale_weight_norms` against networks/lora.py's own
/// apply_max_norm_regularization (make_training_golden.py): which modules are
/// scaled, their factors after, and kohya's reported mean and maximum norms.
final class MaxNormTests: XCTestCase {
    func testMaxNormFollowsKohya() throws {
        let golden = try XCTUnwrap(try LossTypeTests.golden()["max_norm"] as? [String: Any])
        let specs = try XCTUnwrap(golden["specs"] as? [[Any]])
        let before = try XCTUnwrap(golden["before"] as? [String: [Double]]), after = try XCTUnwrap(golden["after"] as? [String: [Double]])
        var modules: [LoRAModule] = []
        for spec in specs {
            let name = spec[0] as! String, up = (spec[1] as! [Int]), down = (spec[2] as! [Int]), alpha = Float(spec[3] as! Double)
            let rank = down[0]
            let shape: LoRAModule.Shape = down.count == 4 ? .conv(in: down[1], out: up[0], kernel: down[2], stride: 1, padding: down[2] / 2)
                                                          : .linear(in: down[1], out: up[0])
            modules.append(LoRAModule(name: name, shape: shape, rank: rank, alpha: alpha,
                                      down: try XCTUnwrap(before[name + ".lora_down.weight"]).map(Float.init),
                                      up: try XCTUnwrap(before[name + ".lora_up.weight"]).map(Float.init)))
        }
        let report = LoRANetwork.applyMaxNorm(try XCTUnwrap(golden["max"] as? Double), to: modules)
        XCTAssertEqual(report.keysScaled, golden["keys_scaled"] as? Int)
        XCTAssertEqual(report.averageNorm, try XCTUnwrap(golden["average"] as? Double), accuracy: 1e-6)
        XCTAssertEqual(report.maximumNorm, try XCTUnwrap(golden["maximum"] as? Double), accuracy: 1e-6)
        for module in modules {
            for (p, kind) in [(module.down, "lora_down"), (module.up, "lora_up")] {
                let expected = try XCTUnwrap(after["\(module.name).\(kind).weight"])
                for (a, b) in zip(p.values, expected) { XCTAssertEqual(Double(a), b, accuracy: 1e-6, "\(module.name) \(kind)") }
            }
        }
    }
}

final class LearningRateFinderTests: XCTestCase {
    /// The suggestion is the median d·lr of the probe's last quarter; the text encoder 1/10 to 1/2 of it; a
    /// curve still climbing at the end is flagged; the probe keeps the run's data and network but trains the U-Net with Prodigy only.
    func testSuggestionAndProbeSettings() throws {
        var plateau: [Double] = []
        for i in 0..<40 {
            let rising: Double = 1e-6 * pow(1.5, Double(i)), flat: Double = 2e-4 + Double(i % 3) * 1e-6
            plateau.append(i < 20 ? rising : flat)
        }
        let flat = try XCTUnwrap(LearningRateFinder.suggest(from: plateau))
        XCTAssertEqual(flat.suggestedUNet, 2.01e-4, accuracy: 1e-12)
        XCTAssertEqual(flat.suggestedTextEncoder.lowerBound, 2.01e-5, accuracy: 1e-12)
        XCTAssertFalse(flat.stillRising)
        let climbing: [Double] = (0..<20).map { (i: Int) -> Double in 1e-6 * pow(1.3, Double(i)) }
        XCTAssertTrue(try XCTUnwrap(LearningRateFinder.suggest(from: climbing)).stillRising)
        XCTAssertNil(LearningRateFinder.suggest(from: [1, 2, 3]))
        var c = TrainingConfiguration(outputDirectory: "/x")
        (c.networkDim, c.saveState, c.trainTextEncoder, c.learningRate) = (16, true, true, 1e-4)
        let p = LearningRateFinder.probeConfiguration(c, steps: 50)
        XCTAssertEqual(p.optimizer, .prodigy)
        XCTAssertEqual(p.networkDim, 16)
        XCTAssertEqual(p.maxTrainSteps, 50)
        XCTAssertFalse(p.trainTextEncoder || p.saveState || p.writesFiles)
    }
}

/// kohya's module set with LoCon and per-block dims (networks/lora.py create_modules, get_block_index).
final class NetworkBlockTests: XCTestCase {
    func testBlockIndexAsKohya() {
        let cases: [(String, Int?)] = [
            ("lora_unet_down_blocks_0_attentions_0_proj_in", 1), ("lora_unet_down_blocks_0_resnets_1_conv1", 2),
            ("lora_unet_down_blocks_0_downsamplers_0_conv", 3), ("lora_unet_down_blocks_3_resnets_1_conv2", 11),
            ("lora_unet_mid_block_attentions_0_proj_in", 12), ("lora_unet_mid_block_resnets_1_time_emb_proj", 12),
            ("lora_unet_up_blocks_0_resnets_2_conv1", 15), ("lora_unet_up_blocks_2_upsamplers_0_conv", 21),
            ("lora_unet_up_blocks_3_attentions_2_proj_out", 24), ("lora_te_text_model_encoder_layers_0_mlp_fc1", nil),
        ]
        for (name, index) in cases { XCTAssertEqual(LoRANetwork.blockIndex(kohyaName: name), index, name) }
        for target in ModelLayout(.real(.sd1)).targets where target.component == .unet && target.set != .extra && target.set != .norm {
            XCTAssertNotNil(LoRANetwork.blockIndex(kohyaName: target.kohyaName), target.kohyaName)
        }
    }

    func testLoConAndBlockDims() {
        let layout = ModelLayout(.real(.sd1))
        let plain = LoRANetwork.kohya(layout, dim: 4, alpha: 1, textEncoder: false) { 0.5 }
        XCTAssertEqual(plain.loraModules.count, 192)
        let locon = LoRANetwork.kohya(layout, dim: 8, alpha: 4, convDim: 2, convAlpha: 1, textEncoder: false) { 0.5 }
        XCTAssertEqual(locon.loraModules.count, 278, "kohya's count with conv_dim: 192 + 86")
        let timeEmbedding = locon.loraModules.first { $0.name.hasSuffix("time_emb_proj") }!
        XCTAssertEqual([timeEmbedding.rank, Int(timeEmbedding.alpha)], [8, 4], "Linear layers in resnets take network_dim/alpha")
        let conv = locon.loraModules.first { $0.name.hasSuffix("resnets_0_conv1") }!
        XCTAssertEqual([conv.rank, Int(conv.alpha)], [2, 1], "3×3 convolutions take conv_dim/conv_alpha")
        // Block dims: 0 leaves a block out; conv dims per block.
        var dims = [Int](repeating: 4, count: 25), convDims = [Int](repeating: 2, count: 25)
        dims[1] = 0
        dims[24] = 16
        convDims[12] = 0
        let blocks = LoRANetwork.BlockDims(dims: dims, alphas: [Float](repeating: 2, count: 25), convDims: convDims,
                                           convAlphas: [Float](repeating: 1, count: 25))
        let network = LoRANetwork.kohya(layout, dim: 8, alpha: 8, convDim: 2, textEncoder: false, blocks: blocks) { 0.5 }
        XCTAssertFalse(network.loraModules.contains { $0.name.hasPrefix("lora_unet_down_blocks_0_attentions_0_") })
        XCTAssertTrue(network.loraModules.filter { $0.name.hasPrefix("lora_unet_up_blocks_3_attentions_2_") }.allSatisfy { $0.rank == 16 })
        XCTAssertFalse(network.loraModules.contains { $0.name.hasPrefix("lora_unet_mid_block_resnets") && $0.name.hasSuffix("conv1") })
        XCTAssertTrue(network.loraModules.contains { $0.name == "lora_unet_mid_block_resnets_0_time_emb_proj" && $0.rank == 4 })
    }
}

/// down/mid/up_lr_weight against networks/lora.py's parse_block_lr_kwargs (presets, lists with gaps, the
/// zero threshold), and the groups they make: one per block at unet_lr × weight, zero-weight blocks without modules.
final class BlockLearningRateTests: XCTestCase {
    func testBlockRatesFollowKohya() throws {
        let cases = try XCTUnwrap(try LossTypeTests.golden()["block_rates"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 4)
        for entry in cases {
            let kwargs = try XCTUnwrap(entry["kwargs"] as? [String: String]), expected = try XCTUnwrap(entry["weights"] as? [Double])
            let rates = try XCTUnwrap(try BlockLearningRates.parse(down: kwargs["down_lr_weight"], mid: kwargs["mid_lr_weight"], up: kwargs["up_lr_weight"],
                                                                   zeroThreshold: Double(kwargs["block_lr_zero_threshold"] ?? "0") ?? 0))
            XCTAssertEqual(rates.weights.count, 25)
            for (a, b) in zip(rates.weights, expected) { XCTAssertEqual(a, b, accuracy: 1e-12, "\(kwargs)") }
        }
        XCTAssertThrowsError(try BlockLearningRates.parse(down: "wavy", mid: nil, up: nil))
        XCTAssertNil(try BlockLearningRates.parse(down: nil, mid: nil, up: nil))
    }

    func testZeroWeightBlocksLoseTheirModules() throws {
        let rates = try XCTUnwrap(try BlockLearningRates.parse(down: nil, mid: "0", up: nil))
        var c = TrainingConfiguration(outputDirectory: "/x")
        (c.networkDim, c.networkAlpha, c.blockLearningRates) = (4, 1, rates)
        let blocks = try XCTUnwrap(LoRATrainer.blocks(c))
        XCTAssertEqual(blocks.dims[12], 0)
        XCTAssertEqual(blocks.dims[1], 4)
        let network = LoRANetwork.kohya(ModelLayout(.real(.sd1)), dim: 4, alpha: 1, textEncoder: false, blocks: blocks) { 0.5 }
        XCTAssertEqual(network.loraModules.count, 192 - 12, "the mid block's transformer loses its 12 modules")
    }
}

/// The pixel-statistics reader the tiny model's tests judge renders with:
/// it must read the generator's own scenes (every shape, colour, size and
/// position) right before it can judge a model's.
final class SceneReaderTests: XCTestCase {
    func testReadsTheGeneratorsScenes() {
        var stream = ShapeScene.Stream(seed: 5, shapes: ShapeScene.baseShapes + ["star"])
        var wrong: [String] = []
        for _ in 0..<300 {
            let scene = stream.next()
            let reading = SceneReader.read(scene.render(size: 64))
            if reading.shape != scene.shape || reading.color != scene.color || reading.background != scene.background {
                wrong.append("\(scene.caption) read as \(reading)")
            }
        }
        XCTAssertLessThanOrEqual(wrong.count, 6, wrong.joined(separator: "\n"))
        // A blank picture shows no shape.
        XCTAssertNil(SceneReader.read(Bitmap(width: 64, height: 64, fill: RGB(40, 70, 220))).shape)
    }

    /// A decoder draws soft edges and rounded corners; a 5×5 box blur stands for them.
    func testReadsBlurredScenes() {
        func blurred(_ bitmap: Bitmap) -> Bitmap {
            var out = bitmap
            let w = bitmap.width, h = bitmap.height
            for y in 0..<h {
                for x in 0..<w {
                    for c in 0..<3 {
                        var sum = 0, count = 0
                        for dy in -2...2 { for dx in -2...2 where (0..<w).contains(x + dx) && (0..<h).contains(y + dy) {
                            sum += Int(bitmap.pixels[((y + dy) * w + x + dx) * 3 + c]); count += 1
                        } }
                        out.pixels[(y * w + x) * 3 + c] = UInt8(sum / count)
                    }
                }
            }
            return out
        }
        var stream = ShapeScene.Stream(seed: 6, shapes: ShapeScene.baseShapes + ["star"])
        var wrong: [String] = []
        for _ in 0..<200 {
            let scene = stream.next()
            let reading = SceneReader.read(blurred(scene.render(size: 64)))
            if reading.shape != scene.shape || reading.color != scene.color || reading.background != scene.background {
                wrong.append("\(scene.caption) (radius \(scene.radius)) read as \(reading)")
            }
        }
        XCTAssertLessThanOrEqual(wrong.count, 10, wrong.joined(separator: "\n"))
    }
}
