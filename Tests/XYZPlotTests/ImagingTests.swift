import CWebP
import Foundation
import Imaging
import XCTest

final class ImagingTests: XCTestCase {
    func testPNGRoundTripAndDamagedInput() throws {
        var pixels: [UInt8] = []
        for i in 0..<(17 * 9) { pixels += [UInt8(i % 256), UInt8(i * 7 % 256), UInt8(i * 13 % 256)] }
        let image = Bitmap(width: 17, height: 9, pixels: pixels)
        let png = try PNGCodec.encode(image)
        XCTAssertEqual(Array(png.prefix(8)), [137, 80, 78, 71, 13, 10, 26, 10])
        XCTAssertEqual(try PNGCodec.decode(png), image)
        // Truncated or garbage data is an error, not a crash.
        XCTAssertThrowsError(try PNGCodec.decode(Array(png.prefix(png.count / 2))))
        XCTAssertThrowsError(try PNGCodec.decode([1, 2, 3]))
        var flipped = png
        for i in stride(from: 40, to: flipped.count, by: 11) { flipped[i] ^= 0x5A }
        _ = try? PNGCodec.decode(flipped)  // damaged data: an error or an image, never a crash
        _ = PNGCodec.textChunks(flipped)  // must not crash or hang on damaged chunks
    }

    /// A transparent PNG reads as PIL's convert("RGB") reads it in kohya's runs: the colour values kept,
    /// the alpha dropped (not composited). The file is PIL's: RGBA (200, 100, 50, 128), one pixel (10, 20, 30, 0).
    func testTransparentPNGKeepsItsColoursAsPIL() throws {
        let png: [UInt8] = [
            0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00,
            0x00, 0x02, 0x08, 0x06, 0x00, 0x00, 0x00, 0x7f, 0xa8, 0x7d, 0x63, 0x00, 0x00, 0x00, 0x1a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63,
            0xe4, 0x12, 0x91, 0x63, 0xd8, 0x17, 0x20, 0xd2, 0xc0, 0x00, 0x05, 0x4c, 0xc8, 0x1c, 0x06, 0x06, 0x06, 0x06, 0x00, 0x4d, 0x5c, 0x03,
            0x84, 0x4f, 0x15, 0x32, 0x86, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
        ]
        let image = try PNGCodec.decode(png)
        XCTAssertEqual(Array(image.pixels.prefix(6)), [10, 20, 30, 200, 100, 50])
        XCTAssertEqual(Set(stride(from: 3, to: image.pixels.count, by: 3).map { image.pixels[$0] }), [200])
        // The alpha plane, for kohya's alpha_mask; an opaque PNG has none.
        let alpha = try XCTUnwrap(try PNGCodec.decodeWithAlpha(png).alpha)
        XCTAssertEqual(alpha, [0] + [UInt8](repeating: 128, count: 7))
        XCTAssertNil(try PNGCodec.decodeWithAlpha(try PNGCodec.encode(image)).alpha)
    }

    /// WebP training images (kohya's datasets hold them; PIL reads them through libwebp): lossless files
    /// come back exactly, lossy within their loss, alpha is dropped as PIL's convert("RGB") drops it, the
    /// size comes from the header, and truncated or mutated files are errors, never a crash.
    func testWebPDatasetImages() throws {
        let (w, h) = (37, 23)
        var rgb: [UInt8] = [], rgba: [UInt8] = []
        for i in 0..<(w * h) {
            let p = [UInt8(i % 256), UInt8(i * 7 % 256), UInt8((i / w) * 11 % 256)]
            rgb += p
            rgba += p + [128]
        }
        func encoded(_ body: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>) -> Int) -> [UInt8] {
            var output: UnsafeMutablePointer<UInt8>?
            let count = body(&output)
            defer { WebPFree(output) }
            return Array(UnsafeBufferPointer(start: output, count: count))
        }
        let lossless = encoded { WebPEncodeLosslessRGB(rgb, Int32(w), Int32(h), Int32(w * 3), $0) }
        // Lossy files are judged on a smooth picture (chroma subsampling blurs the noisy one by design).
        var smooth: [UInt8] = []
        for y in 0..<h { for x in 0..<w { smooth += [UInt8(x * 6), UInt8(y * 10), UInt8((x + y) * 3)] } }
        let lossy = encoded { WebPEncodeRGB(smooth, Int32(w), Int32(h), Int32(w * 3), 90, $0) }
        let alpha = encoded { WebPEncodeLosslessRGBA(rgba, Int32(w), Int32(h), Int32(w * 4), $0) }
        XCTAssertFalse(lossless.isEmpty || lossy.isEmpty || alpha.isEmpty)
        let folder = NSTemporaryDirectory() + "webp-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for (name, bytes) in [("lossless", lossless), ("lossy", lossy), ("alpha", alpha)] {
            let path = folder + "/\(name).png"   // by content, not by extension
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            XCTAssertEqual(try ImageFile.size(path).width, w, name)
            XCTAssertEqual(try ImageFile.size(path).height, h, name)
            let image = try ImageFile.read(path)
            XCTAssertEqual([image.width, image.height], [w, h], name)
            if name == "lossy" {
                var total = 0
                for (a, b) in zip(image.pixels, smooth) { total += abs(Int(a) - Int(b)) }
                let error = Double(total) / Double(smooth.count)
                XCTAssertLessThan(error, 3, "within lossy WebP's loss at quality 90")
            } else {
                XCTAssertEqual(image.pixels, rgb, "\(name): exact, alpha dropped")
                XCTAssertEqual(try ImageFile.readWithAlpha(path).alpha, name == "alpha" ? [UInt8](repeating: 128, count: w * h) : nil, name)
            }
        }
        XCTAssertThrowsError(try WebPCodec.decode(Array(lossless.prefix(lossless.count / 2)), path: "half.webp"))
        XCTAssertThrowsError(try WebPCodec.decode(Array(lossless.prefix(10)), path: "header.webp"))
        var random = MutationRandom(state: 0x5EED)
        var decoded = 0
        for _ in 0..<2000 {
            var bytes = random.next() % 2 == 0 ? lossy : lossless
            for _ in 0..<(1 + random.next() % 4) {
                let i = random.next() % bytes.count
                if random.next() % 2 == 0 { bytes[i] = UInt8(random.next() & 255) } else { bytes.removeSubrange(i..<min(bytes.count, i + 1 + random.next() % 16)) }
                if bytes.isEmpty { bytes = [0] }
            }
            if let image = try? WebPCodec.decode(bytes, path: "mutant.webp") {
                XCTAssertEqual(image.pixels.count, image.width * image.height * 3)
                decoded += 1
            }
        }
        XCTAssertLessThan(decoded, 2000, "most mutants are rejected")
    }

    /// Cached cells can come from other machines (assemble): damaged PNGs
    /// must give errors, never crashes or hangs.
    func testMutatedPNGsNeverCrash() throws {
        var pixels: [UInt8] = []
        for i in 0..<(24 * 16) { pixels += [UInt8(i % 251), UInt8(i * 3 % 256), UInt8(i * 5 % 256)] }
        let png = try PNGCodec.encode(Bitmap(width: 24, height: 16, pixels: pixels), text: [("parameters", "a cat\nSteps: 4")])
        var random = MutationRandom(state: 0x9E3779B97F4A7C15)
        func next() -> Int { random.next() }
        var decoded = 0
        for _ in 0..<3000 {
            var bytes = png
            for _ in 0..<(1 + next() % 4) {
                let i = next() % bytes.count
                switch next() % 3 {
                case 0: bytes[i] = UInt8(next() & 255)
                case 1: bytes.removeSubrange(i..<min(bytes.count, i + 1 + next() % 16))
                default: bytes.insert(contentsOf: [UInt8](repeating: UInt8(next() & 255), count: 1 + next() % 8), at: i)
                }
                if bytes.isEmpty { bytes = [0] }
            }
            if let image = try? PNGCodec.decode(bytes) {
                XCTAssertEqual(image.pixels.count, image.width * image.height * 3)
                decoded += 1
            }
            _ = PNGCodec.textChunks(bytes)
        }
        XCTAssertLessThan(decoded, 3000, "most mutants are rejected")
    }

    /// Training reads JPEGs from anywhere: decoding round-trips our own
    /// files within JPEG's loss, and truncated or mutated files are errors,
    /// never a crash or an exit (libjpeg's error path runs behind setjmp).
    func testJPEGDecodingAndHostileJPEGs() throws {
        var bitmap = Bitmap(width: 37, height: 21)
        for y in 0..<21 { for x in 0..<37 {
            let i = 3 * (y * 37 + x)
            (bitmap.pixels[i], bitmap.pixels[i + 1], bitmap.pixels[i + 2]) = (UInt8(x * 6), UInt8(y * 12), 128)  // smooth gradients
        } }
        let bytes = try JPEGCodec.encode(bitmap, quality: 95)
        let decoded = try JPEGCodec.decode(bytes)
        XCTAssertEqual([decoded.width, decoded.height], [37, 21])
        let meanError = zip(decoded.pixels, bitmap.pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(bitmap.pixels.count)
        XCTAssertLessThan(meanError, 8, "within JPEG's loss at quality 95")
        XCTAssertThrowsError(try JPEGCodec.decode(Array(bytes.prefix(40))))
        XCTAssertThrowsError(try JPEGCodec.decode([0xFF, 0xD8, 0xFF]))
        XCTAssertThrowsError(try JPEGCodec.decode(Array("not a jpeg".utf8)))
        var random = MutationRandom(state: 0x2545F4914F6CDD1D)
        func next() -> Int { random.next() }
        var failures = 0
        for _ in 0..<2000 {
            var mutant = bytes
            for _ in 0..<(1 + next() % 8) { mutant[next() % mutant.count] = UInt8(truncatingIfNeeded: next()) }
            if next() % 2 == 0 { mutant = Array(mutant.prefix(next() % mutant.count)) }
            do {
                let image = try JPEGCodec.decode(mutant)
                XCTAssertEqual(image.pixels.count, image.width * image.height * 3)
            } catch {
                failures += 1
            }
        }
        XCTAssertGreaterThan(failures, 0, "some mutants are refused (the rest decode around the damage)")
    }

    func testJPEGAndResize() throws {
        let image = Bitmap(width: 40, height: 30, fill: RGB(200, 100, 50))
        let jpeg = try JPEGCodec.encode(image)
        XCTAssertEqual(Array(jpeg.prefix(3)), [0xFF, 0xD8, 0xFF])
        var checker = Bitmap(width: 4, height: 4)
        for y in 0..<4 { for x in 0..<4 where (x + y) % 2 == 0 { checker.fill(x: x, y: y, width: 1, height: 1, color: .black) } }
        // A 2x box filter of a checkerboard is uniform mid-gray.
        let half = checker.resized(width: 2, height: 2)
        XCTAssertEqual(Set(half.pixels), [128])
    }

    func testFontDrawsWrappedLabelsAndSheetHasItsCells() throws {
        let path = try Font.locate()
        let font = try Font(path: path, pixelSize: 20)
        XCTAssertGreaterThan(font.width(of: "Weight: 0.8"), font.width(of: "W"))
        let lines = font.wrap("mychar-000004, a rather long label that must wrap", maxWidth: 120)
        XCTAssertGreaterThan(lines.count, 2)
        XCTAssertTrue(lines.allSatisfy { font.width(of: $0) <= 120 })
        var canvas = Bitmap(width: 200, height: 40)
        font.draw("Seed: 1234", into: &canvas, x: 4, y: 4)
        XCTAssertTrue(canvas.pixels.contains { $0 < 100 }, "text drew dark pixels")

        let red = Bitmap(width: 32, height: 32, fill: RGB(255, 0, 0)), blue = Bitmap(width: 32, height: 32, fill: RGB(0, 0, 255))
        let sheet = GridSheet(columns: ["e1", "e2"], rows: ["w 0.5"], title: "Seed: 1", legend: "Model: x", cells: [red, blue],
                              cellWidth: 32, cellHeight: 32)
        let bitmap = try sheet.render(fontPath: path)
        XCTAssertGreaterThan(bitmap.width, 64)
        let reds = stride(from: 0, to: bitmap.pixels.count, by: 3).filter {
            bitmap.pixels[$0] == 255 && bitmap.pixels[$0 + 1] == 0 && bitmap.pixels[$0 + 2] == 0
        }
        XCTAssertEqual(reds.count, 32 * 32, "the red cell appears whole, once")
        let missing = try GridSheet(columns: ["a"], rows: [], cells: [nil], cellWidth: 32, cellHeight: 32).render(fontPath: path)
        XCTAssertTrue(missing.pixels.contains(224), "missing cells are gray boxes")
    }
}

/// Deterministic non-negative numbers for mutating files (a 64-bit LCG's high bits).
struct MutationRandom {
    var state: UInt64
    mutating func next() -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int(state >> 33)
    }
}
