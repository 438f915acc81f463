import Diffusion
import FixtureKit
import Foundation
import Imaging
import LoRACore
import XCTest
@testable import XYZPlot

/// Whole runs on the tiny engine fixtures (64×64, 4 steps).
final class RenderTests: XCTestCase {
    static let root = InfotextGoldenTests.root
    static let tokenizer: BPETokenizer = try! BPETokenizer.load(root + "/Fixtures/tokenizer/clip_bpe_merges.txt.gz")

    var folder = ""

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "lora-xyz-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    func fixture(_ name: String, as fileName: String? = nil) throws -> String {
        let item = try XCTUnwrap(FixtureSet.items.first { $0.name == name })
        let path = folder + "/" + (fileName ?? name)
        try item.write(path)
        return path
    }

    func request(_ model: String, loras: [String], weights: [Double]) -> PlanRequest {
        var r = PlanRequest()
        r.checkpoints = [model]
        r.loras = LoRAEpochs.order(loras, epochOf: LoRAEpochs.epoch(of:))
        r.weights = weights
        r.seeds = [11]
        r.steps = [3]
        r.samplers = [SamplerChoice(.eulerAncestral)]
        r.prompt = "a cat, <lora>"
        r.negative = "blurry"
        r.width = 64
        r.height = 64
        return r
    }

    func testGridCellsEqualLoneRendersBakedCheckpointsAndTheBase() throws {
        let model = try fixture("sd1_engine.safetensors")
        let lora = try fixture("sd1_engine_lora.safetensors", as: "mychar-000002.safetensors")
        let locon = try fixture("sd1_engine_locon.safetensors", as: "mychar-000004.safetensors")
        let plan = try request(model, loras: [locon, lora], weights: [0, 0.7]).plan()
        XCTAssertEqual((0..<plan.x.count).map(plan.x.label), ["e2", "e4"])
        let session = try Session(plan: plan, options: .init(cacheFolder: folder + "/cache"))
        XCTAssertEqual(session.pending.count, 4)
        try session.render(tokenizer: Self.tokenizer)
        XCTAssertTrue(session.pending.isEmpty)
        func cached(_ x: Int, _ y: Int) throws -> Bitmap {
            let cell = try XCTUnwrap(plan.cells.first { $0.x == x && $0.y == y })
            return try session.cache.image(session.planFile.keys[cell.index])
        }

        // A cell alone (fresh engine, nothing reused) is bit-identical to the same cell in the grid.
        let cell = try XCTUnwrap(plan.cells.first { $0.x == 1 && $0.y == 1 })
        let alone = try CellRenderer(tokenizer: Self.tokenizer, catalog: session.planFile.catalog).render(cell.settings)
        XCTAssertEqual(Bitmap(alone), try cached(1, 1))

        // Weight 0 is the base model's image; the base renders the same prompt without any tag.
        var base = cell.settings
        base.lora = nil
        let baseImage = try CellRenderer(tokenizer: Self.tokenizer, catalog: session.planFile.catalog).render(base)
        XCTAssertEqual(Bitmap(baseImage), try cached(0, 0))
        XCTAssertEqual(Bitmap(baseImage), try cached(1, 0))
        XCTAssertNotEqual(Bitmap(baseImage), try cached(1, 1), "the LoRA changes the image")

        // Run-time LoRA at weight 0.7 matches the checkpoint baked by lora-merge at ratio 0.7.
        for (x, path) in [(0, lora), (1, locon)] {
            let baked = folder + "/baked\(x).safetensors"
            _ = try CheckpointBaker.bake(base: model, loras: [LoRASpec(path: path, ratio: 0.7)], output: baked, options: .init(precision: .f32))
            var settings = base
            settings.checkpoint = baked
            let catalog = try Catalog.check([PlannedCell(x: 0, y: 0, z: 0, index: 0, settings: settings)], hashCache: nil)
            let bakedImage = Bitmap(try CellRenderer(tokenizer: Self.tokenizer, catalog: catalog).render(settings))
            let runtime = try cached(x, 1)
            let worst = zip(bakedImage.pixels, runtime.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1, "run-time vs baked, largest pixel difference \(worst)/255")
        }

        // The cells carry their infotext, with the LoRA tag and hash.
        let key = session.planFile.keys[cell.index]
        let png = [UInt8](try XCTUnwrap(FileManager.default.contents(atPath: session.cache.imagePath(key))))
        let text = try XCTUnwrap(PNGCodec.textChunks(png)["parameters"])
        let loraHash = try XCTUnwrap(session.planFile.catalog.loras[cell.settings.lora!]).a1111Hash
        XCTAssertTrue(text.hasPrefix("a cat, <lora:\(LoRAEpochs.stem(cell.settings.lora!)):0.7>\nNegative prompt: blurry\nSteps: 3, Sampler: Euler a"), text)
        XCTAssertTrue(text.contains("Lora hashes: \"\(LoRAEpochs.stem(cell.settings.lora!)): \(loraHash)\""), text)
    }

    func testFixedLoRAWithAxisLoRAEqualsTheCheckpointBakedWithBoth() throws {
        let model = try fixture("sd1_engine.safetensors")
        let lora = try fixture("sd1_engine_lora.safetensors")
        let locon = try fixture("sd1_engine_locon.safetensors")
        var r = request(model, loras: [locon], weights: [0.6])
        r.extraLoRAs = [lora + ":0.4"]
        let plan = try r.plan()
        let session = try Session(plan: plan, options: .init(cacheFolder: folder + "/cache"))
        try session.render(tokenizer: Self.tokenizer)
        let cell = try XCTUnwrap(plan.cells.first)
        let image = try session.cache.image(session.planFile.keys[cell.index])
        let baked = folder + "/both.safetensors"
        _ = try CheckpointBaker.bake(base: model, loras: [LoRASpec(path: locon, ratio: 0.6), LoRASpec(path: lora, ratio: 0.4)],
                                     output: baked, options: .init(precision: .f32))
        var settings = cell.settings
        settings.checkpoint = baked
        settings.lora = nil
        settings.extraLoRAs = []
        settings.prompt = "a cat, "
        let catalog = try Catalog.check([PlannedCell(x: 0, y: 0, z: 0, index: 0, settings: settings)], hashCache: nil)
        let reference = Bitmap(try CellRenderer(tokenizer: Self.tokenizer, catalog: catalog).render(settings))
        let worst = zip(reference.pixels, image.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 1, "largest pixel difference \(worst)/255")
        let text = session.planFile.infotext(cell).text
        XCTAssertTrue(text.hasPrefix("a cat, <lora:sd1_engine_locon:0.6> <lora:sd1_engine_lora:0.4>\n"), text)
        XCTAssertTrue(text.contains("Lora hashes: \"sd1_engine_locon: "), text)
        XCTAssertTrue(text.contains(", sd1_engine_lora: "), text)
    }

    func testSeparateVAEFileIsUsedAndNamed() throws {
        let model = try fixture("sd1_engine.safetensors")
        // A standalone VAE as vae-ft-mse ships: the checkpoint's VAE under decoder./encoder. names.
        let source = try ModelFile.open(model)
        func writeVAE(_ path: String, scale: Float) throws {
            let names = source.tensorNames.filter { $0.hasPrefix("first_stage_model.") }
            let entries = names.map { SafeTensorsWriter.Entry(name: String($0.dropFirst("first_stage_model.".count)), dtype: .f32, shape: source[$0]!.shape) }
            let writer = try SafeTensorsWriter(path: path, metadata: Metadata(), entries: entries)
            for (name, entry) in zip(names, entries) {
                var values = source[name]!.floats()
                if entry.name == "decoder.conv_out.bias" { values = values.map { $0 + scale } }
                try values.withUnsafeBufferPointer { try writer.write(name: entry.name, floats: $0) }
            }
            try writer.finish()
        }
        try writeVAE(folder + "/same-vae.safetensors", scale: 0)
        try writeVAE(folder + "/bright-vae.safetensors", scale: 0.5)
        var r = request(model, loras: [], weights: [1])
        r.vaes = [folder + "/same-vae.safetensors", folder + "/bright-vae.safetensors"]
        let plan = try r.plan()
        XCTAssertEqual(plan.x.kinds, [.vae])
        let session = try Session(plan: plan, options: .init(cacheFolder: folder + "/cache"))
        try session.render(tokenizer: Self.tokenizer)
        let same = try session.cache.image(session.planFile.keys[0]), bright = try session.cache.image(session.planFile.keys[1])
        var own = plan.cells[0].settings
        own.vae = nil
        let catalog = try Catalog.check([PlannedCell(x: 0, y: 0, z: 0, index: 0, settings: own)], hashCache: nil)
        let ownImage = Bitmap(try CellRenderer(tokenizer: Self.tokenizer, catalog: catalog).render(own))
        XCTAssertEqual(same, ownImage, "the same VAE weights from a separate file give the same image")
        XCTAssertGreaterThan(bright.pixels.reduce(0) { $0 + Int($1) }, same.pixels.reduce(0) { $0 + Int($1) }, "the other VAE is used")
        let text = session.planFile.infotext(plan.cells[1]).text
        XCTAssertTrue(text.contains(", VAE: bright-vae.safetensors, "), text)
        XCTAssertTrue(text.contains("VAE hash: "), text)
        XCTAssertThrowsError(try StableDiffusionModel.vaeWeights(try fixture("sd1_engine_lora.safetensors")))
    }

    func testResumeShardsAssembleAndManifest() throws {
        let model = try fixture("sd1_engine.safetensors")
        let lora = try fixture("sd1_engine_lora.safetensors", as: "style-000001.safetensors")
        let plan = try request(model, loras: [lora], weights: [0.5, 1]).plan()
        // One engine for the whole grid: one model load, one LoRA build per weight, prompts encoded once per weight
        // (the LoRA has text-encoder modules, so the weight changes the encoding; seeds do not).
        var seeds = request(model, loras: [lora], weights: [0.5, 1])
        seeds.seeds = [1, 2, 3]
        let grid = try Session(plan: try seeds.plan(), options: .init(cacheFolder: folder + "/stats"))
        try grid.render(tokenizer: Self.tokenizer)
        XCTAssertEqual(grid.statistics, .init(modelLoads: 1, adapterBuilds: 2, textEncodings: 2))

        // Two shards in two caches, then one sheet from both.
        for part in 1...2 {
            var options = Session.Options(cacheFolder: folder + "/shard\(part)")
            options.shard = Shard(part: part, count: 2)
            let session = try Session(plan: plan, options: options)
            XCTAssertEqual(session.pending.count, 1)
            try session.render(tokenizer: Self.tokenizer)
        }
        let caches = [CellCache(folder: folder + "/shard1"), CellCache(folder: folder + "/shard2")]
        let planFile = try PlanFile.read(caches[0].planPath)
        var writer = SheetWriter(output: folder + "/sheet.png", fontPath: try Font.locate())
        writer.manifestPath = folder + "/sheet.json"
        writer.cellsFolder = folder + "/cells"
        XCTAssertThrowsError(try writer.write(planFile, caches: [caches[0]], requireAll: true), "a missing shard is an error")
        let result = try writer.write(planFile, caches: caches, requireAll: true)
        XCTAssertEqual(result.sheets, [folder + "/sheet.png"])
        XCTAssertEqual(result.missing, 0)
        XCTAssertEqual(result.cellCopies.count, 2)
        let sheet = try PNGCodec.read(folder + "/sheet.png")
        XCTAssertGreaterThan(sheet.height, 2 * 64)
        // Sheets past the PNG limit switch to JPEG beside the requested name; cells can be shrunk.
        var big = writer
        big.jpegAbovePixels = 1000
        big.manifestPath = nil
        big.cellsFolder = nil
        big.cellSize = 32
        let jpeg = try big.write(planFile, caches: caches)
        XCTAssertEqual(jpeg.sheets, [folder + "/sheet.jpg"])
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: folder + "/sheet.jpg"))
        XCTAssertEqual(Array(bytes.prefix(2)), [0xFF, 0xD8])
        XCTAssertEqual(big.cellDimensions(planFile.plan).0, 32)
        let manifest = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/sheet.json"))) as? [String: Any])
        let cells = try XCTUnwrap(manifest["cells"] as? [[String: Any]])
        XCTAssertEqual(cells.count, 2)
        XCTAssertEqual(cells.map { $0["status"] as? String }, ["cached", "cached"])
        XCTAssertNotNil(cells[0]["renderSeconds"])

        // Adding a weight renders only the new cells; the old ones come from the cache.
        let more = try request(model, loras: [lora], weights: [0.5, 0.75, 1]).plan()
        let session = try Session(plan: more, options: .init(cacheFolder: folder + "/shard1"))
        XCTAssertEqual(session.pending.map { $0.settings.weight }.sorted(), [0.75, 1], "shard 2's cell is not in this cache")
        let combined = try Session(plan: more, options: .init(cacheFolder: folder + "/shard2"))
        XCTAssertEqual(combined.pending.map { $0.settings.weight }.sorted(), [0.5, 0.75])
    }

    /// Two runs with different settings share one cache: each plan is kept,
    /// and assemble draws the only one, or asks which when there are several.
    func testPlansOfDifferentRunsShareACache() throws {
        let model = try fixture("sd1_engine.safetensors")
        let lora = try fixture("sd1_engine_lora.safetensors", as: "style-000001.safetensors")
        let cache = CellCache(folder: folder + "/shared")
        var first = request(model, loras: [lora], weights: [0.5, 1])
        first.steps = [1]
        let one = try Session(plan: try first.plan(), options: .init(cacheFolder: cache.folder))
        try one.render(tokenizer: Self.tokenizer)
        XCTAssertEqual(try PlanFile.choose(in: [cache], choice: nil).id, one.planFile.id, "one plan: no need to ask")
        var second = first
        second.seeds = [7, 8]
        let two = try Session(plan: try second.plan(), options: .init(cacheFolder: cache.folder))
        try two.render(tokenizer: Self.tokenizer)
        XCTAssertNotEqual(one.planFile.id, two.planFile.id)
        XCTAssertEqual(cache.planPaths().count, 2)
        XCTAssertThrowsError(try PlanFile.choose(in: [cache], choice: nil)) { error in
            let message = (error as? ModelError)?.message ?? ""
            XCTAssertTrue(message.contains("holds 2 plans") && message.contains(one.planFile.id) && message.contains(two.planFile.id), message)
        }
        XCTAssertEqual(try PlanFile.choose(in: [cache], choice: String(one.planFile.id.prefix(6))).keys, one.planFile.keys)
        XCTAssertEqual(try PlanFile.choose(in: [cache], choice: two.planFile.id).keys, two.planFile.keys)
        XCTAssertThrowsError(try PlanFile.choose(in: [cache], choice: "ffffffffffff"))
        // Both sheets can still be drawn from the one cache.
        for id in [one.planFile.id, two.planFile.id] {
            let planFile = try PlanFile.choose(in: [cache], choice: id)
            let result = try SheetWriter(output: folder + "/\(id).png", fontPath: try Font.locate()).write(planFile, caches: [cache], requireAll: true)
            XCTAssertEqual(result.missing, 0)
        }
    }

    /// `assemble` reads plan.json from caches other machines made: its cell
    /// keys become file names, so anything but a cache key is refused, and a
    /// grid that does not add up is refused before drawing.
    func testAssembleRefusesHostilePlans() throws {
        let model = try fixture("sd1_engine.safetensors")
        let lora = try fixture("sd1_engine_lora.safetensors", as: "style-000001.safetensors")
        let session = try Session(plan: try request(model, loras: [lora], weights: [0.5, 1]).plan(), options: .init(cacheFolder: folder + "/hostile"))
        try FileManager.default.createDirectory(atPath: folder + "/hostile", withIntermediateDirectories: true)
        let path = folder + "/hostile/plan.json"
        try session.planFile.write(path)
        XCTAssertNoThrow(try PlanFile.read(path))
        let original = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        // A PNG/JSON pair outside the cache that a "../" key would pull into the sheet.
        XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/outside.png", contents: Data([0x89, 0x50])))
        XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/outside.json", contents: Data("{}".utf8)))
        let edits: [(String, (inout [String: Any]) -> Void, String)] = [
            ("traversal", { $0["keys"] = ["../../outside", ($0["keys"] as! [String])[1]] }, "not a cache key"),
            ("absolute", { $0["keys"] = ["/etc/passwd", ($0["keys"] as! [String])[1]] }, "not a cache key"),
            ("uppercase", { $0["keys"] = [($0["keys"] as! [String])[0].uppercased(), ($0["keys"] as! [String])[1]] }, "not a cache key"),
            ("too few keys", { $0["keys"] = [($0["keys"] as! [String])[0]] }, "cell keys"),
            ("cell out of the grid", { p in
                var plan = p["plan"] as! [String: Any]
                var cells = plan["cells"] as! [[String: Any]]
                cells[1]["x"] = 1000
                plan["cells"] = cells
                p["plan"] = plan
            }, "not at its place"),
            ("cells missing", { p in
                var plan = p["plan"] as! [String: Any]
                plan["cells"] = Array((plan["cells"] as! [[String: Any]]).prefix(1))
                p["plan"] = plan
                p["keys"] = Array((p["keys"] as! [String]).prefix(1))
            }, "cells for a"),
        ]
        for (name, edit, message) in edits {
            var json = original
            edit(&json)
            try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try PlanFile.read(path), name) { error in
                XCTAssertEqual((error as? ModelError)?.kind, .invalid, "\(name): \(error)")
                XCTAssertTrue((error as? ModelError)?.message.contains(message) ?? false, "\(name): \(error)")
            }
        }
        XCTAssertFalse(CellCache(folder: folder + "/hostile").contains("../../outside"))
    }

    func testPreflightErrorsNameTheProblem() throws {
        let model = try fixture("sd1_engine.safetensors")
        let sdxlLoRA = try fixture("sdxl_engine_lora.safetensors")
        var r = request(model, loras: [sdxlLoRA], weights: [1])
        XCTAssertThrowsError(try Session(plan: try r.plan(), options: .init(cacheFolder: folder + "/c"))) { error in
            XCTAssertTrue("\(error)".contains("sdxl_engine_lora"), "\(error)")
        }
        r = request(model, loras: [], weights: [1])
        r.width = 100
        XCTAssertThrowsError(try Session(plan: try r.plan(), options: .init(cacheFolder: folder + "/c"))) { error in
            XCTAssertTrue("\(error)".contains("multiples of 8"), "\(error)")
        }
        r.width = 104 // a multiple of 8, as A1111 takes
        XCTAssertNoThrow(try Session(plan: try r.plan(), options: .init(cacheFolder: folder + "/c")))
        r = request(folder + "/missing.safetensors", loras: [], weights: [1])
        XCTAssertThrowsError(try Session(plan: try r.plan(), options: .init(cacheFolder: folder + "/c"))) { error in
            XCTAssertTrue("\(error)".contains("missing.safetensors"), "\(error)")
        }
        // A text encoder 8 wide has no 64-wide CLIP heads: refused before anything renders, and by the engine itself.
        let narrow = try fixture("sd1_tiny.safetensors")
        XCTAssertThrowsError(try Session(plan: try request(narrow, loras: [], weights: [1]).plan(), options: .init(cacheFolder: folder + "/c"))) { error in
            XCTAssertTrue("\(error)".contains("8 wide"), "\(error)")
        }
        XCTAssertThrowsError(try StableDiffusionModel(checkpoint: narrow, tokenizer: Self.tokenizer)) { error in
            XCTAssertEqual((error as? ModelError)?.kind, .unsupported, "\(error)")
        }
    }
}
