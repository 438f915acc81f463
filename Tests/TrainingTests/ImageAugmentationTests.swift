import Foundation
import Imaging
@testable import Training
import XCTest

/// kohya's per-step augmentations: `color_aug` against its own AugHelper run on OpenCV
/// (Fixtures/golden/make_augment_golden.py, each case one known hue shift or gamma), and
/// `random_crop`'s origins (randint(0, trim), both ends included).
final class ImageAugmentationTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func testColorAugmentMatchesKohyasOnOpenCV() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/Fixtures/golden/augment/color_aug.json"))
        let golden = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let width = try XCTUnwrap(golden["width"] as? Int), height = try XCTUnwrap(golden["height"] as? Int)
        let image = Bitmap(width: width, height: height, pixels: try XCTUnwrap(golden["image"] as? [UInt8]))
        let cases = try XCTUnwrap(golden["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 10)
        for item in cases {
            let kind = try XCTUnwrap(item["kind"] as? String), value = try XCTUnwrap(item["value"] as? Double)
            let expected = try XCTUnwrap(item["pixels"] as? [UInt8])
            let change: ImageAugmentation.ColorChange = switch kind {
            case "hue": .hueShift(value < 0 ? 180 + value : value)
            case "gamma": .gamma(value)
            default: .none
            }
            var bitmap = image
            ImageAugmentation.apply(change, to: &bitmap)
            let off = zip(bitmap.pixels, expected).filter { $0 != $1 }
            let worst = zip(bitmap.pixels, expected).map { abs(Int($0) - Int($1)) }.max() ?? 0
            print("color_aug \(kind) \(value): \(off.count) of \(expected.count) values differ from kohya's, by at most \(worst)")
            // OpenCV's HSV→RGB runs vectorised float code: a value on a rounding tie may land one level away.
            XCTAssertLessThanOrEqual(worst, 1, "\(kind) \(value)")
            XCTAssertLessThanOrEqual(off.count, expected.count / 100, "\(kind) \(value): \(off.count) of \(expected.count) values differ")
            if kind != "hue" { XCTAssertEqual(bitmap.pixels, expected, "\(kind) \(value) is exact") }
            if kind == "hue" && abs(value) > 1 { XCTAssertNotEqual(bitmap.pixels, image.pixels, "a shift of \(value) changes colours") }
        }
    }

    func testColorDrawsHaveKohyasShares() {
        var random = TrainingRandom(seed: 5)
        var counts = (none: 0, hue: 0, gamma: 0)
        for _ in 0..<30_000 {
            switch ImageAugmentation.drawColorChange(random: &random) {
            case .none: counts.none += 1
            case let .hueShift(shift):
                counts.hue += 1
                XCTAssertTrue((0..<8).contains(shift) || (172..<180).contains(shift), "\(shift)")
            case let .gamma(gamma):
                counts.gamma += 1
                XCTAssertTrue((0.95..<1.05).contains(gamma))
            }
        }
        XCTAssertEqual(Double(counts.none) / 30_000, 0.67, accuracy: 0.01)
        XCTAssertEqual(Double(counts.hue) / 30_000, 0.165, accuracy: 0.01)
        XCTAssertEqual(Double(counts.gamma) / 30_000, 0.165, accuracy: 0.01)
    }

    func testRandomCropReachesBothEnds() {
        var random = TrainingRandom(seed: 9)
        var lefts = Set<Int>(), tops = Set<Int>()
        for _ in 0..<2000 {
            let origin = ImageAugmentation.randomCropOrigin(width: 72, height: 64, bucket: Resolution(64, 64), random: &random)
            lefts.insert(origin.left)
            tops.insert(origin.top)
        }
        XCTAssertEqual(lefts, Set(0...8), "randint(0, 8): nine places, both ends")
        XCTAssertEqual(tops, [0], "no excess, no crop")
    }
}
