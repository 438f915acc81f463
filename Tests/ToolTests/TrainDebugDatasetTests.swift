import Foundation
import Imaging
import LoRACore
@testable import Training
import XCTest

/// `lora-train --debug_dataset`: kohya's dataset dump (train_util.py `debug_dataset`) — every batch of the
/// first epoch in the order training takes them, each image with its caption as processed — and nothing trained
/// or written.
final class TrainDebugDatasetTests: XCTestCase {
    var folder = ""

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "lora-train-debug-\(UUID().uuidString)"
        let train = folder + "/data/3_zkw", reg = folder + "/reg/1_shape"
        for path in [train, reg] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        for (i, (w, h)) in [(64, 64), (128, 64), (64, 128)].enumerated() {
            try Data(try PNGCodec.encode(Bitmap(width: w, height: h, fill: RGB(UInt8(60 * i), 90, 200)))).write(to: URL(fileURLWithPath: train + "/img\(i).png"))
            // The third caption carries an escape sequence, as a hostile caption file could.
            let caption = i == 2 ? "zkw, red, disc, \u{1B}[31mbig, round, flat" : "zkw, red, disc, big, round, flat"
            try (caption + "\n").write(toFile: train + "/img\(i).txt", atomically: false, encoding: .utf8)
        }
        try Data(try PNGCodec.encode(Bitmap(width: 64, height: 64, fill: RGB(9, 9, 9)))).write(to: URL(fileURLWithPath: reg + "/r.png"))
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func testPrintsTheFirstEpochsBatchesAndTrainsNothing() throws {
        let run = try ToolRunner.run("lora-train", [
            "--model", folder + "/none.safetensors", "--train_data_dir", folder + "/data", "--reg_data_dir", folder + "/reg",
            "--resolution", "64", "--enable_bucket", "--min_bucket_reso", "64", "--max_bucket_reso", "128", "--train_batch_size", "2",
            "--shuffle_caption", "--keep_tokens", "1", "--flip_aug", "--prior_loss_weight", "0.5", "--caption_extension", ".txt",
            "--seed", "3", "--debug_dataset"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = run.stdout.split(separator: "\n").map(String.init)
        let batches = try XCTUnwrap(lines.first { $0.hasPrefix("num batches per epoch: ") }.flatMap { Int($0.split(separator: " ").last!) })
        XCTAssertTrue(lines.contains("epoch: 1"), run.stdout)
        let steps = lines.filter { $0.hasPrefix("steps: ") }
        XCTAssertEqual(steps.count, batches)
        XCTAssertEqual(steps.first, "steps: 1 (1/\(batches))")
        XCTAssertEqual(steps.last, "steps: \(batches) (\(batches)/\(batches))")
        // Each training image once per repeat; the regularization image as often as kohya's balancing repeats it, at the prior loss weight.
        let entries = lines.filter { $0.contains(", loss weight: ") }
        for i in 0..<3 { XCTAssertEqual(entries.filter { $0.hasPrefix(folder + "/data/3_zkw/img\(i).png,") }.count, 3, "img\(i)") }
        let regular = entries.filter { $0.hasPrefix(folder + "/reg/1_shape/r.png,") }
        XCTAssertEqual(regular.count, 9, "reg images repeated up to the training images' count")
        XCTAssertTrue(regular.allSatisfy { $0.contains("loss weight: 0.5, caption: \"shape\"") }, regular.joined(separator: "\n"))
        XCTAssertTrue(entries.filter { $0.contains("/data/") }.allSatisfy { $0.contains("loss weight: 1.0, ") })
        // Captions as processed: the kept token first, the same tags, shuffled; the escape sequence escaped.
        let captions = entries.filter { $0.contains("/data/") }.compactMap { line -> String? in
            guard let start = line.range(of: "caption: \""), let end = line.range(of: "\", original size") else { return nil }
            return String(line[start.upperBound..<end.lowerBound])
        }
        XCTAssertEqual(captions.count, 9)
        XCTAssertTrue(captions.allSatisfy { $0.hasPrefix("zkw, ") }, captions.joined(separator: "\n"))
        XCTAssertTrue(captions.allSatisfy { Set($0.replacingOccurrences(of: "\\x1b[31m", with: "").components(separatedBy: ", "))
            == ["zkw", "red", "disc", "big", "round", "flat"] }, captions.joined(separator: "\n"))
        XCTAssertGreaterThan(Set(captions).count, 3, "shuffled: " + captions.joined(separator: "\n"))
        XCTAssertFalse(run.stdout.contains("\u{1B}"), "control characters reach the terminal")
        // kohya's sizes: the image's (w, h), then (h, w) for the original size and the bucket; flips drawn at 0.5.
        XCTAssertTrue(entries.contains { $0.hasPrefix(folder + "/data/3_zkw/img1.png, size: (128, 64), ") && $0.contains("original size: (64, 128)") },
                      entries.joined(separator: "\n"))
        XCTAssertTrue(entries.contains { $0.hasSuffix("flipped: True") } && entries.contains { $0.hasSuffix("flipped: False") })
        // Nothing trained, nothing written (no --output-dir needed).
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).sorted(), ["data", "reg"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder + "/data/3_zkw").count, 6, "no latent cache files")
    }

    /// The batch order shown is the run's: the trainer takes its batches from the same function.
    func testTheOrderIsTheTrainingOrder() throws {
        let subset = DatasetSubset(imageDirectory: folder + "/data/3_zkw", repeats: 3)
        let plan = try DatasetPlan.make(subsets: [subset], bucketing: BucketSet(resolution: Resolution(64, 64), mode: .predefined(min: 64, max: 128, step: 64)),
                                        batchSize: 2)
        XCTAssertEqual(plan.batches(epoch: 1, seed: 5), plan.batches(epoch: 1, seed: 5))
        XCTAssertNotEqual(plan.batches(epoch: 1, seed: 5), plan.batches(epoch: 2, seed: 5), "another epoch, another order")
        let shown = plan.debugLines(epoch: 1, seed: 5, totalSteps: 10).filter { $0.contains(", size: ") }.map { String($0.prefix { $0 != "," }) }
        XCTAssertEqual(shown, plan.batches(epoch: 1, seed: 5).flatMap { $0 }.map { plan.images[$0].path })
    }

    /// kohya's "crop top left" (BucketManager.get_crop_ltrb): where the image fitted inside the bucket sits, mirrored when flipped.
    func testCropConditionFollowsKohya() {
        func crop(_ bw: Int, _ bh: Int, _ w: Int, _ h: Int, _ flipped: Bool) -> [Int] {
            let c = DatasetPlan.conditioningCrop(bucket: Resolution(bw, bh), width: w, height: h, flipped: flipped)
            return [c.top, c.left]
        }
        // bucket 64×48, image 100×50 (wider): fitted 64×32, top (48 − 32) // 2 = 8.
        XCTAssertEqual(crop(64, 48, 100, 50, false), [8, 0])
        // bucket 64×64, image 50×100 (taller): fitted 32×64, left 16, right 48; flipped: 64 − 48 = 16.
        XCTAssertEqual(crop(64, 64, 50, 100, false), [0, 16])
        XCTAssertEqual(crop(64, 64, 50, 100, true), [0, 16])
        // bucket 64×64, image 30×100: fitted 19.2 wide, left floor(22.4) = 22, right 41.2; flipped: int(64 − 41.2) = 22.
        XCTAssertEqual(crop(64, 64, 30, 100, false), [0, 22])
        XCTAssertEqual(crop(64, 64, 30, 100, true), [0, 22])
        // bucket 64×64, image 40×100: fitted 25.6, left floor(19.2) = 19, right 44.6; flipped: int(19.4) = 19.
        XCTAssertEqual(crop(64, 64, 40, 100, true), [0, 19])
    }
}
