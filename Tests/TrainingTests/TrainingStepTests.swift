@testable import Diffusion
import FixtureKit
import Imaging
import Foundation
import LinearAlgebra
import LoRACore
@testable import Training
import XCTest

/// One kohya training step on the tiny SD1 engine model against sd-scripts'
/// logic in torch (Fixtures/golden/make_training_golden.py: diffusers U-Net
/// with the fixture's weights, kohya's LoRAModule on its 192 attention
/// targets, DDPMScheduler.add_noise, train_network.py's l2 loss, AdamW):
/// the loss (1e-5 relative), every module's gradients (1e-4 relative to the
/// tensor's largest) and the factors after ten AdamW steps (2.5e-4: AdamW
/// divides by √v, so float32 differences in summation order grow over the
/// steps; torch itself, run with 1 thread instead of 2, lands 1.4e-4 away
/// from its own golden — measured 2026-12-01 on the AMD host).
final class TrainingStepTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// The engine fixture is written once per test process here (48 MB) and removed after the class's tests.
    static let folder = NSTemporaryDirectory() + "lora-tools-training-\(getpid())"

    override class func tearDown() {
        try? FileManager.default.removeItem(atPath: folder)
        super.tearDown()
    }

    func model(encoder: Bool = false, decoder: Bool = true) throws -> StableDiffusionModel {
        let folder = Self.folder
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/sd1_engine.safetensors"
        if !FileManager.default.fileExists(atPath: path) {
            try XCTUnwrap(FixtureSet.items.first { $0.name == "sd1_engine.safetensors" }).write(path)
        }
        return try StableDiffusionModel(checkpoint: path, tokenizer: try BPETokenizer.load(Self.root + "/Fixtures/tokenizer/clip_bpe_merges.txt.gz"),
                                        options: { var o = StableDiffusionModel.Options(loadEncoder: encoder); o.loadDecoder = decoder; return o }())
    }

    /// A golden was made from the fixture the test loads (the generator's output, by SHA-256).
    func assertGoldenMatchesFixture(_ golden: ModelFile, _ model: StableDiffusionModel, line: UInt = #line) throws {
        XCTAssertEqual(Hashing.sha256(try MappedFile(path: model.path)), golden.metadata["fixture_sha256"],
                       "the fixture generator changed: re-run Fixtures/golden/make_training_golden.py", line: line)
    }

    /// max |a − b| / max |b|.
    func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        var worst = 0.0, scale = 0.0
        for (x, y) in zip(a, b) {
            worst = max(worst, Double(abs(x - y)))
            scale = max(scale, Double(abs(y)))
        }
        return scale == 0 ? worst : worst / scale
    }

    /// Each gradient against torch's, within 1e-4 of the tensor's largest value. Where torch's is zero up to float
    /// noise (below 1e-5 of the largest gradient of the step, or 1e-7), ours must be too: such a gradient is 0 in exact
    /// arithmetic wherever GroupNorm has one channel per group (the fixture's 32-channel level) and so removes a
    /// per-channel shift (the time embedding's projection) or scale ((IA)^3 on the convolution before it); the
    /// others are 7e-5 and up. Returns the worst error and how many were zero.
    func compareGradients(_ pairs: [(label: String, ours: [Float], reference: [Float])]) -> (worst: Double, zeros: Int) {
        var worst = 0.0, zeros = 0
        let noise = max(1e-7, 1e-5 * (pairs.flatMap { $0.reference.map(abs) }.max() ?? 0))
        for (label, ours, reference) in pairs {
            if reference.map(abs).max() ?? 0 < noise {
                XCTAssertLessThan(ours.map(abs).max() ?? 0, noise, "\(label) gradient is zero in torch")
                zeros += 1
                continue
            }
            let error = relativeError(ours, reference)
            worst = max(worst, error)
            // A DoRA magnitude's gradient is G·V/‖V‖ per row, a dot product over the layer's whole weight gradient G whose
            // terms largely cancel, so fp32 differences in G (summation order, ours and torch's) come out larger there (1.0e-4 seen).
            // A LyCORIS module's trained scalar is the same kind of sum, ⟨dy, ΔW·x⟩ over the layer's whole output: LoHa's on
            // up_blocks.0.resnets.1's shortcut came out 9.0e-5 from torch's with attention on GEMM tiles and 1.49e-4 on the
            // AVX-512 register tiles (another fp32 order of the same attention gradients; every other gradient ≤ 9.2e-5 either way).
            let cancelling = label.hasSuffix(".dora_scale") || label.hasSuffix(".scalar")
            XCTAssertLessThan(error, cancelling ? 3e-4 : 1e-4, "\(label) gradient")
        }
        return (worst, zeros)
    }

    /// The golden step's network (kohya's 192 U-Net modules, the script's rank and alpha) with the script's
    /// initial factors, normal(0, 0.2) from a generator seeded 1, down then up, in its module order; and its batch.
    func goldenSetup(_ golden: ModelFile, model: StableDiffusionModel) throws
        -> (network: LoRANetwork, names: [String], latents: Tensor, noise: Tensor, context: Tensor, timesteps: [Int]) {
        func tensor(_ name: String) throws -> [Float] { try XCTUnwrap(golden[name], name).floats() }
        let names = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((golden.metadata["modules"] ?? "[]").utf8)) as? [String])
        let rank = Int(golden.metadata["rank"] ?? "") ?? 0, alpha = Float(golden.metadata["alpha"] ?? "") ?? 0
        let network = LoRANetwork.kohya(ModelLayout(model.config), dim: rank, alpha: alpha, textEncoder: false) { 0.5 }
        try drawGoldenFactors(network, names: names, golden: golden)
        return (network, names, Tensor(shape: [2, 4, 16, 16], values: try tensor("latents")), Tensor(shape: [2, 4, 16, 16], values: try tensor("noise")),
                Tensor(shape: [2, 77, 128], values: try tensor("context")), try tensor("timesteps").map { Int($0) })
    }

    /// The golden scripts' initial factors: normal(0, 0.2) from a generator seeded 1, down then up, in `names`' order
    /// (torch's AVX2 or scalar normal path, as the golden's cpu_capability says it ran).
    func drawGoldenFactors(_ network: LoRANetwork, names: [String], golden: ModelFile) throws {
        let capability = (golden.metadata["cpu_capability"] ?? "").uppercased()
        let byName = Dictionary(uniqueKeysWithValues: network.loraModules.map { ($0.name, $0) })
        var generator = TorchGenerator(seed: 1, variant: capability == "AVX2" || capability == "AVX512" ? .avx2 : .libm)
        for name in names {
            let module = try XCTUnwrap(byName[name], name)
            for parameter in [module.down, module.up] { parameter.values = generator.randn(parameter.count).map { $0 * 0.2 } }
        }
    }

    func testOneStepAndTenAdamWStepsEqualKohyaInTorch() throws {
        let golden = try ModelFile.open(Self.root + "/Fixtures/golden/training/step.safetensors")
        func tensor(_ name: String) throws -> [Float] { try XCTUnwrap(golden[name], name).floats() }
        let model = try model()
        try assertGoldenMatchesFixture(golden, model)
        let (network, names, latents, noise, context, timesteps) = try goldenSetup(golden, model: model)
        XCTAssertEqual(network.loraModules.count, 192, "kohya's SD1 U-Net module set")
        XCTAssertEqual(Set(network.loraModules.map(\.name)), Set(names), "the same modules as kohya's create_modules")
        let losses = try XCTUnwrap(golden["losses"]).floats()
        let tape = network.tape(for: model)
        let objective = DiffusionObjective()
        var optimizer = AdamW(weightDecay: 0.01)
        var lastLoss = 0.0
        for step in 0..<10 {
            for p in network.parameters { p.gradient.zero() }
            let loss = unetTrainingStep(model.unet, tape: tape, objective: objective, latents: latents, noise: noise, timesteps: timesteps, context: context).loss
            XCTAssertEqual(loss, Double(losses[step]), accuracy: 1e-5 * Double(losses[step]), "loss at step \(step + 1)")
            lastLoss = loss
            if step == 0 {
                var worst = 0.0
                for module in network.loraModules {
                    for (parameter, kind) in [(module.down, "lora_down"), (module.up, "lora_up")] {
                        let error = relativeError(parameter.gradient.values, try tensor("\(module.name).\(kind).grad"))
                        worst = max(worst, error)
                        XCTAssertLessThan(error, 1e-4, "\(module.name).\(kind) gradient")
                    }
                }
                print(String(format: "kohya step on the SD1 engine fixture: loss %.7f (torch %.7f), worst gradient error %.2e", loss, losses[0], worst))
            }
            optimizer.update([ParameterGroup(name: "unet", parameters: network.parameters, learningRate: 1e-3)])
        }
        var worst = 0.0
        for module in network.loraModules {
            for (parameter, kind) in [(module.down, "lora_down"), (module.up, "lora_up")] {
                let error = relativeError(parameter.values, try tensor("\(module.name).\(kind).after10"))
                worst = max(worst, error)
                XCTAssertLessThan(error, 2.5e-4, "\(module.name).\(kind) after ten AdamW steps")
            }
        }
        print(String(format: "ten AdamW steps: last loss %.6f (torch %.6f), worst factor error %.2e", lastLoss, losses[9], worst))
    }

    /// sd-scripts' LoRA-FA (lora_fa_step.safetensors: networks/lora_fa.py on the fixture, dim 2 alpha 1.5): kohya's
    /// module set, lora_up alone trained (what its prepare_optimizer_params hands AdamW), and
    /// ten AdamW steps from the script's factors: each loss within 1e-5, the first step's lora_up gradients within 1e-4,
    /// lora_up after ten steps within 2.5e-4 as kohya's, lora_down untouched and given no gradient.
    func testLoRAFATenAdamWStepsEqualSdScriptsInTorch() throws {
        let golden = try ModelFile.open(Self.root + "/Fixtures/golden/training/lora_fa_step.safetensors")
        func tensor(_ name: String) throws -> [Float] { try XCTUnwrap(golden[name], name).floats() }
        let model = try model()
        try assertGoldenMatchesFixture(golden, model)
        let names = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((golden.metadata["modules"] ?? "[]").utf8)) as? [String])
        let trained = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((golden.metadata["trained"] ?? "[]").utf8)) as? [String])
        let plan = LoRANetwork.kohyaPlan(ModelLayout(model.config), dim: 2, alpha: 1.5, textEncoder: false)
        let network = LoRANetwork.loraFA(plan: plan) { [Float](repeating: 1, count: $0) }
        XCTAssertEqual(Set(network.loraModules.map(\.name)), Set(names), "sd-scripts' modules")
        XCTAssertEqual(Set(network.parameters.filter { !$0.isFrozen }.map(\.key)), Set(trained), "lora_up alone")
        XCTAssertEqual(trained.count, names.count)
        try drawGoldenFactors(network, names: names, golden: golden)
        let drawn = network.loraModules.map(\.down.values)
        let (latents, noise, context) = (Tensor(shape: [2, 4, 16, 16], values: try tensor("latents")), Tensor(shape: [2, 4, 16, 16], values: try tensor("noise")),
                                         Tensor(shape: [2, 77, 128], values: try tensor("context")))
        let timesteps = try tensor("timesteps").map { Int($0) }, losses = try XCTUnwrap(golden["losses"]).floats()
        let tape = network.tape(for: model)
        var optimizer = AdamW(weightDecay: 0.01)
        var lastLoss = 0.0
        for step in 0..<10 {
            for p in network.parameters { p.gradient.zero() }
            let loss = unetTrainingStep(model.unet, tape: tape, objective: DiffusionObjective(), latents: latents, noise: noise, timesteps: timesteps,
                                        context: context).loss
            XCTAssertEqual(loss, Double(losses[step]), accuracy: 1e-5 * Double(losses[step]), "loss at step \(step + 1)")
            lastLoss = loss
            if step == 0 {
                _ = compareGradients(try network.loraModules.map { ($0.up.key, $0.up.gradient.values, try tensor($0.name + ".lora_up.grad")) })
                for module in network.loraModules {
                    XCTAssertTrue(module.down.gradient.values.allSatisfy { $0 == 0 }, "\(module.name): no gradient for the frozen lora_down")
                }
            }
            optimizer.update([ParameterGroup(name: "unet", parameters: network.parameters.filter { !$0.isFrozen }, learningRate: 1e-3)])
        }
        var worst = 0.0
        for module in network.loraModules {
            let error = relativeError(module.up.values, try tensor(module.name + ".lora_up.after10"))
            worst = max(worst, error)
            XCTAssertLessThan(error, 2.5e-4, "\(module.name).lora_up after ten AdamW steps")
        }
        XCTAssertEqual(network.loraModules.map(\.down.values), drawn, "lora_down as drawn")
        print(String(format: "LoRA-FA: ten AdamW steps, last loss %.6f (torch %.6f), worst lora_up error %.2e", lastLoss, losses[9], worst))
    }

    /// LyCORIS's LoCon as lycoris.kohya builds it on the fixture (lycoris_step.safetensors: preset full, dim 2 alpha 1.5,
    /// conv_dim 1 conv_alpha 0.5): the same 281 modules with its ranks and alphas (dim on linear and 1×1 layers,
    /// conv_dim on wider kernels, conv_in, conv_out and the time embedding included), and the first training step's
    /// loss and every module's gradients (the time embedding's through every ResBlock's projection) against LyCORIS
    /// in torch, which adds up·down·scale to each weight before the layer runs.
    func testLyCORISLoConStepEqualsLyCORISInTorch() throws {
        let golden = try ModelFile.open(Self.root + "/Fixtures/golden/training/lycoris_step.safetensors")
        func tensor(_ name: String) throws -> [Float] { try XCTUnwrap(golden[name], name).floats() }
        let model = try model()
        try assertGoldenMatchesFixture(golden, model)
        let entries = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((golden.metadata["modules"] ?? "[]").utf8)) as? [[Any]])
        let plan = LoRANetwork.lycorisPlan(ModelLayout(model.config), dim: 2, alpha: 1.5, convDim: 1, convAlpha: 0.5, textEncoder: false)
        XCTAssertEqual(plan.count, 281)
        XCTAssertEqual(Set(plan.map(\.target.kohyaName)), Set(entries.compactMap { $0.first as? String }), "LyCORIS's module set")
        let planned = Dictionary(uniqueKeysWithValues: plan.map { ($0.target.kohyaName, ($0.rank, $0.alpha)) })
        for entry in entries {
            let name = try XCTUnwrap(entry[0] as? String), rank = try XCTUnwrap(entry[1] as? Int), alpha = try XCTUnwrap(entry[2] as? Double)
            XCTAssertEqual(planned[name]?.0, rank, name)
            XCTAssertEqual(planned[name].map { Double($0.1) }, alpha, name)
        }
        let network = LoRANetwork.kohya(plan: plan) { 0.5 }
        try drawGoldenFactors(network, names: entries.compactMap { $0.first as? String }, golden: golden)
        let loss = unetTrainingStep(model.unet, tape: network.tape(for: model), objective: DiffusionObjective(),
                                    latents: Tensor(shape: [2, 4, 16, 16], values: try tensor("latents")),
                                    noise: Tensor(shape: [2, 4, 16, 16], values: try tensor("noise")),
                                    timesteps: try tensor("timesteps").map { Int($0) },
                                    context: Tensor(shape: [2, 77, 128], values: try tensor("context"))).loss
        let expected = Double(try tensor("loss")[0])
        XCTAssertEqual(loss, expected, accuracy: 1e-5 * expected)
        let (worst, zeros) = compareGradients(try network.loraModules.flatMap { module in
            try [(module.down, "lora_down"), (module.up, "lora_up")].map { parameter, kind in
                ("\(module.name).\(kind)", parameter.gradient.values, try tensor("\(module.name).\(kind).grad"))
            }
        })
        XCTAssertEqual(zeros, 10, "the five 32-channel ResBlocks' projections, down and up")
        print(String(format: "LyCORIS LoCon step on the SD1 engine fixture: loss %.7f (torch %.7f), worst gradient error %.2e", loss, expected, worst))
    }

    /// LyCORIS's LoHa and LoKr as lycoris.kohya builds them on the fixture (lycoris_<algo>_step.safetensors: preset
    /// full, dim 2 alpha 1.5, conv_dim 1 conv_alpha 0.5; LoKr with the GUI's factor=-1 decompose_both=False, which
    /// LyCORIS reads as true), and its IA3Module on the same layers (lycoris_ia3_step: built directly, since that
    /// release's create_network has no ia3): each module's tensors (names, shapes, order) and saved alpha, then one
    /// step from factors drawn as the script draws them: the loss within 1e-5 and every gradient within 1e-4 of
    /// LyCORIS in torch.
    func testLyCORISLoHaAndLoKrStepsEqualLyCORISInTorch() throws {
        let model = try model()
        let plan = LoRANetwork.lycorisPlan(ModelLayout(model.config), dim: 2, alpha: 1.5, convDim: 1, convAlpha: 0.5, textEncoder: false)
        // lycoris_loha_tucker_step: the GUI's loha-sd15 switch use_cp, Tucker cores [2, 2, 3, 3] on every 3×3 kernel of
        // preset unet-convblock-only at conv_dim 2 (87 modules).
        let convblocks = LoRANetwork.lycorisPlan(ModelLayout(model.config), preset: .unetConvblockOnly, dim: 2, alpha: 1.5, convDim: 2, convAlpha: 0.5,
                                                 textEncoder: false)
        // lycoris_lokr_norm_step: the GUI's "sd15 - LoKr v1.1" (dim and conv_dim 100000, alpha 1, factor 6, decompose_both,
        // use_cp, which gives no module a core here, and train_norm: 108 NormModules); its golden keeps the gradients of
        // the norms, of down_blocks_1 and of conv_in.
        let v11 = LoRANetwork.lycorisPlan(ModelLayout(model.config), dim: 100000, alpha: 1, convDim: 100000, convAlpha: 1, textEncoder: false, trainNorm: true)
        let kronV11 = LyCORISAlgorithm.lokr(factor: 6, decomposeBoth: true, fullMatrix: false)
        XCTAssertEqual(v11.filter { $0.target.kind == .norm }.count, 108)
        // Gradient 0 (see compareGradients): the five 32-channel time_emb_proj modules' tensors, and for (IA)^3 also the
        // scales of the five convolutions before that level's one-channel GroupNorms.
        // lycoris_locon_tucker_step and lycoris_lokr_tucker_step: use_tucker with LoCon (lora_mid on the 52 3×3 kernels) and
        // LoKr (lokr_t2 wherever w2 is low-rank: the same 52 at conv_dim 2, factor -1), on the same 87 modules.
        // lycoris_<algo>_dora_step: dora_wd on the same 87 modules (LoCon, LoHa, LoKr), the gradients of some modules kept,
        // and LyCORIS's starting magnitudes of those (its layers' row norms).
        // lycoris_<algo>_scalar_step: use_scalar, each module's scalar trained (LoCon's before its layers, LoHa's and LoKr's last).
        // lycoris_<algo>_rank_dropout_step: rank_dropout=0.3 (LoHa's with dora_wd on the 87 modules, LoCon's and LoKr's on the
        // full preset), LyCORIS's draws seeded as lora-train's generator of each module is in pass 0 (rank_dropout_seed), with
        // some modules' masks and gradients kept.
        let kron = LyCORISAlgorithm.lokr(factor: -1, decomposeBoth: true, fullMatrix: false)
        typealias Case = (algorithm: LyCORISAlgorithm, tucker: Bool, dora: Bool, scalar: Bool, file: String, plan: [(target: LoRATarget, rank: Int, alpha: Float)])
        let cases: [Case] = [(.loha, false, false, false, "lycoris_loha_step", plan), (.loha, true, false, false, "lycoris_loha_tucker_step", convblocks),
                             (.locon, true, false, false, "lycoris_locon_tucker_step", convblocks), (kron, true, false, false, "lycoris_lokr_tucker_step", convblocks),
                             (kron, false, false, false, "lycoris_lokr_step", plan), (kronV11, true, false, false, "lycoris_lokr_norm_step", v11),
                             (.ia3, false, false, false, "lycoris_ia3_step", plan), (.locon, false, true, false, "lycoris_locon_dora_step", convblocks),
                             (.loha, false, true, false, "lycoris_loha_dora_step", convblocks), (kron, false, true, false, "lycoris_lokr_dora_step", convblocks),
                             (.locon, false, false, true, "lycoris_locon_scalar_step", convblocks), (.loha, false, false, true, "lycoris_loha_scalar_step", convblocks),
                             (kron, false, false, true, "lycoris_lokr_scalar_step", convblocks),
                             (.locon, false, false, false, "lycoris_locon_rank_dropout_step", plan), (.loha, false, true, false, "lycoris_loha_rank_dropout_step", convblocks),
                             (kron, false, false, false, "lycoris_lokr_rank_dropout_step", plan)]
        for (algorithm, tucker, dora, scalar, file, plan) in cases {
            let golden = try ModelFile.open(Self.root + "/Fixtures/golden/training/\(file).safetensors")
            func tensor(_ name: String) throws -> [Float] { try XCTUnwrap(golden[name], "\(file): \(name)").floats() }
            try assertGoldenMatchesFixture(golden, model)
            let entries = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((golden.metadata["modules"] ?? "[]").utf8)) as? [[Any]])
            let network = try LoRANetwork.lycoris(plan: plan, algorithm: algorithm, tucker: tucker, trainedScalar: scalar,
                                                  dora: dora ? { (target) throws(ModelError) in try LoRANetwork.weight(of: target, in: model) } : nil,
                                                  uniform: { 0.5 }, normal: { [Float](repeating: 0, count: $0) })
            if scalar { XCTAssertEqual(network.parameters.filter { $0.key.hasSuffix(".scalar") && $0.shape == [] }.count, plan.count, file) }
            if dora {
                let decomposed = network.modules.compactMap { $0 as? DoRAModule }
                XCTAssertEqual(decomposed.count, plan.count, "\(file): every module decomposed")
                var started = 0
                for module in decomposed where golden[module.magnitude.key + ".initial"] != nil {
                    XCTAssertLessThan(relativeError(module.magnitude.values, try tensor(module.magnitude.key + ".initial")), 1e-6, module.name)
                    started += 1
                }
                XCTAssertGreaterThanOrEqual(started, 9, "\(file): LyCORIS's starting magnitudes compared")
            }
            if tucker, plan.count == convblocks.count {
                let cores = network.parameters.filter { ["hada_t1", "lora_mid.weight", "lokr_t2"].contains(where: $0.key.hasSuffix) }
                XCTAssertEqual(cores.count, 52, "\(file): Tucker cores on the 52 3×3 kernels of 87 modules")
            }
            XCTAssertEqual(network.modules.count, entries.count, file)
            XCTAssertEqual(plan.reduce(0) { $0 + LoRANetwork.parameterCount($1.target, rank: $1.rank, algorithm: algorithm, tucker: tucker, dora: dora,
                                                                            trainedScalar: scalar) },
                           network.parameters.reduce(0) { $0 + $1.count }, "\(file): the memory check counts what the modules hold")
            let byName = Dictionary(uniqueKeysWithValues: network.modules.map { ($0.name, $0) })
            var generator = TorchGenerator(seed: 1, variant: ["AVX2", "AVX512"].contains((golden.metadata["cpu_capability"] ?? "").uppercased()) ? .avx2 : .libm)
            for entry in entries {
                let name = try XCTUnwrap(entry[0] as? String), alpha = try XCTUnwrap(entry[2] as? Double)
                let tensors = try XCTUnwrap(entry[3] as? [[Any]]).map { ($0[0] as? String ?? "", $0[1] as? [Int] ?? []) }
                let module = try XCTUnwrap(byName[name], "\(file): LyCORIS's \(name) missing")
                XCTAssertEqual(module.parameters.map(\.key), tensors.map { name + "." + $0.0 }, "\(file) \(name): tensors and their order")
                XCTAssertEqual(module.parameters.map(\.shape), tensors.map(\.1), "\(file) \(name): shapes")
                XCTAssertEqual(module.fileScalars.first { $0.suffix == "alpha" }.map { Double($0.value) } ?? 0, alpha, "\(file) \(name): saved alpha")
                for parameter in module.parameters { parameter.values = generator.randn(parameter.count).map { $0 * 0.2 } }
            }
            let tape = network.tape(for: model)
            let arguments = try JSONSerialization.jsonObject(with: Data((golden.metadata["network_args"] ?? "{}").utf8)) as? [String: String] ?? [:]
            let rankDropout = try arguments["rank_dropout"].flatMap(Double.init).flatMap { p in
                p == 0 ? nil : LoRADropout(neuron: nil, rank: p, module: nil, seed: try XCTUnwrap(UInt64(golden.metadata["rank_dropout_seed"] ?? "")),
                                           rankDropout: .weightRows)
            }
            if let rankDropout {
                // The rows LyCORIS dropped are the rows lora-train drops.
                let masks = golden.tensors.filter { $0.name.hasSuffix(".rank_dropout_mask") }
                XCTAssertGreaterThanOrEqual(masks.count, 9, file)
                for entry in masks {
                    let name = String(entry.name.dropLast(".rank_dropout_mask".count)), expected = try tensor(entry.name)
                    XCTAssertEqual(rankDropout.rowMask(name, rows: expected.count), expected, "\(file): \(name)'s rank dropout mask")
                }
                tape.dropout = rankDropout
            }
            func step(checkpointing: Bool = false) throws -> Double {
                for p in network.parameters { p.gradient.zero() }
                tape.reset()
                return unetTrainingStep(model.unet, tape: tape, objective: DiffusionObjective(),
                                        latents: Tensor(shape: [2, 4, 16, 16], values: try tensor("latents")),
                                        noise: Tensor(shape: [2, 4, 16, 16], values: try tensor("noise")),
                                        timesteps: try tensor("timesteps").map { Int($0) },
                                        context: Tensor(shape: [2, 77, 128], values: try tensor("context")), checkpointing: checkpointing).loss
            }
            // Gradient checkpointing recomputes each block's forward, ΔW folded in again: the same gradients.
            _ = try step(checkpointing: true)
            let recomputed = network.parameters.map(\.gradient.values)
            let loss = try step()
            XCTAssertLessThan(relativeError(recomputed.flatMap { $0 }, network.parameters.flatMap(\.gradient.values)), 1e-6, "\(file): checkpointing")
            let expected = Double(try tensor("loss")[0])
            XCTAssertEqual(loss, expected, accuracy: 1e-5 * expected, file)
            // With Tucker cores the reference is torch's autograd through LyCORIS's own einsum (`.autograd_grad`): LyCORIS's
            // HadaWeightTucker.backward builds w1_a's gradient from t2·w2_b (and w2_a's from t1·w1_b), so kohya trains those
            // two tensors on a wrong gradient; lora-train uses the exact one (finite differences in BackwardTests agree).
            let exact = golden.tensors.contains { $0.name.hasSuffix(".autograd_grad") }
            let compared = network.parameters.filter { golden[$0.key + ".grad"] != nil }
            let (worst, zeros) = compareGradients(try compared.map { ($0.key, $0.gradient.values, try tensor($0.key + (exact ? ".autograd_grad" : ".grad"))) })
            if file == "lycoris_lokr_norm_step" {
                XCTAssertEqual(compared.filter { $0.key.hasSuffix("_norm") }.count, 216, "every NormModule's w_norm and b_norm compared")
                XCTAssertGreaterThan(compared.count, 216)
            } else if dora || scalar || rankDropout != nil {
                let kept = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((golden.metadata["gradients_of"] ?? "[]").utf8)) as? [String])
                let expected = network.modules.filter { module in kept.contains { module.name.contains($0) } }.flatMap(\.parameters)
                XCTAssertEqual(compared.map(\.key), expected.map(\.key), "\(file): the kept modules' gradients compared")
                if dora || scalar {
                    XCTAssertEqual(compared.filter { $0.key.hasSuffix(dora ? ".dora_scale" : ".scalar") }.count,
                                   network.modules.filter { module in kept.contains { module.name.contains($0) } }.count)
                }
            } else {
                XCTAssertEqual(compared.count, network.parameters.count, "\(file): every gradient compared")
            }
            if exact {
                var differing = Set<String>()
                for p in network.parameters {
                    let theirs = try tensor(p.key + ".grad")
                    if (theirs.map(abs).max() ?? 0) > 1e-6, relativeError(p.gradient.values, theirs) > 1e-2 { differing.insert(p.key) }
                }
                let cored = network.modules.compactMap { $0 as? LoHaModule }.filter { $0.t1 != nil }
                XCTAssertEqual(differing, Set(cored.flatMap { [$0.w1a.key, $0.w2a.key] }), "LyCORIS's Tucker gradients differ in w1_a and w2_a only")
            }
            let projection = try XCTUnwrap(network.modules.first { $0.name.hasSuffix("resnets_0_time_emb_proj") })
            let expectedZeros = file == "lycoris_lokr_norm_step" ? 0 : algorithm == .ia3 ? 10 : 5 * projection.parameters.count
            if !dora && !scalar && rankDropout == nil { XCTAssertEqual(zeros, expectedZeros, "\(file): zero gradients") }
            // module_dropout: a dropped module leaves the layer's weight alone and gets no gradient; the others train.
            let dropout = LoRADropout(neuron: nil, rank: nil, module: 0.5, seed: 11)
            tape.dropout = dropout
            let dropped = try step()
            tape.dropout = nil
            XCTAssertNotEqual(dropped, loss, file)
            var skipped = 0
            for module in network.modules {
                let silent = module.parameters.allSatisfy { $0.gradient.values.allSatisfy { $0 == 0 } }
                if dropout.skipsModule(module.name) { skipped += 1; XCTAssertTrue(silent, "\(module.name) was dropped") }
            }
            XCTAssertTrue((plan.count / 5...plan.count * 4 / 5).contains(skipped), "\(skipped) of \(plan.count) dropped at p = 0.5")
            print(String(format: "LyCORIS %@ step on the SD1 engine fixture: loss %.7f (torch %.7f), worst gradient error %.2e, %d zero gradients",
                         algorithm.name, loss, expected, worst, zeros))
        }
    }

    /// A trained LoHa or LoKr file (the tensors `LoRATrainer.save` writes) read by the suite's own LyCORIS reader (what
    /// lora-merge, lora-inspect and lora-xyz use) gives each module's ΔW back, LoKr's scale rules included (both factors
    /// full: alpha saved as the rank, scale 1), LoHa's max-norm scalar included; and the adapters training samples with
    /// give lora-xyz's U-Net output (with train_norm's w_norm/b_norm too).
    func testLoHaAndLoKrFilesReadBackAsTheTrainedWeightChange() throws {
        let model = try model()
        let plan = LoRANetwork.lycorisPlan(ModelLayout(model.config), dim: 2, alpha: 1.5, convDim: 1, convAlpha: 0.5)
        let folder = Self.folder + "/lycoris-files"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var generator = TorchGenerator(seed: 5)
        let x = Tensor(shape: [1, 4, 16, 16], values: generator.randn(4 * 16 * 16)), context = Tensor(shape: [1, 77, 128], values: generator.randn(77 * 128))
        let plain = model.unet.forward(x, timesteps: [400], context: context)
        // With train_norm the norms' w_norm/b_norm too: samples shift γ and β as lora-xyz does from the file.
        let withNorms = LoRANetwork.lycorisPlan(ModelLayout(model.config), dim: 2, alpha: 1.5, convDim: 1, convAlpha: 0.5, trainNorm: true)
        // With use_tucker: LoHa's hada_t1/t2, LoKr's lokr_t2 (conv_dim 1: w2 low-rank on every 3×3 kernel), LoCon's lora_mid;
        // with dora_wd: LoCon (with its cores), LoHa and LoKr inside DoRA (the text encoder's packed rows included).
        let kron = LyCORISAlgorithm.lokr(factor: -1, decomposeBoth: true, fullMatrix: false)
        for (index, (algorithm, plan, tucker, dora)) in [(LyCORISAlgorithm.loha, plan, false, false), (kron, plan, false, false),
                                                         (.lokr(factor: 4, decomposeBoth: false, fullMatrix: true), plan, false, false), (.ia3, plan, false, false),
                                                         (.loha, withNorms, false, false), (.loha, plan, true, false), (kron, plan, true, false),
                                                         (.locon, plan, true, false), (.locon, plan, true, true), (.loha, plan, false, true),
                                                         (kron, plan, false, true)].enumerated() {
            let network = try LoRANetwork.lycoris(plan: plan, algorithm: algorithm, tucker: tucker,
                                                  dora: dora ? { (target) throws(ModelError) in try LoRANetwork.weight(of: target, in: model) } : nil,
                                                  uniform: { 0.5 }, normal: { [Float](repeating: 0, count: $0) })
            if dora { XCTAssertEqual(network.modules.filter { $0 is DoRAModule }.count, plan.count) }
            if tucker {
                XCTAssertGreaterThan(network.parameters.filter { ["hada_t1", "lora_mid.weight", "lokr_t2"].contains(where: $0.key.hasSuffix) }.count, 40)
            }
            for parameter in network.parameters { parameter.values = generator.randn(parameter.count).map { $0 * 0.1 } }
            // LyCORIS's max norm moves LoHa's scalars, which the file holds multiplied into hada_w1_a.
            if algorithm == .loha { XCTAssertGreaterThan(network.applyMaxNorm(2e-3).keysScaled, 10) }
            let path = folder + "/\(index).safetensors"
            _ = try KohyaLoRAWriter.write(tensors: network.fileTensors(), to: path, dtype: .f32, metadata: Metadata())
            let file = try NetworkFile(model: try ModelFile.open(path))
            XCTAssertEqual(file.modules.count, network.modules.count, algorithm.name)
            let read = Dictionary(uniqueKeysWithValues: file.modules.map { ($0.name, $0) })
            var fullBoth = 0
            // (IA)^3's ΔW reads the base weight: the U-Net outputs below compare it.
            for case let module as any WeightDeltaModule in network.modules where !module.readsBase {
                let theirs = try XCTUnwrap(read[module.name], module.name)
                XCTAssertLessThan(relativeError(module.delta(), try theirs.delta().values), 1e-6, "\(algorithm.name) \(module.name)")
                if theirs.rank == nil { fullBoth += 1 }
            }
            if case .lokr(_, _, true, _) = algorithm { XCTAssertEqual(fullBoth, network.modules.count, "full_matrix: every LoKr module full") }
            for lora in network.loraModules where lora.mid != nil {
                let theirs = try XCTUnwrap(read[lora.name], lora.name)
                let ours = LinearAlgebra.multiply(Matrix(rows: lora.shape.outputs, cols: lora.rank, values: lora.up.values),
                                                  Matrix(rows: lora.rank, cols: lora.shape.columns, values: lora.composedDown)).values.map { $0 * lora.effectiveScale }
                XCTAssertLessThan(relativeError(ours, try theirs.delta().values), 1e-6, "LoCon Tucker \(lora.name)")
            }
            let ours = try network.adapters(for: model)
            let (runtime, _) = try RuntimeLoRA.adapters(for: model, loras: [try LoadedLoRA.open(try LoRASpec(parsing: path))])
            let a = model.unet.forward(x, timesteps: [400], context: context, adapters: ours)
            let b = model.unet.forward(x, timesteps: [400], context: context, adapters: runtime)
            XCTAssertLessThan(relativeError(a.values, b.values), 1e-5, "\(algorithm.name): training's samples vs lora-xyz")
            XCTAssertGreaterThan(relativeError(a.values, plain.values), 1e-3, "\(algorithm.name) must change the output")
        }
    }

    /// dora_wd on SD2, whose text encoder packs q, k and v into one in_proj_weight: each module's magnitude starts at the
    /// row norms of its own rows of the frozen weight (LyCORIS's modules wrap the separate q_proj/k_proj/v_proj kohya
    /// converts them to), and the U-Net's at their layers'.
    func testDoRAMagnitudesStartAtTheirRowsOfPackedSD2Weights() throws {
        let path = Self.folder + "/sd2_engine.safetensors"
        try FileManager.default.createDirectory(atPath: Self.folder, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: path) { try XCTUnwrap(FixtureSet.items.first { $0.name == "sd2_engine.safetensors" }).write(path) }
        let model = try StableDiffusionModel(checkpoint: path, tokenizer: try BPETokenizer.load(Self.root + "/Fixtures/tokenizer/clip_bpe_merges.txt.gz"))
        let plan = LoRANetwork.lycorisPlan(ModelLayout(model.config), dim: 2, alpha: 1, convDim: 1, convAlpha: 1)
        let network = try LoRANetwork.lycoris(plan: plan, algorithm: .loha, dora: { (target) throws(ModelError) in try LoRANetwork.weight(of: target, in: model) },
                                              uniform: { 0.5 }, normal: { [Float](repeating: 0.1, count: $0) })
        var packed = 0
        for (module, target) in zip(network.modules, network.targets) {
            let dora = try XCTUnwrap(module as? DoRAModule, module.name)
            let weight = try XCTUnwrap(model.file[target.checkpointKey], target.checkpointKey).floats()
            let columns = target.shape.dropFirst().reduce(1, *), rows = target.rows ?? 0..<target.shape[0]
            let expected = rows.map { o in (0..<columns).reduce(0.0) { $0 + Double(weight[o * columns + $1]) * Double(weight[o * columns + $1]) }.squareRoot() }
            XCTAssertEqual(dora.magnitude.count, rows.count, module.name)
            XCTAssertLessThan(zip(dora.magnitude.values, expected).map { abs(Double($0) - $1) / max($1, 1e-6) }.max() ?? 1, 1e-6, module.name)
            if target.rows != nil { packed += 1 }
        }
        XCTAssertGreaterThan(packed, 5, "the text encoder's packed q, k and v")

        // With use_scalar too, torch's order (LyCORIS 3.2.0.post2's named_parameters with weight_decompose and use_scalar):
        // LoConModule [dora_scale, scalar, lora_down.weight, lora_up.weight], LohaModule/LokrModule [factors…, dora_scale, scalar].
        let linear = try XCTUnwrap(plan.first { $0.target.kind == .linear && $0.target.component == .unet })
        for (algorithm, expected) in [(LyCORISAlgorithm.locon, ["dora_scale", "scalar", "lora_down.weight", "lora_up.weight"]),
                                      (.loha, ["hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "dora_scale", "scalar"]),
                                      (.lokr(factor: -1, decomposeBoth: false, fullMatrix: true), ["lokr_w1", "lokr_w2", "dora_scale", "scalar"])] {
            let both = try LoRANetwork.lycoris(plan: [linear], algorithm: algorithm, trainedScalar: true,
                                               dora: { (target) throws(ModelError) in try LoRANetwork.weight(of: target, in: model) },
                                               uniform: { 0.5 }, normal: { [Float](repeating: 0.1, count: $0) })
            XCTAssertEqual(both.parameters.map(\.key), expected.map { linear.target.kohyaName + "." + $0 }, algorithm.name)
        }
    }

    /// LokrModule's split of layers at SD1/SD2's real widths (lokr_layouts.json) for the kohya_ss GUI's LoKr settings
    /// (dim 64 factor -1, dim 100000 factor 6, small ranks, full_matrix, alpha 0, unbalanced_factorization): the same tensors in the same order
    /// and shapes, the same saved alpha and scale; and the memory estimate counts what the module holds.
    func testLoKrSplitsLayersAsLyCORIS() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/Fixtures/golden/training/lokr_layouts.json"))
        let layouts = try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["layouts"] as? [[String: Any]])
        XCTAssertEqual(layouts.count, 160)
        for entry in layouts {
            let inputs = try XCTUnwrap(entry["in"] as? Int), outputs = try XCTUnwrap(entry["out"] as? Int), kernel = try XCTUnwrap(entry["kernel"] as? Int)
            let dim = try XCTUnwrap(entry["dim"] as? Int), alpha = Float(try XCTUnwrap(entry["alpha"] as? Double))
            let factor = Int(try XCTUnwrap(entry["factor"] as? String))!
            // The script passes strings as kohya does: any non-empty decompose_both is true in LokrModule.
            let decomposeBoth = !((entry["decompose_both"] as? String) ?? "").isEmpty, fullMatrix = entry["full_matrix"] as? Bool ?? false
            let unbalanced = entry["unbalanced_factorization"] as? Bool ?? false
            let shape: LoRAModule.Shape = entry["kind"] as? String == "linear" ? .linear(in: inputs, out: outputs)
                : .conv(in: inputs, out: outputs, kernel: kernel, stride: 1, padding: kernel / 2)
            let layout = LoKrLayout(shape, rank: dim, factor: factor, decomposeBoth: decomposeBoth, fullMatrix: fullMatrix, unbalanced: unbalanced)
            let module = LoKrModule.lycorisInitialized(name: "m", shape: shape, layout: layout, rank: dim, alpha: alpha) { 0.5 }
            let label = "\(entry["kind"]!) \(inputs)→\(outputs) k\(kernel) dim \(dim) factor \(factor)" + (unbalanced ? " unbalanced" : "")
            let tensors = try XCTUnwrap(entry["tensors"] as? [[Any]]).map { ("m." + ($0[0] as? String ?? ""), $0[1] as? [Int] ?? []) }
            XCTAssertEqual(module.parameters.map(\.key), tensors.map(\.0), label)
            XCTAssertEqual(module.parameters.map(\.shape), tensors.map(\.1), label)
            XCTAssertEqual(Double(module.alpha), try XCTUnwrap(entry["saved_alpha"] as? Double), label)
            XCTAssertEqual(Double(module.scale), try XCTUnwrap(entry["scale"] as? Double), accuracy: 1e-7, label)
            XCTAssertEqual(layout.parameterCount(rank: dim), module.parameters.reduce(0) { $0 + $1.count }, label)
            if shape.weightCount < 200_000 { XCTAssertEqual(module.delta(), [Float](repeating: 0, count: shape.weightCount), "\(label): ΔW starts at 0") }
        }
    }

    /// Each LyCORIS preset the kohya_ss GUI offers places the modules lycoris.kohya places (lycoris_presets.json:
    /// create_network on the fixture's U-Net and CLIP), with the same ranks and alphas, text encoder included.
    func testLyCORISPresetsPlaceLyCORISModules() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/Fixtures/golden/training/lycoris_presets.json"))
        let golden = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let presets = try XCTUnwrap(golden["presets"] as? [String: [String: [[Any]]]])
        XCTAssertEqual(Set(presets.keys), Set(LyCORISPreset.allCases.map(\.rawValue)))
        let layout = ModelLayout(try model().config)
        for preset in LyCORISPreset.allCases {
            let entries = try XCTUnwrap(presets[preset.rawValue]).values.flatMap { $0 }
            let plan = LoRANetwork.lycorisPlan(layout, preset: preset, dim: 2, alpha: 1.5, convDim: 1, convAlpha: 0.5)
            let expected = Dictionary(uniqueKeysWithValues: try entries.map { e -> (String, [Double]) in
                (try XCTUnwrap(e[0] as? String), [Double(try XCTUnwrap(e[1] as? Int)), try XCTUnwrap(e[2] as? Double)])
            })
            let ours = Dictionary(uniqueKeysWithValues: plan.map { ($0.target.kohyaName, [Double($0.rank), Double($0.alpha)]) })
            XCTAssertEqual(Set(ours.keys).subtracting(expected.keys).sorted(), [], "\(preset.rawValue): modules LyCORIS does not place")
            XCTAssertEqual(Set(expected.keys).subtracting(ours.keys).sorted(), [], "\(preset.rawValue): LyCORIS's modules missing")
            for (name, value) in expected where ours[name] != nil { XCTAssertEqual(ours[name], value, "\(preset.rawValue) \(name)") }
            // train_norm: the NormModules LyCORIS adds with the same preset.
            let norms = try XCTUnwrap((golden["norms"] as? [String: [String]])?[preset.rawValue])
            let withNorms = LoRANetwork.lycorisPlan(layout, preset: preset, dim: 2, alpha: 1.5, convDim: 1, convAlpha: 0.5, trainNorm: true)
            XCTAssertEqual(withNorms.filter { $0.target.kind == .norm }.map(\.target.kohyaName).sorted(), norms, "\(preset.rawValue): train_norm's modules")
            XCTAssertEqual(withNorms.count, plan.count + norms.count)
        }
        // --dim_from_weights: every module of the file, as LyCORIS's create_network_from_weights, whatever the preset.
        let fromFile = LoRANetwork.lycorisPlan(layout, preset: .attnMLP, dim: 2, alpha: 1, convDim: 1, convAlpha: 1,
                                               fromWeights: ["lora_unet_conv_in": (3, 1.5), "lora_unet_time_embedding_linear_1": (5, 2)])
        XCTAssertEqual(fromFile.map(\.target.kohyaName).sorted(), ["lora_unet_conv_in", "lora_unet_time_embedding_linear_1"])
        XCTAssertEqual(fromFile.map(\.rank).sorted(), [3, 5])
    }

    /// `--mixed-precision bf16`: the first step of the golden batch with bf16 GEMMs (the emulated arithmetic
    /// on every host, oneDNN's bf16 kernels too where the CPU has them) against kohya's bf16 run in torch
    /// (step_bf16.safetensors: bf16 U-Net under CPU autocast, which also rounds every matmul's and conv's
    /// output to bf16, so no bf16 GEMM of ours can equal it). The bf16 step must move off fp32's and land
    /// near torch's bf16 step, within the spread bf16 itself causes.
    func testBF16StepIsCloseToKohyasAutocastStep() throws {
        let golden = try ModelFile.open(Self.root + "/Fixtures/golden/training/step.safetensors")
        let autocast = try ModelFile.open(Self.root + "/Fixtures/golden/training/step_bf16.safetensors")
        func tensor(_ file: ModelFile, _ name: String) throws -> [Float] { try XCTUnwrap(file[name], name).floats() }
        let model = try model()
        XCTAssertEqual(autocast.metadata["fixture_sha256"], golden.metadata["fixture_sha256"])
        let (network, _, latents, noise, context, timesteps) = try goldenSetup(golden, model: model)
        let tape = network.tape(for: model)
        func step(_ precision: ComputePrecision) -> (loss: Double, gradients: [String: [Float]]) {
            for p in network.parameters { p.gradient.zero() }
            let loss = precision.run { unetTrainingStep(model.unet, tape: tape, objective: DiffusionObjective(), latents: latents, noise: noise,
                                                        timesteps: timesteps, context: context).loss }
            var gradients: [String: [Float]] = [:]
            for m in network.loraModules { (gradients[m.name + ".lora_down"], gradients[m.name + ".lora_up"]) = (m.down.gradient.values, m.up.gradient.values) }
            return (loss, gradients)
        }
        // The loss's relative difference, and the gradients' over all modules: ‖a − b‖ / ‖b‖ (one module's worst
        // element is no measure here: bf16 moves the small gradients of the 2×2 level by tens of percent).
        func compare(_ ours: (loss: Double, gradients: [String: [Float]]), _ file: ModelFile, loss: Double) throws -> (loss: Double, gradient: Double) {
            var difference = 0.0, norm = 0.0
            for (key, values) in ours.gradients {
                for (a, b) in zip(values, try tensor(file, key + ".grad")) { difference += Double(a - b) * Double(a - b); norm += Double(b) * Double(b) }
            }
            return (abs(ours.loss - loss) / loss, (difference / norm).squareRoot())
        }
        let torchFP32Loss = Double(try XCTUnwrap(golden["losses"]).floats()[0]), torchBF16Loss = Double(try XCTUnwrap(autocast["loss"]).floats()[0])
        let fp32 = step(.fp32)
        let emulated = LinearAlgebra.withRouting(GEMMRouting(parallel: .oneDNN, singleThreaded: .oneDNN, arithmetic: .bf16Emulated)) { step(.bf16) }
        let torchSpread = try compare(fp32, autocast, loss: torchBF16Loss)   // how far bf16 moves torch's own step from our fp32 one
        let ours = try compare(emulated, autocast, loss: torchBF16Loss)
        let moved = try compare(emulated, golden, loss: torchFP32Loss)
        print(String(format: "bf16 step: loss %.6f (torch autocast %.6f, fp32 %.6f); vs torch bf16: loss %.1e, gradients %.1e "
                     + "(our fp32 step: %.1e, %.1e); vs torch fp32: %.1e, %.1e", emulated.loss, torchBF16Loss, fp32.loss,
                     ours.loss, ours.gradient, torchSpread.loss, torchSpread.gradient, moved.loss, moved.gradient))
        XCTAssertGreaterThan(moved.gradient, 1e-4, "bf16 operands must change the step")
        // Measured on the AMD host (emulated): loss 6.1e-5 and gradients 5.6e-2 from torch's bf16 step, where our fp32
        // step is 3.8e-4 and 5.6e-2 away; through the Winograd convolutions it was 6.3e-4 and 1.1e-1. On the Intel
        // AVX512-BF16 host (2026-12-03): emulated 2.9e-4 and 5.6e-2, oneDNN's kernels 2.8e-4 and 5.4e-2 (NaN while
        // the attention heads' concurrent products shared oneDNN's scratchpad; GEMMRoutingTests).
        XCTAssertLessThan(ours.loss, max(torchSpread.loss, 1e-4), "the loss as near kohya's bf16 step as bf16's own spread")
        XCTAssertLessThan(ours.gradient, 1.5 * max(torchSpread.gradient, 1e-3), "gradients as near kohya's bf16 step as bf16's own spread")
        guard LinearAlgebra.bf16Available else { return print("no bf16 units here: only the emulated bf16 GEMM ran") }
        let native = step(.bf16)
        let nativeVsTorch = try compare(native, autocast, loss: torchBF16Loss)
        print(String(format: "bf16 step on oneDNN %@: vs torch bf16 loss %.1e, gradients %.1e", LinearAlgebra.oneDNNKernels.bf16,
                     nativeVsTorch.loss, nativeVsTorch.gradient))
        XCTAssertLessThan(nativeVsTorch.loss, max(torchSpread.loss, 1e-4))
        XCTAssertLessThan(nativeVsTorch.gradient, 1.5 * max(torchSpread.gradient, 1e-3))
    }

    /// kohya's text-encoder LoRA through clip skip 2 into the frozen U-Net
    /// (make_training_golden.py, transformers' CLIPTextModel + diffusers'
    /// U-Net): the loss, and the gradient of every module the loss reaches —
    /// the last layer's modules take no part with clip skip 2 and are left
    /// out of the optimizer as torch leaves their gradient None.
    func testTextEncoderStepEqualsKohyaInTorch() throws {
        let golden = try ModelFile.open(Self.root + "/Fixtures/golden/training/text_encoder_step.safetensors")
        func tensor(_ name: String) throws -> [Float] { try XCTUnwrap(golden[name], name).floats() }
        func list(_ key: String) throws -> [String] {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data((golden.metadata[key] ?? "[]").utf8)) as? [String])
        }
        let names = try list("modules"), reached = Set(try list("reached"))
        let rank = Int(golden.metadata["rank"] ?? "") ?? 0, alpha = Float(golden.metadata["alpha"] ?? "") ?? 0
        let capability = (golden.metadata["cpu_capability"] ?? "").uppercased()
        let model = try model()
        XCTAssertEqual(Hashing.sha256(try MappedFile(path: model.path)), golden.metadata["fixture_sha256"])
        let network = LoRANetwork.kohya(ModelLayout(model.config), dim: rank, alpha: alpha, unet: false, textEncoder: true) { 0.5 }
        XCTAssertEqual(Set(network.loraModules.map(\.name)), Set(names), "kohya's text-encoder modules")
        // The script's factors: normal(0, 0.2) from a generator seeded 2, down then up, in its module order.
        let byName = Dictionary(uniqueKeysWithValues: network.loraModules.map { ($0.name, $0) })
        var generator = TorchGenerator(seed: 2, variant: capability == "AVX2" || capability == "AVX512" ? .avx2 : .libm)
        for name in names {
            let module = try XCTUnwrap(byName[name])
            for parameter in [module.down, module.up] { parameter.values = generator.randn(parameter.count).map { $0 * 0.2 } }
        }
        let ids = try tensor("ids").map { Int($0) }
        let sequences = [Array(ids[0..<77]), Array(ids[77..<154])]
        let encoder = model.text.encoders[0]
        let textTape = network.tape(for: model, components: [.textEncoder1])
        let (context, saved) = encoder.forwardSaving(sequences, layerCount: encoder.config.layers - 1, finalNorm: true, tape: textTape)
        let unetTape = network.tape(for: model, components: [.unet])
        let (loss, contextGradient) = unetTrainingStep(model.unet, tape: unetTape, objective: DiffusionObjective(),
                                                       latents: Tensor(shape: [2, 4, 16, 16], values: try tensor("latents")),
                                                       noise: Tensor(shape: [2, 4, 16, 16], values: try tensor("noise")),
                                                       timesteps: try tensor("timesteps").map { Int($0) }, context: context)
        encoder.backward(saved, outputGradient: contextGradient, tape: textTape)
        let expectedLoss = try XCTUnwrap(golden["loss"]).floats()[0]
        XCTAssertEqual(loss, Double(expectedLoss), accuracy: 1e-5 * Double(expectedLoss))
        var worst = 0.0
        for module in network.loraModules {
            if !reached.contains(module.name) {
                XCTAssertTrue(module.down.gradient.values.allSatisfy { $0 == 0 } && module.up.gradient.values.allSatisfy { $0 == 0 }, module.name)
                continue
            }
            for (parameter, kind) in [(module.down, "lora_down"), (module.up, "lora_up")] {
                let error = relativeError(parameter.gradient.values, try tensor("\(module.name).\(kind).grad"))
                worst = max(worst, error)
                XCTAssertLessThan(error, 1e-4, "\(module.name).\(kind) gradient")
            }
        }
        XCTAssertEqual(reached.count, 12, "two of three layers reached with clip skip 2")
        print(String(format: "kohya text-encoder step: loss %.7f (torch %.7f), worst gradient error %.2e", loss, expectedLoss, worst))
    }

    /// A folder of one `width`×64 picture of a red square on blue ("zkw square"), planned in one 64×64 bucket.
    func squareImagePlan(in folder: String, width: Int, repeats: Int, randomCrop: Bool = false) throws -> DatasetPlan {
        var bitmap = Bitmap(width: width, height: 64, fill: RGB(40, 90, 200))
        bitmap.fill(x: 16, y: 16, width: 32, height: 32, color: RGB(230, 20, 20))
        try Data(try PNGCodec.encode(bitmap)).write(to: URL(fileURLWithPath: folder + "/a.png"))
        var subset = DatasetSubset(imageDirectory: folder, repeats: repeats)
        subset.classTokens = "zkw square"
        subset.randomCrop = randomCrop
        return DatasetPlan(subsets: [subset], images: [DatasetImage(path: folder + "/a.png", caption: "zkw square", captionSource: .classTokens,
                                                                    subsetIndex: 0, repeats: repeats, isRegularization: false, width: width, height: 64)],
                           bucketOf: [0], resizedSize: [Resolution(width, 64)],
                           buckets: [.init(resolution: Resolution(64, 64), entries: [Int](repeating: 0, count: repeats))],
                           batchSize: 1, bucketing: BucketSet(resolution: Resolution(64, 64), mode: .fixed))
    }

    /// Validation: the held-out images' loss with the network as it is, the same at every call (its own random
    /// source, reseeded each time), without dropout (a run with network, rank and module dropout measures what
    /// one without does), moved by the network, and adding nothing to the training's gradients.
    func testValidationLossIsRepeatableWithoutDropout() throws {
        let model = try model(encoder: true)
        let folder = NSTemporaryDirectory() + "validation-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let plan = try squareImagePlan(in: folder, width: 64, repeats: 2)
        func trainer(dropout: Bool) throws -> LoRATrainer {
            var c = TrainingConfiguration(outputDirectory: folder)
            c.learningRate = 1e-4
            if dropout { (c.networkDropout, c.rankDropout, c.moduleDropout) = (0.3, 0.2, 0.1) }
            let trainer = try LoRATrainer(model: model, plan: plan, validation: plan, configuration: c)
            try trainer.cacheLatents()
            var generator = TorchGenerator(seed: 3, variant: .libm)
            for module in trainer.network.loraModules { module.up.values = generator.randn(module.up.count).map { $0 * 0.05 } }
            return trainer
        }
        let withDropout = try trainer(dropout: true), plain = try trainer(dropout: false)
        XCTAssertEqual(withDropout.validationBatches, [[0], [0]], "each entry (repeats included) once, in the bucket's batch size")
        let first = try XCTUnwrap(try withDropout.validationLoss(epoch: 1, step: 0))
        XCTAssertEqual(try withDropout.validationLoss(epoch: 1, step: 5), first, "the same draws at every validation")
        XCTAssertEqual(try plain.validationLoss(epoch: 1, step: 0), first, "no dropout in validation")
        XCTAssertTrue(withDropout.network.parameters.allSatisfy { $0.gradient.values.allSatisfy { $0 == 0 } }, "no gradient from validation")
        for module in plain.network.loraModules { module.up.values = [Float](repeating: 0, count: module.up.count) }
        let base = try XCTUnwrap(try plain.validationLoss(epoch: 1, step: 0))
        XCTAssertNotEqual(base, first, "the network's state moves the validation loss")
        XCTAssertTrue(base.isFinite && base > 0)
    }

    /// Memory a run no longer needs: a model loaded without its decoder (lora-train samples nothing) says so when
    /// asked to decode; after caching, the encoder goes unless a subset encodes at every step (random_crop) (caching
    /// again then says why it cannot), and either way the run then trains.
    func testEncoderIsReleasedAfterCachingUnlessImagesEncodeEachStep() throws {
        let folder = NSTemporaryDirectory() + "release-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for encodesEachStep in [false, true] {
            let model = try model(encoder: true, decoder: false)
            XCTAssertNil(model.decoder)
            XCTAssertThrowsError(try Pipeline(model: model).decode(Tensor(shape: [1, 4, 8, 8], values: [Float](repeating: 0, count: 256)))) {
                XCTAssertTrue("\($0)".contains("without its VAE decoder"), "\($0)")
            }
            let plan = try squareImagePlan(in: folder, width: 80, repeats: 1, randomCrop: encodesEachStep)
            var c = TrainingConfiguration(outputDirectory: folder)
            (c.learningRate, c.maxTrainSteps, c.writesFiles) = (1e-4, 2, false)
            let trainer = try LoRATrainer(model: model, plan: plan, configuration: c)
            try trainer.cacheLatents()
            XCTAssertEqual(trainer.cache.perStep.isEmpty, !encodesEachStep)
            trainer.releaseEncoderIfDone()
            XCTAssertEqual(model.encoder == nil, !encodesEachStep, encodesEachStep ? "random_crop encodes at every step" : "nothing is encoded again")
            if !encodesEachStep {
                XCTAssertThrowsError(try trainer.cacheLatents()) { XCTAssertTrue("\($0)".contains("VAE encoder was released"), "\($0)") }
            }
            var losses: [Double] = []
            _ = try trainer.run { if case let .step(_, _, _, loss, _, _, _) = $0 { losses.append(loss) } }
            XCTAssertEqual(losses.count, 2)
            XCTAssertTrue(losses.allSatisfy { $0.isFinite && $0 > 0 }, "\(losses)")
        }
    }

    /// kohya's parameter groups: text encoder then U-Net; LoRA+ puts the lora_up weights in " plus" groups at
    /// rate × ratio; block learning rates make a group per block (zero-weight blocks have none).
    func testParameterGroupsAsKohya() throws {
        let model = try model(encoder: true)
        var subset = DatasetSubset(imageDirectory: "/d", repeats: 1)
        subset.classTokens = "x"
        let plan = DatasetPlan(subsets: [subset], images: [DatasetImage(path: "/d/a.png", caption: "x", captionSource: .classTokens, subsetIndex: 0,
                                                                       repeats: 1, isRegularization: false, width: 64, height: 64)],
                               bucketOf: [0], resizedSize: [Resolution(64, 64)], buckets: [.init(resolution: Resolution(64, 64), entries: [0])],
                               batchSize: 1, bucketing: BucketSet(resolution: Resolution(64, 64), mode: .fixed))
        var c = TrainingConfiguration(outputDirectory: "/tmp")
        (c.learningRate, c.textEncoderLearningRate, c.loraPlusUNetRatio) = (1e-4, 5e-5, 16)
        let groups = try LoRATrainer(model: model, plan: plan, configuration: c).parameterGroups(factor: 1)
        XCTAssertEqual(groups.map(\.name), ["textencoder", "unet", "unet plus"])
        XCTAssertEqual(groups.map(\.learningRate), [5e-5, 1e-4, 1.6e-3])
        XCTAssertTrue(groups[2].parameters.allSatisfy { $0.key.hasSuffix("lora_up.weight") })
        XCTAssertTrue(groups[1].parameters.allSatisfy { $0.key.hasSuffix("lora_down.weight") })
        c.blockLearningRates = try BlockLearningRates.parse(down: nil, mid: "0", up: "zeros+0.5")
        c.loraPlusUNetRatio = nil
        let blocks = try LoRATrainer(model: model, plan: plan, configuration: c).parameterGroups(factor: 1)
        XCTAssertFalse(blocks.contains { $0.name == "unet_block12" }, "the mid block's weight is 0")
        XCTAssertEqual(blocks.first { $0.name == "unet_block16" }?.learningRate ?? 0, 5e-5, accuracy: 1e-15) // up_blocks.1.attentions.0
        XCTAssertEqual(blocks.first { $0.name == "unet_block1" }?.learningRate ?? 0, 1e-4, accuracy: 1e-15)
    }

    /// Captions encoded as a batch equal the same captions one by one (one chunk and, with 150 tokens, two chunks joined as
    /// kohya joins them: BOS, 75 + 75 positions, the last chunk's end), and the training pass without modules equals the frozen one.
    func testCaptionBatchesEqualSingleCaptions() throws {
        let model = try model()
        for length in [nil, 150] as [Int?] {
            let encoder = try CaptionEncoder(text: model.text, maxTokenLength: length, clipSkip: 2)
            let captions = ["zkw shape, a red star on a white background", String(repeating: "many words here, ", count: 12)]
            let batch = try encoder.contexts(captions)
            let singles = try captions.map { caption throws in try encoder.context(caption) }
            XCTAssertEqual(batch.shape, [2, length == nil ? 77 : 152, model.config.contextDim])
            // The same up to the GEMM's summation order (a batch blocks the products differently).
            let joined = Tensor(shape: batch.shape, values: singles.flatMap(\.values))
            XCTAssertLessThan(Double(batch.maxAbsDifference(joined)), 1e-5, "length \(length ?? 75)")
            let (saving, _) = encoder.contextsSaving(captions, tape: TrainingTape(modules: [:]))
            XCTAssertLessThan(Double(saving.maxAbsDifference(batch)), 1e-5)
        }
    }

    /// `--weighted_captions`: tokens and position weights equal sd-scripts' `_get_input_ids(weighted=True)` on 7 captions
    /// at 75 and 150 tokens (Fixtures/golden/make_weighted_captions_golden.py: transformers' CLIPTokenizer, sd-scripts'
    /// own parser, in which "(word: 1.2)" is no weight).
    func testWeightedCaptionTokensAsKohya() throws {
        let model = try model()
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/Fixtures/golden/kohya/weighted_captions.json"))
        let cases = try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 14)
        for c in cases {
            let caption = c["caption"] as! String, length = c["max_token_length"] as! Int
            let encoder = try CaptionEncoder(text: model.text, maxTokenLength: length == 75 ? nil : length, weighted: true)
            let (ids, weights) = encoder.weightedChunks(caption)
            XCTAssertEqual(ids, c["ids"] as? [[Int]], "\(caption.prefix(40)) at \(length)")
            XCTAssertEqual(weights, (c["weights"] as! [[Double]]).map { $0.map(Float.init) }, "\(caption.prefix(40)) at \(length)")
        }
    }

    /// A weighted caption's context is the plain caption's (the same tokens) with each token's row times its weight, in one
    /// chunk and across two; its gradient into the text encoder's modules matches a central finite difference of
    /// ⟨G, context⟩ along a random direction of one module's factors.
    func testWeightedCaptionContextAndGradient() throws {
        let model = try model()
        for length in [nil, 150] as [Int?] {
            let weighted = try CaptionEncoder(text: model.text, maxTokenLength: length, clipSkip: 1, weighted: true)
            let plain = try CaptionEncoder(text: model.text, maxTokenLength: length, clipSkip: 1)
            let long = String(repeating: "more words, ", count: 30)
            let captions = ["zkw shape, (red star:1.3), [blue background]", long + "(tail:0.5)"]
            let expected = ["zkw shape, red star, blue background", long + "tail"]
            var reference = try plain.contexts(expected)
            let (_, positionWeights) = weighted.tokens(captions)
            let rows = try XCTUnwrap(positionWeights)
            plain.scaleRows(&reference, by: rows)
            XCTAssertLessThan(Double(try weighted.contexts(captions).maxAbsDifference(reference)), 1e-6, "length \(length ?? 75)")
            XCTAssertEqual(rows[5], 1.3)                      // BOS, "zkw", "shape", ",", then "red"
            XCTAssertEqual(rows[8], Float(1 / 1.1))           // ", " and then "blue"
            if length == 150 { XCTAssertEqual(rows.count, 2 * 152) }
        }
        let encoder = try CaptionEncoder(text: model.text, clipSkip: 1, weighted: true)
        let network = LoRANetwork.kohya(ModelLayout(model.config), dim: 2, alpha: 2, unet: false, textEncoder: true) { 0.5 }
        var generator = TorchGenerator(seed: 5, variant: .libm)
        for module in network.loraModules { for p in [module.down, module.up] { p.values = generator.randn(p.count).map { $0 * 0.3 } } }
        let tape = network.tape(for: model, components: [.textEncoder1])
        let captions = ["zkw shape, (red star:1.5), [[blue background]]"]
        let (context, saved) = encoder.contextsSaving(captions, tape: tape)
        let g = generator.randn(context.count)
        encoder.backward(saved, contextGradient: Tensor(shape: context.shape, values: g), tape: tape)
        let module = network.loraModules[network.loraModules.count - 1]
        let direction = generator.randn(module.up.count)
        let analytic = zip(module.up.gradient.values, direction).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        func objective(_ step: Float) -> Double {
            let start = module.up.values
            module.up.values = zip(start, direction).map { $0 + step * $1 }
            defer { module.up.values = start }
            let c = encoder.contextsSaving(captions, tape: tape).0
            return zip(c.values, g).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let h: Float = 1e-2
        let numeric = (objective(h) - objective(-h)) / Double(2 * h)
        XCTAssertEqual(analytic, numeric, accuracy: 2e-3 * max(1, abs(numeric)), "d⟨G, context⟩ along a direction of \(module.name).lora_up")
    }
}
