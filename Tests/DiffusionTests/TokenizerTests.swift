import Diffusion
import Foundation
import XCTest

/// Token ids, A1111 prompt parsing and 75-token chunks against the golden
/// data from transformers' CLIPTokenizer, open_clip and A1111's own code.
final class TokenizerTests: XCTestCase {
    /// The Hugging Face cache is found where huggingface_hub puts it: HF_HUB_CACHE first, then HF_HOME/hub.
    func testTokenizerSearchFollowsHuggingFaceCacheVariables() {
        func hubRoots() -> [String] {
            BPETokenizer.candidates(near: nil).filter { $0.contains("models--openai--clip-vit-large-patch14") }
        }
        setenv("HF_HOME", "/tmp/hf-home", 1)
        defer { unsetenv("HF_HOME"); unsetenv("HF_HUB_CACHE") }
        XCTAssertTrue(hubRoots().allSatisfy { $0.hasPrefix("/tmp/hf-home/hub/") }, "\(hubRoots())")
        setenv("HF_HUB_CACHE", "/tmp/hf-hub-cache", 1)
        XCTAssertTrue(hubRoots().allSatisfy { $0.hasPrefix("/tmp/hf-hub-cache/") }, "\(hubRoots())")
        XCTAssertFalse(hubRoots().isEmpty)
    }

    func testIdsMatchHuggingFaceAndOpenCLIP() throws {
        let golden = EngineGolden.info["tokenizer"] as! [String: Any]
        let prompts = golden["prompts"] as! [String]
        let hf = golden["huggingface"] as! [[Int]], oc = golden["openclip"] as! [[Int]]
        for (i, prompt) in prompts.enumerated() {
            XCTAssertEqual(EngineGolden.tokenizer.encode(prompt), hf[i], "Hugging Face ids of \(prompt.debugDescription)")
            XCTAssertEqual(EngineGolden.tokenizer.encode(prompt, unescapeHTML: true), oc[i], "open_clip ids of \(prompt.debugDescription)")
        }
    }

    func testPromptAttentionMatchesA1111() {
        for case let entry as [String: Any] in EngineGolden.info["parse"] as! [Any] {
            let prompt = entry["prompt"] as! String
            let expected = (entry["segments"] as! [[Any]]).map { PromptAttention.Segment(text: $0[0] as! String, weight: ($0[1] as! NSNumber).doubleValue) }
            let parsed = PromptAttention.parse(prompt)
            // Foundation's JSON reader rounds some doubles off by an ulp: compare weights closely, not bitwise.
            XCTAssertEqual(parsed.map(\.text), expected.map(\.text), prompt)
            for (a, b) in zip(parsed, expected) { XCTAssertEqual(a.weight, b.weight, accuracy: 1e-12 * abs(b.weight), prompt) }
        }
    }

    /// sd-scripts' copy of the parser (--weighted_captions): its docstring's examples, no BREAK, no spaces inside a weight.
    func testKohyaDialect() {
        func parse(_ s: String) -> [PromptAttention.Segment] { PromptAttention.parse(s, dialect: .kohya) }
        XCTAssertEqual(parse("an (important) word"), [.init(text: "an ", weight: 1), .init(text: "important", weight: 1.1), .init(text: " word", weight: 1)])
        XCTAssertEqual(parse("\\(literal\\]"), [.init(text: "(literal]", weight: 1)])
        XCTAssertEqual(parse("(unnecessary)(parens)"), [.init(text: "unnecessaryparens", weight: 1.1)])
        XCTAssertEqual(parse("a BREAK b"), [.init(text: "a BREAK b", weight: 1)], "no BREAK in sd-scripts")
        XCTAssertEqual(PromptAttention.parse("a BREAK b").count, 3, "A1111's BREAK")
        XCTAssertEqual(parse("(word: 1.2)"), [.init(text: "word: 1.2", weight: 1.1)], "sd-scripts' regex takes no space after the colon")
        XCTAssertEqual(PromptAttention.parse("(word: 1.2)"), [.init(text: "word", weight: 1.2)])
        XCTAssertEqual(parse("(word:1.2)"), [.init(text: "word", weight: 1.2)])
    }

    func testMalformedWeightsDoNotCrash() {
        // A1111 raises on these; we keep them as text.
        XCTAssertEqual(PromptAttention.parse("(e:1.2.3)"), [.init(text: "e:1.2.3", weight: 1.1)])
        XCTAssertEqual(PromptAttention.parse("(x:.)"), [.init(text: "x:.", weight: 1.1)])
        XCTAssertEqual(PromptAttention.parse(String(repeating: "(", count: 10_000) + "deep"),
                       [.init(text: "deep", weight: pow(1.1, 10_000))])
    }

    func testChunksMatchA1111() {
        for (family, openCLIP) in [("sd1", false), ("sd2", true)] {
            let chunker = PromptChunker(tokenizer: EngineGolden.tokenizer, openCLIP: openCLIP)
            for case let entry as [String: Any] in EngineGolden.info["chunks_\(family)"] as! [Any] {
                let prompt = entry["prompt"] as! String
                let chunks = chunker.chunks(prompt)
                let tokens = entry["tokens"] as! [[Int]]
                let multipliers = (entry["multipliers"] as! [[NSNumber]]).map { $0.map(\.doubleValue) }
                XCTAssertEqual(chunks.map(\.tokens), tokens, "\(family): \(prompt)")
                XCTAssertEqual(chunks.count, multipliers.count)
                for (a, b) in zip(chunks.map(\.multipliers).joined(), multipliers.joined()) {
                    XCTAssertEqual(a, b, accuracy: 1e-12, "\(family): \(prompt)")
                }
            }
        }
    }
}
