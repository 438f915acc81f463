import Foundation
import Imaging
import LoRACore
@testable import Training
import XCTest

/// kohya's fine-tuning metadata read as sd-scripts reads it (the plans themselves are checked against
/// sd-scripts in DatasetPlanTests): the order it registers images in, the keys its metadata scripts write,
/// and the files it would fail on late, refused early with the file and key.
final class MetadataListingTests: XCTestCase {
    var folder = ""

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "lt-metadata-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder + "/images", withIntermediateDirectories: true)
        for name in ["bb.png", "a.png", "cc.jpg", "dd.png", "long_name.png"] {
            FileManager.default.createFile(atPath: folder + "/images/" + name, contents: Data(try PNGCodec.encode(Bitmap(width: 8, height: 8, fill: RGB(1, 2, 3)))))
        }
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func subset(_ text: String, name: String = "meta.json") throws -> DatasetSubset {
        try text.write(toFile: folder + "/" + name, atomically: false, encoding: .utf8)
        var subset = DatasetSubset(imageDirectory: folder + "/images")
        subset.metadataFile = folder + "/" + name
        return subset
    }

    /// The longest keys first, ties in the file's order (sd-scripts sorts the keys by length, Python's sort is
    /// stable); keys without an extension (merge_captions_to_metadata.py's default) find the image with one.
    func testOrderAndKeysWithoutExtension() throws {
        let entries = try MetadataListing.entries(of: try subset(
            #"{"dd.png": {"caption": "d"}, "a.png": {}, "long_name": {"tags": "x"}, "cc": {"caption": "c"}, "bb.png": {"caption": "b", "tags": "y, z"}}"#))
        XCTAssertEqual(entries.map(\.key), ["long_name", "dd.png", "bb.png", "a.png", "cc"])
        XCTAssertEqual(entries.map { ($0.path as NSString).lastPathComponent }, ["long_name.png", "dd.png", "bb.png", "a.png", "cc.jpg"])
        XCTAssertEqual(entries.map(\.caption), ["x", "d", "b,y, z", "", "c"])
        XCTAssertEqual(entries.map(\.tags), ["x", nil, "y, z", nil, nil])
        // Absolute keys need no folder.
        var absolute = try subset(#"{"\#(folder)/images/a.png": {"caption": "abs"}}"#)
        absolute.imageDirectory = ""
        XCTAssertEqual(try MetadataListing.entries(of: absolute).map(\.path), [folder + "/images/a.png"])
    }

    func testBadMetadataIsRefusedWithFileAndKey() throws {
        func refusal(_ text: String, name: String = "meta.json", directory: String? = nil) throws -> ModelError? {
            var s = try subset(text, name: name)
            if let directory { s.imageDirectory = directory }
            do { _ = try MetadataListing.entries(of: s); return nil } catch { return error }
        }
        let missing = try XCTUnwrap(try refusal(#"{"a.png": {}, "nowhere": {"caption": "x"}}"#))
        XCTAssertEqual(missing.key, "nowhere")
        XCTAssertEqual(missing.file, folder + "/meta.json")
        XCTAssertTrue(missing.message.contains("no image for \"nowhere\""), missing.message)
        XCTAssertEqual(try refusal(#"{"a.png": {}}"#, directory: "")?.message.contains("relative path"), true)
        XCTAssertEqual(try refusal(#"{"a.png": {"caption": 3}}"#)?.key, "a.png")
        XCTAssertEqual(try refusal(#"{"a.png": "caption"}"#)?.key, "a.png")
        XCTAssertEqual(try refusal(#"["a.png"]"#)?.message.contains("not a JSON object"), true)
        XCTAssertNotNil(try refusal(#"{"a.png": {"caption": "x"}"#)?.offset, "a truncated file: the offset where it ends")
        XCTAssertEqual(try refusal("{\"a.png\": {\"caption\": \"\u{1B}[31m\"}, \"x\u{1B}[2J\": {}}")?.message.contains("\u{1B}"), false,
                       "control characters from the file never reach the terminal")
        let line = try XCTUnwrap(try refusal("{\"image_path\": \"a.png\"}\n{\"caption\": \"no path\"}\n", name: "meta.jsonl"))
        XCTAssertTrue(line.message.contains("line 2"), line.message)
    }

    /// JSON Lines (sd-scripts' optional format): image_path, caption and tags per line; blank lines skipped.
    func testJSONLines() throws {
        let entries = try MetadataListing.entries(of: try subset(
            "{\"image_path\": \"a.png\", \"caption\": \"one\"}\n\n{\"image_path\": \"bb.png\", \"caption\": \"two\", \"tags\": \"t\"}\n", name: "m.jsonl"))
        XCTAssertEqual(entries.map(\.key), ["bb.png", "a.png"])
        XCTAssertEqual(entries.map(\.caption), ["two,t", "one"])
    }
}

extension MetadataListingTests {
    /// Mutated metadata files (bytes flipped, cut, duplicated) give entries or a ModelError, never a crash or a hang.
    func testFuzzedMetadata() throws {
        let seed = Array(#"{"dd.png": {"caption": "d", "tags": "x, y"}, "cc": {"caption": "c\nline"}, "a.png": {}}"#.utf8)
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next(_ bound: Int) -> Int { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return Int(state % UInt64(bound)) }
        for round in 0..<600 {
            var bytes = seed
            for _ in 0..<(1 + next(4)) {
                switch next(3) {
                case 0: bytes[next(bytes.count)] = UInt8(next(256))
                case 1: bytes.removeSubrange(next(bytes.count)..<bytes.count)
                default: let i = next(bytes.count); bytes.insert(contentsOf: bytes[i..<min(bytes.count, i + 8)], at: i)
                }
                if bytes.isEmpty { bytes = [0x7B] }
            }
            let name = round % 2 == 0 ? "fuzz.json" : "fuzz.jsonl"
            FileManager.default.createFile(atPath: folder + "/" + name, contents: Data(bytes))
            var s = DatasetSubset(imageDirectory: folder + "/images")
            s.metadataFile = folder + "/" + name
            do { _ = try MetadataListing.entries(of: s) } catch { XCTAssertFalse(error.message.isEmpty) }
        }
    }
}
