import CWebP
import FixtureKit
import Foundation
import Imaging
import LinearAlgebra
import LoRACore
import Training
import XCTest

/// lora-train end to end on the tiny engine model: the plan it prints, kohya's
/// file names and metadata, the same file from the same seed, the file read
/// by lora-inspect and merged by lora-merge; and the mistakes kohya users
/// make, refused before anything is trained.
final class TrainCLITests: XCTestCase {
    var folder = ""

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "lora-train-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder + "/data/2_zkw shape", withIntermediateDirectories: true)
        try XCTUnwrap(FixtureSet.items.first { $0.name == "sd1_engine.safetensors" }).write(folder + "/base.safetensors")
        // Four 64×64 images (two also mirrored in size: 128×64 goes to the same 64×64 bucket at res 64): red discs on colours.
        for i in 0..<4 {
            let w = i == 3 ? 128 : 64
            var bitmap = Bitmap(width: w, height: 64, fill: RGB(UInt8(40 * i), 90, 200))
            for y in 0..<64 { for x in 0..<w where (x - w / 2) * (x - w / 2) + (y - 32) * (y - 32) < 400 {
                let p = (y * w + x) * 3
                bitmap.pixels[p] = 230; bitmap.pixels[p + 1] = 20; bitmap.pixels[p + 2] = 20
            } }
            FileManager.default.createFile(atPath: folder + "/data/2_zkw shape/img\(i).png", contents: Data(try PNGCodec.encode(bitmap)))
            if i < 2 { FileManager.default.createFile(atPath: folder + "/data/2_zkw shape/img\(i).txt", contents: Data("zkw shape, red disc\n".utf8)) }
        }
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    var common: [String] {
        ["--model", folder + "/base.safetensors", "--tokenizer", "Fixtures/tokenizer/clip_bpe_merges.txt.gz",
         "--train-data-dir", folder + "/data", "--resolution", "64", "--enable-bucket", "--min-bucket-reso", "64", "--max-bucket-reso", "128",
         "--network-dim", "4", "--network-alpha", "2", "--network-train-unet-only", "--learning-rate", "1e-3", "--train-batch-size", "2",
         "--caption-extension", ".txt", "--quiet"]
    }

    func testTrainsKohyaNamedFilesThatTheOtherToolsRead() throws {
        let out = folder + "/out"
        let run = try ToolRunner.run("lora-train", common + ["--output-dir", out, "--output-name", "zkw", "--max-train-epochs", "3",
                                                             "--save-every-n-epochs", "1", "--save-last-n-epochs", "1", "--seed", "7"])
        XCTAssertEqual(run.status, 0, run.stderr)
        for line in ["8 train images with repeats.", "bucket 0: resolution (64, 64), count: 8", "num batches per epoch: 4", "total optimization steps: 12",
                     "create LoRA for U-Net: 192 modules."] {
            XCTAssertTrue(run.stdout.contains(line), "plan line \(line):\n\(run.stdout)")
        }
        XCTAssertTrue(run.stderr.contains("2 of 4 images"), "missing captions are reported: \(run.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        XCTAssertEqual(names, ["zkw-000002.safetensors", "zkw-log.csv", "zkw-loss.png", "zkw.safetensors"], "--save-last-n-epochs 1 removed epoch 1's file")
        let curve = try PNGCodec.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: out + "/zkw-loss.png"))))
        XCTAssertEqual([curve.width, curve.height], [800, 400])
        let log = try String(contentsOfFile: out + "/zkw-log.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(log.count, 13, "header and one line per step")
        XCTAssertEqual(log.first, "step,epoch,loss/current,loss/average,lr/unet,lr/textencoder,lr/d*lr")
        XCTAssertTrue(log[1].hasSuffix(",0.001,,"), "U-Net rate, no text-encoder rate, no d: \(log[1])")

        let file = try ModelFile.open(out + "/zkw.safetensors")
        let m = file.metadata
        XCTAssertEqual(m[.outputName], "zkw")
        XCTAssertEqual(m[.epoch], "3")
        XCTAssertEqual(m[.steps], "12")
        XCTAssertEqual(m[.networkDim], "4")
        XCTAssertEqual(m[.networkAlpha], "2.0", "str() of kohya's float argument")
        XCTAssertEqual(m[.resolution], "(64, 64)")
        XCTAssertEqual(m[.baseModelVersion], "sd_v1")
        XCTAssertEqual(m[.seed], "7")
        XCTAssertEqual(m[.numTrainImages], "8")
        XCTAssertEqual(m["modelspec.architecture"], "stable-diffusion-v1/lora")
        // Every key train_network.py's metadata literal writes (Fixtures/golden/make_kohya_metadata_keys.py), but
        // its git commit: lora-train names itself under a key of its own instead.
        let kohyaKeys = try String(contentsOfFile: "Fixtures/golden/kohya_metadata_keys.txt", encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("#") }.map(String.init)
        XCTAssertGreaterThan(kohyaKeys.count, 50)
        XCTAssertEqual(kohyaKeys.filter { m[$0] == nil }, ["ss_sd_scripts_commit_hash"], "kohya's keys missing from the file")
        XCTAssertEqual([m["ss_fp8_base"], m["ss_resize_interpolation"]], ["False", "None"])
        XCTAssertEqual(try XCTUnwrap(m[.newSdModelHash]), Hashing.sha256(try MappedFile(path: folder + "/base.safetensors")))
        XCTAssertEqual(file.tensors.count, 192 * 3)
        XCTAssertEqual(try ModelFile.open(out + "/zkw-000002.safetensors").metadata[.epoch], "2")
        let upNorm = try XCTUnwrap(file["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight"]).floats().map { $0 * $0 }.reduce(0, +)
        XCTAssertGreaterThan(upNorm, 0, "up started at zero and was trained")

        let inspect = try ToolRunner.run("lora-inspect", [out + "/zkw.safetensors"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("lora-train"), inspect.stdout)
        XCTAssertTrue(inspect.stdout.contains("zkw shape (4)"), "tag frequency: \(inspect.stdout)")
        let merge = try ToolRunner.run("lora-merge", ["--model", folder + "/base.safetensors", "--lora", out + "/zkw.safetensors", "-o",
                                                      folder + "/merged.safetensors", "--quiet"])
        XCTAssertEqual(merge.status, 0, merge.stderr)

        // The same seed gives the same tensors (timestamps aside).
        let again = try ToolRunner.run("lora-train", common + ["--output-dir", folder + "/again", "--output-name", "zkw", "--max-train-epochs", "3",
                                                               "--seed", "7"])
        XCTAssertEqual(again.status, 0, again.stderr)
        let second = try ModelFile.open(folder + "/again/zkw.safetensors")
        XCTAssertEqual(second.metadata["sshs_model_hash"], m["sshs_model_hash"], "same seed, same tensors")
    }

    /// kohya's --initial_epoch / --initial_step: a run continued from an epoch file without a state. By default it
    /// starts at the epoch's first batch, counts steps from 0 and names its files by the continued epochs; with
    /// --skip_until_initial_step it starts at that very step and counts from it. Either way the schedule starts
    /// from its beginning (kohya's help), so the continued run's first rate is the first run's first rate.
    func testInitialEpochAndStepContinueWithoutAState() throws {
        let base = common + ["--max-train-epochs", "3", "--save-every-n-epochs", "1", "--seed", "7", "--lr-scheduler", "cosine", "--output-name", "zkw"]
        let first = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/a"])
        XCTAssertEqual(first.status, 0, first.stderr)
        func log(_ dir: String) throws -> [[Substring]] {
            try String(contentsOfFile: folder + "/\(dir)/zkw-log.csv", encoding: .utf8).split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        }
        let a = try log("a")
        XCTAssertEqual(a.count, 12)
        let weights = ["--network-weights", folder + "/a/zkw-000001.safetensors"]

        let byEpoch = try ToolRunner.run("lora-train", base + weights + ["--output-dir", folder + "/b", "--initial_epoch", "2"])
        XCTAssertEqual(byEpoch.status, 0, byEpoch.stderr)
        XCTAssertTrue(byEpoch.stdout.contains("starting at epoch 2 of 3, counting steps from 0"), byEpoch.stdout)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder + "/b").filter { $0.hasSuffix(".safetensors") }.sorted(),
                       ["zkw-000002.safetensors", "zkw.safetensors"], "epochs 2 and 3 only, named by their epochs")
        let b = try log("b")
        XCTAssertEqual(b.map { String($0[0]) }, (1...8).map(String.init), "steps counted from 0")
        XCTAssertEqual(b.map { String($0[1]) }, Array(repeating: "2", count: 4) + Array(repeating: "3", count: 4))
        XCTAssertEqual(b[0][4], a[0][4], "the schedule starts from its beginning")
        let bFile = try ModelFile.open(folder + "/b/zkw.safetensors").metadata
        XCTAssertEqual([bFile[.epoch], bFile[.steps]], ["3", "8"])

        let byStep = try ToolRunner.run("lora-train", base + weights + ["--output-dir", folder + "/c", "--initial-step", "6", "--skip-until-initial-step"])
        XCTAssertEqual(byStep.status, 0, byStep.stderr)
        XCTAssertTrue(byStep.stdout.contains("starting at step 6 (epoch 2, batch 3)"), byStep.stdout)
        let c = try log("c")
        XCTAssertEqual(c.map { String($0[0]) }, (7...12).map(String.init), "the count continues from the initial step")
        XCTAssertEqual(c.map { String($0[1]) }, ["2", "2", "3", "3", "3", "3"])
        XCTAssertEqual(c[0][4], a[0][4], "the schedule starts from its beginning")
        XCTAssertNotEqual(c[1][4], a[7][4], "and does not jump to where the first run was")
        XCTAssertEqual(try ModelFile.open(folder + "/c/zkw.safetensors").metadata[.steps], "12")

        let late = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/d", "--initial-step", "12", "--dry-run"])
        XCTAssertEqual(late.status, 1, late.stderr)
        XCTAssertTrue(late.stderr.contains("the initial step 12 is not below the run's 12 steps"), late.stderr)
        let both = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/d", "--initial-epoch", "2", "--resume", folder + "/a"])
        XCTAssertEqual(both.status, 64, both.stderr)
        XCTAssertTrue(both.stderr.contains("--initial-step/--initial-epoch are for a run without a state"), both.stderr)
    }

    /// kohya's default trains the text encoder's modules too, at --text-encoder-lr.
    func testTrainsTheTextEncoderModules() throws {
        let out = folder + "/te"
        let prompts = folder + "/prompts.txt"
        try "# kohya's prompt file\nzkw shape, red disc --n blurry --w 64 --h 64 --d 5 --s 4 --l 6\n\na plain square --w 64 --h 64 --s 3 --ss pndm\na plain disc --w 64 --h 64 --s 3 --ss dpmsingle\n"
            .write(toFile: prompts, atomically: false, encoding: .utf8)
        let run = try ToolRunner.run("lora-train", common.filter { $0 != "--network-train-unet-only" }
                                     + ["--output-dir", out, "--max-train-steps", "3", "--text-encoder-lr", "5e-4",
                                        "--sample-prompts", prompts, "--sample-every-n-epochs", "1", "--sample-at-first"])
        XCTAssertEqual(run.status, 0, run.stderr)
        // kohya's sample names: before training by step (000000), after an epoch by epoch; the seed only when the prompt gives one.
        let samples = try FileManager.default.contentsOfDirectory(atPath: out + "/sample").sorted()
        XCTAssertEqual(samples.count, 6, "\(samples)")
        XCTAssertEqual(samples.filter { $0.hasPrefix("last_000000_00_") && $0.hasSuffix("_5.png") }.count, 1, "\(samples)")
        XCTAssertEqual(samples.filter { $0.hasPrefix("last_e000001_01_") && !$0.hasSuffix("_5.png") }.count, 1, "\(samples)")
        let first = try XCTUnwrap(samples.first { $0.hasPrefix("last_e000001_00_") })
        let png = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out + "/sample/" + first)))
        let bitmap = try PNGCodec.decode(png)
        XCTAssertEqual([bitmap.width, bitmap.height], [64, 64])
        let infotext = try XCTUnwrap(PNGCodec.textChunks(png)["parameters"])
        XCTAssertTrue(infotext.hasPrefix("zkw shape, red disc\nNegative prompt: blurry\nSteps: 4, Sampler: DDIM"), infotext)
        XCTAssertTrue(infotext.contains("CFG scale: 6, Seed: 5, Size: 64x64"), infotext)
        // kohya's pndm, run as A1111's PLMS.
        let second = try XCTUnwrap(samples.first { $0.hasPrefix("last_e000001_01_") })
        let secondText = try XCTUnwrap(PNGCodec.textChunks([UInt8](try Data(contentsOf: URL(fileURLWithPath: out + "/sample/" + second))))["parameters"])
        XCTAssertTrue(secondText.contains("Steps: 3, Sampler: PLMS, Schedule type: Automatic"), secondText)
        // kohya's dpmsingle, diffusers' single-step DPM-Solver, which A1111 lacks.
        let third = try XCTUnwrap(samples.first { $0.hasPrefix("last_e000001_02_") })
        let thirdText = try XCTUnwrap(PNGCodec.textChunks([UInt8](try Data(contentsOf: URL(fileURLWithPath: out + "/sample/" + third))))["parameters"])
        XCTAssertTrue(thirdText.contains("Steps: 3, Sampler: DPM++ 2S, Schedule type: Automatic"), thirdText)
        XCTAssertTrue(run.stdout.contains("create LoRA for Text Encoder: "), run.stdout)
        let file = try ModelFile.open(out + "/last.safetensors")
        let te = file.tensors.filter { $0.name.hasPrefix("lora_te_") && $0.name.hasSuffix(".lora_up.weight") }
        XCTAssertGreaterThan(te.count, 0)
        XCTAssertEqual(te.count % 6, 0, "q, k, v, out, fc1, fc2 per layer")
        XCTAssertTrue(te.contains { $0.floats().contains { $0 != 0 } }, "the text encoder's modules were trained")
        XCTAssertEqual(file.metadata[.textEncoderLr], "0.0005")
        let log = try String(contentsOfFile: out + "/last-log.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertTrue(log[1].hasSuffix(",0.001,0.0005,"), String(log[1]))
    }

    /// SD2 (OpenCLIP's packed q/k/v carries the text encoder's modules) with kohya's --v_parameterization.
    func testSD2WithVPrediction() throws {
        try XCTUnwrap(FixtureSet.items.first { $0.name == "sd2_engine.safetensors" }).write(folder + "/sd2.safetensors")
        let out = folder + "/sd2"
        let args = common.filter { $0 != "--network-train-unet-only" }.map { $0 == folder + "/base.safetensors" ? folder + "/sd2.safetensors" : $0 }
        let run = try ToolRunner.run("lora-train", args + ["--output-dir", out, "--max-train-steps", "2", "--v2", "--v_parameterization"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let file = try ModelFile.open(out + "/last.safetensors")
        XCTAssertEqual(file.metadata["modelspec.prediction_type"], "v")
        XCTAssertEqual(file.metadata[.baseModelVersion], "sd_v2_v")
        XCTAssertEqual(file.metadata[.v2], "True")
        XCTAssertTrue(file.tensors.contains { $0.name.hasPrefix("lora_te_text_model_encoder_layers_0_self_attn_q_proj") })
        XCTAssertFalse(run.stderr.contains("but the checkpoint's tensors are"), run.stderr)
        // The GUI's v2 box ticked for an SD1 checkpoint: kohya fails to load it; here a note, and SD1 is trained.
        let ticked = try ToolRunner.run("lora-train", common + ["--output-dir", folder + "/v2sd1", "--max-train-steps", "1", "--v2"])
        XCTAssertEqual(ticked.status, 0, ticked.stderr)
        XCTAssertTrue(ticked.stderr.contains("note: --v2 is given, but the checkpoint's tensors are SD1.x's: trained as SD1.x"), ticked.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/v2sd1/last.safetensors").metadata[.v2], "False")
    }

    /// kohya's pruning of state folders: --save-last-n-epochs-state / --save-last-n-steps-state, and without
    /// them the file settings (train_util.py save_and_remove_state_on_epoch_end / _stepwise).
    func testOldStatesArePrunedAsKohyaPrunesThem() throws {
        let base = common + ["--output-name", "r", "--max-train-epochs", "3", "--seed", "11", "--save-every-n-steps", "3",
                             "--save-every-n-epochs", "1", "--save-state", "--save-last-n-epochs", "1"]
        func listing(_ out: String) throws -> (states: [String], files: [String]) {
            let names = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
            return (names.filter { $0.hasSuffix("-state") }, names.filter { $0.hasSuffix(".safetensors") })
        }
        // 12 steps, step saves at 3, 6, 9: with n = 4, saving step 9 removes step 3's state; epoch states keep 2.
        let own = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/own", "--save-last-n-epochs-state", "2",
                                                           "--save-last-n-steps-state", "4"])
        XCTAssertEqual(own.status, 0, own.stderr)
        let kept = try listing(folder + "/own")
        XCTAssertEqual(kept.states, ["r-000001-state", "r-000002-state", "r-state", "r-step00000006-state", "r-step00000009-state"])
        XCTAssertEqual(kept.files, ["r-000002.safetensors", "r.safetensors", "r-step00000003.safetensors", "r-step00000006.safetensors",
                                    "r-step00000009.safetensors"].sorted(), "the file settings still rule the files")
        // Without the _state settings the file settings prune the states as well.
        let files = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/files", "--save-last-n-steps", "4"])
        XCTAssertEqual(files.status, 0, files.stderr)
        let pruned = try listing(folder + "/files")
        XCTAssertEqual(pruned.states, ["r-000002-state", "r-state", "r-step00000006-state", "r-step00000009-state"])
        XCTAssertEqual(pruned.files, ["r-000002.safetensors", "r.safetensors", "r-step00000006.safetensors", "r-step00000009.safetensors"].sorted())
    }

    /// With kohya's dropouts (network, rank and module) and with LyCORIS's rank dropout, a run resumed mid-epoch draws the
    /// masks the uninterrupted run drew from there (they follow the epoch and batch, not a count of this process's passes),
    /// so it writes the same tensors; the dropouts change the run.
    func testResumedRunsWithDropoutEqualTheUninterruptedOne() throws {
        let loha = ["--network_module", "lycoris.kohya", "--network_args", "algo=loha"]
        for (name, dropouts, plain) in [("k", ["--network_dropout", "0.2", "--network_args", "rank_dropout=0.3", "module_dropout=0.1"], []),
                                        ("y", loha + ["rank_dropout=0.3", "module_dropout=0.1"], loha)] {
            let base = common + dropouts + ["--output-name", name, "--max-train-epochs", "2", "--seed", "11"]
            let whole = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/\(name)-whole", "--save-every-n-steps", "3", "--save-state"])
            XCTAssertEqual(whole.status, 0, whole.stderr)
            let expected = try ModelFile.open(folder + "/\(name)-whole/\(name).safetensors").metadata["sshs_model_hash"]
            let resumed = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/\(name)-resumed", "--resume",
                                                                   folder + "/\(name)-whole/\(name)-step00000003-state"])
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertEqual(try ModelFile.open(folder + "/\(name)-resumed/\(name).safetensors").metadata["sshs_model_hash"], expected, name)
            let without = try ToolRunner.run("lora-train", common + plain + ["--output-name", name, "--max-train-epochs", "2", "--seed", "11",
                                                                             "--output-dir", folder + "/\(name)-plain"])
            XCTAssertEqual(without.status, 0, without.stderr)
            XCTAssertNotEqual(try ModelFile.open(folder + "/\(name)-plain/\(name).safetensors").metadata["sshs_model_hash"], expected, name)
        }
    }

    /// --save-state + --resume (mid-epoch and at an epoch's end), and Ctrl-C: the
    /// resumed run writes the same tensors as the uninterrupted one.
    func testResumedRunsEqualTheUninterruptedOne() throws {
        let base = common + ["--output-name", "r", "--max-train-epochs", "3", "--seed", "11"]
        let whole = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/whole", "--save-every-n-steps", "5", "--save-every-n-epochs", "1",
                                                             "--save-state"])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let states = try FileManager.default.contentsOfDirectory(atPath: folder + "/whole").filter { $0.hasSuffix("-state") }.sorted()
        XCTAssertEqual(states, ["r-000001-state", "r-000002-state", "r-state", "r-step00000005-state", "r-step00000010-state"])
        let expected = try ModelFile.open(folder + "/whole/r.safetensors").metadata["sshs_model_hash"]
        for state in ["r-step00000005-state", "r-000002-state"] {
            let out = folder + "/from-" + state
            let resumed = try ToolRunner.run("lora-train", base + ["--output-dir", out, "--resume", folder + "/whole/" + state])
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertTrue(resumed.stdout.contains("resume from"), resumed.stdout)
            XCTAssertEqual(try ModelFile.open(out + "/r.safetensors").metadata["sshs_model_hash"], expected, "resumed from \(state)")
            let log = try String(contentsOfFile: out + "/r-log.csv", encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(log.last?.split(separator: ",").first, "12", "the log continues to the last step")
        }
        // --network-weights from a LoRA of another dim: refused, naming the tensor.
        let weights = try ToolRunner.run("lora-train", base.map { $0 == "4" ? "8" : $0 } + ["--output-dir", folder + "/w",
                                                                                           "--network-weights", folder + "/whole/r.safetensors"])
        XCTAssertEqual(weights.status, 1)
        XCTAssertTrue(weights.stderr.contains("another --network-dim"), weights.stderr)
        // Other settings than the state's: refused, naming the setting.
        let other = try ToolRunner.run("lora-train", base.map { $0 == "11" ? "12" : $0 } + ["--output-dir", folder + "/x", "--resume",
                                                                                             folder + "/whole/r-000001-state"])
        XCTAssertEqual(other.status, 1)
        XCTAssertTrue(other.stderr.contains("seed"), other.stderr)
        // A state whose position lies outside the run (edited or damaged): refused, naming it (a negative epoch trapped).
        for (key, value, says) in [("epoch", -2, "the state's epoch -2 is outside this run's 1…4"), ("step", -5, "the state's step -5 is outside this run's 0…12"),
                                   ("batch", 99, "the state's batch 99 is outside this run's 0…4")] {
            let damaged = folder + "/damaged-" + key
            try? FileManager.default.removeItem(atPath: damaged)
            try FileManager.default.copyItem(atPath: folder + "/whole/r-000001-state", toPath: damaged)
            let json = damaged + "/train_state.json"
            var root = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
            var ours = try XCTUnwrap(root["lora_tools"] as? [String: Any]), position = try XCTUnwrap(ours["position"] as? [String: Any])
            position[key] = value
            ours["position"] = position
            root["lora_tools"] = ours
            try JSONSerialization.data(withJSONObject: root).write(to: URL(fileURLWithPath: json))
            let r = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/d-" + key, "--resume", damaged])
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertTrue(r.stderr.contains(says), r.stderr)
        }

        // Ctrl-C during training: the step finishes, a state is saved, exit 130; resuming it gives the same file.
        let process = Process()
        process.executableURL = ToolRunner.products.appendingPathComponent("lora-train")
        process.arguments = base + ["--output-dir", folder + "/stopped"]
        process.currentDirectoryURL = URL(fileURLWithPath: ToolRunner.repoRoot)
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let log = folder + "/stopped/r-log.csv"
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, ((try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").count ?? 0) < 3 {
            usleep(20_000)
        }
        kill(process.processIdentifier, SIGINT)
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130, stderr)
        let saved = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: folder + "/stopped").first { $0.hasSuffix("-state") }, stderr)
        XCTAssertTrue(stderr.contains("--resume"), stderr)
        let resumed = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/stopped", "--resume", folder + "/stopped/" + saved])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/stopped/r.safetensors").metadata["sshs_model_hash"], expected, "resumed after Ctrl-C")
    }

    /// kohya's TOML files: a training config in sections (as the kohya_ss GUI writes, with keys that ask for
    /// nothing) and a dataset config; the command line overrides the config; unknown keys are named.
    func testKohyaTOMLConfigs() throws {
        try """
            [model_arguments]
            pretrained_model_name_or_path = "\(folder)/base.safetensors"
            v2 = false
            [additional_network_arguments]
            network_dim = 8
            network_alpha = 4.0
            network_train_unet_only = true
            network_args = []
            [training_arguments]
            max_train_epochs = 5
            log_with = ""
            xformers = true
            train_batch_size = 3
            cache_info = true
            """.write(toFile: folder + "/config.toml", atomically: false, encoding: .utf8)
        try """
            [general]
            enable_bucket = true
            min_bucket_reso = 64
            max_bucket_reso = 128
            caption_extension = ".txt"

            [[datasets]]
            resolution = 64
            batch_size = 2

              [[datasets.subsets]]
              image_dir = "\(folder)/data/2_zkw shape"
              class_tokens = "zkw"
              num_repeats = 3
            """.write(toFile: folder + "/dataset.toml", atomically: false, encoding: .utf8)
        let args = ["--config_file", folder + "/config", "--dataset_config", folder + "/dataset.toml",
                    "--tokenizer", "Fixtures/tokenizer/clip_bpe_merges.txt.gz", "--dry-run", "--max-train-epochs", "2"]
        let run = try ToolRunner.run("lora-train", args)
        XCTAssertEqual(run.status, 0, run.stderr)
        for line in ["contains 4 image files (2 with .txt captions), 3 repeats, class tokens \"zkw\"", "12 train images with repeats.",
                     "bucket 0: resolution (64, 64), count: 12", "num batches per epoch: 6", "num epochs: 2", "total optimization steps: 12"] {
            XCTAssertTrue(run.stdout.contains(line), "\(line):\n\(run.stdout)")
        }
        // An sd-scripts argument lora-train lacks is refused, naming the file; a key sd-scripts does not know either is
        // skipped with a note, as sd-scripts skips it.
        try "[training_arguments]\ndeepspeed = true\n".write(toFile: folder + "/bad.toml", atomically: false, encoding: .utf8)
        let bad = try ToolRunner.run("lora-train", ["--config_file", folder + "/bad.toml", "--dataset_config", folder + "/dataset.toml", "--dry-run",
                                                    "--model", folder + "/base.safetensors"])
        XCTAssertEqual(bad.status, 64, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("--deepspeed comes from \(folder)/bad.toml"), bad.stderr)
        try "[training_arguments]\nfancy_new_option = 3\n".write(toFile: folder + "/odd.toml", atomically: false, encoding: .utf8)
        let odd = try ToolRunner.run("lora-train", ["--config_file", folder + "/odd.toml", "--dataset_config", folder + "/dataset.toml", "--dry-run",
                                                    "--model", folder + "/base.safetensors"] + ["--tokenizer", "Fixtures/tokenizer/clip_bpe_merges.txt.gz"])
        XCTAssertEqual(odd.status, 0, odd.stderr)
        XCTAssertTrue(odd.stderr.contains("note: fancy_new_option in \(folder)/odd.toml is not an sd-scripts argument"), odd.stderr)
        try "[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'x'\ncolour_aug = true\n".write(toFile: folder + "/bad-data.toml", atomically: false, encoding: .utf8)
        let badData = try ToolRunner.run("lora-train", common + ["--dataset-config", folder + "/bad-data.toml", "--dry-run"])
        XCTAssertEqual(badData.status, 2, badData.stderr)
        XCTAssertTrue(badData.stderr.contains("unknown key colour_aug"), badData.stderr)
        try "[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'x'\nresize_interpolation = 'sinc'\n".write(toFile: folder + "/bad-resize.toml", atomically: false,
                                                                                                       encoding: .utf8)
        let badResize = try ToolRunner.run("lora-train", common + ["--dataset-config", folder + "/bad-resize.toml", "--dry-run"])
        XCTAssertEqual(badResize.status, 2, badResize.stderr)
        XCTAssertTrue(badResize.stderr.contains("resize_interpolation \"sinc\" is not one of lanczos, box, nearest"), badResize.stderr)
    }

    /// kohya's --output_config: the command line becomes a flat TOML under kohya's spellings (the run modes left out),
    /// nothing runs, and --config-file reads it back to the same plan; an existing file is never overwritten.
    func testOutputConfigWritesWhatTheConfigFileReadsBack() throws {
        // Short spellings (-m, -q) are written under their long names.
        let short = common.map { ["--model": "-m", "--quiet": "-q"][$0] ?? $0 }
        XCTAssertEqual(short.filter { $0.count == 2 && $0.hasPrefix("-") }, ["-m", "-q"])
        let settings = short + ["--output-dir", folder + "/out", "--max_train_epochs", "2", "--network-args", "conv_dim=2", "conv_alpha=1",
                                 "--noise-offset", "-0.05", "--output-name", "my \"char\""]
        let saved = folder + "/saved"
        let write = try ToolRunner.run("lora-train", settings + ["--dry-run", "--output_config", "--config_file", saved])
        XCTAssertEqual(write.status, 0, write.stderr)
        XCTAssertTrue(write.stdout.contains("saved the config file: \(saved).toml"), write.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/out"), "nothing ran")
        let text = try String(contentsOfFile: saved + ".toml", encoding: .utf8)
        guard case let .object(members) = try TOML.parse(text) else { return XCTFail(text) }
        let config = Dictionary(members, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(config["pretrained_model_name_or_path"], .string(folder + "/base.safetensors"), text)
        XCTAssertEqual(config["train_data_dir"], .string(folder + "/data"), text)
        XCTAssertEqual(config["network_dim"], .number("4"), text)
        XCTAssertEqual(config["learning_rate"], .number("1e-3"), text)
        XCTAssertEqual(config["noise_offset"], .number("-0.05"), "a negative number is a value, not an option: \(text)")
        XCTAssertEqual(config["network_train_unet_only"], .bool(true), text)
        XCTAssertEqual(config["network_args"], .array([.string("conv_dim=2"), .string("conv_alpha=1")]), text)
        XCTAssertEqual(config["output_name"], .string("my \"char\""), text)
        XCTAssertEqual(config["tokenizer"], .string("Fixtures/tokenizer/clip_bpe_merges.txt.gz"), "lora-train's own options keep their names")
        XCTAssertEqual(config["quiet"], .bool(true), text)
        XCTAssertNil(config["dry_run"], "a run mode, not a setting")
        XCTAssertNil(config["config_file"])
        XCTAssertNil(config["output_config"])
        // Read back: the same plan as the command line it came from.
        let direct = try ToolRunner.run("lora-train", settings + ["--dry-run"])
        XCTAssertEqual(direct.status, 0, "argparse's --noise_offset -0.05 works here too: \(direct.stderr)")
        let readBack = try ToolRunner.run("lora-train", ["--config_file", saved, "--dry-run"])
        XCTAssertEqual(readBack.status, 0, readBack.stderr)
        XCTAssertEqual(readBack.stdout, direct.stdout)
        XCTAssertTrue(readBack.stdout.contains("num epochs: 2"), readBack.stdout)
        // Never over an existing file; without --config-file, or with an option lora-train lacks, refused before writing.
        let again = try ToolRunner.run("lora-train", ["--network-dim", "8", "--output-config", "--config-file", saved + ".toml"])
        XCTAssertEqual(again.status, 1, again.stderr)
        XCTAssertTrue(again.stderr.contains("\(saved).toml: the config file exists already"), again.stderr)
        XCTAssertEqual(try String(contentsOfFile: saved + ".toml", encoding: .utf8), text)
        let nowhere = try ToolRunner.run("lora-train", ["--network-dim", "8", "--output-config"])
        XCTAssertEqual(nowhere.status, 64, nowhere.stderr)
        XCTAssertTrue(nowhere.stderr.contains("give --config-file too"), nowhere.stderr)
        let unknown = try ToolRunner.run("lora-train", ["--deepspeed", "--output-config", "--config-file", folder + "/other"])
        XCTAssertEqual(unknown.status, 64, unknown.stderr)
        XCTAssertTrue(unknown.stderr.contains("unknown option --deepspeed"), unknown.stderr)
        XCTAssertTrue(direct.stderr.contains("note: --log-config does nothing without --logging-dir") == false, direct.stderr)
        let logConfig = try ToolRunner.run("lora-train", settings + ["--dry-run", "--log_config"])
        XCTAssertEqual(logConfig.status, 0, logConfig.stderr)
        XCTAssertTrue(logConfig.stderr.contains("note: --log-config does nothing without --logging-dir"), logConfig.stderr)
        let unknownShort = try ToolRunner.run("lora-train", ["-z", "--output-config", "--config-file", folder + "/other"])
        XCTAssertEqual(unknownShort.status, 64, unknownShort.stderr)
        XCTAssertTrue(unknownShort.stderr.contains("-z: a value without an option before it"), unknownShort.stderr)
        let flagValue = try ToolRunner.run("lora-train", ["--enable-bucket", "yes", "--output-config", "--config-file", folder + "/other"])
        XCTAssertEqual(flagValue.status, 64, flagValue.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/other.toml"))
    }

    /// kohya's --console_log_file: the reported lines (the plan, the missing-caption warning) also go to the file,
    /// which is truncated as kohya's logging.FileHandler(mode="w"); a file that cannot be written is an error before any work.
    func testConsoleLogFileGetsTheReportedLines() throws {
        let path = folder + "/console.log"
        try "an earlier run's log\n".write(toFile: path, atomically: false, encoding: .utf8)
        let run = try ToolRunner.run("lora-train", common + ["--dry-run", "--console_log_file", path])
        XCTAssertEqual(run.status, 0, run.stderr)
        let log = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertFalse(log.contains("an earlier run's log"), log)
        for line in ["8 train images with repeats.", "num batches per epoch: 4", "2 of 4 images"] {
            XCTAssertTrue(log.contains(line), "\(line):\n\(log)")
            XCTAssertTrue((run.stdout + run.stderr).contains(line), "the console keeps it too: \(line)")
        }
        let bad = try ToolRunner.run("lora-train", common + ["--dry-run", "--console-log-file", folder + "/missing/console.log"])
        XCTAssertEqual(bad.status, 2, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("missing/console.log: cannot write the console log"), bad.stderr)
        // A FIFO nobody reads is an error, not a wait.
        XCTAssertEqual(mkfifo(folder + "/fifo", 0o644), 0)
        let fifo = try ToolRunner.run("lora-train", common + ["--dry-run", "--console-log-file", folder + "/fifo"])
        XCTAssertEqual(fifo.status, 2, fifo.stderr)
        XCTAssertTrue(fifo.stderr.contains("a FIFO nobody reads"), fifo.stderr)
    }

    /// A config as the kohya_ss GUI writes it for an SD1.5 LoRA (kohya_gui/lora_gui.py: every value that
    /// is not "", false or None, sorted; most zeros become None there, but scale_weight_norms = 0 and the
    /// integer persistent_data_loader_workers = 0/1 are written as they are): it runs unchanged. The GUI's own keys (epoch, noise_offset_type),
    /// which sd-scripts ignores, are skipped with a note; dynamo_backend "no" is accepted, logging_dir
    /// writes a TensorBoard log; the --metadata_* fields land in ModelSpec; an sd-scripts argument lora-train
    /// lacks is still refused by name.
    func testKohyaGUIConfigRunsUnchanged() throws {
        let config = """
            cache_latents = true
            cache_text_encoder_outputs = true
            caption_extension = ".txt"
            clip_skip = 1
            dynamo_backend = "no"
            enable_bucket = true
            epoch = 1
            gradient_accumulation_steps = 1
            huber_c = 0.1
            huber_schedule = "snr"
            learning_rate = 0.001
            log_config = true
            logging_dir = "\(folder)/log"
            loss_type = "l2"
            lr_scheduler = "cosine"
            lr_scheduler_args = []
            lr_scheduler_num_cycles = 1
            lr_scheduler_power = 1
            max_bucket_reso = 128
            max_data_loader_n_workers = 0
            max_grad_norm = 1
            max_timestep = 1000
            max_token_length = 75
            max_train_steps = 2
            metadata_author = "A. Tester"
            metadata_title = "GUI run"
            min_bucket_reso = 64
            mixed_precision = "bf16"
            multires_noise_discount = 0.3
            network_alpha = 1
            network_dim = 4
            network_module = "networks.lora"
            network_train_unet_only = true
            noise_offset_type = "Original"
            optimizer_args = []
            optimizer_type = "AdamW8bit"
            output_dir = "\(folder)/gui"
            output_name = "gui"
            persistent_data_loader_workers = 1
            pretrained_model_name_or_path = "\(folder)/base.safetensors"
            prior_loss_weight = 1
            scale_weight_norms = 0
            resolution = "64,64"
            sample_prompts = "\(folder)/prompt.txt"
            sample_sampler = "euler_a"
            save_every_n_epochs = 1
            save_model_as = "safetensors"
            save_precision = "fp16"
            text_encoder_lr = [ 0.0001, 0.0001,]
            train_batch_size = 1
            train_data_dir = "\(folder)/data"
            train_inpainting = false
            unet_lr = 0.001
            wandb_run_name = "gui"
            weighted_captions = true
            xformers = true
            """
        try config.write(toFile: folder + "/gui.toml", atomically: false, encoding: .utf8)
        try "".write(toFile: folder + "/prompt.txt", atomically: false, encoding: .utf8)  // the GUI writes one even when its prompt box is empty
        let tokenizer = ["--tokenizer", "Fixtures/tokenizer/clip_bpe_merges.txt.gz"]
        // LORA_TOOLS_RERUN: the tool re-runs itself once at start, as on a CPU Debian's OpenBLAS does not know (the
        // Intel host), so a note printed before that point would come out twice on every host.
        let run = try ToolRunner.run("lora-train", ["--config_file", folder + "/gui.toml"] + tokenizer, environment: ["LORA_TOOLS_RERUN": "1"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertFalse(run.stderr.contains("train_inpainting"), "a key set to false asks for nothing, known or not: \(run.stderr)")
        for note in ["note: epoch in \(folder)/gui.toml is not an sd-scripts argument", "note: noise_offset_type in",
                     "note: --cache_text_encoder_outputs: SDXL/SD3 options that sd-scripts' train_network.py does not use for SD1/SD2 either"] {
            XCTAssertEqual(run.stderr.components(separatedBy: note).count - 1, 1, "said once: \(note):\n\(run.stderr)")
        }
        // logging_dir: a TensorBoard run folder <time>/network_train/ with one event file, two steps' scalars in it.
        let runs = try FileManager.default.contentsOfDirectory(atPath: folder + "/log")
        XCTAssertEqual(runs.count, 1)
        XCTAssertTrue(runs.first.map { $0.count == 14 && $0.allSatisfy(\.isNumber) } ?? false, "\(runs)")
        let board = folder + "/log/\(runs.first ?? "")/network_train"
        let listing = try FileManager.default.contentsOfDirectory(atPath: board)
        let events = listing.filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(events.count, 1)
        // log_config: torch's add_hparams folder and accelerate's hparams.yml beside the event file, named by time.time().
        let stamped = listing.filter { Double($0) != nil }.sorted()
        XCTAssertEqual(stamped.count, 2, "\(listing)")
        let hparamEvents = try FileManager.default.contentsOfDirectory(atPath: board + "/" + (stamped.first ?? ""))
        XCTAssertEqual(hparamEvents.count, 1)
        let hparamData = try Data(contentsOf: URL(fileURLWithPath: board + "/\(stamped.first ?? "")/\(hparamEvents.first ?? "")"))
        XCTAssertEqual(hparamData.ranges(of: Data("_hparams_/session_start_info".utf8)).count, 1)
        let yaml = try String(contentsOfFile: board + "/\(stamped.last ?? "")/hparams.yml", encoding: .utf8)
        // Other paths stay, as kohya keeps them (config_file without its extension, sample_prompts, dataset_config ...).
        for line in ["learning_rate: 0.001\n", "lr_scheduler: cosine\n", "log_config: true\n", "network_dim: ", "lr_scheduler_num_cycles: 1\n",
                     "config_file: \(folder)/gui\n"] {
            XCTAssertTrue(yaml.contains(line), "\(line) in:\n\(yaml)")
        }
        // Every key is an option's name (kohya's where sd-scripts has the option), as --help lists them.
        let help = try ToolRunner.run("lora-train", ["--help-hidden"]).stdout
        let spellings = Set(help.matches(of: /--([A-Za-z0-9_-]+)/).map { String($0.1) })
        for key in yaml.split(separator: "\n").map({ String($0.prefix { $0 != ":" }) }) {
            XCTAssertTrue(spellings.contains(key) || spellings.contains(key.replacingOccurrences(of: "_", with: "-")), "\(key) is no option's name")
        }
        for hidden in ["pretrained_model_name_or_path", "train_data_dir", "output_dir", "logging_dir", "tokenizer:", "base.safetensors", "/data"] {
            XCTAssertFalse(yaml.contains(hidden), "kohya leaves the paths to the user's files out: \(hidden)")
        }
        XCTAssertTrue(events.first?.hasPrefix("events.out.tfevents.") ?? false, "\(events)")
        let data = try Data(contentsOf: URL(fileURLWithPath: board + "/" + (events.first ?? "")))
        func count(_ tag: String) -> Int { data.ranges(of: Data(tag.utf8)).count }
        XCTAssertEqual(count("brain.Event:2"), 1)
        XCTAssertEqual(count("loss/current"), 2)
        XCTAssertEqual(count("lr/unet"), 2)
        XCTAssertEqual(count("loss/epoch_average"), 1)   // max_train_steps 2 end the first epoch: kohya's loop runs one
        let metadata = try ModelFile.open(folder + "/gui/gui.safetensors").metadata
        // The GUI writes text_encoder_lr as a list of two (CLIP-L and T5 for FLUX); kohya's SD1 networks.lora takes the first.
        XCTAssertEqual(metadata["ss_text_encoder_lr"], "0.0001")
        XCTAssertFalse(run.stderr.contains("note: --text-encoder-lr"), "two equal rates need no note: \(run.stderr)")
        let unequal = try ToolRunner.run("lora-train", common + ["--dry-run", "--text_encoder_lr", "1e-5", "2e-5"])
        XCTAssertEqual(unequal.status, 0, unequal.stderr)
        XCTAssertTrue(unequal.stderr.contains("note: --text-encoder-lr 1e-05 2e-05: SD1/SD2 have one text encoder"), unequal.stderr)
        XCTAssertEqual(metadata["modelspec.title"], "GUI run")
        XCTAssertEqual(metadata["modelspec.author"], "A. Tester")
        let card = try ToolRunner.run("lora-inspect", [folder + "/gui/gui.safetensors"])
        XCTAssertTrue(card.stdout.contains("GUI run") && card.stdout.contains("A. Tester"), card.stdout)
        // kohya's newer card fields: every --metadata_X as modelspec.X, a thumbnail file as a data URL (lora-inspect shows its size).
        let png = try PNGCodec.encode(Bitmap(width: 8, height: 8, fill: RGB(200, 10, 10)))
        try Data(png).write(to: URL(fileURLWithPath: folder + "/thumb.png"))
        let extra = try ToolRunner.run("lora-train", common + ["--output-dir", folder + "/card", "--max-train-steps", "1", "--metadata_thumbnail", folder + "/thumb.png",
                                                               "--metadata_merged_from", "a, b", "--metadata_preprocessor", "wd14 tagger"])
        XCTAssertEqual(extra.status, 0, extra.stderr)
        let extraCard = try ModelFile.open(folder + "/card/last.safetensors").metadata
        XCTAssertEqual(extraCard["modelspec.thumbnail"], "data:image/png;base64," + Data(png).base64EncodedString())
        XCTAssertEqual([extraCard["modelspec.merged_from"], extraCard["modelspec.preprocessor"]], ["a, b", "wd14 tagger"])
        let shown = try ToolRunner.run("lora-inspect", [folder + "/card/last.safetensors"])
        XCTAssertTrue(shown.stdout.contains("image/png, \(png.count) B (data URL)") && shown.stdout.contains("wd14 tagger"), shown.stdout)
        let noThumb = try ToolRunner.run("lora-train", common + ["--output-dir", folder + "/card2", "--metadata_thumbnail", folder + "/none.png", "--dry-run"])
        XCTAssertNotEqual(noThumb.status, 0)
        XCTAssertTrue(noThumb.stderr.contains("--metadata-thumbnail \(folder)/none.png: cannot read the file"), noThumb.stderr)
        // The GUI's low-precision switches: accepted beside bf16 (what kohya asserts), with a note saying they are not done.
        try (config.replacingOccurrences(of: "persistent_data_loader_workers = 1", with: "persistent_data_loader_workers = 0")
             + "\nfp8_base = true\nfull_bf16 = true\nuse_safetensors = true\n").write(toFile: folder + "/gui8.toml", atomically: false, encoding: .utf8)
        let accepted = try ToolRunner.run("lora-train", ["--config_file", folder + "/gui8.toml", "--dry-run"] + tokenizer)
        XCTAssertEqual(accepted.status, 0, accepted.stderr)
        XCTAssertEqual(accepted.stderr.components(separatedBy: "note: --full_bf16 (the network and its gradients stay fp32); --fp8_base (the U-Net and text encoder")
                        .count - 1, 1, "said once: \(accepted.stderr)")
        let refused = try ToolRunner.run("lora-train", ["--config_file", folder + "/gui8.toml", "--mixed_precision", "no", "--dry-run"] + tokenizer)
        XCTAssertEqual(refused.status, 64, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("--full_bf16 requires --mixed_precision bf16 (as kohya asserts)"), refused.stderr)
        let fullFP16 = try ToolRunner.run("lora-train", common + ["--full_fp16", "--dry-run"])
        XCTAssertEqual(fullFP16.status, 64, fullFP16.stderr)
        XCTAssertTrue(fullFP16.stderr.contains("--full_fp16 requires --mixed_precision fp16"), fullFP16.stderr)
        // fp16, the GUI's default: accepted, computed in fp32 with a note; the file says what ran.
        let fp16 = try ToolRunner.run("lora-train", common + ["--mixed_precision", "fp16", "--full_fp16", "--output-dir", folder + "/fp16", "--max-train-steps", "1"])
        XCTAssertEqual(fp16.status, 0, fp16.stderr)
        XCTAssertTrue(fp16.stderr.contains("note: --mixed-precision fp16 (the kohya_ss GUI's default): computing in fp32"), fp16.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/fp16/last.safetensors").metadata["ss_mixed_precision"], "no")
        let wandb = try ToolRunner.run("lora-train", ["--config_file", folder + "/gui.toml", "--log_with", "wandb", "--dry-run"] + tokenizer)
        XCTAssertEqual(wandb.status, 64, wandb.stderr)
        XCTAssertTrue(wandb.stderr.contains("--log-with wandb: Weights & Biases is not supported"), wandb.stderr)
        // With --bucket-no-upscale a wide image too small for the step has no bucket: one line naming it, not a crash.
        let tiny = try ToolRunner.run("lora-train", common + ["--bucket-no-upscale", "--bucket-reso-steps", "64", "--dry-run"])
        XCTAssertEqual(tiny.status, 1, tiny.stderr)
        XCTAssertTrue(tiny.stderr.contains("img3.png: this 128x64 image's bucket would be"), tiny.stderr)
    }

    /// kohya's --vae: a separate VAE file encodes the latents. The checkpoint's own VAE as a standalone file
    /// trains the same LoRA bit for bit; another VAE changes it and re-encodes the .npz caches; the metadata
    /// names it as kohya does.
    func testSeparateVAE() throws {
        let base = try ModelFile.open(folder + "/base.safetensors")
        func writeVAE(_ path: String, scale: Float) throws {
            let tensors = base.tensors.filter { $0.name.hasPrefix("first_stage_model.") }
            let writer = try SafeTensorsWriter(path: path, metadata: Metadata(), entries: tensors.map {
                SafeTensorsWriter.Entry(name: String($0.name.dropFirst("first_stage_model.".count)), dtype: .f32, shape: $0.shape)
            })
            for t in tensors {
                // Scaling conv_in's weights is a different VAE (its latents differ); 1 keeps the checkpoint's.
                let values = t.floats().map { t.name.hasSuffix("encoder.conv_in.weight") ? $0 * scale : $0 }
                try values.withUnsafeBufferPointer { try writer.write(name: String(t.name.dropFirst("first_stage_model.".count)), floats: $0) }
            }
            try writer.finish()
        }
        try writeVAE(folder + "/same-vae.safetensors", scale: 1)
        try writeVAE(folder + "/other-vae.safetensors", scale: 0.5)
        let args = common + ["--max-train-steps", "2", "--seed", "9", "--output-name", "v", "--cache-latents-to-disk"]
        func run(_ extra: [String], _ out: String) throws -> (hash: String, stdout: String, metadata: Metadata) {
            let r = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/" + out] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            let m = try ModelFile.open(folder + "/\(out)/v.safetensors").metadata
            return (try XCTUnwrap(m["sshs_model_hash"]), r.stdout, m)
        }
        let own = try run([], "own")
        let same = try run(["--vae", folder + "/same-vae.safetensors"], "same")
        XCTAssertEqual(same.hash, own.hash, "the checkpoint's own VAE in a file of its own trains the same")
        XCTAssertTrue(same.stdout.contains("0 of 4 images from .npz caches"), "another VAE file: the caches are re-encoded\n\(same.stdout)")
        XCTAssertEqual(same.metadata["ss_vae_name"], "same-vae.safetensors")
        XCTAssertEqual(same.metadata["ss_new_vae_hash"]?.count, 64)
        let inspected = try ToolRunner.run("lora-inspect", [folder + "/same/v.safetensors"])
        XCTAssertTrue(inspected.stdout.contains("VAE") && inspected.stdout.contains("same-vae.safetensors ["), inspected.stdout)
        let other = try run(["--vae", folder + "/other-vae.safetensors"], "other")
        XCTAssertNotEqual(other.hash, own.hash, "another VAE, other latents")
        XCTAssertNil(own.metadata["ss_vae_name"])
    }

    /// --validation-split: kohya's held-out share (one of the four images at 0.25, its repeats included) is
    /// named in the plan and the metadata, its loss is printed, logged to TensorBoard and drawn; validating
    /// leaves the training alone (a run that never validates trains the same tensors); a split given in a
    /// dataset config works the same way.
    func testValidationSplit() throws {
        let args = common + ["--max-train-epochs", "2", "--seed", "3", "--validation-split", "0.25", "--validation-seed", "5", "--output-name", "v"]
        let run = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/val", "--validate-every-n-steps", "1",
                                                           "--logging-dir", folder + "/log"])
        XCTAssertEqual(run.status, 0, run.stderr)
        for line in ["num train images * repeats: 6", "num validation images * repeats: 2", "validation: 1 images, 1 batches at timesteps 200, 400, 600, 800, every epoch and every 1 steps"] {
            XCTAssertTrue(run.stdout.contains(line), "\(line):\n\(run.stdout)")
        }
        let m = try ModelFile.open(folder + "/val/v.safetensors").metadata
        let steps = try XCTUnwrap(Int(m[.steps] ?? ""))
        XCTAssertEqual(run.stderr.components(separatedBy: "validation (step ").count - 1, steps, run.stderr)
        XCTAssertTrue(run.stderr.contains("validation (epoch 1): loss") && run.stderr.contains("validation (epoch 2): loss"), run.stderr)
        XCTAssertEqual(m["ss_num_validation_images"], "2")
        XCTAssertEqual(m["ss_validation_split"], "0.25")
        XCTAssertEqual(m["ss_validation_seed"], "5")
        XCTAssertEqual(m["ss_validate_every_n_steps"], "1")
        XCTAssertEqual(m["ss_max_validation_steps"], "None")
        XCTAssertEqual(m[.numTrainImages], "6")
        XCTAssertEqual([m[.minBucketReso], m[.maxBucketReso]], ["64", "128"], "kohya's limits, adjusted to the 64 step")
        let inspected = try ToolRunner.run("lora-inspect", [folder + "/val/v.safetensors"])
        XCTAssertTrue(inspected.stdout.contains("validation images") && inspected.stdout.contains("2 (split 0.25)"), inspected.stdout)
        let board = try XCTUnwrap(FileManager.default.subpaths(atPath: folder + "/log")?.first { $0.contains("events.out.tfevents.") })
        let events = try Data(contentsOf: URL(fileURLWithPath: folder + "/log/" + board))
        XCTAssertEqual(events.ranges(of: Data("loss/validation/step_average".utf8)).count, steps)
        XCTAssertEqual(events.ranges(of: Data("loss/validation/epoch_divergence".utf8)).count, 2)

        let never = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/never", "--validate-every-n-epochs", "100"])
        XCTAssertEqual(never.status, 0, never.stderr)
        XCTAssertFalse(never.stderr.contains("validation ("), never.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/never/v.safetensors").metadata["sshs_model_hash"], m["sshs_model_hash"],
                       "validation draws from its own random source: the training is the same")

        try """
            [general]
            caption_extension = ".txt"
            [[datasets]]
            resolution = 64
            batch_size = 2
            validation_split = 0.5
            validation_seed = 1
            [[datasets.subsets]]
            image_dir = "\(folder)/data/2_zkw shape"
            num_repeats = 1
            """.write(toFile: folder + "/dataset.toml", atomically: false, encoding: .utf8)
        let configured = try ToolRunner.run("lora-train", common.filter { $0 != "--train-data-dir" && $0 != folder + "/data" }
                                            + ["--dataset-config", folder + "/dataset.toml", "--dry-run"])
        XCTAssertEqual(configured.status, 0, configured.stderr)
        XCTAssertTrue(configured.stdout.contains("num train images * repeats: 2") && configured.stdout.contains("num validation images * repeats: 2"),
                      configured.stdout)
        let bad = try ToolRunner.run("lora-train", common + ["--validation-split", "1", "--dry-run"])
        XCTAssertEqual(bad.status, 64, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("--validation-split 1.0: a share from 0 to below 1"), bad.stderr)
    }

    /// kohya's other ways to say things: --network-weights loads as load_state_dict(strict=False) (a U-Net LoRA into a
    /// run that also trains the text encoder: its modules start fresh, with a note); --dim-from-weights builds exactly
    /// the file's modules at their ranks; --use_8bit_adam / --use_lion_optimizer name optimizers (not beside another);
    /// --save_n_epoch_ratio n saves every floor(epochs / n) epochs.
    func testKohyaWeightsAndOlderSpellings() throws {
        // At 128 (min and max bucket 128 too) with bucket_no_upscale both images keep their size (64x64, 128x64): multiples of the engine model's 64.
        let first = try ToolRunner.run("lora-train", common.map { $0 == "64" ? "128" : $0 }
                                       + ["--output-dir", folder + "/a", "--output-name", "a", "--max-train-steps", "2",
                                          "--use_8bit_adam", "--bucket-no-upscale", "--bucket-reso-steps", "64"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let a = try ModelFile.open(folder + "/a/a.safetensors").metadata
        XCTAssertEqual(a[.optimizer], "torch.optim.adamw.AdamW")
        XCTAssertEqual([a["ss_bucket_no_upscale"], a[.minBucketReso], a[.maxBucketReso]], ["True", "128", "128"],
                       "kohya keeps (and records) the adjusted limits with bucket_no_upscale too")
        let withTE = common.filter { $0 != "--network-train-unet-only" }
        let loose = try ToolRunner.run("lora-train", withTE + ["--output-dir", folder + "/b", "--max-train-steps", "1", "--network-weights", folder + "/a/a.safetensors",
                                                               "--zero_terminal_snr"])
        XCTAssertEqual(loose.status, 0, loose.stderr)
        XCTAssertTrue(loose.stderr.contains("warning: --zero-terminal-snr with an ε-prediction model"), loose.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/b/last.safetensors").metadata["ss_zero_terminal_snr"], "True")
        XCTAssertTrue(loose.stdout.contains("load network weights from \(folder)/a/a.safetensors: 384 of "), loose.stdout)
        XCTAssertTrue(loose.stderr.contains("tensors of this network are not in") && loose.stderr.contains("they start fresh"), loose.stderr)
        let fromWeights = try ToolRunner.run("lora-train", withTE + ["--output-dir", folder + "/c", "--output-name", "c", "--max-train-steps", "1",
                                                                     "--network-weights", folder + "/a/a.safetensors", "--dim-from-weights",
                                                                     "--network-dim", "16", "--no_metadata"])
        XCTAssertEqual(fromWeights.status, 0, fromWeights.stderr)
        XCTAssertTrue(fromWeights.stdout.contains("create LoRA network from weights: 192 of its 192 modules, rank 4"), fromWeights.stdout)
        let c = try ModelFile.open(folder + "/c/c.safetensors")
        XCTAssertEqual(c.tensors.count, 192 * 3, "the file's U-Net modules only, no text encoder's")
        // --no_metadata: kohya's minimum keys, the ModelSpec card and the hashes; nothing about the data or the settings.
        XCTAssertEqual(Set(c.metadata.keys.filter { $0.hasPrefix("ss_") }),
                       ["ss_v2", "ss_base_model_version", "ss_network_module", "ss_network_dim", "ss_network_alpha"])
        XCTAssertNotNil(c.metadata["modelspec.title"])
        XCTAssertNotNil(c.metadata["sshs_model_hash"])
        XCTAssertEqual(c["lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"]?.shape.first, 4)
        let twice = try ToolRunner.run("lora-train", common + ["--output-dir", folder + "/d", "--use_lion_optimizer", "--optimizer-type", "Prodigy", "--dry-run"])
        XCTAssertEqual(twice.status, 64, twice.stderr)
        XCTAssertTrue(twice.stderr.contains("--use_lion_optimizer and --optimizer-type Prodigy name two optimizers"), twice.stderr)
        let ratio = try ToolRunner.run("lora-train", common + ["--output-dir", folder + "/e", "--output-name", "e", "--max-train-epochs", "4",
                                                               "--max-train-steps", "1", "--save_n_epoch_ratio", "2", "--use_lion_optimizer",
                                                               "--lr_scheduler", "warmup_stable_decay", "--lr_warmup_steps", "2", "--lr_decay_steps", "0.5",
                                                               "--lr_scheduler_min_lr_ratio", "0.1", "--lr_scheduler_args", "decay_type=linear"])
        XCTAssertEqual(ratio.status, 0, ratio.stderr)
        // The logged rates are warmup_stable_decay's over 16 steps: 2 warming up from the 0.1 floor, 6 stable, 8 decaying linearly.
        var schedule = LearningRateSchedule(kind: .warmupStableDecay, totalSteps: 16, warmupSteps: 2)
        (schedule.decaySteps, schedule.minLRRatio, schedule.decayRamp) = (8, 0.1, .linear)
        let logged = try String(contentsOfFile: folder + "/e/e-log.csv", encoding: .utf8).split(separator: "\n").dropFirst()
            .map { Double($0.split(separator: ",", omittingEmptySubsequences: false)[4])! }
        XCTAssertEqual(logged.count, 16)
        for (k, rate) in logged.enumerated() { XCTAssertEqual(rate, 1e-3 * schedule.factor(at: k), accuracy: 1e-15, "step \(k + 1)") }
        let saved = try FileManager.default.contentsOfDirectory(atPath: folder + "/e").filter { $0.hasSuffix(".safetensors") }.sorted()
        XCTAssertEqual(saved, ["e-000002.safetensors", "e.safetensors"], "every floor(4 / 2) = 2 epochs, the last one as e.safetensors")
        XCTAssertEqual(try ModelFile.open(folder + "/e/e.safetensors").metadata[.optimizer], "lion_pytorch.lion_pytorch.Lion")
    }

    /// --base-weights (kohya's): LoRAs merged into the model before training, as lora-merge bakes them. Training on
    /// base + LoRA at 0.7 gives the same tensors as training on lora-merge's fp32 bake of it; without it they differ.
    func testBaseWeightsTrainOnTopOfABakedLoRA() throws {
        let first = try ToolRunner.run("lora-train", common + ["--output-dir", folder + "/a", "--output-name", "a", "--max-train-steps", "2",
                                                               "--learning-rate", "5e-2"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let bake = try ToolRunner.run("lora-merge", ["--model", folder + "/base.safetensors", "--lora", folder + "/a/a.safetensors:0.7",
                                                     "--precision", "fp32", "-o", folder + "/baked.safetensors"])
        XCTAssertEqual(bake.status, 0, bake.stderr)
        let args = common + ["--max-train-steps", "2", "--seed", "4", "--output-name", "b"]
        let onTop = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/top", "--base-weights", folder + "/a/a.safetensors",
                                                             "--base_weights_multiplier", "0.7"])
        XCTAssertEqual(onTop.status, 0, onTop.stderr)
        XCTAssertTrue(onTop.stdout.contains("merging module: \(folder)/a/a.safetensors with multiplier 0.7"), onTop.stdout)
        let baked = try ToolRunner.run("lora-train", args.map { $0 == folder + "/base.safetensors" ? folder + "/baked.safetensors" : $0 }
                                       + ["--output-dir", folder + "/baked"])
        XCTAssertEqual(baked.status, 0, baked.stderr)
        let plain = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/plain"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        func hash(_ out: String) throws -> String? { try ModelFile.open(folder + "/\(out)/b.safetensors").metadata["sshs_model_hash"] }
        XCTAssertEqual(try hash("top"), try hash("baked"), "merged at load = baked by lora-merge")
        XCTAssertNotEqual(try hash("top"), try hash("plain"), "the base LoRA changed what was trained")
        let missing = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/m", "--base-weights", folder + "/none.safetensors"])
        XCTAssertEqual(missing.status, 2, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("none.safetensors"), missing.stderr)
    }

    /// Two [[datasets]] in one dataset config (kohya's DatasetGroup): each its own resolution, buckets and
    /// batch size, the batches of both in every epoch, and the metadata in kohya's dataset-config form
    /// (ss_datasets with one entry per dataset; no flat ss_resolution).
    func testSeveralDatasets() throws {
        try """
            [general]
            enable_bucket = true
            caption_extension = ".txt"

            [[datasets]]
            resolution = 64
            batch_size = 2
            min_bucket_reso = 64
            max_bucket_reso = 128
              [[datasets.subsets]]
              image_dir = "\(folder)/data/2_zkw shape"
              class_tokens = "zkw"
              num_repeats = 2

            [[datasets]]
            resolution = 96
            batch_size = 1
            min_bucket_reso = 64
            max_bucket_reso = 192
            resize_interpolation = "bicubic"
              [[datasets.subsets]]
              image_dir = "\(folder)/data/2_zkw shape"
              class_tokens = "zkw big"
              num_repeats = 1
              flip_aug = true
              resize_interpolation = "box"
            """.write(toFile: folder + "/two.toml", atomically: false, encoding: .utf8)
        let args = common.filter { !["--train-data-dir", folder + "/data"].contains($0) } + ["--dataset-config", folder + "/two.toml",
                                                                                           "--max-train-epochs", "1", "--output-name", "two"]
        let run = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/two"])
        XCTAssertEqual(run.status, 0, run.stderr)
        // Dataset 0: 8 samples at 64² in batches of 2 → 4; dataset 1: 4 samples at 96²-area buckets in batches of 1 → 4.
        for line in ["[Dataset 0] resolution (64, 64), batch size 2, 8 train images with repeats", "[Dataset 1] resolution (96, 96), batch size 1",
                     "num batches per epoch: 8", "total optimization steps: 8", "batch size per device: 1, 2"] {
            XCTAssertTrue(run.stdout.contains(line), "\(line):\n\(run.stdout)")
        }
        let log = try String(contentsOfFile: folder + "/two/two-log.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(log.count, 9, "one line per step of both datasets")
        let metadata = try ModelFile.open(folder + "/two/two.safetensors").metadata
        XCTAssertNil(metadata["ss_resolution"], "the dataset-config form has no flat dataset keys")
        let datasets = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(metadata["ss_datasets"]).utf8)) as? [[String: Any]])
        XCTAssertEqual(datasets.map { $0["batch_size_per_device"] as? Int }, [2, 1])
        XCTAssertEqual(datasets.map { $0["resolution"] as? [Int] }, [[64, 64], [96, 96]])
        XCTAssertEqual(datasets.map { $0["num_train_images"] as? Int }, [8, 4])
        let subsets = try XCTUnwrap(datasets[1]["subsets"] as? [[String: Any]])
        XCTAssertEqual(subsets.first?["class_tokens"] as? String, "zkw big")
        XCTAssertEqual(subsets.first?["flip_aug"] as? Bool, true)
        XCTAssertEqual(datasets.map { $0["resize_interpolation"] as? String }, [nil, "bicubic"], "kohya's dataset-level resize_interpolation")
        XCTAssertEqual(subsets.first?["resize_interpolation"] as? String, "box", "the subset's own")
        let dirs = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(metadata["ss_dataset_dirs"]).utf8)) as? [String: [String: Int]])
        XCTAssertEqual(dirs, ["2_zkw shape": ["n_repeats": 2, "img_count": 4], "2_zkw shape (2)": ["n_repeats": 1, "img_count": 4]], "kohya's merge of the folders")
        // lora-inspect reads the datasets back.
        let inspected = try ToolRunner.run("lora-inspect", [folder + "/two/two.safetensors"])
        XCTAssertTrue(inspected.stdout.contains("2 datasets"), inspected.stdout)
    }

    /// kohya's fine-tuning dataset: --in_json lists the images (by path, or by name without extension as the
    /// metadata scripts write it) with captions and tags; the file records the metadata file where the folders'
    /// names would be, and its tags; a dataset config's metadata_file does the same, and mixing one with folders is refused.
    func testFineTuningMetadata() throws {
        let images = folder + "/data/2_zkw shape"
        try """
            {"img0.png": {"caption": "zkw shape, red disc", "tags": "disc, Red"},
             "img1": {"caption": "zkw shape, red disc on blue"},
             "img3.png": {"tags": "disc, wide"}}
            """.write(toFile: folder + "/meta_cap_dd.json", atomically: false, encoding: .utf8)
        let args = common.map { $0 == folder + "/data" ? images : $0 }
            + ["--in_json", folder + "/meta_cap_dd.json", "--dataset_repeats", "3", "--max-train-steps", "2", "--output-name", "ft"]
        let run = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/ft"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("loaded metadata \(folder)/meta_cap_dd.json: 3 images in \(images), 3 repeats, captions and tags"), run.stdout)
        XCTAssertTrue(run.stdout.contains("num train images * repeats: 9"), run.stdout)
        let metadata = try ModelFile.open(folder + "/ft/ft.safetensors").metadata
        let dirs = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(metadata["ss_dataset_dirs"]).utf8)) as? [String: [String: Int]])
        XCTAssertEqual(dirs, ["meta_cap_dd.json": ["n_repeats": 3, "img_count": 3]], "kohya names the metadata file, not the folder")
        let tags = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(metadata["ss_tag_frequency"]).utf8)) as? [String: [String: Int]])
        XCTAssertEqual(tags, ["meta_cap_dd.json": ["disc": 2, "red": 1, "wide": 1]], "kohya counts the tags, not the captions")
        let inspected = try ToolRunner.run("lora-inspect", [folder + "/ft/ft.safetensors"])
        XCTAssertTrue(inspected.stdout.contains("3 images in 1 metadata file(s), 9 with repeats"), inspected.stdout)

        // A key naming no image: refused before training, naming the key and the metadata file.
        try #"{"img0.png": {"caption": "x"}, "gone": {"caption": "y"}}"#.write(toFile: folder + "/gone.json", atomically: false, encoding: .utf8)
        let gone = try ToolRunner.run("lora-train", args.map { $0 == folder + "/meta_cap_dd.json" ? folder + "/gone.json" : $0 } + ["--dry-run"])
        XCTAssertEqual(gone.status, 2, gone.stderr)
        XCTAssertTrue(gone.stderr.contains("gone.json") && gone.stderr.contains("no image for \"gone\""), gone.stderr)

        // The dataset-config form: metadata_file in a subset; ss_datasets marks the dataset as not DreamBooth.
        try """
            [[datasets]]
            resolution = 64
            batch_size = 2
              [[datasets.subsets]]
              image_dir = "\(images)"
              metadata_file = "\(folder)/meta_cap_dd.json"
            """.write(toFile: folder + "/ft.toml", atomically: false, encoding: .utf8)
        let configured = common.filter { !["--train-data-dir", folder + "/data"].contains($0) }
            + ["--dataset-config", folder + "/ft.toml", "--dataset_repeats", "2", "--max-train-steps", "1", "--output-name", "ftc", "--output-dir", folder + "/ftc"]
        let toml = try ToolRunner.run("lora-train", configured)
        XCTAssertEqual(toml.status, 0, toml.stderr)
        let datasets = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(try ModelFile.open(folder + "/ftc/ftc.safetensors")
            .metadata["ss_datasets"]).utf8)) as? [[String: Any]])
        XCTAssertEqual(datasets.first?["is_dreambooth"] as? Bool, false)
        XCTAssertEqual(datasets.first?["num_train_images"] as? Int, 6, "--dataset_repeats is the subsets' num_repeats, as in kohya")
        let subset = try XCTUnwrap((datasets.first?["subsets"] as? [[String: Any]])?.first)
        XCTAssertEqual(subset["metadata_file"] as? String, "meta_cap_dd.json")
        XCTAssertNil(subset["class_tokens"], "a fine-tuning subset has no class tokens in kohya's metadata")
        try (String(contentsOfFile: folder + "/ft.toml", encoding: .utf8) + "\n  [[datasets.subsets]]\n  image_dir = \"\(images)\"\n")
            .write(toFile: folder + "/mixed.toml", atomically: false, encoding: .utf8)
        let mixed = try ToolRunner.run("lora-train", configured.map { $0 == folder + "/ft.toml" ? folder + "/mixed.toml" : $0 } + ["--dry-run"])
        XCTAssertEqual(mixed.status, 2, mixed.stderr)
        XCTAssertTrue(mixed.stderr.contains("mixed.toml") && mixed.stderr.contains("mixes folder (DreamBooth) subsets and subsets with metadata_file"), mixed.stderr)
    }

    /// --json: standard output is one JSON document — the plan and estimate of a dry run, the files and losses of a run,
    /// or the error — and the human report goes to standard error.
    func testJSONReports() throws {
        func document(_ run: ToolRunner.Result) throws -> [String: Any] {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "stdout is one JSON document: \(run.stdout)")
        }
        let dry = try ToolRunner.run("lora-train", common + ["--max-train-epochs", "3", "--dry-run", "--json"])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        let plan = try XCTUnwrap(try document(dry)["plan"] as? [String: Any])
        // 4 images × 2 repeats in one 64×64 bucket, batches of 2: 4 batches per epoch, 12 steps over 3 epochs.
        XCTAssertEqual(plan["trainImagesWithRepeats"] as? Int, 8)
        XCTAssertEqual(plan["batchesPerEpoch"] as? Int, 4)
        XCTAssertEqual(plan["totalSteps"] as? Int, 12)
        let dataset = try XCTUnwrap((plan["datasets"] as? [[String: Any]])?.first)
        XCTAssertEqual((dataset["buckets"] as? [[String: Any]])?.map { $0["count"] as? Int }, [8])
        let subset = try XCTUnwrap((dataset["subsets"] as? [[String: Any]])?.first)
        XCTAssertEqual(subset["captioned"] as? Int, 2, "two of the four images have .txt captions")
        XCTAssertEqual(subset["classTokens"] as? String, "zkw shape")
        XCTAssertEqual((plan["warnings"] as? [String])?.count, 1, "the two uncaptioned images")
        XCTAssertNotNil((try document(dry)["estimatedSeconds"] as? [String: Double])?["training"])
        XCTAssertTrue(dry.stderr.contains("total optimization steps: 12"), "the human plan moves to stderr: \(dry.stderr)")

        let run = try ToolRunner.run("lora-train", common + ["--max-train-steps", "2", "--output-dir", folder + "/j", "--output-name", "j", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try document(run)
        XCTAssertEqual(report["models"] as? [String], [folder + "/j/j.safetensors"])
        XCTAssertEqual(report["stepsRun"] as? Int, 2)
        let stepSeconds = try XCTUnwrap(report["stepSeconds"] as? [Double])
        XCTAssertEqual(stepSeconds.count, 2, "one time per step")
        XCTAssertTrue(stepSeconds.allSatisfy { $0 > 0 }, "\(stepSeconds)")
        XCTAssertLessThanOrEqual(stepSeconds.reduce(0, +), try XCTUnwrap(report["seconds"] as? Double), "the steps are within the run")
        let csv = try String(contentsOfFile: try XCTUnwrap(report["log"] as? String), encoding: .utf8).split(separator: "\n")
        // JSONEncoder and the CSV log print a double each their own way; the value is the same to its last bits.
        let logged = try XCTUnwrap(csv.last.flatMap { Double($0.split(separator: ",")[3]) })
        XCTAssertEqual(try XCTUnwrap(report["finalAverageLoss"] as? Double), logged, accuracy: abs(logged) * 1e-14,
                       "the last step's average loss, as the CSV log has it")

        let refused = try ToolRunner.run("lora-train", common.map { $0 == folder + "/data" ? folder + "/none" : $0 } + ["--dry-run", "--json"])
        XCTAssertEqual(refused.status, 2, refused.stderr)
        let error = try XCTUnwrap(try document(refused)["error"] as? [String: Any])
        XCTAssertEqual(error["file"] as? String, folder + "/none")
    }

    /// WebP images train beside PNGs (found by content, sized from the header); a BMP is refused before
    /// training, naming the file.
    func testWebPImagesTrainAndBMPsAreNamed() throws {
        let concept = folder + "/web/1_zkw web"
        try FileManager.default.createDirectory(atPath: concept, withIntermediateDirectories: true)
        let (w, h) = (80, 64)
        var rgb: [UInt8] = []
        for y in 0..<h { for x in 0..<w { rgb += [UInt8(x * 3), UInt8(y * 4), 200] } }
        var output: UnsafeMutablePointer<UInt8>?
        let count = WebPEncodeLosslessRGB(rgb, Int32(w), Int32(h), Int32(w * 3), &output)
        FileManager.default.createFile(atPath: concept + "/a.webp", contents: Data(UnsafeBufferPointer(start: output, count: count)))
        WebPFree(output)
        try FileManager.default.copyItem(atPath: folder + "/data/2_zkw shape/img0.png", toPath: concept + "/b.png")
        let args = common.map { $0 == folder + "/data" ? folder + "/web" : $0 } + ["--max-train-steps", "1", "--train-batch-size", "1"]
        let run = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/web-out"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("contains 2 image files"), run.stdout)
        FileManager.default.createFile(atPath: concept + "/c.bmp", contents: Data("BM".utf8 + [UInt8](repeating: 0, count: 60)))
        let bmp = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/bmp-out"])
        XCTAssertEqual(bmp.status, 2, bmp.stderr)
        XCTAssertTrue(bmp.stderr.contains("c.bmp") && bmp.stderr.contains("not a PNG, JPEG or WebP file"), bmp.stderr)
    }

    /// --alpha-mask (kohya's alpha_mask): transparent parts of an image weigh less in the loss; a fully
    /// opaque image trains as without a mask; the mask rides in the .npz cache as kohya's `alpha_mask`.
    func testAlphaMasksWeightTheLoss() throws {
        func dataset(_ name: String, alpha: (Int) -> UInt8) throws -> String {
            let concept = folder + "/\(name)/2_zkw alpha"
            try FileManager.default.createDirectory(atPath: concept, withIntermediateDirectories: true)
            var rgba: [UInt8] = []
            for y in 0..<64 { for x in 0..<64 { rgba += [UInt8(x * 4), UInt8(y * 4), 90, alpha(x)] } }
            var output: UnsafeMutablePointer<UInt8>?
            let count = WebPEncodeLosslessRGBA(rgba, 64, 64, 64 * 4, &output)
            FileManager.default.createFile(atPath: concept + "/a.webp", contents: Data(UnsafeBufferPointer(start: output, count: count)))
            WebPFree(output)
            return folder + "/\(name)"
        }
        let half = try dataset("half", alpha: { $0 < 32 ? 0 : 255 }), opaque = try dataset("opaque", alpha: { _ in 255 })
        let args = common + ["--max-train-steps", "2", "--train-batch-size", "1", "--seed", "5", "--output-name", "m"]
        func hash(_ data: String, _ extra: [String], _ out: String) throws -> String {
            let run = try ToolRunner.run("lora-train", args.map { $0 == folder + "/data" ? data : $0 } + ["--output-dir", folder + "/" + out] + extra)
            XCTAssertEqual(run.status, 0, run.stderr)
            return try XCTUnwrap(try ModelFile.open(folder + "/\(out)/m.safetensors").metadata["sshs_model_hash"])
        }
        let masked = try hash(half, ["--alpha-mask", "--cache-latents-to-disk"], "masked")
        XCTAssertNotEqual(masked, try hash(half, [], "unmasked"), "the transparent half trains less")
        XCTAssertEqual(try hash(opaque, ["--alpha-mask"], "opaque-masked"), try hash(opaque, [], "opaque"), "an opaque mask is no mask")
        let npz = try NumpyArchive.read(half + "/2_zkw alpha/a_0064x0064_sd.npz")
        let mask = try XCTUnwrap(npz["alpha_mask"])
        XCTAssertEqual(mask.shape, [64, 64])
        XCTAssertEqual(mask.values.floats?.prefix(64).map { $0 > 0.5 ? 1 : 0 }, (0..<64).map { $0 < 32 ? 0 : 1 })
        XCTAssertEqual(try hash(half, ["--alpha-mask", "--cache-latents-to-disk"], "masked-again"), masked, "the cached mask trains the same")
        let warned = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/w", "--masked-loss", "--dry-run"])
        XCTAssertTrue(warned.stderr.contains("--masked-loss without alpha masks does nothing"), warned.stderr)
    }

    /// --cache-latents-to-disk: kohya's .npz beside each image, reused by the next run; an edited image is re-encoded.
    func testLatentCachesOnDisk() throws {
        let args = common + ["--max-train-steps", "1", "--cache-latents-to-disk", "--flip-aug"]
        let first = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/a"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("latents: 0 of 4 images from .npz caches on disk, 4 encoded"), first.stdout)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder + "/data/2_zkw shape").filter { $0.hasSuffix(".npz") }.sorted()
        XCTAssertEqual(files, ["img0_0064x0064_sd.npz", "img1_0064x0064_sd.npz", "img2_0064x0064_sd.npz", "img3_0128x0064_sd.npz"])
        let second = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/b"])
        XCTAssertTrue(second.stdout.contains("latents: 4 of 4 images from .npz caches on disk, 0 encoded"), second.stdout)
        XCTAssertEqual(try ModelFile.open(folder + "/a/last.safetensors").metadata["sshs_model_hash"],
                       try ModelFile.open(folder + "/b/last.safetensors").metadata["sshs_model_hash"], "cached latents train the same")
        let edited = try PNGCodec.encode(Bitmap(width: 64, height: 64, fill: RGB(1, 2, 3)))
        try Data(edited).write(to: URL(fileURLWithPath: folder + "/data/2_zkw shape/img1.png"))
        let third = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/c"])
        XCTAssertTrue(third.stdout.contains("latents: 3 of 4 images from .npz caches on disk, 1 encoded"), third.stdout)
        // --resize_interpolation reaches an image that is resized (100x60 → 107x64 for its 64² bucket; the others are used
        // at their own size): that one is encoded again, the others are reused, and the network trains differently.
        var stripes = Bitmap(width: 100, height: 60, fill: RGB(20, 20, 20))
        for y in 0..<60 { for x in 0..<100 where (x / 3 + y / 5) % 2 == 0 { stripes.pixels[(y * 100 + x) * 3] = 250 } }
        try Data(try PNGCodec.encode(stripes)).write(to: URL(fileURLWithPath: folder + "/data/2_zkw shape/img4.png"))
        let lanczos = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/c2"])
        XCTAssertTrue(lanczos.stdout.contains("latents: 4 of 5 images from .npz caches on disk, 1 encoded"), lanczos.stdout)
        let npz = folder + "/data/2_zkw shape/img4_0100x0060_sd.npz"
        func latents() throws -> [Float]? { try NumpyArchive.read(npz)["latents"]?.values.floats }
        let lanczosLatents = try XCTUnwrap(try latents())
        let nearest = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/d", "--resize_interpolation", "nearest"])
        XCTAssertEqual(nearest.status, 0, nearest.stderr)
        XCTAssertTrue(nearest.stdout.contains("latents: 4 of 5 images from .npz caches on disk, 1 encoded"), nearest.stdout)
        XCTAssertNotEqual(try latents(), lanczosLatents, "the stripes resized by nearest neighbour encode differently")
        let d = try ModelFile.open(folder + "/d/last.safetensors").metadata
        XCTAssertEqual(d["ss_resize_interpolation"], "nearest")
        let again = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/e", "--resize_interpolation", "nearest"])
        XCTAssertTrue(again.stdout.contains("latents: 5 of 5 images from .npz caches on disk, 0 encoded"), again.stdout)
        XCTAssertEqual(try ModelFile.open(folder + "/e/last.safetensors").metadata["sshs_model_hash"], d["sshs_model_hash"])
        let box = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/f", "--resize_interpolation", "box", "--dry-run"])
        XCTAssertEqual(box.status, 64, "box is a dataset-config value only, as in kohya's argparse choices")
        XCTAssertTrue(box.stderr.contains("--resize-interpolation box: choose lanczos, nearest"), box.stderr)
    }

    /// Prodigy as kohya users run it (lr 1, its diffusion settings): d·lr logged, kohya's ss_optimizer, and a
    /// resumed run (its d and moments in the state) equal to the uninterrupted one.
    func testProdigyResumes() throws {
        let base = common.map { $0 == "1e-3" ? "1" : $0 } + ["--optimizer-type", "prodigy", "--optimizer-args", "use_bias_correction=True",
                                                            "safeguard_warmup=True", "weight_decay=0.01", "--max-train-steps", "4", "--output-name", "p"]
        let whole = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/p1", "--save-every-n-steps", "2", "--save-state"])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let file = try ModelFile.open(folder + "/p1/p.safetensors")
        XCTAssertEqual(file.metadata[.optimizer], "prodigyopt.prodigy.Prodigy(use_bias_correction=True,safeguard_warmup=True,weight_decay=0.01)")
        let log = try String(contentsOfFile: folder + "/p1/p-log.csv", encoding: .utf8).split(separator: "\n")
        let dlr = try XCTUnwrap(Double(try XCTUnwrap(log.last?.split(separator: ",", omittingEmptySubsequences: false).last)))
        XCTAssertGreaterThanOrEqual(dlr, 1e-6, "d·lr is logged (d starts at d0 = 1e-6 and grows as Prodigy decides): \(log)")
        let resumed = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/p2", "--resume", folder + "/p1/p-step00000002-state"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/p2/p.safetensors").metadata["sshs_model_hash"], file.metadata["sshs_model_hash"])
        // D-Adaptation and Prodigy take one rate: a smaller text-encoder rate is refused before training.
        let unequal = try ToolRunner.run("lora-train", base.filter { $0 != "--network-train-unet-only" } + ["--output-dir", folder + "/p3",
                                                                                                          "--text-encoder-lr", "0.5"])
        XCTAssertEqual(unequal.status, 1)
        XCTAssertTrue(unequal.stderr.contains("one learning rate"), unequal.stderr)
    }

    /// DAdaptLion from the command line: kohya's class name in the metadata, d·lr in the log, and its
    /// state (d, the weighted numerator, both buffers) resumes to the same file.
    func testDAdaptLionResumes() throws {
        let base = common.map { $0 == "1e-3" ? "1" : $0 } + ["--optimizer-type", "DAdaptLion", "--optimizer-args", "weight_decay=0.01",
                                                            "--max-train-steps", "4", "--output-name", "l"]
        let whole = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/l1", "--save-every-n-steps", "2", "--save-state"])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let file = try ModelFile.open(folder + "/l1/l.safetensors")
        XCTAssertEqual(file.metadata[.optimizer], "dadaptation.dadapt_lion.DAdaptLion(weight_decay=0.01)")
        let log = try String(contentsOfFile: folder + "/l1/l-log.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertNotNil(Double(try XCTUnwrap(log.last?.split(separator: ",", omittingEmptySubsequences: false).last)), "d·lr is logged: \(log)")
        let resumed = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/l2", "--resume", folder + "/l1/l-step00000002-state"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/l2/l.safetensors").metadata["sshs_model_hash"], file.metadata["sshs_model_hash"])
    }

    /// AdamWScheduleFree from the command line: kohya's class name in the metadata, its own warmup over a constant rate
    /// (--lr-scheduler does not apply, a note says so, the log's rate stays the base one), and a run resumed from a state
    /// saved with the averaged weights equal to the uninterrupted one.
    func testScheduleFreeResumes() throws {
        let base = common + ["--optimizer-type", "AdamWScheduleFree", "--optimizer-args", "warmup_steps=2", "--lr-scheduler", "cosine",
                             "--max-train-steps", "4", "--output-name", "s"]
        let whole = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/s1", "--save-every-n-steps", "2", "--save-state"])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        XCTAssertTrue(whole.stderr.contains("note: AdamWScheduleFree sets its own schedule: --lr-scheduler and --lr-warmup-steps do not apply"), whole.stderr)
        let file = try ModelFile.open(folder + "/s1/s.safetensors")
        XCTAssertEqual(file.metadata[.optimizer], "schedulefree.adamw_schedulefree.AdamWScheduleFree(warmup_steps=2)")
        let log = try String(contentsOfFile: folder + "/s1/s-log.csv", encoding: .utf8).split(separator: "\n")
        let header = log[0].split(separator: ","), lrColumn = try XCTUnwrap(header.firstIndex { $0.hasPrefix("lr") }, "\(header)")
        let rates = log.dropFirst().map { Double($0.split(separator: ",", omittingEmptySubsequences: false)[lrColumn]) }
        XCTAssertEqual(rates, [Double?](repeating: 1e-3, count: 4), "kohya's dummy scheduler: the base rate at every step")
        let resumed = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/s2", "--resume", folder + "/s1/s-step00000002-state"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/s2/s.safetensors").metadata["sshs_model_hash"], file.metadata["sshs_model_hash"])
    }

    /// The kohya_ss GUI's module-path optimizers: pytorch_optimizer.CAME through a warmup (its first step at rate 0
    /// moves CAME's moments, as pytorch-optimizer's), recorded as kohya records it and resumed to the same file;
    /// bitsandbytes.optim.AdEMAMix8bit trains as the fp32 AdEMAMix and says so; prodigyplus.ProdigyPlusScheduleFree
    /// trains schedule-free; DAdaptSGD refuses the warmup
    /// dadaptation would divide by zero on.
    func testKohyaGUIModulePathOptimizers() throws {
        let base = common + ["--optimizer-type", "pytorch_optimizer.CAME", "--optimizer-args", "weight_decay=0.01", "betas=0.9,0.999,0.9999",
                             "--lr-scheduler", "cosine", "--lr-warmup-steps", "1", "--max-train-steps", "4", "--output-name", "c"]
        let whole = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/c1", "--save-every-n-steps", "2", "--save-state"])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        XCTAssertTrue(whole.stdout.contains("use pytorch_optimizer.CAME optimizer | weight_decay=0.01 betas=0.9,0.999,0.9999"), whole.stdout)
        let file = try ModelFile.open(folder + "/c1/c.safetensors")
        XCTAssertEqual(file.metadata[.optimizer], "pytorch_optimizer.optimizer.came.CAME(weight_decay=0.01,betas=(0.9, 0.999, 0.9999))")
        let resumed = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/c2", "--resume", folder + "/c1/c-step00000002-state"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/c2/c.safetensors").metadata["sshs_model_hash"], file.metadata["sshs_model_hash"])

        let ademamix = try ToolRunner.run("lora-train", common + ["--optimizer-type", "bitsandbytes.optim.AdEMAMix8bit", "--max-train-steps", "2",
                                                                  "--output-dir", folder + "/a", "--output-name", "a"])
        XCTAssertEqual(ademamix.status, 0, ademamix.stderr)
        XCTAssertTrue(ademamix.stderr.contains("note: bitsandbytes.optim.AdEMAMix8bit trains as bitsandbytes.optim.AdEMAMix with fp32 state"), ademamix.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/a/a.safetensors").metadata[.optimizer], "bitsandbytes.optim.ademamix.AdEMAMix")

        // ProdigyPlusScheduleFree: schedule-free by kohya's rule (its name's ending), d·lr logged, eps=None recorded as Python prints it.
        let plus = try ToolRunner.run("lora-train", common.map { $0 == "1e-3" ? "1" : $0 } + [
            "--optimizer-type", "prodigyplus.ProdigyPlusScheduleFree", "--optimizer-args", "eps=None", "--lr-scheduler", "cosine",
            "--max-train-steps", "2", "--output-dir", folder + "/p", "--output-name", "p"])
        XCTAssertEqual(plus.status, 0, plus.stderr)
        XCTAssertTrue(plus.stderr.contains("note: prodigyplus.ProdigyPlusScheduleFree sets its own schedule"), plus.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/p/p.safetensors").metadata[.optimizer],
                       "prodigyplus.prodigy_plus_schedulefree.ProdigyPlusScheduleFree(eps=None)")
        let plusLog = try String(contentsOfFile: folder + "/p/p-log.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertTrue(plusLog.dropFirst().allSatisfy { !$0.hasSuffix(",") }, "d·lr logged: \(plusLog)")

        let sgd = try ToolRunner.run("lora-train", common + ["--optimizer-type", "DAdaptSGD", "--lr-scheduler", "constant_with_warmup",
                                                             "--lr-warmup-steps", "2", "--output-dir", folder + "/d"])
        XCTAssertEqual(sgd.status, 64, sgd.stderr)
        XCTAssertTrue(sgd.stderr.contains("DAdaptSGD takes no warmup"), sgd.stderr)
    }

    /// The kohya_ss GUI's "LoRA-FA" (networks.lora_fa): kohya's module set with lora_down drawn once and frozen, so every
    /// epoch's file holds the same lora_down and a new lora_up; recorded as kohya records it; what lora_fa.py ignores (LoRA+)
    /// and where kohya's clipping differs are said.
    func testLoRAFAKeepsLoraDownFrozen() throws {
        let run = try ToolRunner.run("lora-train", common + ["--network_module", "networks.lora_fa", "--network_args", "loraplus_lr_ratio=4",
                                                             "--max-train-epochs", "2", "--save-every-n-epochs", "1", "--output-dir", folder + "/fa",
                                                             "--output-name", "fa"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("create LoRA for U-Net: 192 modules."), run.stdout)
        for note in ["networks.lora_fa does not read LoRA+ ratios", "kohya's --max_grad_norm also counts lora_down's gradients"] {
            XCTAssertTrue(run.stderr.contains(note), "\(note):\n\(run.stderr)")
        }
        let first = try ModelFile.open(folder + "/fa/fa-000001.safetensors"), last = try ModelFile.open(folder + "/fa/fa.safetensors")
        XCTAssertEqual(last.metadata[.networkModule], "networks.lora_fa")
        XCTAssertEqual(last.metadata[.networkArgs], "{\"loraplus_lr_ratio\": \"4\"}", "the args as given, as kohya records them")
        let module = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
        XCTAssertEqual(try XCTUnwrap(first[module + ".lora_down.weight"]).floats(), try XCTUnwrap(last[module + ".lora_down.weight"]).floats(), "lora_down frozen")
        XCTAssertNotEqual(try XCTUnwrap(first[module + ".lora_up.weight"]).floats(), try XCTUnwrap(last[module + ".lora_up.weight"]).floats(), "lora_up trained")
        let inspect = try ToolRunner.run("lora-inspect", [folder + "/fa/fa.safetensors"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("networks.lora_fa"), inspect.stdout)
    }

    /// The kohya_ss GUI's "LyCORIS/LoCon": lycoris.kohya with the network args the GUI writes trains LyCORIS's module set
    /// (conv_in, conv_out and the time embedding beside kohya's LoCon set), records what kohya records, and the file
    /// reads back in lora-inspect and renders in lora-xyz; what LyCORIS's LoCon would do otherwise is refused by name.
    func testLyCORISLoConAsTheGUIWritesIt() throws {
        let gui = ["--network_module", "lycoris.kohya", "--network_args", "preset=full", "conv_dim=2", "conv_alpha=1", "use_tucker=False",
                   "rank_dropout=0", "bypass_mode=False", "dora_wd=False", "module_dropout=0", "use_tucker=False", "use_scalar=False",
                   "rank_dropout_scale=False", "algo=locon", "train_norm=False"]
        let run = try ToolRunner.run("lora-train", common + gui + ["--max-train-steps", "2", "--output-dir", folder + "/l", "--output-name", "l"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("create LyCORIS for U-Net: 281 modules."), run.stdout)
        let file = try ModelFile.open(folder + "/l/l.safetensors")
        XCTAssertEqual(file.metadata[.networkModule], "lycoris.kohya")
        XCTAssertTrue(file.metadata[.networkArgs]?.contains("\"algo\": \"locon\"") ?? false, file.metadata[.networkArgs] ?? "")
        for key in ["lora_unet_conv_in.lora_down.weight", "lora_unet_conv_out.lora_up.weight", "lora_unet_time_embedding_linear_1.alpha",
                    "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight"] {
            XCTAssertNotNil(file[key], key)
        }
        XCTAssertEqual(try XCTUnwrap(file["lora_unet_conv_in.lora_down.weight"]).shape, [2, 4, 3, 3], "conv_dim on 3×3 kernels")
        XCTAssertEqual(try XCTUnwrap(file["lora_unet_time_embedding_linear_1.lora_down.weight"]).shape.first, 4, "the network dim on linear layers")
        let inspect = try ToolRunner.run("lora-inspect", [folder + "/l/l.safetensors"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let xyz = try ToolRunner.run("lora-xyz", ["--model", folder + "/base.safetensors", "--tokenizer", "Fixtures/tokenizer/clip_bpe_merges.txt.gz",
                                                  "--loras", folder + "/l/l.safetensors", "--weights", "0,1", "--prompt", "zkw shape <lora>", "--steps", "2",
                                                  "--width", "64", "--height", "64", "--cache", folder + "/l/cache", "-o", folder + "/l/sheet.png", "--quiet"])
        XCTAssertEqual(xyz.status, 0, xyz.stderr)
        for (args, says) in [(["--network_module", "lycoris.kohya", "--network_args", "algo=dylora"], "trains algo=locon, loha, lokr and ia3 here"),
                             (["--network_module", "lycoris.kohya", "--network_args", "rank_dropout=0.1", "bypass_mode=True"],
                              "bypass_mode=True with rank_dropout is not supported"),
                             (["--network_module", "lycoris.kohya", "--network_args", "preset=mine.toml"], "a preset file is not read"),
                             (["--network_module", "lycoris.kohya", "--network_args", "down_lr_weight=1,1,1,1,1,1,1,1,1,1,1,1"], "down_lr_weight is not supported with lycoris.kohya"),
                             (["--network_module", "networks.oft"], "--network-module networks.oft is not supported"),
                             (["--network_module", "networks.dylora", "--network_args", "unit=4"], "`lora-extract resize FILE --rank N`"),
                             (["--network_module", "networks.lora", "--network_args", "algo=loha"],
                              "--network-args algo=loha is LyCORIS's: give --network-module lycoris.kohya")] {
            let refused = try ToolRunner.run("lora-train", common + args + ["--output-dir", folder + "/r"])
            XCTAssertEqual(refused.status, 64, "\(args): \(refused.stderr)")
            XCTAssertTrue(refused.stderr.contains(says), "\(args): \(refused.stderr)")
        }
        // A preset with nothing in the part that trains (attn-only has no U-Net modules): an error, not an empty file.
        let empty = try ToolRunner.run("lora-train", common + ["--network_module", "lycoris.kohya", "--network_args", "preset=attn-only",
                                                               "--output-dir", folder + "/e"])
        XCTAssertEqual(empty.status, 1, empty.stderr)
        XCTAssertTrue(empty.stderr.contains("LyCORIS's preset attn-only places none in the U-Net (--network-train-unet-only)"), empty.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/e/last.safetensors"))
    }

    /// The kohya_ss GUI's "LyCORIS/LoHa" and "LyCORIS/LoKr" with the network args it writes: LyCORIS's tensors in the
    /// file (LoKr split as decompose_both=False makes LyCORIS split it: w1 low-rank too), samples during training
    /// through the folded weights, a resumed run equal to the uninterrupted one, and the file read by lora-inspect,
    /// baked by lora-merge; the GUI's loha-sd15 switches (Tucker cores, LyCORIS's max norm, a network dropout LyCORIS does not
    /// read); LoCon's and LoKr's Tucker cores; rank dropout's notes; bypass_mode with DoRA and --dim-from-weights with LoKr refused by name.
    func testLyCORISLoHaAndLoKrAsTheGUIWritesThem() throws {
        let prompts = folder + "/lycoris-prompts.txt"
        try "zkw shape --w 64 --h 64 --d 3 --s 2\n".write(toFile: prompts, atomically: false, encoding: .utf8)
        let loha = ["--network_module", "lycoris.kohya", "--network_args", "preset=full", "conv_dim=2", "conv_alpha=1", "use_tucker=False",
                    "rank_dropout=0", "bypass_mode=False", "dora_wd=False", "module_dropout=0", "use_tucker=False", "use_scalar=False",
                    "rank_dropout_scale=False", "algo=loha", "train_norm=False"]
        let run = try ToolRunner.run("lora-train", common.filter { $0 != "--quiet" } + loha
                                     + ["--max-train-steps", "2", "--output-dir", folder + "/h", "--output-name", "h", "--sample-prompts", prompts,
                                        "--sample-every-n-steps", "2"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("Using rank adaptation algo: loha, preset full"), run.stdout)
        XCTAssertTrue(run.stdout.contains("create LyCORIS for U-Net: 281 modules."), run.stdout)
        let file = try ModelFile.open(folder + "/h/h.safetensors")
        XCTAssertTrue(file.metadata[.networkArgs]?.contains("\"algo\": \"loha\"") ?? false, file.metadata[.networkArgs] ?? "")
        XCTAssertEqual(try XCTUnwrap(file["lora_unet_conv_in.hada_w1_b"]).shape, [2, 36], "LyCORIS keeps a conv's factors 2-D")
        XCTAssertEqual(try XCTUnwrap(file["lora_unet_down_blocks_0_attentions_0_proj_in.hada_w2_a"]).shape, [32, 4])
        XCTAssertEqual(try XCTUnwrap(file["lora_unet_conv_in.alpha"]).floats(), [1])
        XCTAssertNil(file["lora_unet_conv_in.lora_down.weight"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder + "/h/sample").filter { $0.hasSuffix(".png") }.count, 1)
        let inspect = try ToolRunner.run("lora-inspect", [folder + "/h/h.safetensors"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("LoHa"), inspect.stdout)
        let merge = try ToolRunner.run("lora-merge", ["--model", folder + "/base.safetensors", "--lora", folder + "/h/h.safetensors", "-o",
                                                      folder + "/h/merged.safetensors", "--quiet"])
        XCTAssertEqual(merge.status, 0, merge.stderr)

        // The GUI's loha-sd15 preset: use_cp=True (Tucker cores on the 3×3 kernels), --scale_weight_norms (LyCORIS's
        // rule, which scales each module's scalar), and --network_dropout, which kohya hands LyCORIS under a name it does
        // not read. A maximum this small scales every module; the state keeps the scalars apart and the factors in fp32,
        // so resuming at fp16 saves ends where the uninterrupted run ends.
        let normed = common + loha + ["use_cp=True", "--scale_weight_norms", "1e-6", "--network_dropout", "0.3", "--save-precision", "fp16",
                                      "--max-train-steps", "3", "--output-name", "n"]
        let n1 = try ToolRunner.run("lora-train", normed + ["--output-dir", folder + "/n1", "--save-every-n-steps", "2", "--save-state"])
        XCTAssertEqual(n1.status, 0, n1.stderr)
        XCTAssertTrue(n1.stderr.contains("--network-dropout: kohya hands it to lycoris.kohya as neuron_dropout"), n1.stderr)
        XCTAssertTrue(n1.stderr.contains("lora-train uses the exact gradient"), n1.stderr)
        let stateJSON = try String(contentsOfFile: folder + "/n1/n-step00000002-state/train_state.json", encoding: .utf8)
        XCTAssertTrue(stateJSON.contains("\"scalars\""), stateJSON)
        XCTAssertEqual(try ModelFile.open(folder + "/n1/n-step00000002-state/network.safetensors")["lora_unet_conv_in.hada_w1_a"]?.dtype, .f32)
        let nfile = try ModelFile.open(folder + "/n1/n.safetensors")
        XCTAssertEqual(try XCTUnwrap(nfile["lora_unet_conv_in.hada_t1"]).shape, [2, 2, 3, 3], "a Tucker core")
        XCTAssertEqual(try XCTUnwrap(nfile["lora_unet_conv_in.hada_w1_a"]).shape, [2, 32], "Tucker's w1_a [rank, out]")
        XCTAssertEqual(try XCTUnwrap(nfile["lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a"]).shape, [32, 4], "no core on a 1×1 layer")
        XCTAssertNil(nfile["lora_unet_down_blocks_0_attentions_0_proj_in.hada_t1"])
        XCTAssertEqual(nfile.metadata["ss_scale_weight_norms"], "1e-06")
        XCTAssertEqual(nfile.metadata["ss_network_dropout"], "0.3", "recorded as kohya records it")
        let n2 = try ToolRunner.run("lora-train", normed + ["--output-dir", folder + "/n2", "--resume", folder + "/n1/n-step00000002-state"])
        XCTAssertEqual(n2.status, 0, n2.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/n2/n.safetensors").metadata["sshs_model_hash"], nfile.metadata["sshs_model_hash"])
        // Every module was scaled to the maximum: ΔW, as lora-merge reads the file (the scalar in hada_w1_a), has norm 1e-6 (fp16 factors).
        let read = try NetworkFile(model: nfile)
        for module in read.modules.prefix(3) + read.modules.filter({ $0.parts["hada_t1"] != nil }).prefix(3) {
            let delta = try module.delta().values
            XCTAssertEqual(delta.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot(), 1e-6, accuracy: 2e-8, module.name)
        }

        // LoKr as the GUI writes it; resumed from step 2's state it ends where the uninterrupted run ends.
        let lokr = ["--network_module", "lycoris.kohya", "--network_args", "preset=full", "conv_dim=2", "conv_alpha=1", "use_tucker=False",
                    "rank_dropout=0", "bypass_mode=False", "dora_wd=False", "module_dropout=0", "factor=-1", "use_cp=False", "use_scalar=False",
                    "decompose_both=False", "rank_dropout_scale=False", "algo=lokr", "train_norm=False"]
        let base = common + lokr + ["--max-train-steps", "4", "--output-name", "k"]
        let whole = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/k1", "--save-every-n-steps", "2", "--save-state"])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        let kfile = try ModelFile.open(folder + "/k1/k.safetensors")
        XCTAssertEqual(try XCTUnwrap(kfile["lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_ff_net_0_proj.lokr_w1_a"]).shape, [16, 4],
                       "512 = 16·32, 64 = 8·8: w1 low-rank at rank 4 < 16/2")
        XCTAssertEqual(try XCTUnwrap(kfile["lora_unet_down_blocks_1_attentions_0_proj_in.lokr_w1"]).shape, [8, 8], "64 = 8·8: w1 full (rank 4 ≥ 8/2)")
        XCTAssertEqual(try XCTUnwrap(kfile["lora_unet_down_blocks_0_resnets_0_conv1.lokr_w1"]).shape, [4, 4], "32 = 4·8: w1 full (rank 2 ≥ 4/2)")
        XCTAssertEqual(try XCTUnwrap(kfile["lora_unet_down_blocks_0_resnets_0_conv1.lokr_w2_b"]).shape, [2, 72])
        let resumed = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/k2", "--resume", folder + "/k1/k-step00000002-state"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/k2/k.safetensors").metadata["sshs_model_hash"], kfile.metadata["sshs_model_hash"])
        // --network-weights continues from the file.
        let more = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/k3", "--network-weights", folder + "/k1/k.safetensors"])
        XCTAssertEqual(more.status, 0, more.stderr)
        // The GUI's "sd15 - LoKr v1.1": use_cp where LyCORIS gives no module a core (dim 100000 factor 6: w2 always full),
        // train_norm (w_norm/b_norm on the ResBlocks' and transformers' norms), LyCORIS's max norm; lora-merge bakes the
        // norms into γ and β.
        let fullKron = try ToolRunner.run("lora-train", common + ["--network_module", "lycoris.kohya", "--network_dim", "100000", "--network_alpha", "1",
                                                                  "--network_args", "preset=full", "conv_dim=100000", "conv_alpha=1", "use_tucker=False",
                                                                  "rank_dropout=0", "bypass_mode=False", "dora_wd=False", "module_dropout=0", "factor=6",
                                                                  "use_cp=True", "use_scalar=False", "decompose_both=True", "rank_dropout_scale=True",
                                                                  "algo=lokr", "train_norm=True", "--scale_weight_norms", "1",
                                                                  "--max-train-steps", "2", "--output-dir", folder + "/k4", "--output-name", "v11"])
        XCTAssertEqual(fullKron.status, 0, fullKron.stderr)
        let v11 = try ModelFile.open(folder + "/k4/v11.safetensors")
        XCTAssertEqual(try XCTUnwrap(v11["lora_unet_down_blocks_0_resnets_0_norm1.w_norm"]).shape, [32])
        XCTAssertEqual(try XCTUnwrap(v11["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_norm3.b_norm"]).shape, [32])
        XCTAssertNil(v11["lora_unet_conv_norm_out.w_norm"], "outside the preset's modules")
        XCTAssertGreaterThan(try XCTUnwrap(v11["lora_unet_down_blocks_0_resnets_0_norm1.w_norm"]).floats().map(abs).max() ?? 0, 0, "trained from 0")
        XCTAssertNotNil(v11["lora_unet_down_blocks_0_resnets_0_conv1.lokr_w2"], "full w2")
        let bakeV11 = try ToolRunner.run("lora-merge", ["--model", folder + "/base.safetensors", "--lora", folder + "/k4/v11.safetensors", "-o",
                                                        folder + "/k4/merged.safetensors", "--quiet"])
        XCTAssertEqual(bakeV11.status, 0, bakeV11.stderr)
        let (baseModel, merged) = (try ModelFile.open(folder + "/base.safetensors"), try ModelFile.open(folder + "/k4/merged.safetensors"))
        let gammaKey = "model.diffusion_model.input_blocks.1.0.in_layers.0.weight"
        let offsets = try XCTUnwrap(v11["lora_unet_down_blocks_0_resnets_0_norm1.w_norm"]).floats()
        for (i, (baked, original)) in zip(try XCTUnwrap(merged[gammaKey]).floats(), try XCTUnwrap(baseModel[gammaKey]).floats()).enumerated() {
            XCTAssertEqual(baked, original + offsets[i], accuracy: 2e-3 * max(1, abs(original)), "γ + w_norm baked, channel \(i)")
        }
        // use_tucker where LoCon and LoKr take cores: LoCon's 3×3 down becomes a 1×1 lora_down and the core lora_mid, LoKr's
        // low-rank w2 the core lokr_t2 with lokr_w2_a [rank, b] and lokr_w2_b [rank, d] (32 = 4·8); lora-inspect reads both,
        // lora-merge bakes both, and the LoCon file continues with --dim-from-weights, its cores found in the file.
        for (algo, keys) in [("locon", [("lora_down.weight", [2, 32, 1, 1]), ("lora_mid.weight", [2, 2, 3, 3]), ("lora_up.weight", [32, 2, 1, 1])]),
                             ("lokr", [("lokr_t2", [2, 2, 3, 3]), ("lokr_w2_a", [2, 8]), ("lokr_w2_b", [2, 8]), ("lokr_w1", [4, 4])])] {
            let out = folder + "/t-\(algo)"
            let run = try ToolRunner.run("lora-train", common + ["--network_module", "lycoris.kohya", "--network_args", "algo=\(algo)", "conv_dim=2",
                                                                 "use_tucker=True", "--max-train-steps", "2", "--output-dir", out, "--output-name", "t"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let file = try ModelFile.open(out + "/t.safetensors")
            for (suffix, shape) in keys {
                XCTAssertEqual(file["lora_unet_down_blocks_0_resnets_0_conv1." + suffix]?.shape, shape, "\(algo): \(suffix)")
            }
            XCTAssertNil(file["lora_unet_down_blocks_0_attentions_0_proj_in.lora_mid.weight"], "no core on a 1×1 layer")
            let inspect = try ToolRunner.run("lora-inspect", [out + "/t.safetensors"])
            XCTAssertEqual(inspect.status, 0, inspect.stderr)
            let merge = try ToolRunner.run("lora-merge", ["--model", folder + "/base.safetensors", "--lora", out + "/t.safetensors", "-o",
                                                          out + "/merged.safetensors", "--quiet"])
            XCTAssertEqual(merge.status, 0, merge.stderr)
        }
        let fromCores = try ToolRunner.run("lora-train", common + ["--network_module", "lycoris.kohya", "--network_args", "algo=locon",
                                                                   "--network-weights", folder + "/t-locon/t.safetensors", "--dim-from-weights",
                                                                   "--max-train-steps", "1", "--output-dir", folder + "/t-again", "--output-name", "t"])
        XCTAssertEqual(fromCores.status, 0, fromCores.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/t-again/t.safetensors")["lora_unet_down_blocks_0_resnets_0_conv1.lora_mid.weight"]?.shape, [2, 2, 3, 3])

        /// Two steps of `algo` with a LyCORIS switch, a state saved after the first, and a run resumed from it that must end
        /// on the same file (`sshs_model_hash`): the file, its folder and the arguments.
        func trainedAndResumed(_ algo: String, _ switch: String, name: String) throws -> (file: ModelFile, out: String, args: [String]) {
            let out = folder + "/\(name)-\(algo)", args = common + ["--network_module", "lycoris.kohya", "--network_args", "algo=\(algo)", "conv_dim=2",
                                                                   `switch`, "--max-train-steps", "2", "--output-name", name]
            let run = try ToolRunner.run("lora-train", args + ["--output-dir", out, "--save-every-n-steps", "1", "--save-state"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let file = try ModelFile.open(out + "/\(name).safetensors")
            let resumed = try ToolRunner.run("lora-train", args + ["--output-dir", out + "/resumed", "--resume", out + "/\(name)-step00000001-state"])
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertEqual(try ModelFile.open(out + "/resumed/\(name).safetensors").metadata["sshs_model_hash"], file.metadata["sshs_model_hash"], algo)
            return (file, out, args)
        }
        // dora_wd=True (the GUI's "DoRA Weight Decompose"): each module's dora_scale [out, 1(, 1, 1)] beside its factors,
        // trained from the layer's row norms; lora-inspect reads it, lora-merge bakes it, a resumed run ends where the
        // uninterrupted one ends, and continuing the file without dora_wd names the switch.
        for algo in ["locon", "loha", "lokr"] {
            let (file, out, _) = try trainedAndResumed(algo, "dora_wd=True", name: "d")
            XCTAssertEqual(file["lora_unet_down_blocks_0_resnets_0_conv1.dora_scale"]?.shape, [32, 1, 1, 1], algo)
            XCTAssertEqual(file["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.dora_scale"]?.shape, [32, 1], algo)
            let inspect = try ToolRunner.run("lora-inspect", [out + "/d.safetensors"])
            XCTAssertEqual(inspect.status, 0, inspect.stderr)
            let merge = try ToolRunner.run("lora-merge", ["--model", folder + "/base.safetensors", "--lora", out + "/d.safetensors", "-o",
                                                          out + "/merged.safetensors", "--quiet"])
            XCTAssertEqual(merge.status, 0, merge.stderr)
        }
        // use_scalar=True (the GUI's "Use Scalar"): the trained scalars live in the state, folded into lora_up / hada_w1_a /
        // lokr_w1 in the file (which holds no `.scalar`, as LyCORIS's); a resumed run ends where the uninterrupted one ends,
        // and the file continues with --network-weights (its scalars restart at 1, as LyCORIS's load hook sets them).
        for algo in ["locon", "loha", "lokr"] {
            let (file, out, args) = try trainedAndResumed(algo, "use_scalar=True", name: "s")
            XCTAssertFalse(file.tensors.contains { $0.name.hasSuffix(".scalar") }, algo)
            XCTAssertEqual(try ModelFile.open(out + "/s-step00000001-state/network.safetensors")["lora_unet_conv_in.scalar"]?.shape, [], algo)
            let more = try ToolRunner.run("lora-train", args + ["--output-dir", out + "/more", "--network-weights", out + "/s.safetensors"])
            XCTAssertEqual(more.status, 0, more.stderr)
            XCTAssertFalse(more.stderr.contains("tensors of this network are not in"), "the scalars are not missing: \(more.stderr)")
        }
        let withoutDoRA = try ToolRunner.run("lora-train", common + ["--network_module", "lycoris.kohya", "--network_args", "algo=loha", "conv_dim=2",
                                                                     "--network-weights", folder + "/d-loha/d.safetensors", "--max-train-steps", "1",
                                                                     "--output-dir", folder + "/d-refused"])
        XCTAssertEqual(withoutDoRA.status, 1, withoutDoRA.stderr)
        XCTAssertTrue(withoutDoRA.stderr.contains("has a DoRA magnitude (dora_scale): train with --network-args dora_wd=True"), withoutDoRA.stderr)

        // "LyCORIS/iA3" as the GUI writes it: one scale per output channel, LyCORIS's keys, no alpha.
        let ia3 = try ToolRunner.run("lora-train", common + ["--network_module", "lycoris.kohya", "--network_args", "preset=full", "conv_dim=4",
                                                             "conv_alpha=4", "train_on_input=True", "algo=ia3", "dora_wd=True", "--learning-rate", "1e-2",
                                                             "--max-train-steps", "2", "--output-dir", folder + "/i", "--output-name", "i"])
        XCTAssertEqual(ia3.status, 0, ia3.stderr)
        XCTAssertTrue(ia3.stderr.contains("has no ia3 in lycoris.kohya's module table"), ia3.stderr)
        XCTAssertTrue(ia3.stderr.contains("train_on_input: lycoris.kohya's create_network does not pass it"), ia3.stderr)
        XCTAssertTrue(ia3.stderr.contains("dora_wd: LyCORIS's IA3Module takes no weight decomposition"), ia3.stderr)
        let ifile = try ModelFile.open(folder + "/i/i.safetensors")
        XCTAssertEqual(try XCTUnwrap(ifile["lora_unet_conv_in.weight"]).shape, [1, 32, 1, 1])
        XCTAssertEqual(try XCTUnwrap(ifile["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.weight"]).shape, [32])
        XCTAssertEqual(try XCTUnwrap(ifile["lora_unet_conv_in.on_input"]).floats(), [0])
        XCTAssertNil(ifile["lora_unet_conv_in.alpha"])
        XCTAssertGreaterThan(try XCTUnwrap(ifile["lora_unet_conv_in.weight"]).floats().map(abs).max() ?? 0, 0, "trained from 0")
        let inspectIA3 = try ToolRunner.run("lora-inspect", [folder + "/i/i.safetensors"])
        XCTAssertEqual(inspectIA3.status, 0, inspectIA3.stderr)
        XCTAssertTrue(inspectIA3.stdout.contains("(IA)^3"), inspectIA3.stdout)

        for (args, says) in [(["algo=loha", "dora_wd=True", "bypass_mode=True"], "bypass_mode=True with dora_wd is not supported"),
                             (["algo=lokr", "rank_dropout=1"], "rank_dropout=1: a probability below 1"),
                             (["algo=loha", "rs_lora=True"], "A1111, ComfyUI and kohya read as alpha/rank")] {
            let refused = try ToolRunner.run("lora-train", common + ["--network_module", "lycoris.kohya", "--network_args"] + args + ["--output-dir", folder + "/r"])
            XCTAssertEqual(refused.status, 64, "\(args): \(refused.stderr)")
            XCTAssertTrue(refused.stderr.contains(says), "\(args): \(refused.stderr)")
        }
        // unbalanced_factorization: the output's larger factor in w1 (to_q, 32 = 8·4: lokr_w1 [8, 4], lokr_w2 [4, 8]); the
        // other tools read the file.
        let unbalanced = try ToolRunner.run("lora-train", common + ["--network_module", "lycoris.kohya", "--network_args", "algo=lokr",
                                                                    "unbalanced_factorization=True", "--max-train-steps", "1", "--output-dir", folder + "/u"])
        XCTAssertEqual(unbalanced.status, 0, unbalanced.stderr)
        let ufile = try ModelFile.open(folder + "/u/last.safetensors")
        let toQ = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
        XCTAssertEqual(ufile[toQ + ".lokr_w1"]?.shape, [8, 4])
        XCTAssertEqual(ufile[toQ + ".lokr_w2"]?.shape, [4, 8])
        let umerge = try ToolRunner.run("lora-merge", ["--model", folder + "/base.safetensors", "--lora", folder + "/u/last.safetensors", "-o",
                                                       folder + "/u/merged.safetensors", "--quiet"])
        XCTAssertEqual(umerge.status, 0, umerge.stderr)
        // Rank dropout as the GUI writes it, with the switches LyCORIS under kohya treats otherwise than their names say.
        let dropped = try ToolRunner.run("lora-train", common + ["--network_module", "lycoris.kohya", "--network_args", "algo=loha", "rank_dropout=0.2",
                                                                 "rank_dropout_scale=True", "dropout=0.1", "train_norm=True", "--scale_weight_norms", "1",
                                                                 "--output-dir", folder + "/rd", "--dry-run"])
        XCTAssertEqual(dropped.status, 0, dropped.stderr)
        for note in ["rank_dropout_scale: lycoris.kohya's create_network does not pass it", "dropout: LyCORIS's modules apply it in bypass_mode only",
                     "keeps a channel's offsets where rand < p (with p = 0.2, 0.8 of them dropped)", "LyCORIS's max-norm measures a ΔW with freshly dropped rows"] {
            XCTAssertTrue(dropped.stderr.contains(note), "\(note):\n\(dropped.stderr)")
        }
        // LyCORIS's own rule: use_cp=False before use_tucker=True means no Tucker, so it trains.
        let quirk = try ToolRunner.run("lora-train", common + ["--network_module", "lycoris.kohya", "--network_args", "algo=lokr", "use_cp=False",
                                                               "use_tucker=True", "conv_dim=2", "--max-train-steps", "1", "--output-dir", folder + "/q"])
        XCTAssertEqual(quirk.status, 0, quirk.stderr)
        let quirkFile = try ModelFile.open(folder + "/q/last.safetensors")
        XCTAssertNotNil(quirkFile["lora_unet_down_blocks_0_resnets_0_conv1.lokr_w2_b"])
        XCTAssertFalse(quirkFile.tensors.contains { $0.name.hasSuffix(".lokr_t2") }, "use_cp=False decides: no cores")
        // Continuing a file with cores without use_tucker (or one without cores with it) names the switch.
        for (weights, args, says) in [("/t-locon/t.safetensors", ["algo=locon", "conv_dim=2"], "has a Tucker core (lora_mid.weight): train with --network-args use_tucker=True"),
                                      ("/t-lokr/t.safetensors", ["algo=lokr", "conv_dim=2"], "has a Tucker core (lokr_t2)"),
                                      ("/q/last.safetensors", ["algo=lokr", "conv_dim=2", "use_tucker=True"], "has no Tucker core (lokr_t2)")] {
            let refused = try ToolRunner.run("lora-train", common + ["--network_module", "lycoris.kohya", "--network_args"] + args
                                             + ["--network-weights", folder + weights, "--max-train-steps", "1", "--output-dir", folder + "/t-refused"])
            XCTAssertEqual(refused.status, 1, refused.stderr)
            XCTAssertTrue(refused.stderr.contains(says), refused.stderr)
        }
        let fromWeights = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/w", "--network-weights", folder + "/k1/k.safetensors",
                                                                   "--dim-from-weights"])
        XCTAssertEqual(fromWeights.status, 64, fromWeights.stderr)
        XCTAssertTrue(fromWeights.stderr.contains("--dim-from-weights with algo=lokr is not supported"), fromWeights.stderr)
    }

    /// The schedules kohya builds outside diffusers' usual list: Adafactor's own (its relative step, kohya's default for it,
    /// recorded as "adafactor:<lr>" whatever --lr-scheduler said; a warmup refused as kohya's AdafactorSchedule refuses it;
    /// the name refused where kohya would stop on it) and piecewise_constant's step rules (no warmup: kohya passes none).
    func testAdafactorAndPiecewiseSchedules() throws {
        let base = common + ["--max-train-steps", "3", "--output-name", "a"]
        let adafactor = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/a1", "--optimizer-type", "Adafactor", "--lr_scheduler", "adafactor"])
        XCTAssertEqual(adafactor.status, 0, adafactor.stderr)
        XCTAssertEqual(try ModelFile.open(folder + "/a1/a.safetensors").metadata[.lrScheduler], "adafactor:0.001")
        for (args, says) in [(["--optimizer-type", "AdamW", "--lr_scheduler", "adafactor"], "use it with --optimizer-type Adafactor"),
                             (["--optimizer-type", "Adafactor", "--optimizer-args", "relative_step=False", "--lr_scheduler", "adafactor"],
                              "with relative_step=False use constant_with_warmup"),
                             (["--optimizer-type", "Adafactor", "--lr_scheduler", "cosine", "--lr_warmup_steps", "2"], "refuses a warmup"),
                             (["--lr_scheduler", "piecewise_constant"], "needs --lr-scheduler-args step_rules="),
                             (["--lr_scheduler", "piecewise_constant", "--lr_scheduler_args", "step_rules=1:x,0.1"], "step_rules is value:step pairs")] {
            let refused = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/a2"] + args)
            XCTAssertEqual(refused.status, 64, "\(args): \(refused.stderr)")
            XCTAssertTrue(refused.stderr.contains(says), "\(args): \(refused.stderr)")
        }
        let piecewise = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/a3", "--lr_scheduler", "piecewise_constant",
                                                                 "--lr_scheduler_args", "step_rules='1:1,0.5:2,0.25'"])
        XCTAssertEqual(piecewise.status, 0, piecewise.stderr)
        let log = try String(contentsOfFile: folder + "/a3/a-log.csv", encoding: .utf8).split(separator: "\n")
        let lrColumn = try XCTUnwrap(log[0].split(separator: ",").firstIndex { $0.hasPrefix("lr") })
        XCTAssertEqual(log.dropFirst().map { Double($0.split(separator: ",", omittingEmptySubsequences: false)[lrColumn]) }, [1e-3, 5e-4, 2.5e-4])
        XCTAssertEqual(try ModelFile.open(folder + "/a3/a.safetensors").metadata[.lrScheduler], "piecewise_constant")
        // --lr_scheduler_type: torch's class with its arguments, per group; no warmup, as kohya refuses one.
        let torch = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/a4", "--lr_scheduler_type", "StepLR",
                                                             "--lr_scheduler_args", "step_size=2", "gamma=0.5"])
        XCTAssertEqual(torch.status, 0, torch.stderr)
        let torchLog = try String(contentsOfFile: folder + "/a4/a-log.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(torchLog.dropFirst().map { Double($0.split(separator: ",", omittingEmptySubsequences: false)[lrColumn]) }, [1e-3, 1e-3, 5e-4])
        let warm = try ToolRunner.run("lora-train", base + ["--output-dir", folder + "/a5", "--lr_scheduler_type", "CosineAnnealingLR",
                                                            "--lr_scheduler_args", "T_max=10", "--lr_warmup_steps", "2"])
        XCTAssertEqual(warm.status, 64, warm.stderr)
        XCTAssertTrue(warm.stderr.contains("torch's schedulers take no warmup"), warm.stderr)
    }

    /// --find-lr: a Prodigy probe that prints d·lr and AdamW rates, and writes nothing.
    func testFindLR() throws {
        let run = try ToolRunner.run("lora-train", common + ["--find-lr", "--find-lr-steps", "8"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("learning-rate probe: Prodigy"), run.stdout)
        XCTAssertTrue(run.stdout.contains("suggested AdamW rates: --unet-lr "), run.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/last.safetensors"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: ToolRunner.repoRoot + "/last-log.csv"), "the probe writes no log")
        let json = try ToolRunner.run("lora-train", common + ["--find-lr", "--find-lr-steps", "8", "--json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], json.stdout)
        XCTAssertEqual((report["dTimesLR"] as? [Double])?.count, 8)
        let unet = try XCTUnwrap(report["suggestedUNetLR"] as? Double), te = try XCTUnwrap(report["suggestedTextEncoderLR"] as? [Double])
        XCTAssertTrue(run.stdout.contains(String(format: "--unet-lr %.2g", unet)), "the same probe suggests the same rate: \(run.stdout)")
        XCTAssertEqual(te.count, 2)
        XCTAssertEqual(te[1], unet / 2, accuracy: unet * 1e-9, "the text encoder at up to half the U-Net's rate")
    }

    /// --save-last-n-steps keeps the step files of the last n steps; --save-state-on-train-end saves one state at the end.
    func testStepFilePruningAndEndState() throws {
        let run = try ToolRunner.run("lora-train", common + ["--output-dir", folder + "/s", "--max-train-steps", "9", "--save-every-n-steps", "2",
                                                             "--save-last-n-steps", "3", "--save-state-on-train-end"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder + "/s").filter { !$0.hasSuffix(".csv") && !$0.hasSuffix(".png") }.sorted()
        XCTAssertEqual(names, ["last-state", "last-step00000006.safetensors", "last-step00000008.safetensors", "last.safetensors"])
    }

    /// kohya's `--mixed_precision bf16`: bf16 GEMMs where the CPU has the units (the metadata says bf16),
    /// else fp32 with a note and "no" in the metadata, never a silent claim. The arithmetic itself is
    /// checked against kohya's autocast step in TrainingStepTests on every host (emulated).
    func testMixedPrecisionBF16SaysWhatRan() throws {
        let out = folder + "/bf16"
        let run = try ToolRunner.run("lora-train", common + ["--output-dir", out, "--output-name", "b", "--max-train-steps", "2", "--mixed_precision", "bf16"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let metadata = try ModelFile.open(out + "/b.safetensors").metadata
        if LinearAlgebra.bf16Faster {
            XCTAssertEqual(metadata["ss_mixed_precision"], "bf16")
            XCTAssertFalse(run.stderr.contains("note: --mixed-precision bf16"), run.stderr)
        } else {
            XCTAssertEqual(metadata["ss_mixed_precision"], "no", "fp32 ran, and the file says so")
            let why = LinearAlgebra.bf16Available ? "this CPU's bf16 units (AVX512-BF16, no AMX) multiply slower" : "this CPU has no bf16 matrix units"
            XCTAssertTrue(run.stderr.contains("note: --mixed-precision bf16: " + why), run.stderr)
        }
    }

    /// kohya's random_crop and color_aug: those images are encoded at every step (the plan says so, the
    /// metadata records it), the same seed gives the same file, the augmentation changes it, and asking to
    /// cache their latents is refused before anything loads, as kohya refuses it.
    func testRandomCropAndColorAugEncodeEachStep() throws {
        let args = common + ["--output-name", "a", "--max-train-steps", "4", "--seed", "3"]
        let refused = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/x", "--random-crop", "--cache_latents"])
        XCTAssertEqual(refused.status, 64, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("cannot be cached"), refused.stderr)
        var hashes: [String] = []
        for (name, extra) in [("a1", ["--random-crop", "--color-aug"]), ("a2", ["--random-crop", "--color-aug"]), ("plain", [])] {
            let run = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/" + name] + extra)
            XCTAssertEqual(run.status, 0, run.stderr)
            let metadata = try ModelFile.open(folder + "/\(name)/a.safetensors").metadata
            hashes.append(try XCTUnwrap(metadata["sshs_model_hash"]))
            let augmented = !extra.isEmpty
            XCTAssertEqual(run.stdout.contains("4 images (random_crop, color_aug or face crops) are encoded by the VAE at every step"), augmented, run.stdout)
            XCTAssertEqual(metadata["ss_random_crop"], augmented ? "True" : "False")
            XCTAssertEqual(metadata["ss_color_aug"], augmented ? "True" : "False")
            XCTAssertEqual(metadata["ss_cache_latents"], augmented ? "False" : "True")
        }
        XCTAssertEqual(hashes[0], hashes[1], "the same seed, the same crops and colours, the same file")
        XCTAssertNotEqual(hashes[0], hashes[2], "the augmented images trained differently")
    }

    /// kohya's face_crop_aug_range, from its command line and from a dataset config: without buckets the
    /// image with a face in its name is cropped around it at every step (and the metadata says so as kohya's
    /// does); with buckets or --cache-latents kohya ignores it, and a warning says so; a bad range is refused.
    func testFaceCropAugRangeCropsAroundNamedFaces() throws {
        let data = folder + "/faces"
        try FileManager.default.createDirectory(atPath: data + "/3_zkw face", withIntermediateDirectories: true)
        for (name, w, h) in [("portrait_70_40_24_30.png", 128, 96), ("plain.png", 64, 64)] {
            FileManager.default.createFile(atPath: data + "/3_zkw face/" + name, contents: Data(try PNGCodec.encode(Bitmap(width: w, height: h, fill: RGB(200, 150, 90)))))
        }
        let args = ["--model", folder + "/base.safetensors", "--tokenizer", "Fixtures/tokenizer/clip_bpe_merges.txt.gz", "--train-data-dir", data,
                    "--resolution", "64", "--network-dim", "4", "--network-alpha", "2", "--network-train-unet-only", "--max-train-steps", "2",
                    "--output-name", "f", "--seed", "5"]
        let run = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/f1", "--face_crop_aug_range", "2.0,4.0"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("1 images (random_crop, color_aug or face crops) are encoded by the VAE at every step"), run.stdout)
        XCTAssertTrue(run.stdout.contains("no buckets: 1 images (random_crop, face crops) are cropped to 64x64 as they are at every step"), run.stdout)
        XCTAssertTrue(run.stderr.contains("1 of 2 images in 3_zkw face have no face in their file name"), run.stderr)
        var metadata = try ModelFile.open(folder + "/f1/f.safetensors").metadata
        XCTAssertEqual(metadata["ss_face_crop_aug_range"], "(2.0, 4.0)")
        XCTAssertEqual(metadata["ss_cache_latents"], "False", "kohya cannot have cached latents for a face crop to happen")

        let cached = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/f2", "--face-crop-aug-range", "2,4", "--cache_latents"])
        XCTAssertEqual(cached.status, 0, cached.stderr)
        XCTAssertTrue(cached.stderr.contains("face_crop_aug_range does nothing for 3_zkw face with --cache-latents"), cached.stderr)
        metadata = try ModelFile.open(folder + "/f2/f.safetensors").metadata
        XCTAssertEqual(metadata["ss_cache_latents"], "True")
        XCTAssertEqual(metadata["ss_face_crop_aug_range"], "(2.0, 4.0)", "recorded as kohya records its argument")

        let toml = folder + "/faces.toml"
        try Data("[general]\nenable_bucket = true\nmin_bucket_reso = 64\nmax_bucket_reso = 128\n[[datasets]]\nresolution = 64\n[[datasets.subsets]]\nimage_dir = '\(data)/3_zkw face'\nclass_tokens = 'zkw face'\nface_crop_aug_range = [2.0, 4.0]\n".utf8)
            .write(to: URL(fileURLWithPath: toml))
        let bucketed = try ToolRunner.run("lora-train", args.filter { $0 != data && $0 != "--train-data-dir" } + ["--dataset-config", toml, "--dry-run"])
        XCTAssertEqual(bucketed.status, 0, bucketed.stderr)
        XCTAssertTrue(bucketed.stderr.contains("face_crop_aug_range does nothing for 3_zkw face with buckets"), bucketed.stderr)
        try Data("[[datasets]]\nresolution = 64\n[[datasets.subsets]]\nimage_dir = '\(data)/3_zkw face'\nface_crop_aug_range = [4.0, 2.0]\n".utf8)
            .write(to: URL(fileURLWithPath: toml))
        let reversed = try ToolRunner.run("lora-train", args.filter { $0 != data && $0 != "--train-data-dir" } + ["--dataset-config", toml, "--dry-run"])
        XCTAssertNotEqual(reversed.status, 0)
        XCTAssertTrue(reversed.stderr.contains("face_crop_aug_range must be positive with a ≤ b"), reversed.stderr)
        let bad = try ToolRunner.run("lora-train", args + ["--output-dir", folder + "/f3", "--face_crop_aug_range", "4,2"])
        XCTAssertEqual(bad.status, 64, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("--face-crop-aug-range 4,2: give two positive numbers a,b with a ≤ b"), bad.stderr)
    }

    /// Piped into one log (`lora-train … > log 2>&1`, as kohya users keep theirs), the plan comes before the steps it
    /// plans, and each plain progress line gives the true percentage and the time left.
    func testALogHasThePlanFirstAndTrueProgress() throws {
        let run = try ToolRunner.run("lora-train", common.filter { $0 != "--quiet" } + ["--output-dir", folder + "/out", "--max-train-steps", "6"],
                                     merged: true)
        XCTAssertEqual(run.status, 0, run.stdout)
        let lines = run.stdout.split(separator: "\n").map(String.init)
        let plan = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("total optimization steps: 6") }, run.stdout)
        let steps = lines.indices.filter { lines[$0].hasPrefix("steps: ") }
        XCTAssertEqual(steps.count, 6, "6 steps: each crosses a tenth\n\(run.stdout)")
        XCTAssertLessThan(plan, try XCTUnwrap(steps.first), "the plan, on standard output, is not held back behind standard error")
        for (n, index) in steps.enumerated() {
            let line = lines[index]
            XCTAssertTrue(line.hasPrefix("steps: \((n + 1) * 100 / 6)% (\(n + 1) of 6)"), line)
            XCTAssertEqual(line.contains("  ETA "), n < 5, line)
        }
    }

    func testMistakesAreRefusedBeforeTraining() throws {
        let out = folder + "/out"
        // The concept folder instead of its parent: kohya's most common beginner error.
        let concept = try ToolRunner.run("lora-train", common.map { $0 == folder + "/data" ? folder + "/data/2_zkw shape" : $0 } + ["--output-dir", out])
        XCTAssertEqual(concept.status, 1)
        XCTAssertTrue(concept.stderr.contains("must be the parent of folders named <repeats>_<class tokens>"), concept.stderr)
        // Options we do not have are named, never ignored.
        for (args, says) in [(["--optimizer-type", "pytorch_optimizer.SOAP"], "other Python classes are not built"), (["--lr-warmup-steps", "10"], "constant_with_warmup"), (["--optimizer-args", "nesterov=True"], "nesterov"), (["--network_args", "block_dims=2,2"], "block_dims"),
                             (["--mixed_precision", "fp8"], "--mixed-precision takes no, bf16 or fp16"), (["--lr-scheduler", "cosine_with_min_lr"], "needs --lr-scheduler-min-lr-ratio"), (["--log_with", "tensorboard"], "--log-with tensorboard needs --logging-dir"),
                             (["--noise_offset", "nan"], "--noise-offset nan: not a number"), (["--learning_rate", "nan"], "--learning-rate nan: not a number"),
                             (["--optimizer_args", "weight_decay=nan"], "weight_decay=nan: not a number")] {
            let r = try ToolRunner.run("lora-train", common + ["--output-dir", out] + args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(says), "\(args): \(r.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/last.safetensors"))
        // An output or log folder that cannot be made is one line saying why, before anything is loaded.
        FileManager.default.createFile(atPath: folder + "/file", contents: Data())
        for (args, says) in [(["--output-dir", folder + "/file/out"], "cannot create the output folder: \(folder)/file is a file, not a folder"),
                             (["--output-dir", out, "--logging-dir", folder + "/file/logs"], "cannot create the TensorBoard log folder: \(folder)/file is a file")] {
            let r = try ToolRunner.run("lora-train", common + args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(says), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.hasPrefix("Error:") }.count, 1, r.stderr)
        }
        // A rank no machine could hold (a typo) is refused with its size before any module is allocated.
        let huge = try ToolRunner.run("lora-train", common.map { $0 == "4" ? "40000000" : $0 } + ["--output-dir", out])
        XCTAssertEqual(huge.status, 1, huge.stderr)
        XCTAssertTrue(huge.stderr.contains("the network (--network-dim 40000000) has ") && huge.stderr.contains("choose a smaller rank"), huge.stderr)
        // --dry-run plans without a model load or an output folder.
        let dry = try ToolRunner.run("lora-train", common + ["--dry-run", "--max-train-epochs", "3"])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains("total optimization steps: 12"), dry.stdout)
        XCTAssertTrue(dry.stdout.contains("estimated time: ~"), dry.stdout)
    }
}
