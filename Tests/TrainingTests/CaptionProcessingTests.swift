import Foundation
@testable import Training
import XCTest

/// Captions at each step as sd-scripts' process_caption makes them: prefix and suffix, dropout, the tags
/// kept in front (keep_tokens or keep_tokens_separator), shuffling and tag dropout of the rest, and
/// enable_wildcard's line and {a|b} choices (re.sub(r"\{([^}]+)\}") semantics, {{ }} escapes).
final class CaptionProcessingTests: XCTestCase {
    func subset(_ change: (inout DatasetSubset) -> Void) -> DatasetSubset {
        var s = DatasetSubset(imageDirectory: "/x")
        change(&s)
        return s
    }

    func testKeepTokensShuffleAndDropout() {
        var random = TrainingRandom(seed: 3)
        let caption = "zkw, red star, blue background, small, centred"
        let plain = subset { _ in }
        XCTAssertEqual(CaptionProcessing.process(caption, subset: plain, epoch: 1, random: &random), caption, "nothing asked: unchanged")
        let prefixed = subset { $0.captionPrefix = "photo of"; $0.captionSuffix = "4k" }
        XCTAssertEqual(CaptionProcessing.process("zkw", subset: prefixed, epoch: 1, random: &random), "photo of zkw 4k")
        let everySecond = subset { $0.captionDropoutEveryNEpochs = 2 }
        XCTAssertEqual(CaptionProcessing.process(caption, subset: everySecond, epoch: 2, random: &random), "")
        XCTAssertEqual(CaptionProcessing.process(caption, subset: everySecond, epoch: 3, random: &random), caption)
        let shuffled = subset { $0.shuffleCaption = true; $0.keepTokens = 1 }
        var orders = Set<String>()
        for _ in 0..<50 {
            let out = CaptionProcessing.process(caption, subset: shuffled, epoch: 1, random: &random)
            XCTAssertTrue(out.hasPrefix("zkw, "), out)
            XCTAssertEqual(Set(out.components(separatedBy: ", ")), Set(caption.components(separatedBy: ", ")))
            orders.insert(out)
        }
        XCTAssertGreaterThan(orders.count, 10, "the tags after the kept one are shuffled")
        let separated = subset { $0.shuffleCaption = true; $0.keepTokensSeparator = "|||" }
        for _ in 0..<20 {
            let out = CaptionProcessing.process("zkw, style ||| a, b, c ||| masterpiece, best", subset: separated, epoch: 1, random: &random)
            XCTAssertTrue(out.hasPrefix("zkw, style, ") && out.hasSuffix(", masterpiece, best"), out)
        }
        let dropped = subset { $0.captionTagDropoutRate = 1; $0.keepTokens = 1 }
        XCTAssertEqual(CaptionProcessing.process(caption, subset: dropped, epoch: 1, random: &random), "zkw", "every flexible tag dropped")
    }

    /// kohya's token warm-up (the first token_warmup_min flexible tags at step 0, all of them at token_warmup_step),
    /// its empty tags kept without keep_tokens_separator, the secondary separator, and multi-character separators.
    func testWarmupEmptyTagsAndSeparators() {
        var random = TrainingRandom(seed: 4)
        let caption = "zkw, a, b, c, d, e, f, g, h"
        let warm = subset { $0.keepTokens = 1; $0.tokenWarmupMin = 2; $0.tokenWarmupStep = 0.5 }
        // 100 steps: warm-up over 50; floor(step · (8 − 2) / 50) + 2 flexible tags.
        XCTAssertEqual(CaptionProcessing.process(caption, subset: warm, epoch: 1, step: 0, totalSteps: 100, random: &random), "zkw, a, b")
        XCTAssertEqual(CaptionProcessing.process(caption, subset: warm, epoch: 1, step: 25, totalSteps: 100, random: &random), "zkw, a, b, c, d, e")
        XCTAssertEqual(CaptionProcessing.process(caption, subset: warm, epoch: 1, step: 50, totalSteps: 100, random: &random), caption)
        let dropping = subset { $0.captionTagDropoutRate = 1e-9 }
        XCTAssertEqual(CaptionProcessing.process("a, , b,", subset: dropping, epoch: 1, random: &random), "a, , b, ", "kohya keeps empty tags here")
        let grouped = subset { $0.shuffleCaption = true; $0.secondarySeparator = ";;;" }
        for _ in 0..<20 {
            let out = CaptionProcessing.process("a, red;;;star, c", subset: grouped, epoch: 1, random: &random)
            XCTAssertTrue(out.contains("red,star"), "the group moved as one: \(out)")
        }
        let wide = subset { $0.shuffleCaption = true; $0.captionSeparator = " | " }
        XCTAssertEqual(Set(CaptionProcessing.process("a | b | c", subset: wide, epoch: 1, random: &random).components(separatedBy: ", ")), ["a", "b", "c"])
    }

    func testWildcards() throws {
        var random = TrainingRandom(seed: 8)
        let wild = subset { $0.enableWildcard = true }
        var seen = Set<String>()
        for _ in 0..<200 { seen.insert(CaptionProcessing.process("a {red|blue} {star|moon}\nline two", subset: wild, epoch: 1, random: &random)) }
        XCTAssertEqual(seen, ["a red star", "a red moon", "a blue star", "a blue moon", "line two"])
        XCTAssertEqual(CaptionProcessing.process("{{literal}} {x} {} {open", subset: wild, epoch: 1, random: &random), "{literal} x {} {open")
        XCTAssertEqual(CaptionProcessing.process("a {red|blue} star", subset: subset { _ in }, epoch: 1, random: &random), "a {red|blue} star",
                       "without enable_wildcard the braces stay")
        // The caption file: every non-empty line with wildcards, the first line without (read_caption).
        let folder = NSTemporaryDirectory() + "wildcard-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "first {a|b}\r\n\n  second  \n".write(toFile: folder + "/img.txt", atomically: false, encoding: .utf8)
        XCTAssertEqual(try ImageListing.caption(for: folder + "/img.png", extension: ".txt", wildcard: true), "first {a|b}\nsecond")
        XCTAssertEqual(try ImageListing.caption(for: folder + "/img.png", extension: ".txt"), "first {a|b}")
        try "windows line\r\nsecond line\r\n".write(toFile: folder + "/crlf.txt", atomically: false, encoding: .utf8)
        XCTAssertEqual(try ImageListing.caption(for: folder + "/crlf.png", extension: ".txt"), "windows line", "CRLF files: the first line")
        XCTAssertEqual(try ImageListing.caption(for: folder + "/crlf.png", extension: ".txt", wildcard: true), "windows line\nsecond line")
    }
}
