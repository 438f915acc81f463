import Diffusion
import Foundation
import Imaging
import LoRACore
@testable import Training
import XCTest

/// kohya's face-centred crop (`face_crop_aug_range`) and its crops without buckets: `crop_target`'s scale
/// and origin against kohya's own function run with CPython's `random` (Fixtures/golden/make_face_crop_golden.py,
/// replayed here with PythonRandom seeded alike, the draws counted), the face read from file names as its
/// `load_image_with_face_info` reads them, and the plan's decisions (faces only without buckets or cached
/// latents, images that must cover the resolution), down to the pixels a step encodes.
final class FaceCropTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static func golden() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: root + "/Fixtures/golden/augment/face_crop.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testCropTargetMatchesKohyasWithPythonsDraws() throws {
        let crops = try XCTUnwrap(try Self.golden()["crops"] as? [[String: Any]])
        XCTAssertEqual(crops.count, 44)
        var scaledCases = 0, shifted = 0
        for item in crops {
            func pair(_ key: String) throws -> [Int] { try XCTUnwrap(item[key] as? [Int]) }
            let image = try pair("image"), face = try pair("face"), target = try pair("target"), scaled = try pair("scaled")
            let range = try XCTUnwrap(item["range"] as? [Double]), seed = try XCTUnwrap(item["seed"] as? Int)
            var random = PythonRandom(seed: UInt64(seed))
            let drawn = FaceCrop.draw(image: Resolution(image[0], image[1]),
                                      face: FaceCrop.Box(centerX: face[0], centerY: face[1], width: face[2], height: face[3]),
                                      target: Resolution(target[0], target[1]), range: FaceCrop.Range(lower: range[0], upper: range[1]),
                                      randomCrop: try XCTUnwrap(item["random_crop"] as? Bool), random: &random)
            let label = "\(image) face \(face) → \(target) range \(range) random_crop \(item["random_crop"]!) seed \(seed)"
            XCTAssertEqual(drawn.scaled, Resolution(scaled[0], scaled[1]), label)
            XCTAssertEqual(drawn.left, try XCTUnwrap(item["left"] as? Int), label)
            XCTAssertEqual(drawn.top, try XCTUnwrap(item["top"] as? Int), label)
            XCTAssertEqual(Int(random.bits(32)), try XCTUnwrap(item["next_bits"] as? Int), "\(label): as many draws as kohya")
            if drawn.scaled != Resolution(image[0], image[1]) { scaledCases += 1 }
            if drawn.left != 0 || drawn.top != 0 { shifted += 1 }
        }
        XCTAssertGreaterThan(scaledCases, 10, "the golden scales images")
        XCTAssertGreaterThan(shifted, 20, "and crops away from the corner")
    }

    func testFacesAreReadFromFileNamesAsKohyaReadsThem() throws {
        let names = try XCTUnwrap(try Self.golden()["names"] as? [[String: Any]])
        for item in names {
            let path = "/data/10_x/" + (try XCTUnwrap(item["name"] as? String))
            if item["error"] != nil {
                XCTAssertThrowsError(try FaceCrop.box(in: path), path) {
                    XCTAssertTrue(($0 as? ModelError)?.message.contains("last four are not all integers") ?? false, "\($0)")
                }
                continue
            }
            let face = try XCTUnwrap(item["face"] as? [Int])
            if face[0] <= 0 {
                XCTAssertNil(try FaceCrop.box(in: path), "kohya sees no face in \(path)")
            } else if max(face[2], face[3]) <= 0 {
                XCTAssertThrowsError(try FaceCrop.box(in: path), "kohya would divide by the zero face of \(path)")
            } else {
                XCTAssertEqual(try FaceCrop.box(in: path), FaceCrop.Box(centerX: face[0], centerY: face[1], width: face[2], height: face[3]), path)
            }
        }
    }

    func testRangeParsesAsKohyasCommandLine() {
        XCTAssertEqual(FaceCrop.Range(parsing: "2.0,4.0"), FaceCrop.Range(lower: 2, upper: 4))
        XCTAssertEqual(FaceCrop.Range(parsing: " 3, 3 "), FaceCrop.Range(lower: 3, upper: 3))
        for bad in ["4,2", "2", "2,3,4", "a,b", "0,2", "-1,2", "nan,2", "2,inf", ""] { XCTAssertNil(FaceCrop.Range(parsing: bad), bad) }
        XCTAssertEqual(FaceCrop.Range(lower: 2, upper: 4).description, "(2.0, 4.0)", "str() of kohya's tuple")
    }

    /// A folder `10_face` with images (name, width, height) whose pixels encode their coordinates (x in red,
    /// y in green), so a crop shows where it came from.
    func dataset(_ images: [(String, Int, Int)]) throws -> (work: String, subset: DatasetSubset) {
        let work = NSTemporaryDirectory() + "lt-face-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: work + "/10_face", withIntermediateDirectories: true)
        for (name, w, h) in images {
            var pixels = [UInt8](repeating: 50, count: w * h * 3)
            for y in 0..<h { for x in 0..<w { (pixels[(y * w + x) * 3], pixels[(y * w + x) * 3 + 1]) = (UInt8(x % 256), UInt8(y % 256)) } }
            try Data(try PNGCodec.encode(Bitmap(width: w, height: h, pixels: pixels))).write(to: URL(fileURLWithPath: work + "/10_face/" + name))
        }
        var subset = DatasetSubset(imageDirectory: work + "/10_face", repeats: 1, classTokens: "face")
        subset.faceCropRange = FaceCrop.Range(lower: 2, upper: 4)
        return (work, subset)
    }

    func testPlanCropsAroundFacesOnlyWithoutBucketsOrCachedLatents() throws {
        let (work, subset) = try dataset([("a_100_90_40_50.png", 200, 160), ("b.png", 128, 96), ("c_1_2_3_4_5.png", 96, 80)])
        defer { try? FileManager.default.removeItem(atPath: work) }
        let fixed = BucketSet(resolution: Resolution(64, 64), mode: .fixed)
        let plan = try DatasetPlan.make(subsets: [subset], bucketing: fixed, batchSize: 1)
        let faces = Dictionary(uniqueKeysWithValues: plan.images.map { (($0.path as NSString).lastPathComponent, $0.face) })
        XCTAssertEqual(faces["a_100_90_40_50.png"], FaceCrop.Box(centerX: 100, centerY: 90, width: 40, height: 50))
        XCTAssertEqual(faces["c_1_2_3_4_5.png"], FaceCrop.Box(centerX: 2, centerY: 3, width: 4, height: 5))
        XCTAssertEqual(faces["b.png"], .some(nil))
        let a = try XCTUnwrap(plan.images.firstIndex { $0.face?.centerX == 100 }), b = try XCTUnwrap(plan.images.firstIndex { $0.face == nil })
        XCTAssertTrue(plan.encodesEachStep(a) && plan.cropsUnresized(a), "a face is cropped from the image as it is, at every step")
        XCTAssertFalse(plan.encodesEachStep(b), "an image without a face is cached as without face_crop_aug_range")
        XCTAssertTrue(plan.warnings.contains { $0.contains("1 of 3 images in 10_face have no face in their file name") }, "\(plan.warnings)")

        let bucketed = try DatasetPlan.make(subsets: [subset], bucketing: BucketSet(resolution: Resolution(64, 64), mode: .predefined(min: 64, max: 128, step: 64)),
                                            batchSize: 1)
        XCTAssertTrue(bucketed.images.allSatisfy { $0.face == nil } && !bucketed.images.indices.contains(where: bucketed.encodesEachStep))
        XCTAssertTrue(bucketed.warnings.contains { $0.contains("face_crop_aug_range does nothing for 10_face with buckets") }, "\(bucketed.warnings)")
        let cached = try DatasetPlan.make(subsets: [subset], bucketing: fixed, batchSize: 1, cachedLatents: true)
        XCTAssertTrue(cached.images.allSatisfy { $0.face == nil })
        XCTAssertTrue(cached.warnings.contains { $0.contains("with --cache-latents: kohya caches the centred crop") }, "\(cached.warnings)")
    }

    func testImagesSmallerThanTheResolutionAreRefusedWhereKohyaCannotCropThem() throws {
        let (work, subset) = try dataset([("small_30_30_20_20.png", 96, 48)])
        defer { try? FileManager.default.removeItem(atPath: work) }
        let fixed = BucketSet(resolution: Resolution(64, 64), mode: .fixed)
        XCTAssertThrowsError(try DatasetPlan.make(subsets: [subset], bucketing: fixed, batchSize: 1)) {
            let error = $0 as? ModelError
            XCTAssertTrue(error?.message.contains("96x48 image is smaller than the 64x64 resolution: without buckets kohya's face_crop_aug_range") ?? false, "\($0)")
            XCTAssertEqual(error?.file.map { ($0 as NSString).lastPathComponent }, "small_30_30_20_20.png")
        }
        var crop = subset
        (crop.faceCropRange, crop.randomCrop) = (nil, true)
        XCTAssertThrowsError(try DatasetPlan.make(subsets: [crop], bucketing: fixed, batchSize: 1)) {
            XCTAssertTrue(($0 as? ModelError)?.message.contains("kohya's random_crop crops the image as it is") ?? false, "\($0)")
        }
        // Cached latents resize to cover, as kohya's cache does; only face crops are ignored there.
        XCTAssertNoThrow(try DatasetPlan.make(subsets: [subset], bucketing: fixed, batchSize: 1, cachedLatents: true))
        // Buckets resize too.
        XCTAssertNoThrow(try DatasetPlan.make(subsets: [crop], bucketing: BucketSet(resolution: Resolution(64, 64), mode: .predefined(min: 64, max: 128, step: 64)),
                                              batchSize: 1))
    }

    /// What a step encodes: without buckets random_crop is a window of the image as it is (not of the image
    /// resized to cover, which a 96×80 image at 64×64 would be), drawn height first; a face crop is the image
    /// resampled to crop_target's size and cut at its origin, the flip drawn before both.
    func testStepPixelsAreKohyasUnbucketedCrops() throws {
        let (work, subset) = try dataset([("face_60_40_30_30.png", 96, 80)])
        defer { try? FileManager.default.removeItem(atPath: work) }
        let fixed = BucketSet(resolution: Resolution(64, 64), mode: .fixed)
        func pixels(_ subset: DatasetSubset, seed: UInt64) throws -> (DatasetPlan, Bitmap, Tensor) {
            let plan = try DatasetPlan.make(subsets: [subset], bucketing: fixed, batchSize: 1)
            XCTAssertTrue(plan.cropsUnresized(0))
            let stored = try TrainingImage.resized(plan.images[0].path, to: Resolution(96, 80))
            var random = PythonRandom(seed: seed)
            return (plan, stored, try plan.stepPixels(0, stored: stored, alpha: nil, random: &random).pixels)
        }
        func window(_ bitmap: Bitmap, left: Int, top: Int) -> [Float] {
            var values = [Float](repeating: 0, count: 3 * 64 * 64)
            for c in 0..<3 { for y in 0..<64 { for x in 0..<64 {
                values[c * 4096 + y * 64 + x] = Float(bitmap.pixels[((top + y) * bitmap.width + left + x) * 3 + c]) / 127.5 - 1
            } } }
            return values
        }
        var crop = subset
        (crop.faceCropRange, crop.randomCrop, crop.flipAugment) = (nil, true, true)
        var origins: Set<[Int]> = []
        for seed in UInt64(1)...6 {
            let (_, stored, tensor) = try pixels(crop, seed: seed)
            var random = PythonRandom(seed: seed)
            let flipped = random.uniform() < 0.5
            let top = random.integer(in: 0...16), left = random.integer(in: 0...32)
            var expected = window(stored, left: left, top: top)
            if flipped {
                for row in 0..<(3 * 64) {
                    let start: Int = row * 64
                    expected[start..<(start + 64)].reverse()
                }
            }
            XCTAssertEqual(tensor.values, expected, "seed \(seed): the window at (\(left), \(top))\(flipped ? ", mirrored" : "")")
            origins.insert([left, top])
        }
        XCTAssertGreaterThan(origins.count, 3, "the window moves")

        for seed in UInt64(1)...4 {
            let (plan, stored, tensor) = try pixels(subset, seed: seed)
            var random = PythonRandom(seed: seed)
            let drawn = FaceCrop.draw(image: Resolution(96, 80), face: try XCTUnwrap(plan.images[0].face), target: Resolution(64, 64),
                                      range: try XCTUnwrap(subset.faceCropRange), randomCrop: false, random: &random)
            XCTAssertNotEqual(drawn.scaled, Resolution(96, 80), "a 30-pixel face asks for 64/4 to 64/2 of it: the image shrinks")
            let expected = window(stored.resampled(width: drawn.scaled.width, height: drawn.scaled.height), left: drawn.left, top: drawn.top)
            XCTAssertEqual(tensor.values, expected, "seed \(seed)")
        }
    }
}
