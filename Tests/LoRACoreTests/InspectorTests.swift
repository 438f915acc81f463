import FixtureKit
import Foundation
import LoRACore
import XCTest

final class InspectorTests: XCTestCase {
    func testKohyaLoRAReport() throws {
        let name = "sd1_kohya_lora.safetensors"
        let report = Inspector.inspect(path: Repo.golden(name), options: .init(effectiveRank: true))
        let lora = try XCTUnwrap(report.lora)
        XCTAssertEqual(report.kind, .lora)
        XCTAssertEqual(lora.networkType, "LoRA")
        XCTAssertEqual(lora.family.family, .sd1)
        XCTAssertEqual(lora.family.evidence, .tensors)
        XCTAssertEqual(lora.moduleCount, 7)
        XCTAssertEqual(lora.modulesByComponent, [ValueCount(value: "text encoder", count: 2), ValueCount(value: "unet", count: 5)])
        XCTAssertEqual(lora.ranks, [ValueCount(value: "4", count: 7)])
        XCTAssertEqual(lora.alphas, [ValueCount(value: "2", count: 7)])
        XCTAssertEqual(lora.scales, [ValueCount(value: "0.5", count: 7)])
        // Hashes agree with Python's hashlib.
        let golden = try XCTUnwrap(Golden.shared.files[name])
        XCTAssertEqual(report.hashes?.sha256, golden.hashes.sha256)
        XCTAssertEqual(report.hashes?.addnet, golden.hashes.addnet)
        XCTAssertEqual(report.hashes?.autoV1, golden.hashes.autov1)
        XCTAssertEqual(report.hashes?.autoV2, String(golden.hashes.sha256.prefix(10)))
        // The embedded sshs_model_hash is right, so no mismatch finding; the dead module is found.
        XCTAssertEqual(report.findings.map(\.code), ["dead-modules"])
        XCTAssertEqual(report.findings.first?.keys, ["lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"])
        XCTAssertEqual(report.exitCode(failOn: .warning), 1)
        XCTAssertEqual(report.exitCode(failOn: .error), 0)
        // Per-module numbers against torch.
        for detail in lora.modules {
            let g = try XCTUnwrap(golden.modules?[detail.name])
            XCTAssertClose(detail.norm ?? -1, g.norm, relative: 1e-4, absolute: 1e-9, detail.name)
            if g.norm > 0 {
                XCTAssertEqual(detail.rank90, g.rank90, detail.name)
                XCTAssertEqual(detail.rank99, g.rank99, detail.name)
            }
        }
        // Training summary: tags summed across folders, dataset with repeats.
        let training = try XCTUnwrap(report.training)
        XCTAssertEqual(training.topTags.prefix(3).map(\.tag), ["1girl", "goldchar", "smile"])
        XCTAssertEqual(training.topTags.first?.count, 50)
        XCTAssertEqual(training.trainingImages, 200)
        XCTAssertTrue(training.fields.contains { $0.label == "epochs" && $0.value == "8" })
    }

    func testEveryGeneratedLayoutIsRecognised() throws {
        let folder = TemporaryFolder()
        let expected: [(FixtureGenerator.LoRALayout, String)] = [
            (.lora, "LoRA"), (.locon, "LoCon"), (.loha, "LoHa"), (.lokr, "LoKr"), (.ia3, "(IA)^3"), (.full, "Full"),
            (.diffusers, "LoRA, diffusers/PEFT layout"), (.dylora, "DyLoRA"),
        ]
        for (layout, label) in expected {
            var options = FixtureGenerator.LoRAOptions()
            options.layout = layout
            let path = folder.file("\(layout).safetensors")
            try FixtureGenerator.writeLoRA(.tiny(.sd1), to: path, options: options)
            let report = Inspector.inspect(path: path)
            XCTAssertEqual(report.lora?.networkType, label, "\(layout)")
            XCTAssertEqual(report.lora?.family.family, .sd1, "\(layout)")
            XCTAssertTrue(report.findings.allSatisfy { $0.severity == .info }, "\(layout): \(report.findings)")
        }
        // Structure alone tells SD2 (23 text-encoder layers) and SDXL (two encoders).
        for family in [Family.sd2, .sdxl] {
            var options = FixtureGenerator.LoRAOptions()
            options.bareMetadata = true
            let path = folder.file("\(family).safetensors")
            try FixtureGenerator.writeLoRA(.tiny(family), to: path, options: options)
            let report = Inspector.inspect(path: path)
            XCTAssertEqual(report.lora?.family.family, family)
            XCTAssertEqual(report.lora?.family.evidence, .tensors)
        }
        // Block table of a kohya SD1 LoRA: the 17 LBW blocks.
        let report = Inspector.inspect(path: folder.file("lora.safetensors"))
        XCTAssertEqual(report.lora?.blocks.map(\.block), BlockLists.sd17.map(\.description))
        XCTAssertEqual(report.lora?.blocks.first?.modules, 72)
    }

    /// LyCORIS stores LoHa and LoKr 3×3 conv factors flattened ([r, in·9]);
    /// the shape check follows the rules merging applies (the real SD1.5 widths,
    /// so the check is active), and still catches a module that does not fit.
    func testLyCORISConvFactorsAreNotShapeMismatches() throws {
        let folder = TemporaryFolder()
        // SD1.5's real widths (the check only runs on the released layout), first U-Net block only to stay fast.
        func write(_ layout: FixtureGenerator.LoRALayout) throws -> (String, [(String, DType, [Int], [Float])], Metadata) {
            var options = FixtureGenerator.LoRAOptions()
            options.layout = layout
            options.includeTextEncoder = false
            options.rank = 2
            options.convRank = 1
            options.flattenedLoKrConv = true
            let full = folder.file("\(layout)-full.safetensors")
            try FixtureGenerator.writeLoRA(.real(.sd1), to: full, options: options)
            let model = try ModelFile.open(full)
            let tensors = model.tensors.filter { $0.name.hasPrefix("lora_unet_down_blocks_0_") }.map { ($0.name, DType.f32, $0.shape, $0.floats()) }
            let path = folder.file("\(layout).safetensors")
            try writeSafetensors(path, tensors: tensors, metadata: model.metadata)
            return (path, tensors, model.metadata)
        }
        for layout in [FixtureGenerator.LoRALayout.loha, .lokr] {
            let (path, tensors, metadata) = try write(layout)
            XCTAssertTrue(tensors.contains { $0.0.contains("resnets_0_conv1") && $0.2 == [layout == .loha ? 1 : 1, 320 * 9 / (layout == .loha ? 1 : 2)] },
                          "\(layout): 3×3 conv factors stored flattened")
            let report = Inspector.inspect(path: path)
            XCTAssertEqual(report.lora?.family.family, .sd1, "\(layout)")
            XCTAssertFalse(report.findings.contains { $0.code == "shape-mismatch" }, "\(layout): \(report.findings.filter { $0.code == "shape-mismatch" })")
            XCTAssertEqual(report.exitCode(failOn: .error), 0, "\(layout): a healthy file exits 0: \(report.findings)")
            // A conv whose flattened columns are not in·9 is still a mismatch.
            var broken = tensors
            let victim = "lora_unet_down_blocks_0_resnets_0_conv1"
            for i in broken.indices where broken[i].0.hasPrefix(victim) && (broken[i].0.hasSuffix("w1_b") || broken[i].0.hasSuffix("w2_b")) {
                broken[i].2 = [broken[i].2[0], broken[i].2[1] - 9]
                broken[i].3 = Array(broken[i].3.prefix(broken[i].2.reduce(1, *)))
            }
            let brokenPath = folder.file("\(layout)-broken.safetensors")
            try writeSafetensors(brokenPath, tensors: broken, metadata: metadata)
            let brokenReport = Inspector.inspect(path: brokenPath)
            let finding = try XCTUnwrap(brokenReport.findings.first { $0.code == "shape-mismatch" }, "\(layout): \(brokenReport.findings)")
            XCTAssertEqual(finding.keys?.count, 1, "\(layout)")
            XCTAssertTrue(finding.keys?.first?.hasPrefix(victim) ?? false, "\(layout)")
        }
    }

    func testHealthFindings() throws {
        let folder = TemporaryFolder()
        let source = try ModelFile.open(Repo.golden("sd1_kohya_lora.safetensors"))
        func variant(_ name: String, metadata: Metadata? = nil, edit: (inout [(String, DType, [Int], [Float])]) -> Void) throws -> InspectionReport {
            var tensors = source.tensors.map { ($0.name, $0.dtype, $0.shape, $0.floats()) }
            edit(&tensors)
            let path = folder.file(name + ".safetensors")
            try writeSafetensors(path, tensors: tensors, metadata: metadata ?? source.metadata)
            return Inspector.inspect(path: path)
        }
        func codes(_ r: InspectionReport) -> Set<String> { Set(r.findings.map(\.code)) }
        let q = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"

        let nan = try variant("nan") { t in t[t.firstIndex { $0.0.hasSuffix("lora_down.weight") }!].3[3] = .nan }
        XCTAssertTrue(codes(nan).contains("nan-values"))
        XCTAssertEqual(nan.exitCode(failOn: .error), 1)

        let alpha = try variant("alpha") { t in
            for i in t.indices where t[i].0.hasSuffix(".alpha") { t[i].3 = [8] }
        }
        XCTAssertTrue(codes(alpha).contains("alpha-above-rank"))
        // Changed data, stale embedded hash: A1111 would show the wrong hash.
        XCTAssertTrue(codes(alpha).contains("embedded-hash-mismatch"))

        let unknown = try variant("unknown") { t in
            t.append(("lora_unet_not_a_layer.lora_down.weight", .f16, [1, 4], [1, 2, 3, 4]))
            t.append(("lora_unet_not_a_layer.lora_up.weight", .f16, [4, 1], [1, 2, 3, 4]))
        }
        XCTAssertTrue(codes(unknown).contains("unknown-modules"))

        let duplicate = try variant("duplicate") { t in
            for x in t where x.0.hasPrefix(q) { t.append((x.0.replacingOccurrences(of: "lora_te_", with: "lora_te1_"), x.1, x.2, x.3)) }
        }
        XCTAssertTrue(codes(duplicate).contains("duplicate-modules"))
        XCTAssertTrue(codes(duplicate).contains("te1-prefix"))

        let orphan = try variant("orphan") { t in t.removeAll { $0.0 == q + ".lora_down.weight" } }
        XCTAssertTrue(codes(orphan).contains("orphan-tensors"))

        // Outliers need a distribution: use a full generated LoRA (264 modules).
        let generated = folder.file("generated.safetensors")
        let loud = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_v"
        try FixtureGenerator.writeLoRA(.tiny(.sd1), to: generated, options: .init())
        let model = try ModelFile.open(generated)
        let path = folder.file("exploding.safetensors")
        let writer = try SafeTensorsWriter(
            path: path, metadata: model.metadata, entries: model.tensors.map { .init(name: $0.name, dtype: $0.dtype, shape: $0.shape) })
        for t in model.tensors {
            let values = t.name == loud + ".lora_up.weight" ? t.floats().map { $0 * 500 } : t.floats()
            try values.withUnsafeBufferPointer { try writer.write(name: t.name, floats: $0) }
        }
        try writer.finish()
        let exploding = Inspector.inspect(path: path)
        XCTAssertEqual(exploding.findings.first { $0.code == "exploding-norms" }?.keys, [loud])

        var sdxlMeta = source.metadata
        sdxlMeta["ss_base_model_version"] = "sdxl_base_v1-0"
        let mismatch = try variant("mismatch", metadata: sdxlMeta) { _ in }
        XCTAssertTrue(codes(mismatch).contains("family-metadata-mismatch"))

        let bare = try variant("bare", metadata: Metadata()) { _ in }
        XCTAssertTrue(codes(bare).contains("no-metadata"))
    }

    func testCheckpointReports() throws {
        let folder = TemporaryFolder()
        for family in Family.allCases {
            let path = folder.file("\(family).safetensors")
            try FixtureGenerator.writeCheckpoint(.tiny(family), to: path)
            let report = Inspector.inspect(path: path, options: .init(scanValues: true))
            XCTAssertEqual(report.kind, .checkpoint)
            XCTAssertEqual(report.checkpoint?.family.family, family)
            XCTAssertEqual(report.checkpoint?.missingKeys, 0, "\(family)")
            XCTAssertEqual(report.checkpoint?.unknownKeys, 0, "\(family)")
            XCTAssertEqual(report.findings, [], "\(family)")
            let components = report.checkpoint?.components.map(\.component) ?? []
            XCTAssertTrue(components.contains("unet") && components.contains("vae"))
            if family == .sdxl { XCTAssertTrue(components.contains("text encoder 2 (OpenCLIP bigG)")) }
        }
        // A pruned U-Net and a NaN: both found.
        let source = try ModelFile.open(folder.file("sd1.safetensors"))
        let kept = source.tensors.filter { !$0.name.contains("output_blocks.11.") }
        let path = folder.file("broken.safetensors")
        let writer = try SafeTensorsWriter(path: path, metadata: Metadata(), entries: kept.map { .init(name: $0.name, dtype: $0.dtype, shape: $0.shape) })
        for t in kept {
            var values = t.floats()
            if t.name == "model.diffusion_model.out.2.weight" { values[0] = .nan }
            if t.dtype.isFloatingPoint {
                try values.withUnsafeBufferPointer { try writer.write(name: t.name, floats: $0) }
            } else {
                try writer.write(name: t.name, bytes: t.rawBytes)
            }
        }
        try writer.finish()
        let quick = Inspector.inspect(path: path)
        XCTAssertTrue(quick.findings.contains { $0.code == "incomplete-unet" })
        XCTAssertFalse(quick.findings.contains { $0.code == "nan-values" }, "values are not scanned unless asked")
        let full = Inspector.inspect(path: path, options: .init(scanValues: true))
        XCTAssertEqual(full.findings.first { $0.code == "nan-values" }?.keys, ["model.diffusion_model.out.2.weight"])
    }

    func testUnreadableAndDangerousFilesGetTheirExitCodes() throws {
        let folder = TemporaryFolder()
        let truncated = folder.file("truncated.safetensors")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Repo.golden("sd1_locon.safetensors")))
        FileManager.default.createFile(atPath: truncated, contents: bytes.prefix(bytes.count - 7))
        let r1 = Inspector.inspect(path: truncated)
        XCTAssertEqual(r1.kind, .invalid)
        XCTAssertEqual(r1.exitCode(failOn: .error), 2)
        XCTAssertTrue(r1.findings[0].message.contains("truncated"), r1.findings[0].message)
        let r2 = Inspector.inspect(path: Repo.golden("evil/os_system.ckpt"))
        XCTAssertEqual(r2.kind, .dangerous)
        XCTAssertEqual(r2.exitCode(failOn: .error), 3)
        let r3 = Inspector.inspect(path: folder.file("missing.safetensors"))
        XCTAssertEqual(r3.exitCode(failOn: .error), 2)
    }
}
