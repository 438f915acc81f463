import FixtureKit
import Foundation
import LinearAlgebra
import LoRACore
import XCTest

/// lora-extract: planted low-rank changes recovered, extract → merge round
/// trip, and kohya's extractor and resizer as golden references.
final class ExtractTests: XCTestCase {
    /// ΔŴ of a written module, scaled (alpha/rank applied), flattened.
    private func deltas(_ path: String) throws -> [String: Matrix] {
        let network = try NetworkFile(model: ModelFile.open(path))
        var out: [String: Matrix] = [:]
        for m in network.modules { out[m.name] = try m.delta() }
        return out
    }

    private func relativeDifference(_ a: Matrix, _ b: Matrix) -> Double {
        var d = 0.0, n = 0.0
        for (x, y) in zip(a.values, b.values) { d += Double(x - y) * Double(x - y); n += Double(y) * Double(y) }
        return n > 0 ? (d / n).squareRoot() : d.squareRoot()
    }

    func testPlantedLowRankChangesAreRecoveredExactly() throws {
        let folder = TemporaryFolder()
        for family in Family.allCases {
            let base = folder.file("\(family)_base.safetensors"), tuned = folder.file("\(family)_tuned.safetensors")
            var baseOptions = FixtureGenerator.CheckpointOptions()
            baseOptions.dtype = .f32
            try FixtureGenerator.writeCheckpoint(.tiny(family), to: base, options: baseOptions)
            try FixtureGenerator.writeCheckpoint(.tiny(family), to: tuned, options: FixtureGenerator.tunedOptions(.tiny(family), dtype: .f32))
            var options = LoRAExtractor.Options()
            options.rank = .fixed(2)
            options.convRank = .fixed(2)
            options.clampQuantile = nil
            options.precision = .f32
            let output = folder.file("\(family)_lora.safetensors")
            let report = try LoRAExtractor.extract(base: base, tuned: tuned, output: output, options: options)
            XCTAssertEqual(report.family, family.rawValue)
            XCTAssertLessThan(report.overallRelativeError, 1e-4, "\(family)")
            // Every module's ΔŴ equals W_tuned − W_base.
            let b = try ModelFile.open(base), t = try ModelFile.open(tuned)
            var checked = 0
            for (name, delta) in try deltas(output) {
                let target = try XCTUnwrap(KeyMap.real(family).target(forModule: name))
                let cols = delta.cols
                let rows = target.rows(inPackedRows: b[target.checkpointKey]!.shape[0]) ?? 0..<delta.rows
                let x = b[target.checkpointKey]!.floats(), y = t[target.checkpointKey]!.floats()
                let exact = Matrix(rows: rows.count, cols: cols, values: (rows.lowerBound * cols..<rows.upperBound * cols).map { y[$0] - x[$0] })
                let peak = exact.values.map(abs).max() ?? 0
                if peak == 0 { continue } // modules nothing was planted in
                XCTAssertLessThan(relativeDifference(delta, exact), 1e-4, "\(family) \(name)")
                checked += 1
            }
            XCTAssertGreaterThan(checked, 100, "\(family)")
            let inspected = Inspector.inspect(path: output)
            XCTAssertEqual(inspected.lora?.family.family, family)
            XCTAssertTrue(inspected.findings.allSatisfy { $0.severity != .error }, "\(inspected.findings)")
        }
    }

    func testExtractThenMergeReproducesTheTunedModel() throws {
        let folder = TemporaryFolder()
        let base = folder.file("base.safetensors"), tuned = folder.file("tuned.safetensors")
        var baseOptions = FixtureGenerator.CheckpointOptions()
        baseOptions.dtype = .f32
        try FixtureGenerator.writeCheckpoint(.tiny(.sd1), to: base, options: baseOptions)
        try FixtureGenerator.writeCheckpoint(.tiny(.sd1), to: tuned, options: FixtureGenerator.tunedOptions(.tiny(.sd1), dtype: .f32))
        var options = LoRAExtractor.Options()
        options.rank = .fixed(2)
        options.convRank = .fixed(2)
        options.clampQuantile = nil
        options.precision = .f32
        options.alpha = 1 // a non-default alpha must still reproduce ΔW
        let lora = folder.file("lora.safetensors")
        _ = try LoRAExtractor.extract(base: base, tuned: tuned, output: lora, options: options)
        let merged = folder.file("merged.safetensors")
        _ = try CheckpointBaker.bake(base: base, loras: [LoRASpec(path: lora)], output: merged)
        let m = try ModelFile.open(merged), t = try ModelFile.open(tuned)
        for tensor in t.tensors where tensor.dtype.isFloatingPoint {
            let a = m[tensor.name]!.floats(), b = tensor.floats()
            let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-5, tensor.name)
        }
    }

    func testMatchesKohyaExtractor() throws {
        let folder = TemporaryFolder()
        let tuned = folder.file("sd1_tiny_tuned.safetensors")
        try XCTUnwrap(FixtureSet.items.first { $0.name == "sd1_tiny_tuned.safetensors" }).write(tuned)
        // The golden was made from exactly this file.
        let inputs =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Repo.golden("kohya/extract_inputs.json")))) as? [String: String]
        let hash = Hashing.sha256(try MappedFile(path: tuned))
        XCTAssertEqual(hash, inputs?["tuned_sha256"], "regenerate the golden: the tuned fixture changed")

        let base = Repo.fixture("models/sd1_tiny.safetensors")
        func extract(clamp: Double?, _ name: String) throws -> NetworkFile {
            var options = LoRAExtractor.Options()
            options.rank = .fixed(4)
            options.convRank = .fixed(2)
            options.clampQuantile = clamp
            _ = try LoRAExtractor.extract(base: base, tuned: tuned, output: folder.file(name), options: options)
            return try NetworkFile(model: ModelFile.open(folder.file(name)))
        }
        // Without the clamp the truncated SVD is unique: kohya's ΔŴ and ours agree.
        let plain = try extract(clamp: nil, "plain.safetensors")
        let kohyaPlain = try NetworkFile(model: ModelFile.open(Repo.golden("kohya/extracted_r4_conv2_noclamp.safetensors")))
        XCTAssertEqual(Set(plain.model.tensorNames), Set(kohyaPlain.model.tensorNames), "same key set")
        let reference = Dictionary(uniqueKeysWithValues: kohyaPlain.modules.map { ($0.name, $0) })
        var worst = 0.0
        for m in plain.modules {
            let k = try XCTUnwrap(reference[m.name])
            XCTAssertEqual(m.alpha, k.alpha, m.name)
            XCTAssertEqual(m["down"]?.shape, k["down"]?.shape, m.name)
            worst = max(worst, relativeDifference(try m.delta(), try k.delta()))
        }
        XCTAssertLessThan(worst, 5e-3, "unclamped ΔŴ per module against kohya's")
        print("extraction vs kohya (no clamp): worst relative difference of ΔŴ per module \(worst)")

        // With kohya's 0.99 clamp (which depends on each SVD's signs) the factors
        // differ, so compare how well each reconstructs the true ΔW.
        let clamped = try extract(clamp: 0.99, "clamped.safetensors")
        let kohya = try NetworkFile(model: ModelFile.open(Repo.golden("kohya/extracted_r4_conv2.safetensors")))
        XCTAssertEqual(Set(clamped.model.tensorNames), Set(kohya.model.tensorNames))
        let b = try ModelFile.open(base), t = try ModelFile.open(tuned)
        func reconstructionError(_ file: NetworkFile) throws -> Double {
            var error = 0.0, norm = 0.0
            for m in file.modules {
                let target = try XCTUnwrap(KeyMap.sd1.target(forModule: m.name))
                let x = b[target.checkpointKey]!.floats(), y = t[target.checkpointKey]!.floats(), d = try m.delta()
                for i in d.values.indices {
                    let exact = Double(y[i]) - Double(x[i])
                    error += (exact - Double(d.values[i])) * (exact - Double(d.values[i])); norm += exact * exact
                }
            }
            return (error / norm).squareRoot()
        }
        let ours = try reconstructionError(clamped), theirs = try reconstructionError(kohya)
        print("extraction with clamp 0.99: relative error ours \(ours), kohya \(theirs)")
        XCTAssertLessThanOrEqual(ours, theirs * 1.05, "reconstruction at least as good as kohya's")
        XCTAssertEqual(clamped.model.metadata["ss_network_dim"], kohya.model.metadata["ss_network_dim"])
        XCTAssertEqual(clamped.model.metadata["ss_network_alpha"], kohya.model.metadata["ss_network_alpha"])
        XCTAssertEqual(clamped.model.metadata["ss_base_model_version"], kohya.model.metadata["ss_base_model_version"])
        XCTAssertEqual(clamped.model.metadata["ss_network_module"], kohya.model.metadata["ss_network_module"])
    }

    func testResizeMatchesKohyaResize() throws {
        let folder = TemporaryFolder()
        let input = Repo.golden("kohya/kohya_lora_r4.safetensors")
        for (rule, golden) in [(RankRule.fixed(2), "resized_r2.safetensors"), (RankRule.dynamic(.fro, 0.9, maxRank: 4), "resized_fro0.9.safetensors")] {
            var options = LoRAResizer.Options()
            options.rank = rule
            options.precision = .f16
            let output = folder.file(golden)
            let report = try LoRAResizer.resize(input, output: output, options: options)
            let ours = try NetworkFile(model: ModelFile.open(output))
            let theirs = Dictionary(uniqueKeysWithValues: try NetworkFile(model: ModelFile.open(Repo.golden("kohya/" + golden))).modules.map { ($0.name, $0) })
            var worst = 0.0
            for m in ours.modules {
                let k = try XCTUnwrap(theirs[m.name])
                XCTAssertEqual(m.rank, k.rank, "\(golden) \(m.name): the same rank rule")
                XCTAssertEqual(m.alpha ?? 0, k.alpha ?? 0, accuracy: 1e-2, "\(golden) \(m.name): the same alpha (scale kept)")
                worst = max(worst, relativeDifference(try m.delta(), try k.delta()))
            }
            XCTAssertLessThan(worst, 5e-3, golden)
            print("resize \(golden) vs kohya: worst relative difference \(worst), error \(report.overallRelativeError)")
        }
    }

    func testRankRulesFollowResizeLoRA() {
        // Hand-computed with resize_lora.py's index functions.
        let s: [Float] = [4, 2, 1, 0.5, 0.25, 0.1]
        let energy = s.reduce(0.0) { $0 + Double($1) * Double($1) }
        XCTAssertEqual(RankRule.fixed(3).rank(singularValues: s, fullLength: 6, totalEnergy: energy), 3)
        // sv_fro: cumsum(σ²)/Σσ² = [.7575, .947, .9943, ...]; 0.9² = .81 → searchsorted 1 → index 2 → rank 3.
        XCTAssertEqual(RankRule.dynamic(.fro, 0.9, maxRank: 6).rank(singularValues: s, fullLength: 6, totalEnergy: energy), 3)
        // sv_ratio 3: σ > 4/3 → 2 values → index 2 → rank 3.
        XCTAssertEqual(RankRule.dynamic(.ratio, 3, maxRank: 6).rank(singularValues: s, fullLength: 6, totalEnergy: energy), 3)
        // sv_cumulative 0.9: cumsum(σ)/Σσ = [.5, .75, .875, .9375] → searchsorted 3 → index 4 → rank 5.
        XCTAssertEqual(RankRule.dynamic(.cumulative, 0.9, maxRank: 6).rank(singularValues: s, fullLength: 6, totalEnergy: energy), 5)
        XCTAssertEqual(RankRule.dynamic(.cumulative, 0.9, maxRank: 4).rank(singularValues: s, fullLength: 6, totalEnergy: energy), 4, "capped")
        XCTAssertEqual(RankRule.dynamic(.fro, 0.9, maxRank: 6).rank(singularValues: [0, 0], fullLength: 2, totalEnergy: 0), 1, "a zero matrix gets rank 1")
        XCTAssertThrowsError(try RankRule.parseDynamic("sv_fro=1.5", maxRank: 4))
        XCTAssertThrowsError(try RankRule.parseDynamic("fro=0.5", maxRank: 4))
    }

    func testRefusesMismatchedInputs() throws {
        let folder = TemporaryFolder()
        let sdxl = folder.file("sdxl.safetensors")
        try FixtureGenerator.writeCheckpoint(.tiny(.sdxl), to: sdxl)
        XCTAssertThrowsError(try LoRAExtractor.extract(base: Repo.fixture("models/sd1_tiny.safetensors"), tuned: sdxl, output: folder.file("x.safetensors"))) {
            XCTAssertTrue("\($0)".contains("same family"), "\($0)")
        }
        // Same family, different widths.
        let wide = folder.file("wide.safetensors")
        var config = ArchitectureConfig.tiny(.sd1)
        config.modelChannels = 16
        try FixtureGenerator.writeCheckpoint(config, to: wide)
        XCTAssertThrowsError(try LoRAExtractor.extract(base: Repo.fixture("models/sd1_tiny.safetensors"), tuned: wide, output: folder.file("x.safetensors"))) {
            XCTAssertTrue("\($0)".contains("in the base but"), "\($0)")
        }
        XCTAssertThrowsError(try LoRAResizer.resize(Repo.fixture("models/sd1_tiny_lora.safetensors"), output: Repo.fixture("models/sd1_tiny_lora.safetensors")))
        XCTAssertEqual(folder.contents.sorted(), ["sdxl.safetensors", "wide.safetensors"])
    }
}
