@testable import Diffusion
import Foundation
import LoRACore
import XCTest

/// LoRAs applied at run time give the images of the checkpoint baked by
/// lora-merge at the same ratios (float32 bake, so the only difference is the
/// order of floating-point operations); weight 0 gives the base image exactly.
final class RuntimeLoRATests: XCTestCase {
    func render(_ model: StableDiffusionModel, adapters: AdapterSet, sampler: SamplerKind = .eulerAncestral) throws -> Tensor {
        let pipeline = Pipeline(model: model)
        var parameters = GenerationParameters(prompt: "a (red:1.2) cat on a mat", negativePrompt: "blurry", seed: 99, steps: 3,
                                              cfgScale: 6, sampler: SamplerChoice(sampler))
        parameters.width = 64
        parameters.height = 64
        let conditions = try pipeline.conditions(prompt: parameters.prompt, negative: parameters.negativePrompt, adapters: adapters)
        return try pipeline.sample(parameters, conditions: conditions, adapters: adapters)
    }

    func testRunTimeEqualsBakedForEachKindAndSpec() throws {
        let base = try EngineGolden.fixture("sd1_engine.safetensors")
        let model = try StableDiffusionModel(checkpoint: base, tokenizer: EngineGolden.tokenizer)
        let folder = NSTemporaryDirectory() + "runtime-lora-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cases: [(String, String)] = [
            ("sd1_engine_lora.safetensors", ":0.8"),
            ("sd1_engine_locon.safetensors", ":1.0:te=0.5:unet=0.9"),
            ("sd1_engine_loha.safetensors", ":0.6"),
            ("sd1_engine_lora.safetensors", ":1:lbw=1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1"),
        ]
        for (index, (name, suffix)) in cases.enumerated() {
            let spec = try LoRASpec(parsing: try EngineGolden.fixture(name) + suffix)
            let (adapters, summary) = try RuntimeLoRA.adapters(for: model, loras: [try LoadedLoRA.open(spec)])
            XCTAssertGreaterThan(summary.sidePaths + summary.replacedTensors, 0, name)
            let baked = folder + "/baked\(index).safetensors"
            _ = try CheckpointBaker.bake(base: base, loras: [spec], output: baked, options: .init(precision: .f32))
            let bakedModel = try StableDiffusionModel(checkpoint: baked, tokenizer: EngineGolden.tokenizer)
            let a = try render(model, adapters: adapters), b = try render(bakedModel, adapters: .empty)
            let error = EngineGolden.relativeError(a.values, b.values)
            XCTAssertLessThan(error, 5e-5, "\(name)\(suffix): run-time vs baked, relative error \(error)")
            let plain = try render(model, adapters: .empty)
            XCTAssertGreaterThan(EngineGolden.relativeError(a.values, plain.values), 1e-3, "\(name)\(suffix) must change the image")
        }
    }

    func testWeightZeroIsTheBaseImageAndLoHaRunsAsASidePath() throws {
        let model = try StableDiffusionModel(checkpoint: try EngineGolden.fixture("sd1_engine.safetensors"), tokenizer: EngineGolden.tokenizer)
        let lora = try LoadedLoRA.open(try LoRASpec(parsing: try EngineGolden.fixture("sd1_engine_lora.safetensors") + ":0"))
        let (zero, _) = try RuntimeLoRA.adapters(for: model, loras: [lora])
        XCTAssertEqual(try render(model, adapters: zero, sampler: .dpmpp2m).values, try render(model, adapters: .empty, sampler: .dpmpp2m).values)
        let loha = try LoadedLoRA.open(try LoRASpec(parsing: try EngineGolden.fixture("sd1_engine_loha.safetensors")))
        let (_, summary) = try RuntimeLoRA.adapters(for: model, loras: [loha])
        XCTAssertGreaterThan(summary.sidePaths, 0, "LoHa's factored form")
    }

    func testSDXLLoRAOnBothTextEncodersAndFamilyMismatchIsRefused() throws {
        let model = try StableDiffusionModel(checkpoint: try EngineGolden.fixture("sdxl_engine.safetensors"), tokenizer: EngineGolden.tokenizer)
        let lora = try LoadedLoRA.open(try LoRASpec(parsing: try EngineGolden.fixture("sdxl_engine_lora.safetensors")))
        let (adapters, summary) = try RuntimeLoRA.adapters(for: model, loras: [lora])
        XCTAssertTrue(adapters.lowRank.keys.contains { $0.hasPrefix("conditioner.embedders.0.") })
        XCTAssertTrue(adapters.lowRank.keys.contains { $0.hasPrefix("conditioner.embedders.1.") })
        XCTAssertTrue(summary.unmatched.isEmpty)
        let sd1 = try LoadedLoRA.open(try LoRASpec(parsing: try EngineGolden.fixture("sd1_engine_lora.safetensors")))
        XCTAssertThrowsError(try RuntimeLoRA.adapters(for: model, loras: [sd1])) { error in
            // Real LoRAs are told apart by their widths; tiny ones by the first shape that does not fit.
            XCTAssertTrue("\(error)".contains("SD1") || "\(error)".contains("shape mismatch"), "\(error)")
        }
    }
}

/// fp16 weights kept as fp16 (widened per layer call) give exactly the
/// images of the same file loaded as float32: widening is exact.
final class HalfWeightTests: XCTestCase {
    func testHalfStorageIsBitIdenticalToFloat32() throws {
        let source = try ModelFile.open(try EngineGolden.fixture("sd1_engine.safetensors"))
        let path = EngineGolden.fixtureFolder + "/sd1_engine_f16.safetensors"
        let entries = source.tensorNames.compactMap { name in source[name].map { SafeTensorsWriter.Entry(name: name, dtype: .f16, shape: $0.shape) } }
        let writer = try SafeTensorsWriter(path: path, metadata: source.metadata, entries: entries)
        for entry in entries {
            let values = try XCTUnwrap(source[entry.name]).floats()
            try values.withUnsafeBufferPointer { try writer.write(name: entry.name, floats: $0) }
        }
        try writer.finish()
        let half = try StableDiffusionModel(checkpoint: path, tokenizer: EngineGolden.tokenizer, options: .init(weightPrecision: .f16))
        let full = try StableDiffusionModel(checkpoint: path, tokenizer: EngineGolden.tokenizer, options: .init(weightPrecision: .f32))
        XCTAssertTrue(half.unet.inputConv.store.isHalf, "the f16 option keeps the file's fp16 bits")
        XCTAssertFalse(full.unet.inputConv.store.isHalf)
        let parameters = GenerationParameters(prompt: "a cat", negativePrompt: "blurry", seed: 3, steps: 2, cfgScale: 6,
                                              sampler: SamplerChoice(.euler), width: 64, height: 64)
        XCTAssertEqual(try Pipeline(model: half).render(parameters), try Pipeline(model: full).render(parameters))
    }
}
