import Diffusion
import FixtureKit
import Foundation
import LoRACore
import XCTest

/// The engine builds its layers from the same architecture walk that names a
/// checkpoint's keys (ModelLayout, tested against the real SD1.5 key list):
/// what the engine reads is what the layout lists, and every module a LoRA
/// can target is read by some layer.
final class ArchitectureWalkTests: XCTestCase {
    func testEngineReadsTheLayoutsTensorsAndEveryLoRATarget() throws {
        for family in ["sd1", "sd2", "sdxl"] {
            let path = try EngineGolden.fixture("\(family)_engine.safetensors")
            let model = try StableDiffusionModel(checkpoint: path, tokenizer: EngineGolden.tokenizer, options: .init(loadEncoder: true))
            let layout = ModelLayout(model.config)
            let read = Set(model.layerKeys.keys), listed = Set(layout.tensors.map(\.name))
            XCTAssertEqual(read.subtracting(listed), [], "\(family): the engine reads keys the layout does not name")
            // What the layout names and no layer reads: only bookkeeping. The DDPM schedule buffers
            // (the engine computes the standard schedule; identical for released models), EMA counters,
            // CLIP's position ids and logit scale.
            let bookkeeping: Set<String> = ["alphas_cumprod", "alphas_cumprod_prev", "betas", "log_one_minus_alphas_cumprod",
                                            "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "posterior_variance",
                                            "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                                            "sqrt_recipm1_alphas_cumprod", "model_ema.decay", "model_ema.num_updates"]
            let unread = listed.subtracting(read).subtracting(bookkeeping).filter { !$0.hasSuffix("position_ids") && !$0.hasSuffix("logit_scale") }
            XCTAssertEqual(unread.sorted(), [], "\(family): layout tensors the engine never reads")
            let targets = Set(layout.targets.map(\.checkpointKey))
            XCTAssertEqual(targets.subtracting(read), [], "\(family): LoRA targets no layer reads")
        }
    }

    /// An SD1 checkpoint with the pre-transformers text-encoder names
    /// (`cond_stage_model.transformer.encoder.…`): a text-encoder LoRA still
    /// reaches its layers at run time, as when baked.
    func testRunTimeLoRAReachesLayersOfOldStyleNames() throws {
        let folder = NSTemporaryDirectory() + "old-names-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let source = try ModelFile.open(try EngineGolden.fixture("sd1_engine.safetensors"))
        let renamed = folder + "/old.safetensors"
        let names = source.tensors.map { $0.name.replacingOccurrences(of: "cond_stage_model.transformer.text_model.", with: "cond_stage_model.transformer.") }
        let writer = try SafeTensorsWriter(path: renamed, metadata: source.metadata,
                                           entries: zip(source.tensors, names).map { .init(name: $1, dtype: .f32, shape: $0.shape) })
        for (tensor, name) in zip(source.tensors, names) { try tensor.floats().withUnsafeBufferPointer { try writer.write(name: name, floats: $0) } }
        try writer.finish()
        let loraPath = folder + "/lora.safetensors"
        try XCTUnwrap(FixtureSet.items.first { $0.name == "sd1_engine_lora.safetensors" }).write(loraPath)
        let model = try StableDiffusionModel(checkpoint: renamed, tokenizer: EngineGolden.tokenizer)
        XCTAssertTrue(model.layerKeys.values.contains { $0.hasPrefix("cond_stage_model.transformer.encoder.") }, "the file's own names")
        let (adapters, summary) = try RuntimeLoRA.adapters(for: model, loras: [try LoadedLoRA.open(LoRASpec(path: loraPath))])
        XCTAssertGreaterThan(summary.sidePaths + summary.replacedTensors, 0)
        let pipeline = Pipeline(model: model)
        let plain = try pipeline.conditions(prompt: "a cat", negative: "")
        let withLoRA = try pipeline.conditions(prompt: "a cat", negative: "", adapters: adapters)
        XCTAssertNotEqual(plain.cond.context.values, withLoRA.cond.context.values, "the text-encoder LoRA changes the encoding")
        // Baked with lora-merge's code, the checkpoint encodes the same.
        let baked = folder + "/baked.safetensors"
        _ = try CheckpointBaker.bake(base: renamed, loras: [LoRASpec(path: loraPath)], output: baked, options: .init(precision: .f32))
        let bakedModel = try StableDiffusionModel(checkpoint: baked, tokenizer: EngineGolden.tokenizer)
        let bakedConditions = try Pipeline(model: bakedModel).conditions(prompt: "a cat", negative: "")
        XCTAssertLessThan(EngineGolden.relativeError(withLoRA.cond.context.values, bakedConditions.cond.context.values), 1e-5)
    }
}
