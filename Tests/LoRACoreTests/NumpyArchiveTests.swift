import Foundation
import LoRACore
import XCTest

/// .npz as numpy writes it: a latent cache sd-scripts wrote
/// (make_dataset_golden.py, save_latents_to_disk) is read back exactly; ours
/// round-trips; damaged files are errors naming the member, never a crash.
final class NumpyArchiveTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func testReadsKohyasLatentCache() throws {
        let arrays = try NumpyArchive.read(Self.root + "/Fixtures/golden/training/kohya_latents_0048x0040_sd.npz")
        XCTAssertEqual(Set(arrays.keys), ["latents", "original_size", "crop_ltrb", "latents_flipped"])
        let latents = try XCTUnwrap(arrays["latents"])
        XCTAssertEqual(latents.shape, [4, 5, 6])
        var expected: [Float] = []
        for c in 0..<4 { for y in 0..<5 { for x in 0..<6 { expected.append(Float(Double(c * 31 + y * 7 + x) / 50 - 1)) } } } // in double, as Python computes it
        XCTAssertEqual(latents.values.floats, expected)
        XCTAssertEqual(arrays["original_size"]?.values.integers, [48, 40])
        XCTAssertEqual(arrays["crop_ltrb"]?.values.integers, [0, 0, 48, 40])
        let flipped = try XCTUnwrap(arrays["latents_flipped"]?.values.floats)
        XCTAssertEqual(flipped[0], expected[5], "mirrored along the width")
    }

    func testRoundTripAndDamage() throws {
        let path = NSTemporaryDirectory() + "npz-\(UUID().uuidString).npz"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let arrays: [(name: String, array: NumpyArchive.Array)] = [
            ("latents", .init(shape: [2, 3], values: .float32([1, -2, 3.5, 0, 1e-7, -0]))),
            ("sizes", .init(shape: [2], values: .int64([64, -9]))),
            ("hash", .init(shape: [4], values: .uint8([0, 255, 7, 9]))),
        ]
        let bytes = NumpyArchive.encode(arrays)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let back = try NumpyArchive.read(path)
        for (name, array) in arrays { XCTAssertEqual(back[name], array, name) }
        // Every truncation and a sweep of byte flips: an error or a value, never a crash.
        for cut in stride(from: 0, to: bytes.count, by: 7) {
            try Data(bytes[0..<cut]).write(to: URL(fileURLWithPath: path))
            _ = try? NumpyArchive.read(path)
        }
        for i in stride(from: 0, to: bytes.count, by: 3) {
            var damaged = bytes
            damaged[i] ^= 0x5A
            try Data(damaged).write(to: URL(fileURLWithPath: path))
            _ = try? NumpyArchive.read(path)
        }
    }
}
