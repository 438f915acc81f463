import Diffusion
import Foundation
import Imaging
import XCTest
@testable import XYZPlot

/// The `parameters` chunk against Fixtures/golden/xyz/infotext.json, made by
/// make_infotext_golden.py from A1111's own quote/parse code and PIL.
final class InfotextGoldenTests: XCTestCase {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    func testInfotextAndPNGChunkMatchA1111() throws {
        let data = try XCTUnwrap(FileManager.default.contents(atPath: Self.root + "/Fixtures/golden/xyz/infotext.json"))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let cases = try XCTUnwrap(json["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 3)
        for c in cases {
            let sampler = try XCTUnwrap(SamplerChoice(name: c["sampler_choice"] as! String))
            var p = GenerationParameters(prompt: c["prompt"] as! String, negativePrompt: c["negative"] as! String,
                                         seed: (c["seed"] as! NSNumber).uint64Value, steps: c["steps"] as! Int,
                                         cfgScale: (c["cfg"] as! NSNumber).floatValue, sampler: sampler,
                                         width: c["width"] as! Int, height: c["height"] as! Int, clipSkip: c["clip_skip"] as! Int)
            p.emphasis = .original
            let hashes = (c["lora_hashes"] as! [[String]]).map { (name: $0[0], hash: $0[1]) }
            let vae = (c["vae_name"] as? String).map { Infotext.Model(hash: c["vae_hash"] as! String, name: $0) }
            let info = Infotext(p, model: .init(hash: c["model_hash"] as! String, name: c["model_name"] as! String), vae: vae,
                                loraHashes: hashes, version: c["version"] as? String)
            XCTAssertEqual(info.text, c["text"] as! String)
            let chunk = PNGCodec.textChunk(key: "parameters", value: info.text)
            XCTAssertEqual(chunk.map { String(format: "%02x", $0) }.joined(), c["chunk_hex"] as! String, "\(c["chunk_type"]!) chunk bytes")
            // And the chunk survives a PNG round trip.
            let png = try PNGCodec.encode(Bitmap(width: 3, height: 2, fill: RGB(10, 20, 30)), text: [("parameters", info.text)])
            XCTAssertEqual(PNGCodec.textChunks(png)["parameters"], info.text)
            XCTAssertEqual(try PNGCodec.decode(png), Bitmap(width: 3, height: 2, fill: RGB(10, 20, 30)))
        }
    }

    func testNumbersAndQuotingFollowPython() {
        XCTAssertEqual(Infotext.number(7), "7")
        XCTAssertEqual(Infotext.number(7.5), "7.5")
        XCTAssertEqual(Infotext.number(0.1), "0.1")
        XCTAssertEqual(Infotext.number(-0.25), "-0.25")
        XCTAssertEqual(Infotext.quote("plain"), "plain")
        XCTAssertEqual(Infotext.quote("a: \"b\"\\"), "\"a: \\\"b\\\"\\\\\"")
        XCTAssertEqual(Infotext.quote("x\ny"), "\"x\\ny\"")
    }
}
