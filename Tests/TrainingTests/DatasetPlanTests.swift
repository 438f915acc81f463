import Foundation
import Diffusion
import Imaging
import LoRACore
@testable import Training
import XCTest

/// Dataset plans against sd-scripts' own dataset code on the same folders
/// (Fixtures/golden/make_dataset_golden.py ran kohya's argument parser,
/// subset discovery, DreamBoothDataset and make_buckets): every image's
/// repeats, bucket and resized size; bucket counts; batches per epoch; the
/// regularization balance; tag frequencies; steps.
final class DatasetPlanTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    struct Case: Decodable {
        struct Folder: Decodable {
            struct Image: Decodable { let name: String, width: Int, height: Int, caption: String?, caption_extension: String }
            let name: String
            let images: [Image]
        }
        struct Image: Decodable { let path: String, repeats: Int, caption: String, is_reg: Bool, bucket: [Int], resized: [Int] }
        struct Bucket: Decodable { let resolution: [Int], count: Int }
        struct Steps: Decodable { let steps_per_epoch: Int, total: Int, epochs: Int }
        /// A fine-tuning case: the metadata file's name and text, and the images it lists (paths under the training folder).
        struct Metadata: Decodable {
            struct Image: Decodable { let path: String, width: Int, height: Int }
            let file: String, text: String, images: [Image]
        }
        let metadata: Metadata?
        let name: String, args: [String], caption_extension: String
        let train: [Folder], reg: [Folder], images: [Image], buckets: [Bucket]
        let mean_img_ar_error: Double?
        let batches_per_epoch: Int, num_train_images: Int, num_reg_images: Int
        let tag_frequency: [String: [String: Int]]
        let steps: [String: Steps]
    }

    static func cases() throws -> [Case] {
        struct File: Decodable { let cases: [Case] }
        let data = try Data(contentsOf: URL(fileURLWithPath: root + "/Fixtures/golden/training/datasets.json"))
        return try JSONDecoder().decode(File.self, from: data).cases
    }

    /// The case's folders, with flat-colour PNGs of the listed sizes.
    static func build(_ folders: [Case.Folder], under parent: String) throws {
        for folder in folders {
            let path = parent + "/" + folder.name
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            for image in folder.images {
                let png = try PNGCodec.encode(Bitmap(width: image.width, height: image.height, fill: RGB(120, 80, 40)))
                FileManager.default.createFile(atPath: path + "/" + image.name, contents: Data(png))
                if let caption = image.caption {
                    let base = (image.name as NSString).deletingPathExtension
                    FileManager.default.createFile(atPath: path + "/" + base + image.caption_extension,
                                                   contents: Data((caption + "\nsecond line is ignored\n").utf8))
                }
            }
        }
    }

    /// The kohya arguments the cases use, as lora-train reads them.
    static func bucketing(_ args: [String]) -> (BucketSet, batch: Int) {
        func value(_ name: String) -> String? { args.firstIndex(of: name).map { args[$0 + 1] } }
        let sides = value("--resolution")!.split(separator: ",").map { Int($0)! }
        let resolution = Resolution(sides[0], sides.count > 1 ? sides[1] : sides[0])
        let mode: BucketSet.Mode
        if !args.contains("--enable_bucket") {
            mode = .fixed
        } else if args.contains("--bucket_no_upscale") {
            mode = .noUpscale(step: 64)
        } else {
            let limits = BucketSet.adjustedLimits(resolution: resolution, min: Int(value("--min_bucket_reso") ?? "256")!,
                                                  max: Int(value("--max_bucket_reso") ?? "1024")!, step: 64)
            mode = .predefined(min: limits.min, max: limits.max, step: 64)
        }
        return (BucketSet(resolution: resolution, mode: mode), Int(value("--train_batch_size") ?? "1")!)
    }

    func testPlansEqualKohyas() throws {
        for golden in try Self.cases() {
            let work = NSTemporaryDirectory() + "lt-plan-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: work) }
            try Self.build(golden.train, under: work + "/train")
            if !golden.reg.isEmpty { try Self.build(golden.reg, under: work + "/reg") }
            var subsets: [DatasetSubset]
            if let metadata = golden.metadata {
                for image in metadata.images {
                    let path = work + "/train/" + image.path
                    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                    FileManager.default.createFile(atPath: path, contents: Data(try PNGCodec.encode(Bitmap(width: image.width, height: image.height, fill: RGB(120, 80, 40)))))
                }
                try metadata.text.write(toFile: work + "/" + metadata.file, atomically: false, encoding: .utf8)
                func value(_ name: String) -> String? { golden.args.firstIndex(of: name).map { golden.args[$0 + 1] } }
                var subset = DatasetSubset(imageDirectory: work + "/train", repeats: Int(value("--dataset_repeats") ?? "1")!)
                subset.metadataFile = work + "/" + metadata.file
                subset.enableWildcard = golden.args.contains("--enable_wildcard")
                subset.captionSeparator = value("--caption_separator") ?? ","
                subsets = [subset]
            } else {
                subsets = try DatasetSubset.fromFolders(train: work + "/train", regularization: golden.reg.isEmpty ? nil : work + "/reg").subsets
            }
            for i in subsets.indices { subsets[i].captionExtension = golden.caption_extension }
            let (bucketing, batch) = Self.bucketing(golden.args)
            let plan = try DatasetPlan.make(subsets: subsets, bucketing: bucketing, batchSize: batch)
            let name = golden.name

            XCTAssertEqual(plan.trainImagesWithRepeats, golden.num_train_images, name)
            XCTAssertEqual(plan.regImagesWithRepeats, golden.num_reg_images, name)
            XCTAssertEqual(plan.batchesPerEpoch, golden.batches_per_epoch, name)
            XCTAssertEqual(plan.buckets.map { [$0.resolution.width, $0.resolution.height] }, golden.buckets.map(\.resolution), name)
            XCTAssertEqual(plan.buckets.map(\.entries.count), golden.buckets.map(\.count), name)
            if let error = golden.mean_img_ar_error { XCTAssertEqual(plan.meanAspectError, error, accuracy: 1e-12, name) }

            let ours = Dictionary(uniqueKeysWithValues: plan.images.enumerated().map { i, image in
                (String(image.path.dropFirst(work.count + 1)), (image, plan.buckets[plan.bucketOf[i]].resolution, plan.resizedSize[i]))
            })
            XCTAssertEqual(ours.count, golden.images.count, "\(name): images in use (regularization images beyond the balance are not)")
            for expected in golden.images {
                guard let (image, bucket, resized) = ours[expected.path] else { XCTFail("\(name): \(expected.path) missing"); continue }
                XCTAssertEqual(image.repeats, expected.repeats, "\(name) \(expected.path) repeats")
                XCTAssertEqual(image.caption, expected.caption, "\(name) \(expected.path) caption")
                XCTAssertEqual(image.isRegularization, expected.is_reg, "\(name) \(expected.path)")
                XCTAssertEqual([bucket.width, bucket.height], expected.bucket, "\(name) \(expected.path) bucket")
                XCTAssertEqual([resized.width, resized.height], expected.resized, "\(name) \(expected.path) resized")
            }
            let tags = Dictionary(uniqueKeysWithValues: plan.tagFrequency.map { ($0.folder, $0.tags) })
            XCTAssertEqual(tags, golden.tag_frequency, name)
            for (key, expected) in golden.steps {
                let parts = key.split(separator: "x")
                let steps = StepCount(batchesPerEpoch: plan.batchesPerEpoch, gradientAccumulationSteps: Int(parts[1])!,
                                      maxTrainEpochs: Int(parts[0]), maxTrainSteps: 1600)
                XCTAssertEqual([steps.stepsPerEpoch, steps.totalSteps, steps.epochs], [expected.steps_per_epoch, expected.total, expected.epochs],
                               "\(name) \(key)")
            }
        }
    }

    /// kohya's limits (adjust_min_max_bucket_reso_by_steps), and the settings it would crash on refused with a reason.
    func testBucketLimits() {
        let r = Resolution(512, 512)
        XCTAssertTrue(BucketSet.adjustedLimits(resolution: r, min: 300, max: 1000, step: 64) == (256, 1024, nil))
        XCTAssertEqual(BucketSet.adjustedLimits(resolution: r, min: 576, max: 1024, step: 64).error,
                       "--min-bucket-reso 576 is larger than the resolution's smaller side")
        XCTAssertEqual(BucketSet.adjustedLimits(resolution: Resolution(64, 64), min: 32, max: 128, step: 64).error,
                       "--min-bucket-reso 32 rounds down to 0 at --bucket-reso-steps 64: give at least 64", "kohya divides by zero")
        XCTAssertEqual(BucketSet.adjustedLimits(resolution: r, min: 256, max: 1024, step: 0).error, "bucket_reso_steps 0 is not a positive multiple of 8")
        XCTAssertNotNil(BucketSet.adjustedLimits(resolution: r, min: 256, max: 1024, step: -64).error)
    }

    /// Values a dataset config could hold that the loader would divide by, loop to or allocate from: refused
    /// with the key named (batch_size = 0 was a division by zero; a 10⁸-pixel side an allocation failure).
    func testHostileDatasetConfigValuesAreNamed() throws {
        let path = NSTemporaryDirectory() + "lt-dataset-\(UUID().uuidString).toml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let cases: [(String, String, String)] = [
            ("batch_size = 0", "batch_size", "batch_size must be at least 1, not 0"),
            ("batch_size = -2", "batch_size", "batch_size must be at least 1"),
            ("resolution = 99999999", "resolution", "must have sides of 64 to 8192 pixels"),
            ("resolution = [64, 7]", "resolution", "resolution (64, 7) must have sides of 64 to 8192 pixels, multiples of 8"),
            ("resolution = 0", "resolution", "must have sides of 64"),
            ("[[datasets.subsets]]\nimage_dir = 'y'\nnum_repeats = 0", "num_repeats", "num_repeats must be at least 1"),
            ("[[datasets.subsets]]\nimage_dir = 'y'\nkeep_tokens = -1", "keep_tokens", "keep_tokens must be at least 0"),
            ("[[datasets.subsets]]\nimage_dir = 'y'\ncaption_dropout_rate = 1.5", "caption_dropout_rate", "between 0 and 1"),
            ("[[datasets.subsets]]\nimage_dir = 'y'\ncaption_tag_dropout_rate = -0.1", "caption_tag_dropout_rate", "between 0 and 1"),
            // Fine-tuning subsets: kohya's schema has no DreamBooth keys for them, and a dataset is one kind or the other.
            ("[[datasets.subsets]]\nmetadata_file = 'm.json'\nis_reg = true", "is_reg", "belongs to folder (DreamBooth) subsets"),
            ("[[datasets.subsets]]\nmetadata_file = 3", "metadata_file", "metadata_file must be a string"),
            ("[[datasets.subsets]]\nmetadata_file = 'm.json'", "metadata_file", "mixes folder (DreamBooth) subsets and subsets with metadata_file"),
            // Refused rather than ignored, as sd-scripts' train_network.py ignores it.
            ("network_multiplier = -1.0", "network_multiplier", "does not apply it either"),
        ]
        for (line, key, message) in cases {
            try "[[datasets]]\n\(line)\n[[datasets.subsets]]\nimage_dir = 'x'\n".write(toFile: path, atomically: false, encoding: .utf8)
            XCTAssertThrowsError(try DatasetConfig.load(path, defaults: DatasetSubset(imageDirectory: "")), line) { error in
                let e = error as? ModelError
                XCTAssertEqual(e?.key, key, line)
                XCTAssertEqual(e?.file, path, line)
                XCTAssertTrue(e?.message.contains(message) ?? false, "\(line): \(error)")
            }
        }
        try "[[datasets]]\nresolution = [512, 768]\nbatch_size = 2\n[[datasets.subsets]]\nimage_dir = 'x'\nnum_repeats = 3\n".write(toFile: path, atomically: false,
                                                                                                                          encoding: .utf8)
        let good = try DatasetConfig.load(path, defaults: DatasetSubset(imageDirectory: ""))
        XCTAssertEqual(good.first?.resolution, Resolution(512, 768))
        XCTAssertEqual(good.first?.subsets.first?.repeats, 3)
    }

    func testPointingAtTheConceptFolderSaysWhy() throws {
        let work = NSTemporaryDirectory() + "lt-plan-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: work) }
        try Self.build([Case.Folder(name: "10_mychar", images: [.init(name: "a.png", width: 64, height: 64, caption: "x", caption_extension: ".txt")])],
                       under: work)
        let (subsets, skipped) = try DatasetSubset.fromFolders(train: work + "/10_mychar", regularization: nil)
        XCTAssertTrue(subsets.isEmpty)
        XCTAssertEqual(skipped.count, 0, "the concept folder has no sub-folders")
        XCTAssertThrowsError(try DatasetPlan.make(subsets: subsets, bucketing: BucketSet(resolution: Resolution(512, 512), mode: .fixed), batchSize: 1)) {
            let message = ($0 as? ModelError)?.message ?? ""
            XCTAssertTrue(message.contains("must be the parent of folders named <repeats>_<class tokens>"), message)
        }
    }

    func testTxtCaptionsBesideTheDefaultExtensionAreNamed() throws {
        let work = NSTemporaryDirectory() + "lt-plan-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: work) }
        try Self.build([Case.Folder(name: "3_tok", images: [.init(name: "a.png", width: 64, height: 64, caption: "a red circle", caption_extension: ".txt"),
                                                            .init(name: "b.png", width: 64, height: 64, caption: nil, caption_extension: ".txt")])],
                       under: work)
        let (subsets, _) = try DatasetSubset.fromFolders(train: work, regularization: nil)
        let plan = try DatasetPlan.make(subsets: subsets, bucketing: BucketSet(resolution: Resolution(512, 512), mode: .fixed), batchSize: 1)
        XCTAssertEqual(plan.images.map(\.caption), ["tok", "tok"], "kohya's default .caption: class tokens for both")
        XCTAssertTrue(plan.warnings.contains { $0.contains("pass --caption-extension .txt") }, "\(plan.warnings)")
    }
}

/// Training images are resized as sd-scripts resizes them (library/utils.py
/// `resize_image`: OpenCV's INTER_AREA when shrinking, PIL's Lanczos
/// otherwise), checked against that function's output on a patterned image.
final class TrainingResizeTests: XCTestCase {
    struct Resize: Decodable { let from: [Int], to: [Int], pixels_hex: String }

    func testResizeFollowsKohyasAreaAndLanczos() throws {
        struct File: Decodable { let resizes: [Resize] }
        let data = try Data(contentsOf: URL(fileURLWithPath: DatasetPlanTests.root + "/Fixtures/golden/training/datasets.json"))
        for resize in try JSONDecoder().decode(File.self, from: data).resizes {
            let (w, h) = (resize.from[0], resize.from[1])
            var pixels = [UInt8](repeating: 0, count: w * h * 3)
            for y in 0..<h { for x in 0..<w { for c in 0..<3 { pixels[(y * w + x) * 3 + c] = UInt8((x * 37 + y * 91 + c * 53 + (x * y) % 17 * 7) % 256) } } }
            let ours = Bitmap(width: w, height: h, pixels: pixels).resampled(width: resize.to[0], height: resize.to[1]).pixels
            var hex = Substring(resize.pixels_hex)
            var expected: [UInt8] = []
            while !hex.isEmpty { expected.append(UInt8(hex.prefix(2), radix: 16)!); hex = hex.dropFirst(2) }
            XCTAssertEqual(ours.count, expected.count)
            let differences = zip(ours, expected).map { abs(Int($0) - Int($1)) }
            let mean = Double(differences.reduce(0, +)) / Double(differences.count)
            // PIL and OpenCV work in fixed point; we round once from float.
            XCTAssertLessThanOrEqual(differences.max() ?? 0, 1, "\(resize.from) → \(resize.to)")
            XCTAssertLessThan(mean, 0.05, "\(resize.from) → \(resize.to)")
        }
    }

    /// Each --resize_interpolation method against sd-scripts' resize_image with it (make_resize_golden.py:
    /// PIL for lanczos and box, OpenCV for the others), shrinking, enlarging and both at once. The filters
    /// work in fixed point there and in float here, so a pixel may be one level off (OpenCV's 11-bit
    /// coefficients more often than PIL's 22-bit ones). Nearest is exact except where a target pixel's
    /// centre falls exactly on a source pixel boundary: OpenCV 5.0 breaks those ties in a pattern that
    /// its documented fixed-point formula (ours) does not reproduce, so there either neighbour is allowed.
    func testEachInterpolationFollowsKohya() throws {
        struct Case: Decodable { let method: String, from: [Int], to: [Int], pixels_hex: String }
        struct File: Decodable { let cases: [Case] }
        let data = try Data(contentsOf: URL(fileURLWithPath: DatasetPlanTests.root + "/Fixtures/golden/training/resize_interpolations.json"))
        let cases = try JSONDecoder().decode(File.self, from: data).cases
        XCTAssertEqual(Set(cases.map(\.method)), Set(Bitmap.Interpolation.allCases.map(\.rawValue)))
        for c in cases {
            let method = try XCTUnwrap(Bitmap.Interpolation(rawValue: c.method))
            let (w, h) = (c.from[0], c.from[1])
            let image = Bitmap(width: w, height: h, pixels: Self.pattern(width: w, height: h))
            let ours = image.resampled(width: c.to[0], height: c.to[1], interpolation: method).pixels
            var hex = Substring(c.pixels_hex), expected: [UInt8] = []
            while !hex.isEmpty { expected.append(UInt8(hex.prefix(2), radix: 16)!); hex = hex.dropFirst(2) }
            XCTAssertEqual(ours.count, expected.count)
            let label = "\(c.method) \(c.from) → \(c.to)"
            if method == .nearest {
                // Where a centre is a tie, either neighbour; everywhere else, the same source pixel.
                func candidates(_ t: Int, _ source: Int, _ target: Int) -> Set<Int> {
                    let twice = (2 * t + 1) * source  // the centre × 2·target
                    let floor = min(twice / (2 * target), source - 1)
                    return twice % (2 * target) == 0 && floor > 0 ? [floor - 1, floor] : [floor]
                }
                var mismatches = 0, ties = 0
                for y in 0..<c.to[1] {
                    for x in 0..<c.to[0] {
                        let xs = candidates(x, w, c.to[0]), ys = candidates(y, h, c.to[1])
                        if xs.count > 1 || ys.count > 1 { ties += 1 }
                        let allowed = Set(ys.flatMap { sy in xs.map { sx in Array(image.pixels[((sy * w + sx) * 3)..<((sy * w + sx) * 3 + 3)]) } })
                        let o = (y * c.to[0] + x) * 3
                        XCTAssertTrue(allowed.contains(Array(ours[o..<(o + 3)])), "ours: \(label) at \(x),\(y)")
                        if !allowed.contains(Array(expected[o..<(o + 3)])) { mismatches += 1 }
                    }
                }
                XCTAssertEqual(mismatches, 0, "OpenCV's pixels are one of the allowed ones too: \(label)")
                let differing = stride(from: 0, to: ours.count, by: 3).filter { ours[$0..<($0 + 3)] != expected[$0..<($0 + 3)] }.count
                XCTAssertLessThanOrEqual(differing, ties, "only ties may differ: \(label)")
                continue
            }
            let differences = zip(ours, expected).map { abs(Int($0) - Int($1)) }
            let mean = Double(differences.reduce(0, +)) / Double(max(1, differences.count))
            XCTAssertLessThanOrEqual(differences.max() ?? 0, 1, label)
            XCTAssertLessThan(mean, [.lanczos, .box].contains(method) ? 0.05 : 0.2, label)
        }
        // The methods differ from each other (a mix-up of two would not pass above): every pair somewhere.
        let image = Bitmap(width: 37, height: 23, pixels: Self.pattern(width: 37, height: 23))
        let methods: [Bitmap.Interpolation] = [.lanczos, .box, .nearest, .bilinear, .bicubic, .area]
        let outputs = methods.map { m in [(16, 10), (48, 30)].map { image.resampled(width: $0.0, height: $0.1, interpolation: m).pixels } }
        for i in methods.indices { for j in methods.indices where j > i { XCTAssertNotEqual(outputs[i], outputs[j], "\(methods[i]) vs \(methods[j])") } }
    }

    static func pattern(width w: Int, height h: Int) -> [UInt8] {
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w { for k in 0..<3 { pixels[(y * w + x) * 3 + k] = UInt8((x * 37 + y * 91 + k * 53 + (x * y) % 17 * 7) % 256) } } }
        return pixels
    }
}

/// Sample prompt lines parsed as sd-scripts' `line_to_prompt_dict` parses them
/// (golden from that function); sizes rounded down to multiples of 8 as its
/// sampler does before rendering; kohya's defaults where a line is silent.
final class SamplePromptTests: XCTestCase {
    func testPromptLinesFollowKohya() throws {
        struct Golden: Decodable {
            struct Parsed: Decodable {
                let prompt: String, negative_prompt: String?, width: Int?, height: Int?, seed: UInt64?, sample_steps: Int?, scale: Float?
                let sample_sampler: String?
            }
            struct Line: Decodable { let line: String, parsed: Parsed }
            let prompts: [Line]
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: DatasetPlanTests.root + "/Fixtures/golden/training/datasets.json"))
        let golden = try JSONDecoder().decode(Golden.self, from: data).prompts
        XCTAssertEqual(golden.count, 5)
        for item in golden {
            let ours = SamplePrompt(line: item.line), k = item.parsed
            XCTAssertEqual(ours.prompt, k.prompt, item.line)
            XCTAssertEqual(ours.negative, k.negative_prompt ?? "", item.line)
            XCTAssertEqual(ours.width, max(64, (k.width ?? 512) / 8 * 8), item.line)
            XCTAssertEqual(ours.height, max(64, (k.height ?? 512) / 8 * 8), item.line)
            XCTAssertEqual(ours.seed, k.seed, item.line)
            XCTAssertEqual(ours.steps, k.sample_steps ?? 30, item.line)
            XCTAssertEqual(ours.scale, k.scale ?? 7.5, item.line)
            XCTAssertEqual(ours.sampler, k.sample_sampler, item.line)
        }
    }

    /// kohya's --sample_sampler names (train_util.py's choices) on the engine's samplers; the diffusers schedulers
    /// kohya would build for them step like A1111's samplers of the same name (pndm: A1111's PLMS), and dpmsingle,
    /// which A1111 lacks, as diffusers' own scheduler.
    func testKohyaSamplerNames() {
        let expected: [String: SamplerChoice] = ["ddim": .init(.ddim), "euler": .init(.euler), "k_euler": .init(.euler), "euler_a": .init(.eulerAncestral),
                                                 "k_euler_a": .init(.eulerAncestral), "dpmsolver++": .init(.dpmpp2m), "lms": .init(.lms),
                                                 "k_lms": .init(.lms), "heun": .init(.heun), "dpm_2": .init(.dpm2), "k_dpm_2": .init(.dpm2),
                                                 "dpm_2_a": .init(.dpm2Ancestral), "k_dpm_2_a": .init(.dpm2Ancestral), "pndm": .init(.plms),
                                                 "dpmsingle": .init(.dpmpp2s)]
        for (name, choice) in expected { XCTAssertEqual(SamplePrompt.sampler(named: name), choice, name) }
        XCTAssertEqual(Set(SamplePrompt.samplerNames), Set(expected.keys).union(["dpmsolver"]))
        XCTAssertNil(SamplePrompt.sampler(named: "ddpm"), "kohya keeps ddpm out of its choices")
    }
}

/// The rough time `--dry-run` prints: the measured anchor at 512² (14 s per sample-step, 20 with checkpointing, on
/// 2 cores), more than linear in area, halved by twice the cores, caching doubled by flips, LyCORIS's networks dearer.
final class TrainingEstimateTests: XCTestCase {
    func plan(side: Int, flip: Bool) -> DatasetPlan {
        var subset = DatasetSubset(imageDirectory: "/d", repeats: 1)
        subset.flipAugment = flip
        var p = DatasetPlan(subsets: [subset], images: [DatasetImage(path: "/d/a.png", caption: "", captionSource: .none, subsetIndex: 0, repeats: 1,
                                                                       isRegularization: false, width: side, height: side)],
                            bucketOf: [0], resizedSize: [Resolution(side, side)], buckets: [.init(resolution: Resolution(side, side), entries: [0])],
                            batchSize: 1, bucketing: BucketSet(resolution: Resolution(side, side), mode: .fixed))
        p.trainImagesWithRepeats = 1
        return p
    }

    func testScaling() {
        let steps = StepCount(batchesPerEpoch: 1, gradientAccumulationSteps: 1, maxTrainEpochs: 10, maxTrainSteps: 1600)
        let base = TrainingEstimate.seconds(plan: plan(side: 512, flip: false), steps: steps, checkpointing: false, textEncoder: false,
                                            host: .avx2EPYC, cores: 2)
        XCTAssertEqual(base.training, 140, accuracy: 1e-9, "ten steps of one 512² sample at 14 s")
        XCTAssertEqual(base.caching, 6.5, accuracy: 1e-9)
        let big = TrainingEstimate.seconds(plan: plan(side: 768, flip: true), steps: steps, checkpointing: true, textEncoder: true,
                                           host: .avx2EPYC, cores: 4)
        XCTAssertGreaterThan(big.training, base.training * 2.25 * 19 / 14 / 2, "more than linear in area")
        XCTAssertEqual(big.caching, 2 * 6.5 * pow(2.25, 1.15) / 2, accuracy: 1e-9)
        XCTAssertEqual(ReportText.clock(3725), "1:02:05")
        // A model a tenth of SD1.5's U-Net and a quarter of its encoder: a tenth of the steps' time, a quarter of the caching.
        let small = TrainingEstimate.seconds(plan: plan(side: 512, flip: false), steps: steps, checkpointing: false, textEncoder: false,
                                             model: (0.1, 0.25), host: .avx2EPYC, cores: 2)
        XCTAssertEqual(small.training, 14, accuracy: 1e-9)
        XCTAssertEqual(small.caching, 6.5 / 4, accuracy: 1e-9)
        // LoHa with LyCORIS's max norm: 1.28 × 1.07 of the LoRA step; LoKr 1.14; LoCon as kohya's LoRA.
        let loha = TrainingEstimate.seconds(plan: plan(side: 512, flip: false), steps: steps, checkpointing: false, textEncoder: false,
                                            network: TrainingEstimate.networkFactor(.loha, maxNorm: true), host: .avx2EPYC, cores: 2)
        XCTAssertEqual(loha.training, 140 * 1.28 * 1.07, accuracy: 1e-9)
        XCTAssertEqual(loha.caching, base.caching)
        XCTAssertEqual(TrainingEstimate.networkFactor(.lokr(factor: -1, decomposeBoth: true, fullMatrix: false), maxNorm: true), 1.14)
        XCTAssertEqual(TrainingEstimate.networkFactor(.locon), TrainingEstimate.networkFactor(nil))
        XCTAssertEqual(TrainingEstimate.networkFactor(.locon, dora: true), 1.19, "DoRA folds LoCon into the weight")
        XCTAssertEqual(TrainingEstimate.networkFactor(.ia3, dora: true), 1.14, "(IA)^3 takes no DoRA")
    }

    /// The AVX-512 Xeon's figures where the kernels run on AVX-512, the EPYC's below (and on CPUs without AVX-512, whatever
    /// the ceiling); each host's own step, checkpointed step and encode.
    func testHostFiguresFollowTheKernelPath() {
        KernelPaths.with(.avx2) { XCTAssertEqual(TrainingEstimate.HostFigures.thisHost, .avx2EPYC) }
        KernelPaths.with(.portable) { XCTAssertEqual(TrainingEstimate.HostFigures.thisHost, .avx2EPYC) }
        KernelPaths.with(.avx512) {
            XCTAssertEqual(TrainingEstimate.HostFigures.thisHost, KernelPaths.available.contains(.avx512) ? .avx512Xeon : .avx2EPYC)
        }
        let steps = StepCount(batchesPerEpoch: 1, gradientAccumulationSteps: 1, maxTrainEpochs: 10, maxTrainSteps: 1600)
        let xeon = TrainingEstimate.seconds(plan: plan(side: 512, flip: false), steps: steps, checkpointing: true, textEncoder: true,
                                            host: .avx512Xeon, cores: 2)
        XCTAssertEqual(xeon.training, 10 * (12.5 + 1), accuracy: 1e-9)
        XCTAssertEqual(xeon.caching, 4.2, accuracy: 1e-9)
    }
}

/// kohya's JSON and TOML prompt files (train_util.py load_prompts): lines or objects; [prompt] defaults merged into subsets.
final class SamplePromptFileTests: XCTestCase {
    /// Numbers a hostile prompt file could hold: errors naming the key or the prompt, never a trap (Int(1e300),
    /// UInt64(nan) and a 10⁸-pixel sample stopped or would have stopped the run).
    func testHostilePromptNumbersAreErrors() throws {
        let path = NSTemporaryDirectory() + "prompts-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        for (entry, key) in [(#"{"prompt": "a", "width": 1e300}"#, "width"), (#"{"prompt": "a", "height": -8}"#, "height"),
                             (#"{"prompt": "a", "seed": 1e30}"#, "seed"), (#"{"prompt": "a", "seed": -1}"#, "seed"),
                             (#"{"prompt": "a", "sample_steps": 1e300}"#, nil), (#"{"prompt": "a", "scale": "x"}"#, "scale")] {
            try "[\(entry)]".write(toFile: path, atomically: false, encoding: .utf8)
            if let key {
                XCTAssertThrowsError(try SamplePrompt.load(path), entry) { XCTAssertEqual(($0 as? ModelError)?.key, key, entry) }
            } else {
                XCTAssertEqual(try SamplePrompt.load(path).first?.steps, 1000, "steps are clamped to 1000, as kohya's CLI range")
            }
        }
        try #"["a cat --w 99999999", "a dog"]"#.write(toFile: path, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try SamplePrompt.load(path)) { XCTAssertTrue("\($0)".contains("prompt 1 asks for 99999992×512 pixels"), "\($0)") }
        try "a cat --w 8192 --h 64\n".write(toFile: path + ".txt", atomically: false, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path + ".txt") }
        XCTAssertEqual(try SamplePrompt.load(path + ".txt").map(\.width), [8192])
    }

    func testJSONAndTOMLPromptFiles() throws {
        let folder = NSTemporaryDirectory() + "prompts-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try #"["a cat --w 640 --d 3", {"prompt": "a dog", "negative_prompt": "blurry", "width": 515, "seed": 9, "sample_steps": 12, "scale": 5.5, "sample_sampler": "euler_a"}]"#
            .write(toFile: folder + "/p.json", atomically: false, encoding: .utf8)
        let json = try SamplePrompt.load(folder + "/p.json")
        XCTAssertEqual(json.count, 2)
        XCTAssertEqual([json[0].prompt, "\(json[0].width)", "\(json[0].seed ?? 0)"], ["a cat", "640", "3"])
        XCTAssertEqual(json[1].negative, "blurry")
        XCTAssertEqual([json[1].width, json[1].height, json[1].steps], [512, 512, 12], "515 rounded down to a multiple of 8")
        XCTAssertEqual(json[1].scale, 5.5)
        XCTAssertEqual(json[1].sampler, "euler_a")
        try """
            [prompt]
            width = 256
            sample_steps = 7
            negative_prompt = "lowres"
              [[prompt.subset]]
              prompt = "a red star"
              [[prompt.subset]]
              prompt = "a blue square"
              width = 128
            """.write(toFile: folder + "/p.toml", atomically: false, encoding: .utf8)
        let toml = try SamplePrompt.load(folder + "/p.toml")
        XCTAssertEqual(toml.map(\.prompt), ["a red star", "a blue square"])
        XCTAssertEqual(toml.map(\.width), [256, 128], "the subset overrides [prompt]")
        XCTAssertEqual(toml.map(\.steps), [7, 7])
        XCTAssertEqual(toml.map(\.negative), ["lowres", "lowres"])
        try #"{"prompt": 3}"#.write(toFile: folder + "/bad.json", atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try SamplePrompt.load(folder + "/bad.json"))
    }
}
