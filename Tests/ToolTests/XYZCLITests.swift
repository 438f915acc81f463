import FixtureKit
import Foundation
import Imaging
import LinearAlgebra
import LoRACore
import XCTest

/// lora-xyz as users run it: plan, render, resume, errors.
final class XYZCLITests: XCTestCase {
    func testDryRunRenderResumeAndErrors() throws {
        let folder = NSTemporaryDirectory() + "lora-xyz-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for (name, file) in [("sd1_engine.safetensors", "base.safetensors"), ("sd1_engine_lora.safetensors", "run-000003.safetensors"),
                             ("sd1_engine_locon.safetensors", "run-000006.safetensors")] {
            try XCTUnwrap(FixtureSet.items.first { $0.name == name }).write(folder + "/" + file)
        }
        let common = ["--model", folder + "/base.safetensors", "--loras", folder + "/run-*.safetensors", "--weights", "0.5,1",
                      "--prompt", "a cat, <lora>", "--seeds", "5", "--steps", "2", "--sampler", "Euler", "--width", "64", "--height", "64",
                      "--tokenizer", "Fixtures/tokenizer/clip_bpe_merges.txt.gz", "-o", folder + "/sheet.png"]
        let plan = try ToolRunner.run("lora-xyz", common + ["--dry-run"])
        XCTAssertEqual(plan.status, 0, plan.stderr)
        XCTAssertTrue(plan.stdout.contains("X: LoRA (2): e3 · e6"), plan.stdout)
        XCTAssertTrue(plan.stdout.contains("4 cells, 0 cached, 4 to render"), plan.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/sheet.png"), "a dry run draws nothing")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/sheet.cache"), "a dry run writes nothing, not even the hash cache")

        let first = try ToolRunner.run("lora-xyz", common + ["--quiet"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("4 cells: 4 rendered, 0 from the cache"), first.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/sheet.png"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/sheet.json"))

        let again = try ToolRunner.run("lora-xyz", common + ["--quiet", "--json"])
        XCTAssertEqual(again.status, 0, again.stderr)
        let result = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(result["missing"] as? Int, 0)
        let manifest = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/sheet.json"))) as? [String: Any])
        XCTAssertEqual((manifest["cells"] as? [[String: Any]])?.compactMap { $0["status"] as? String }, ["cached", "cached", "cached", "cached"])
        // torch's noise kernel on this CPU: avx2 on both CPUs of the machine kind (AVX-512 ones too), recorded per cell.
        let hostVariant = CPUFeatures.host.contains([.avx2, .fma]) ? "avx2" : "libm", otherVariant = hostVariant == "avx2" ? "libm" : "avx2"
        XCTAssertEqual((manifest["cells"] as? [[String: Any]])?.compactMap { $0["rngVariant"] as? String }, Array(repeating: hostVariant, count: 4))
        let explicit = try ToolRunner.run("lora-xyz", common + ["--dry-run", "--rng-variant", hostVariant])
        XCTAssertTrue(explicit.stdout.contains("4 cells, 4 cached, 0 to render"), explicit.stdout)
        let other = try ToolRunner.run("lora-xyz", common + ["--dry-run", "--rng-variant", otherVariant])
        XCTAssertTrue(other.stdout.contains("4 cells, 0 cached, 4 to render"), "other noise, other cells: \(other.stdout)")
        let badVariant = try ToolRunner.run("lora-xyz", common + ["--rng-variant", "avx512"])
        XCTAssertNotEqual(badVariant.status, 0)
        XCTAssertTrue(badVariant.stderr.contains("--rng-variant takes auto, avx2 or libm"), badVariant.stderr)
        // --precision: recorded per cell; bf16 cells are other cells, and bf16 on a CPU without AMX computes fp32 and says so.
        XCTAssertEqual((manifest["cells"] as? [[String: Any]])?.compactMap { $0["precision"] as? String }, Array(repeating: "fp32", count: 4))
        let bf16 = try ToolRunner.run("lora-xyz", common + ["--dry-run", "--precision", "bf16"])
        XCTAssertEqual(bf16.status, 0, bf16.stderr)
        if LinearAlgebra.bf16Faster {
            XCTAssertTrue(bf16.stdout.contains("4 cells, 0 cached, 4 to render"), "bf16 pixels are not fp32's: \(bf16.stdout)")
        } else {
            // No units, or AVX512-BF16 alone (slower than fp32).
            let why = LinearAlgebra.bf16Available ? "multiply slower than its fp32 units" : "no bf16 matrix units"
            XCTAssertTrue(bf16.stderr.contains(why), bf16.stderr)
            XCTAssertTrue(bf16.stdout.contains("4 cells, 4 cached, 0 to render"), "computed in fp32: the fp32 cells: \(bf16.stdout)")
        }
        let badPrecision = try ToolRunner.run("lora-xyz", common + ["--precision", "fp16"])
        XCTAssertEqual(badPrecision.status, 64, badPrecision.stderr)
        XCTAssertTrue(badPrecision.stderr.contains("--precision takes fp32 or bf16"), badPrecision.stderr)

        // A damaged cell and a cell of the wrong size render again, with a note; the others come from the cache.
        let cells = try FileManager.default.contentsOfDirectory(atPath: folder + "/sheet.cache/cells").filter { $0.hasSuffix(".png") }.sorted()
        XCTAssertEqual(cells.count, 4)
        let truncated = folder + "/sheet.cache/cells/" + cells[0], resized = folder + "/sheet.cache/cells/" + cells[1]
        let bytes = try Data(contentsOf: URL(fileURLWithPath: truncated))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        try Data(PNGCodec.encode(Bitmap(width: 8, height: 8))).write(to: URL(fileURLWithPath: resized))
        let repaired = try ToolRunner.run("lora-xyz", common)
        XCTAssertEqual(repaired.status, 0, repaired.stderr)
        XCTAssertEqual(repaired.stderr.components(separatedBy: "note: cached cell").count - 1, 2, repaired.stderr)
        XCTAssertTrue(repaired.stderr.contains("8x8, the cell is 64x64"), repaired.stderr)
        XCTAssertTrue(repaired.stdout.contains("4 cells: 2 rendered, 2 from the cache"), repaired.stdout)

        // Names of one sampler are one axis value; --schedule is A1111's Schedule type.
        let same = try ToolRunner.run("lora-xyz", common + ["--sampler", "DPM++ 2M,DPM++ 2M Karras,dpmpp_2m", "--dry-run"])
        XCTAssertFalse(same.stdout.contains("Sampler ("), "one sampler, no sampler axis: \(same.stdout)")
        let schedules = try ToolRunner.run("lora-xyz", common + ["--schedule", "karras,Exponential", "--dry-run"])
        XCTAssertTrue(schedules.stdout.contains("Schedule type (2): Schedule type: Karras · Schedule type: Exponential"), schedules.stdout)
        let badSchedule = try ToolRunner.run("lora-xyz", common + ["--schedule", "Beta"])
        XCTAssertEqual(badSchedule.status, 64)
        XCTAssertTrue(badSchedule.stderr.contains("unknown schedule type 'Beta'"), badSchedule.stderr)

        let badSampler = try ToolRunner.run("lora-xyz", common + ["--sampler", "UniPC"])
        XCTAssertNotEqual(badSampler.status, 0)
        XCTAssertTrue(badSampler.stderr.contains("unknown sampler 'UniPC'"), badSampler.stderr)
        let noTokenizer = try ToolRunner.run("lora-xyz", common + ["--tokenizer", folder + "/none"])
        XCTAssertNotEqual(noTokenizer.status, 0)
        XCTAssertTrue(noTokenizer.stderr.contains(folder + "/none"), noTokenizer.stderr)
    }

    /// A diverged epoch (NaN in the LoRA) is what an epoch sheet should show:
    /// the dry run flags it, the sheet is finished with its cells marked, and
    /// the run exits 1 naming the file.
    func testNaNEpochIsMarkedOnAFinishedSheet() throws {
        let folder = NSTemporaryDirectory() + "lora-xyz-nan-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for (name, file) in [("sd1_engine.safetensors", "base.safetensors"), ("sd1_engine_lora.safetensors", "run-000003.safetensors")] {
            try XCTUnwrap(FixtureSet.items.first { $0.name == name }).write(folder + "/" + file)
        }
        // Epoch 6 diverged: the same LoRA with one NaN.
        let good = try ModelFile.open(folder + "/run-000003.safetensors")
        let writer = try SafeTensorsWriter(path: folder + "/run-000006.safetensors", metadata: good.metadata,
                                           entries: good.tensors.map { .init(name: $0.name, dtype: .f32, shape: $0.shape) })
        var poisoned = false
        for tensor in good.tensors {
            var values = tensor.floats()
            if !poisoned && tensor.name.hasSuffix("lora_up.weight") { values[0] = .nan; poisoned = true }
            try values.withUnsafeBufferPointer { try writer.write(name: tensor.name, floats: $0) }
        }
        try writer.finish()
        let common = ["--model", folder + "/base.safetensors", "--loras", folder + "/run-*.safetensors", "--weights", "0,1",
                      "--prompt", "a cat, <lora>", "--seeds", "5", "--steps", "1", "--sampler", "Euler", "--width", "64", "--height", "64",
                      "--tokenizer", "Fixtures/tokenizer/clip_bpe_merges.txt.gz", "-o", folder + "/sheet.png", "--quiet"]
        let plan = try ToolRunner.run("lora-xyz", common + ["--dry-run"])
        XCTAssertEqual(plan.status, 1, plan.stderr)
        XCTAssertTrue(plan.stdout.contains("4 cells, 0 cached, 3 to render"), "weight 0 of the NaN epoch is the base image: \(plan.stdout)")
        XCTAssertTrue(plan.stdout.contains("1 marked 'NaN in LoRA'"), plan.stdout)
        XCTAssertTrue(plan.stdout.contains("warning: \(folder)/run-000006.safetensors holds NaN"), plan.stdout)

        let run = try ToolRunner.run("lora-xyz", common)
        XCTAssertEqual(run.status, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("run-000006.safetensors holds NaN or Inf values"), run.stderr)
        XCTAssertFalse(run.stderr.contains("--allow-nan"), "no advice about a flag lora-xyz does not have: \(run.stderr)")
        XCTAssertTrue(run.stdout.contains("4 cells: 3 rendered, 0 from the cache, 1 marked 'NaN in LoRA'"), run.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/sheet.png"), "the sheet is finished")
        let manifest = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/sheet.json"))) as? [String: Any])
        let statuses = (manifest["cells"] as? [[String: Any]])?.compactMap { $0["status"] as? String } ?? []
        XCTAssertEqual(statuses.sorted(), ["nan-lora", "rendered", "rendered", "rendered"])
        // The marked cell is drawn: dark red where the image would be.
        let sheet = try PNGCodec.read(folder + "/sheet.png")
        let red = stride(from: 0, to: sheet.pixels.count, by: 3).filter { sheet.pixels[$0] == 110 && sheet.pixels[$0 + 1] == 20 && sheet.pixels[$0 + 2] == 20 }
            .count
        XCTAssertGreaterThan(red, 64 * 32, "the mark fills most of a 64x64 cell")
    }

    /// Ctrl-C says what was kept: the finished cells stay in the cache, and the
    /// same command resumes from them.
    func testInterruptSaysWhatWasKept() throws {
        let folder = NSTemporaryDirectory() + "lora-xyz-int-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try XCTUnwrap(FixtureSet.items.first { $0.name == "sd1_engine.safetensors" }).write(folder + "/base.safetensors")
        let arguments = ["--model", folder + "/base.safetensors", "--prompt", "a cat", "--seeds", "1-6", "--steps", "12", "--sampler", "Euler",
                         "--width", "128", "--height", "128", "--tokenizer", "Fixtures/tokenizer/clip_bpe_merges.txt.gz", "-o", folder + "/sheet.png"]
        let process = Process()
        process.executableURL = ToolRunner.products.appendingPathComponent("lora-xyz")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: ToolRunner.repoRoot)
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Wait for the first finished cell, then interrupt.
        let cells = folder + "/sheet.cache/cells"
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, ((try? FileManager.default.contentsOfDirectory(atPath: cells))?.filter { $0.hasSuffix(".json") }.count ?? 0) == 0 {
            usleep(50_000)
        }
        kill(process.processIdentifier, SIGINT)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal, stderr)
        XCTAssertTrue(
            stderr.contains("interrupted") && stderr.contains("kept in \(folder)/sheet.cache") && stderr.contains("run the same command again"), stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/sheet.png"))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: cells).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [], "no unfinished cell is left")
        let resumed = try ToolRunner.run("lora-xyz", arguments + ["--dry-run"])
        XCTAssertFalse(resumed.stdout.contains(", 0 cached,"), "the finished cells are reused: \(resumed.stdout)")
    }
}
