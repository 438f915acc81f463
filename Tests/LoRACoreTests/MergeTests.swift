import FixtureKit
import Foundation
import LinearAlgebra
import LoRACore
import XCTest

/// lora-merge against kohya's own merge (golden files), against a naive fp64
/// reference written with plain loops, and on bad input.
final class MergeTests: XCTestCase {
    let base = Repo.fixture("models/sd1_tiny.safetensors")

    // MARK: kohya golden

    func testBakeMatchesKohyaMergeLoRA() throws {
        try compareWithKohya(lora: "kohya_lora_r4.safetensors", ratio: 0.8, golden: "merged_lora_0.8.safetensors", expectedChanged: 264)
    }

    func testBakeMatchesKohyaMergeLoConWith3x3Convs() throws {
        try compareWithKohya(lora: "kohya_locon_r4.safetensors", ratio: 1.0, golden: "merged_locon_1.0.safetensors", expectedChanged: nil)
    }

    private func compareWithKohya(lora: String, ratio: Double, golden: String, expectedChanged: Int?) throws {
        let folder = TemporaryFolder()
        let output = folder.file("merged.safetensors")
        let report = try CheckpointBaker.bake(base: base, loras: [LoRASpec(path: Repo.golden("kohya/" + lora), ratio: ratio)], output: output,
                                              options: .init(precision: .f16))
        if let expectedChanged { XCTAssertEqual(report.changedTensors, expectedChanged) }
        let ours = try ModelFile.open(output)
        let kohya = try ModelFile.open(Repo.golden("kohya/" + golden))
        let original = try ModelFile.open(base)
        var exact = 0, total = 0, worst = 0
        for t in kohya.tensors {
            let mine = try XCTUnwrap(ours[t.name], t.name).floats(), theirs = t.floats()
            for (a, b) in zip(mine, theirs) {
                let d = ulpDistance(Float16(a), Float16(b))
                worst = max(worst, d)
                if d == 0 { exact += 1 }
                total += 1
            }
        }
        XCTAssertLessThanOrEqual(worst, 1, "\(golden): every value within one fp16 ulp of kohya's")
        XCTAssertGreaterThan(Double(exact) / Double(total), 0.99, "\(golden): \(exact) of \(total) bit-identical")
        // Nothing kohya did not change was changed (compare the bytes).
        for t in original.tensors where kohya[t.name] == nil && report.changedTensors == (expectedChanged ?? -1) {
            XCTAssertEqual(Array(ours[t.name]!.rawBytes), Array(t.rawBytes), t.name)
        }
        print("\(golden): \(exact)/\(total) values bit-identical to kohya, max \(worst) ulp")
    }

    func testSVDCombineMatchesKohyaSVDMerge() throws {
        let folder = TemporaryFolder()
        let specs = [LoRASpec(path: Repo.golden("kohya/kohya_lora_r4.safetensors"), ratio: 0.6),
                     LoRASpec(path: Repo.golden("kohya/kohya_locon_r4.safetensors"), ratio: 0.4)]
        // Without the clamp the truncated SVD is unique: products must agree.
        let plain = folder.file("plain.safetensors")
        let report = try LoRACombiner.combine(specs, mode: .svd(rank: 2, convRank: 2, clampQuantile: nil), output: plain, precision: .f32)
        let ours = try NetworkFile(model: ModelFile.open(plain))
        let kohya = try NetworkFile(model: ModelFile.open(Repo.golden("kohya/svd_merged_r2_noclamp.safetensors")))
        XCTAssertEqual(Set(ours.modules.map(\.name)), Set(kohya.modules.map(\.name)))
        let theirs = Dictionary(uniqueKeysWithValues: kohya.modules.map { ($0.name, $0) })
        var worst = 0.0
        for m in ours.modules {
            let a = try m.delta(), b = try theirs[m.name]!.delta()
            let diff = zip(a.values, b.values).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
            let relative = diff / max(b.frobeniusNorm, 1e-12)
            worst = max(worst, relative)
            XCTAssertLessThan(relative, 5e-3, m.name)
        }
        print("svd merge vs kohya (no clamp): worst relative difference \(worst); our overall error \(report.overallRelativeError)")
        // With kohya's 0.99 clamp both lose a similar amount against the exact sum.
        let clamped = folder.file("clamped.safetensors")
        let clampedReport = try LoRACombiner.combine(specs, mode: .svd(rank: 2, convRank: 2, clampQuantile: 0.99), output: clamped, precision: .f32)
        let kohyaClamped = try NetworkFile(model: ModelFile.open(Repo.golden("kohya/svd_merged_r2.safetensors")))
        let kohyaError = try relativeError(of: kohyaClamped, against: specs)
        XCTAssertEqual(clampedReport.overallRelativeError, kohyaError, accuracy: 0.03)
        XCTAssertEqual(try relativeError(of: NetworkFile(model: ModelFile.open(clamped)), against: specs), clampedReport.overallRelativeError, accuracy: 1e-3,
                       "the reported error is the real one")
    }

    /// sqrt(Σ‖ΔW_exact − ΔW_file‖² / Σ‖ΔW_exact‖²), with ΔW_exact from the inputs.
    private func relativeError(of file: NetworkFile, against specs: [LoRASpec]) throws -> Double {
        let inputs = try specs.map { try NetworkFile(model: ModelFile.open($0.path)) }
        let got = Dictionary(uniqueKeysWithValues: file.modules.map { ($0.name, $0) })
        var error = 0.0, norm = 0.0
        for name in got.keys {
            var exact: Matrix?
            for (spec, input) in zip(specs, inputs) {
                guard let m = input.modules.first(where: { $0.name == name }) else { continue }
                var d = try m.delta()
                for i in d.values.indices { d.values[i] *= Float(spec.ratio) }
                if let e = exact { for i in d.values.indices { d.values[i] += e.values[i] } }
                exact = d
            }
            let approx = try got[name]!.delta()
            for (a, b) in zip(exact!.values, approx.values) { error += Double(a - b) * Double(a - b); norm += Double(a) * Double(a) }
        }
        return (error / norm).squareRoot()
    }

    // MARK: naive fp64 reference

    func testBakeMatchesNaiveReferenceForEveryLayout() throws {
        let folder = TemporaryFolder()
        var options = FixtureGenerator.LoRAOptions()
        let layouts: [FixtureGenerator.LoRALayout] = [.lora, .locon, .loha, .lokr, .full, .diffusers]
        var paths: [String] = []
        for layout in layouts {
            options.layout = layout
            options.seed = UInt64(paths.count + 11)
            options.rank = layout == .lokr ? 2 : 4
            let path = folder.file("\(layout).safetensors")
            try FixtureGenerator.writeLoRA(.tiny(.sd1), to: path, options: options)
            paths.append(path)
        }
        let cases: [([LoRASpec], DType)] = [
            ([LoRASpec(path: paths[0], ratio: 0.7)], .f16),
            ([LoRASpec(path: paths[1], ratio: 1.3)], .f16),
            ([LoRASpec(path: paths[2], ratio: -0.5)], .bf16),
            ([LoRASpec(path: paths[3], ratio: 0.9)], .f32),
            ([LoRASpec(path: paths[4], ratio: 1)], .f16),
            ([LoRASpec(path: paths[5], ratio: 0.5)], .f16),
            // several LoRAs, te/unet ratios and block weights at once
            ([LoRASpec(path: paths[0], ratio: 0.6, textEncoderRatio: 0.2, blockWeights: try BlockWeights(parsing: "OUTALL")),
              LoRASpec(path: paths[1], ratio: 0.8, unetRatio: 0.3, blockWeights: try BlockWeights(values: (0..<26).map { Double($0 % 5) / 4 })),
              LoRASpec(path: paths[2], ratio: 0.4)], .f16),
        ]
        for (specs, precision) in cases {
            let output = folder.file("out.safetensors")
            _ = try CheckpointBaker.bake(base: base, loras: specs, output: output, options: .init(precision: precision))
            try assertMatchesNaive(output: output, specs: specs, precision: precision)
        }
    }

    private func assertMatchesNaive(output: String, specs: [LoRASpec], precision: DType, base: String? = nil, keyMap: KeyMap = .sd1,
                                    file: StaticString = #filePath, line: UInt = #line) throws {
        let original = try ModelFile.open(base ?? self.base)
        let merged = try ModelFile.open(output)
        var expected: [String: [Double]] = [:]
        for t in original.tensors where t.dtype.isFloatingPoint { expected[t.name] = t.floats().map(Double.init) }
        for spec in specs {
            let model = try ModelFile.open(spec.path)
            for module in try NetworkFile(model: model).modules {
                let target = try XCTUnwrap(keyMap.target(forModule: module.name))
                let m = naiveMultiplier(spec, module: module.name)
                let delta = try naiveDelta(module)
                var w = expected[target.checkpointKey]!
                let packedRows = original[target.checkpointKey]!.shape[0]
                let offset = (target.rows(inPackedRows: packedRows)?.lowerBound ?? 0) * original[target.checkpointKey]!.shape.dropFirst().reduce(1, *)
                for i in delta.indices { w[offset + i] += m * delta[i] }
                expected[target.checkpointKey] = w
                if let db = module.biasDelta, let key = target.biasKey {
                    var b = expected[key]!
                    for i in db.indices { b[i] += m * Double(db[i]) }
                    expected[key] = b
                }
            }
        }
        for t in merged.tensors where t.dtype.isFloatingPoint {
            XCTAssertEqual(t.dtype, precision, file: file, line: line)
            let got = t.floats()
            let want = expected[t.name]!
            let before = original[t.name]!.floats()
            for (i, (g, w)) in zip(got, want).enumerated() {
                if precision == .f32 {
                    // fp32 output: the fp32 accumulation itself rounds; bound the
                    // error by a few fp32 ulps of the magnitudes involved.
                    let scale = max(abs(before[i]), abs(Float(w)), abs(Float(w) - before[i]))
                    if abs(Double(g) - w) > 8 * Double(scale.ulp) { XCTFail("\(t.name): \(g) vs \(w)", file: file, line: line); break }
                } else {
                    let d = ulpDistance(g, Float(w), dtype: precision)
                    if d > 1 { XCTFail("\(t.name): \(g) vs \(w) (\(d) ulp)", file: file, line: line); break }
                }
            }
        }
    }

    /// An independent block map from kohya names (LoRA Block Weight semantics).
    private func naiveMultiplier(_ spec: LoRASpec, module: String) -> Double {
        let name = KeyMap.kohyaStyleName(module)
        let isText = name.hasPrefix("lora_te")
        var ratio = isText ? (spec.textEncoderRatio ?? spec.ratio) : (spec.unetRatio ?? spec.ratio)
        guard let lbw = spec.blockWeights else { return ratio }
        var slot: Int?
        let parts = name.split(separator: "_").map(String.init)
        func number(after word: String) -> Int? { parts.firstIndex(of: word).flatMap { Int(parts[$0 + 1]) } }
        if isText { slot = 0 } else if name.contains("mid_block") { slot = 13 } else if let i = number(after: "blocks"), name.contains("down_blocks") {
            if name.contains("downsamplers") {
                slot = 1 + 3 * i + 3
            } else if let j = number(after: "attentions") ?? number(after: "resnets") {
                slot = 1 + 3 * i + j + 1
            }
        } else if let i = number(after: "blocks"), name.contains("up_blocks") {
            if name.contains("upsamplers") {
                slot = 14 + 3 * i + 2
            } else if let j = number(after: "attentions") ?? number(after: "resnets") {
                slot = 14 + 3 * i + j
            }
        }
        if let slot { ratio *= lbw.slots[slot] }
        return ratio
    }

    /// ΔW by plain loops over the stored factors, in Double.
    private func naiveDelta(_ m: NetworkModule) throws -> [Double] {
        func d(_ role: String) -> [Double] { m[role]!.floats().map(Double.init) }
        let scale = m.scale
        switch m.algorithm {
        case .lora:
            let up = d("up"), down = d("down")
            let r = m["down"]!.shape[0], out = m["up"]!.shape[0], cols = m["down"]!.elementCount / r
            var w = [Double](repeating: 0, count: out * cols)
            for o in 0..<out { for c in 0..<cols { for k in 0..<r { w[o * cols + c] += up[o * r + k] * down[k * cols + c] } } }
            return w.map { $0 * scale }
        case .loha:
            let a1 = d("hada_w1_a"), b1 = d("hada_w1_b"), a2 = d("hada_w2_a"), b2 = d("hada_w2_b")
            let r = m["hada_w1_b"]!.shape[0], out = m["hada_w1_a"]!.shape[0], cols = m["hada_w1_b"]!.elementCount / r
            var w = [Double](repeating: 0, count: out * cols)
            for o in 0..<out { for c in 0..<cols {
                var x = 0.0, y = 0.0
                for k in 0..<r { x += a1[o * r + k] * b1[k * cols + c]; y += a2[o * r + k] * b2[k * cols + c] }
                w[o * cols + c] = x * y * scale
            } }
            return w
        case .lokr:
            let w1 = d("lokr_w1"), s1 = m["lokr_w1"]!.shape
            var w2: [Double], c: Int, dcols: Int
            if let full = m["lokr_w2"] {
                w2 = d("lokr_w2"); c = full.shape[0]; dcols = full.elementCount / c
            } else {
                let a = d("lokr_w2_a"), b = d("lokr_w2_b"), r = m["lokr_w2_b"]!.shape[0]
                c = m["lokr_w2_a"]!.shape[0]; dcols = m["lokr_w2_b"]!.elementCount / r
                w2 = [Double](repeating: 0, count: c * dcols)
                for p in 0..<c { for q in 0..<dcols { for k in 0..<r { w2[p * dcols + q] += a[p * r + k] * b[k * dcols + q] } } }
            }
            let rows = s1[0] * c, cols = s1[1] * dcols
            var w = [Double](repeating: 0, count: rows * cols)
            for i in 0..<s1[0] { for j in 0..<s1[1] { for p in 0..<c { for q in 0..<dcols {
                w[(i * c + p) * cols + j * dcols + q] = w1[i * s1[1] + j] * w2[p * dcols + q] * scale
            } } } }
            return w
        case .full:
            return d("diff")
        default:
            throw ModelError(.unsupported, "no naive reference for \(m.algorithm)")
        }
    }

    func testBakeSD2AndSDXLMatchNaiveReference() throws {
        let folder = TemporaryFolder()
        for family in [Family.sd2, .sdxl] {
            let checkpoint = folder.file("\(family)_base.safetensors")
            try FixtureGenerator.writeCheckpoint(.tiny(family), to: checkpoint)
            var options = FixtureGenerator.LoRAOptions()
            options.layout = .locon
            let lora = folder.file("\(family)_lora.safetensors")
            try FixtureGenerator.writeLoRA(.tiny(family), to: lora, options: options)
            let specs = [LoRASpec(path: lora, ratio: 0.9, textEncoderRatio: 0.4)]
            let output = folder.file("\(family)_out.safetensors")
            let report = try CheckpointBaker.bake(base: checkpoint, loras: specs, output: output, options: .init(precision: .f16))
            XCTAssertEqual(report.family, family.rawValue)
            XCTAssertEqual(report.unmatched, [])
            // SD2 and SDXL's bigG write q/k/v into rows of OpenCLIP's packed in_proj_weight.
            try assertMatchesNaive(output: output, specs: specs, precision: .f16, base: checkpoint, keyMap: KeyMap.real(family))
        }
    }

    /// Some SD2 LoRAs store proj_in/proj_out factors as 1×1 convs while the
    /// checkpoint's projection is linear (and SD1 the other way round).
    func testConvShapedFactorsMergeIntoLinearProjections() throws {
        let folder = TemporaryFolder()
        let checkpoint = folder.file("sd2.safetensors")
        try FixtureGenerator.writeCheckpoint(.tiny(.sd2), to: checkpoint)
        let lora = folder.file("lora.safetensors")
        try FixtureGenerator.writeLoRA(.tiny(.sd2), to: lora, options: .init())
        let reshaped = folder.file("conv_factors.safetensors")
        let model = try ModelFile.open(lora)
        let writer = try SafeTensorsWriter(path: reshaped, metadata: model.metadata, entries: model.tensors.map { t in
            let isProjection = t.name.contains("proj_in.lora") || t.name.contains("proj_out.lora")
            return .init(name: t.name, dtype: t.dtype, shape: isProjection ? t.shape + [1, 1] : t.shape)
        })
        for t in model.tensors { try writer.write(name: t.name, bytes: t.rawBytes) }
        try writer.finish()
        let a = folder.file("a.safetensors"), b = folder.file("b.safetensors")
        _ = try CheckpointBaker.bake(base: checkpoint, loras: [LoRASpec(path: lora)], output: a)
        _ = try CheckpointBaker.bake(base: checkpoint, loras: [LoRASpec(path: reshaped)], output: b)
        let x = try ModelFile.open(a), y = try ModelFile.open(b)
        for t in x.tensors where t.name.contains("proj_in") || t.name.contains("proj_out") {
            XCTAssertEqual(Array(t.rawBytes), Array(y[t.name]!.rawBytes), t.name)
        }
    }

    // MARK: exactness and round trip

    func testRoundTripChangesExactlyTheTouchedWeights() throws {
        let folder = TemporaryFolder()
        let lora = Repo.fixture("models/sd1_tiny_lora.safetensors")
        let output = folder.file("merged.safetensors")
        let report = try CheckpointBaker.bake(base: base, loras: [LoRASpec(path: lora, ratio: 1)], output: output, options: .init(precision: .f32))
        XCTAssertEqual(report.changedTensors, 264)
        let original = try ModelFile.open(base), merged = try ModelFile.open(output)
        var touched = Set<String>()
        for module in try NetworkFile(model: ModelFile.open(lora)).modules {
            let key = try XCTUnwrap(KeyMap.sd1.target(forModule: module.name)).checkpointKey
            touched.insert(key)
            let delta = try module.delta()
            let before = original[key]!.floats(), after = merged[key]!.floats()
            for i in before.indices {
                // fp16 → fp32 is exact; one fp32 addition rounds once.
                XCTAssertEqual(after[i], before[i] + delta.values[i], key)
            }
        }
        for t in original.tensors where !touched.contains(t.name) {
            XCTAssertEqual(merged[t.name]!.floats(), t.floats(), t.name)
        }
        XCTAssertNotNil(merged.metadata["lora_merge"])
        XCTAssertTrue(merged.metadata["modelspec.merged_from"]?.contains("sd1_tiny_lora.safetensors") ?? false)
    }

    func testConcatReproducesTheWeightedSumExactly() throws {
        let folder = TemporaryFolder()
        var paths: [String] = []
        for (i, layout) in [FixtureGenerator.LoRALayout.lora, .loha, .lokr].enumerated() {
            var options = FixtureGenerator.LoRAOptions()
            options.layout = layout
            options.seed = UInt64(30 + i)
            options.rank = 2
            let path = folder.file("\(layout).safetensors")
            try FixtureGenerator.writeLoRA(.tiny(.sd1), to: path, options: options)
            paths.append(path)
        }
        let specs = [LoRASpec(path: paths[0], ratio: 0.5), LoRASpec(path: paths[1], ratio: -0.25, textEncoderRatio: 0), LoRASpec(path: paths[2], ratio: 1.5)]
        let output = folder.file("concat.safetensors")
        let report = try LoRACombiner.combine(specs, mode: .concat, output: output, precision: .f32)
        XCTAssertEqual(report.overallRelativeError, 0)
        let result = try NetworkFile(model: ModelFile.open(output))
        XCTAssertTrue(result.modules.allSatisfy { $0.algorithm == .lora && $0.scale == 1 })
        let inputs = try paths.map { try NetworkFile(model: ModelFile.open($0)) }
        for module in result.modules {
            let got = try module.delta()
            var want = [Double](repeating: 0, count: got.values.count)
            for (spec, input) in zip(specs, inputs) {
                guard let m = input.modules.first(where: { $0.name == module.name }) else { continue }
                let factor = spec.multiplier(component: module.name.hasPrefix("lora_te") ? .textEncoder1 : .unet, block: nil)
                for (i, v) in try m.delta().values.enumerated() { want[i] += factor * Double(v) }
            }
            let peak = want.map(abs).max() ?? 1
            for (g, w) in zip(got.values, want) { XCTAssertEqual(Double(g), w, accuracy: 1e-5 * max(peak, 1e-3), module.name) }
        }
        // The output is a proper kohya LoRA: metadata and a correct embedded hash.
        let inspected = Inspector.inspect(path: output)
        XCTAssertFalse(inspected.findings.contains { $0.severity != .info }, "\(inspected.findings)")
        XCTAssertEqual(inspected.lora?.family.family, .sd1)
    }

    // MARK: bad input

    func testRefusesWhatWouldBreakTheCheckpoint() throws {
        let folder = TemporaryFolder()
        let tinyLoRA = Repo.fixture("models/sd1_tiny_lora.safetensors")
        func bake(_ loras: [LoRASpec], _ output: String? = nil, _ options: CheckpointBaker.Options = .init()) throws -> CheckpointBaker.Report {
            try CheckpointBaker.bake(base: base, loras: loras, output: output ?? folder.file("out.safetensors"), options: options)
        }
        func expectError(_ expected: String, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try body(), file: file, line: line) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)", file: file, line: line)
                XCTAssertFalse("\(error)".contains("\n"), file: file, line: line)
            }
        }
        // A LoRA for the released SD1.5 widths does not fit the tiny model.
        expectError("shape mismatch") { _ = try bake([LoRASpec(path: Repo.golden("sd1_kohya_lora.safetensors"))]) }
        // Another family.
        let sdxl = folder.file("sdxl.safetensors")
        try FixtureGenerator.writeLoRA(.tiny(.sdxl), to: sdxl, options: .init())
        expectError("an SDXL LoRA cannot be merged into an SD1.x checkpoint") { _ = try bake([LoRASpec(path: sdxl)]) }
        // Output equal to an input.
        expectError("same file as input") { _ = try bake([LoRASpec(path: tinyLoRA)], tinyLoRA) }
        expectError("same file as input") { _ = try bake([LoRASpec(path: tinyLoRA)], self.base) }
        // NaN in a LoRA: refused unless asked.
        let nan = folder.file("nan.safetensors")
        try rewrite(tinyLoRA, to: nan, edit: { name, values in
            var v = values
            if name.hasSuffix("lora_up.weight") && name.contains("mid_block") { v[0] = Float.nan }
            return v
        })
        expectError("NaN") { _ = try bake([LoRASpec(path: nan)]) }
        XCTAssertNoThrow(try bake([LoRASpec(path: nan)], nil, .init(allowNaN: true)))
        // Unknown modules: an error that lists them, or skipped when allowed.
        let extra = folder.file("extra.safetensors")
        try rewrite(tinyLoRA, to: extra, extra: [("lora_unet_not_a_layer.lora_down.weight", [2, 4]), ("lora_unet_not_a_layer.lora_up.weight", [4, 2])])
        expectError("--allow-unmatched") { _ = try bake([LoRASpec(path: extra)]) }
        let skipped = try bake([LoRASpec(path: extra)], nil, .init(allowUnmatched: true))
        XCTAssertEqual(skipped.unmatched.map(\.module), ["lora_unet_not_a_layer"])
        XCTAssertEqual(skipped.loras.first?.applied, 264)
        // No alpha: kohya's default alpha = rank (scale 1), merged fine.
        let noAlpha = folder.file("noalpha.safetensors")
        try rewrite(tinyLoRA, to: noAlpha, drop: { $0.hasSuffix(".alpha") })
        XCTAssertNoThrow(try bake([LoRASpec(path: noAlpha)]))
        // Nothing half-written is ever left behind.
        XCTAssertEqual(Set(folder.contents), ["sdxl.safetensors", "nan.safetensors", "extra.safetensors", "noalpha.safetensors", "out.safetensors"])
    }

    func testFullDiskLeavesNoTruncatedCheckpoint() throws {
        let folder = TemporaryFolder()
        signal(SIGXFSZ, SIG_IGN)
        var old = rlimit()
        getrlimit(Int32(RLIMIT_FSIZE.rawValue), &old)
        var limited = old
        limited.rlim_cur = 256 * 1024
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limited)
        defer { setrlimit(Int32(RLIMIT_FSIZE.rawValue), &old) }
        XCTAssertThrowsError(try CheckpointBaker.bake(base: base, loras: [LoRASpec(path: Repo.fixture("models/sd1_tiny_lora.safetensors"))],
                                                      output: folder.file("out.safetensors")))
        XCTAssertEqual(folder.contents, [])
    }

    func testLoRASpecSyntax() throws {
        let spec = try LoRASpec(parsing: "dir/a:b.safetensors:0.75:te=0.5:lbw=OUTALL") { $0 == "dir/a:b.safetensors" }
        XCTAssertEqual(spec.path, "dir/a:b.safetensors")
        XCTAssertEqual(spec.ratio, 0.75)
        XCTAssertEqual(spec.textEncoderRatio, 0.5)
        XCTAssertEqual(spec.blockWeights?.description, "OUTALL")
        XCTAssertEqual(spec.multiplier(component: .textEncoder1, block: .base), 0.5)
        XCTAssertEqual(spec.multiplier(component: .unet, block: .input(4)), 0)
        XCTAssertEqual(spec.multiplier(component: .unet, block: .output(3)), 0.75)
        XCTAssertEqual(spec.multiplier(component: .unet, block: nil), 0.75, "modules outside blocks keep weight 1")
        let listed = try LoRASpec(parsing: "x.safetensors:1:lbw=1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1") { _ in false }
        XCTAssertEqual(listed.blockWeights?.slots[BlockID("OUT03")!.slot], 1)
        XCTAssertEqual(listed.blockWeights?.slots[BlockID("IN03")!.slot], 0, "blocks a 17-value list does not name get 0, as in the LBW extension")
        let sdxl = try BlockWeights(parsing: "1,0,0,0,0,1,1,1,1,1,1,1")
        XCTAssertEqual(sdxl.weight(for: BlockID("M00")!), 1)
        XCTAssertEqual(sdxl.weight(for: BlockID("IN04")!), 0)
        XCTAssertThrowsError(try LoRASpec(parsing: "x.safetensors:abc") { _ in false })
        XCTAssertThrowsError(try LoRASpec(parsing: "x.safetensors:1:lbw=1,2,3") { _ in false })
        XCTAssertThrowsError(try LoRASpec(parsing: "x.safetensors:1:foo=2") { _ in false })
        // A1111's positional <lora:name:te:unet>: the second number is the U-Net's.
        let positional = try LoRASpec(parsing: "x.safetensors:0.8:0.5") { _ in false }
        XCTAssertEqual(positional.multiplier(component: .textEncoder1, block: nil), 0.8)
        XCTAssertEqual(positional.multiplier(component: .unet, block: nil), 0.5)
        XCTAssertThrowsError(try LoRASpec(parsing: "x.safetensors:1:1:8") { _ in false }) { error in
            XCTAssertTrue((error as? ModelError)?.message.contains("dyn dim") ?? false, "\(error)")
        }
        for (text, says) in [("x.safetensors:abc", "'abc'"), ("x.safetensors:1:lbw=1,2,3", "got 3"), ("x.safetensors:1:lbw=FOO", "neither a preset")] {
            XCTAssertThrowsError(try LoRASpec(parsing: text) { _ in false }) { error in
                XCTAssertTrue((error as? ModelError)?.message.contains(says) ?? false, "\(text): \(error)")
            }
        }
    }

    // MARK: helpers

    private func rewrite(_ source: String, to path: String, extra: [(String, [Int])] = [], drop: (String) -> Bool = { _ in false },
                         edit: (String, [Float]) -> [Float] = { $1 }) throws {
        let model = try ModelFile.open(source)
        let kept = model.tensors.filter { !drop($0.name) }
        let writer = try SafeTensorsWriter(path: path, metadata: model.metadata,
                                           entries: kept.map { .init(name: $0.name, dtype: $0.dtype, shape: $0.shape) }
                                               + extra.map { .init(name: $0.0, dtype: .f16, shape: $0.1) })
        for t in kept { try edit(t.name, t.floats()).withUnsafeBufferPointer { try writer.write(name: t.name, floats: $0) } }
        for (name, shape) in extra {
            try [Float](repeating: 0.1, count: shape.reduce(1, *)).withUnsafeBufferPointer { try writer.write(name: name, floats: $0) }
        }
        try writer.finish()
    }

    /// An SD1 LoRA whose family only its metadata tells ("SD1.x?") is not
    /// compatible with anything: combined with an SDXL LoRA it is refused by
    /// its key structure (plain lora_te_, U-Net modules SDXL lacks), whichever comes first.
    func testCombiningRefusesAnUncertainLoRAOfAnotherFamily() throws {
        let folder = TemporaryFolder()
        let sdxl = folder.file("xl.safetensors"), sd1 = folder.file("sd1.safetensors"), sd1UNet = folder.file("sd1_unet.safetensors")
        try FixtureGenerator.writeLoRA(.tiny(.sdxl), to: sdxl)
        try FixtureGenerator.writeLoRA(.tiny(.sd1), to: sd1)
        var unetOnly = FixtureGenerator.LoRAOptions()
        unetOnly.includeTextEncoder = false
        try FixtureGenerator.writeLoRA(.tiny(.sd1), to: sd1UNet, options: unetOnly)
        for path in [sd1, sd1UNet] {
            let lora = try LoadedLoRA.open(LoRASpec(path: path))
            XCTAssertEqual(lora.family.evidence, .metadata, "the tiny widths leave only the metadata")
            for order in [[path, sdxl], [sdxl, path]] {
                XCTAssertThrowsError(try LoRACombiner.combine(order.map { LoRASpec(path: $0) }, mode: .concat, output: folder.file("mix.safetensors"))) {
                    error in
                    let e = error as? ModelError
                    XCTAssertEqual(e?.kind, .mismatch, "\(error)")
                    XCTAssertEqual(e?.file, path, "the SD1 file is named: \(error)")
                    XCTAssertTrue(e?.message.contains("cannot be combined") ?? false, "\(error)")
                }
                XCTAssertFalse(FileManager.default.fileExists(atPath: folder.file("mix.safetensors")))
            }
        }
        // Two uncertain SD1 LoRAs still combine.
        let report = try LoRACombiner.combine([LoRASpec(path: sd1), LoRASpec(path: sd1UNet)], mode: .concat, output: folder.file("two.safetensors"))
        XCTAssertEqual(report.family, "SD1.x")
    }

}

/// Distance in units in the last place of `dtype` between two values rounded to it.
func ulpDistance(_ a: Float, _ b: Float, dtype: DType) -> Int {
    switch dtype {
    case .f16: return ulpDistance(Float16(a), Float16(b))
    case .bf16:
        func ordered(_ x: Float) -> Int {
            let bits = Int((x.bitPattern &+ 0x7FFF &+ ((x.bitPattern >> 16) & 1)) >> 16)
            return bits & 0x8000 != 0 ? -(bits & 0x7FFF) : bits
        }
        return abs(ordered(a) - ordered(b))
    default:
        func ordered(_ x: Float) -> Int { let bits = Int(x.bitPattern); return bits & 0x8000_0000 != 0 ? -(bits & 0x7FFF_FFFF) : bits }
        return abs(ordered(a) - ordered(b))
    }
}

func ulpDistance(_ a: Float16, _ b: Float16) -> Int {
    func ordered(_ x: Float16) -> Int { let bits = Int(x.bitPattern); return bits & 0x8000 != 0 ? -(bits & 0x7FFF) : bits }
    return abs(ordered(a) - ordered(b))

}
