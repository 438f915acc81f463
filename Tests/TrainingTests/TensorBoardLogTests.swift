import Foundation
@testable import Training
import XCTest

/// `--logging_dir`: the event file equals, byte for byte, what tensorboard's RecordWriter and
/// torch's SummaryWriter write for the same scalars (Fixtures/golden/make_tensorboard_golden.py,
/// wall times fixed there and here), and the tags are kohya's.
final class TensorBoardLogTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func testCRC32CIsCastagnoli() {
        // The check value of CRC-32C (RFC 3720 appendix B.4 and every CRC catalogue).
        XCTAssertEqual(crc32c(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(crc32c([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)   // RFC 3720 B.4: 32 bytes of zeros
    }

    func testEventFileMatchesTensorBoardsWriter() throws {
        let path = NSTemporaryDirectory() + "tb-\(UUID().uuidString).tfevents"
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let log = try TensorBoardLog(path: path, wallTime: 1764633600.0)
            log.record([("loss/current", 0.1234567), ("loss/average", 0.1234567), ("lr/textencoder", 5e-05), ("lr/unet", 0.0001)],
                       step: 1, wallTime: 1764633600.25)
            log.record(TensorBoardLog.stepScalars(loss: 0, averageLoss: 0.06172835, learningRates: [("unet", 0.0001)],
                                                  adaptiveScale: 0.0325, maxNorm: nil), step: 2, wallTime: 1764633601.5)
            log.record([("loss/epoch_average", 0.06172835)], step: 1, wallTime: 1764633602.75)
        }
        let ours = try Data(contentsOf: URL(fileURLWithPath: path))
        let golden = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/Fixtures/golden/tensorboard/events.golden"))
        XCTAssertEqual(ours.count, golden.count)
        let first = zip(ours, golden).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        XCTAssertNil(first, "first differing byte at offset \(first ?? -1)")
    }

    static let hparams: [(key: String, value: TensorBoardLog.HParam)] = [
        ("network_dim", .int(32)), ("learning_rate", .double(0.0001)), ("unet_lr", .none), ("network_args", .string("['conv_dim=8', 'conv_alpha=4']")),
        ("optimizer_type", .string("AdamW")), ("cache_latents", .bool(true)), ("flip_aug", .bool(false)), ("noise_offset", .double(1e-05)),
        ("seed", .int(-3)), ("output_name", .string("my char: v2")), ("min_snr_gamma", .double(5)), ("caption_extension", .string(".txt")),
        ("zz_unicode", .string("café")),
    ]

    /// kohya's --log_config: torch's add_hparams event file, byte for byte (the golden's summaries come from
    /// torch.utils.tensorboard.summary.hparams), and accelerate's hparams.yml.
    func testHParamsMatchTorchsAddHParams() throws {
        let folder = NSTemporaryDirectory() + "tb-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let log = try TensorBoardLog(path: folder + "/events.out.tfevents.run", wallTime: 1764633600.0)
        let written = try log.recordHParams(Self.hparams, now: Date(timeIntervalSince1970: 1764633600.5))
        XCTAssertEqual((written.events as NSString).deletingLastPathComponent, folder + "/1764633600.5", "a folder named str(time.time())")
        let ours = try Data(contentsOf: URL(fileURLWithPath: written.events))
        let golden = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/Fixtures/golden/tensorboard/hparams.golden"))
        XCTAssertEqual(ours.count, golden.count)
        let first = zip(ours, golden).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        XCTAssertNil(first, "first differing byte at offset \(first ?? -1)")
        // PyYAML 6 loads this text back to the same dict (checked by hand: yaml.safe_load of it == the golden's HPARAMS).
        XCTAssertEqual(try String(contentsOfFile: written.yaml, encoding: .utf8), """
            cache_latents: true
            caption_extension: '.txt'
            flip_aug: false
            learning_rate: 0.0001
            min_snr_gamma: 5.0
            network_args: '[''conv_dim=8'', ''conv_alpha=4'']'
            network_dim: 32
            noise_offset: 1.0e-05
            optimizer_type: AdamW
            output_name: 'my char: v2'
            seed: -3
            unet_lr: null
            zz_unicode: 'café'

            """)
        XCTAssertEqual(TensorBoardLog.yamlString("it's\n"), "\"it's\\n\"")
        XCTAssertEqual(TensorBoardLog.yamlString("yes"), "'yes'", "a YAML 1.1 boolean stays a string")
        // PyYAML reads no raw DEL or C1 control even in quotes: escaped (yaml.safe_load('a: "\\u007fx\\u0085"') == {'a': '\x7fx\x85'}).
        XCTAssertEqual(TensorBoardLog.yamlString("\u{7F}x\u{85}"), "\"\\u007fx\\u0085\"")
    }

    func testStepScalarsAreKohyasTags() {
        let report = LoRANetwork.MaxNormReport(keysScaled: 3, averageNorm: 0.5, maximumNorm: 1.25)
        let scalars = TensorBoardLog.stepScalars(loss: 0.2, averageLoss: 0.15, learningRates: [("textencoder", 1e-5), ("unet_block3", 2e-4)],
                                                 adaptiveScale: 0.5, maxNorm: report)
        XCTAssertEqual(scalars.map(\.tag), ["loss/current", "loss/average", "max_norm/keys_scaled", "max_norm/max_key_norm", "norm/avg_key_norm",
                                            "lr/textencoder", "lr/d*lr/textencoder", "lr/unet_block3", "lr/d*lr/unet_block3"])
        XCTAssertEqual(scalars.map(\.value), [0.2, 0.15, 3, 1.25, 0.5, 1e-5, 5e-6, 2e-4, 1e-4])
    }
}
