import Foundation
import LoRACore
import XCTest

/// The TOML reader against Python's tomllib (the reference TOML 1.0 reader):
/// the values it reads from kohya configs and TOML's features, and the
/// documents it refuses (Fixtures/golden/make_toml_golden.py); and hostile
/// bytes are errors with a line, never a crash.
final class TOMLTests: XCTestCase {
    nonisolated(unsafe) static let cases: [String: Any] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/golden/toml/cases.json")
        return try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }()

    /// tomllib's value (ints and floats tagged by the golden script) equals ours.
    func check(_ ours: JSON, _ expected: Any, _ path: String) {
        switch (ours, expected) {
        case let (.object(members), dict as [String: Any]):
            if dict.count == 1, let text = dict["int"] as? String {
                XCTAssertEqual(ours, .number(text), path)
                return
            }
            if dict.count == 1, let text = dict["float"] as? String {
                guard case let .number(n) = ours, let a = Double(n == "inf" ? "inf" : n) else { return XCTFail("\(path): \(ours) is not a float") }
                XCTAssertEqual(a, Double(text) ?? (text == "inf" ? .infinity : -.infinity), path)
                return
            }
            XCTAssertEqual(Set(members.map(\.0)), Set(dict.keys), path)
            for (key, value) in members { if let e = dict[key] { check(value, e, path + "." + key) } }
        case let (.number(n), dict as [String: Any]):
            if let text = dict["int"] as? String { XCTAssertEqual(n, text, path) } else if let text = dict["float"] as? String {
                XCTAssertEqual(Double(n == "-inf" ? "-inf" : n), Double(text) ?? (text.hasPrefix("-") ? -.infinity : .infinity), path)
            } else { XCTFail("\(path): \(dict)") }
        case let (.array(items), list as [Any]):
            XCTAssertEqual(items.count, list.count, path)
            for (n, (a, b)) in zip(items, list).enumerated() { check(a, b, "\(path)[\(n)]") }
        case let (.string(s), text as String): XCTAssertEqual(s, text, path)
        case let (.bool(b), value as Bool): XCTAssertEqual(b, value, path)
        default: XCTFail("\(path): \(ours) vs \(expected)")
        }
    }

    func testValuesEqualTomllib() throws {
        let good = try XCTUnwrap(Self.cases["good"] as? [String: [String: Any]])
        XCTAssertEqual(good.count, 5)
        for (name, item) in good {
            let text = try XCTUnwrap(item["toml"] as? String)
            do {
                check(try TOML.parse(text), try XCTUnwrap(item["value"]), name)
            } catch {
                XCTFail("\(name): \(error)")
            }
        }
    }

    func testRefusesWhatTomllibRefuses() throws {
        let bad = try XCTUnwrap(Self.cases["bad"] as? [String: [String: Any]])
        XCTAssertEqual(bad.count, 13)
        for (name, item) in bad {
            let text = try XCTUnwrap(item["toml"] as? String)
            XCTAssertThrowsError(try TOML.parse(text), name) { error in
                XCTAssertTrue("\(error)".hasPrefix("line "), "\(name): \(error)")
            }
        }
    }

    /// Mutated documents: each parse returns or throws (no crash, no hang).
    func testHostileDocumentsAreErrors() throws {
        let good = try XCTUnwrap(Self.cases["good"] as? [String: [String: Any]])
        var seed: UInt64 = 7
        func next() -> Int { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return Int(seed >> 33) }
        let alphabet = Array("[]{}\"'=,.#\n\\ _-+0123456789abcxyzé\u{0}\r\t".unicodeScalars)
        for (_, item) in good {
            let base = Array((item["toml"] as! String).unicodeScalars)
            for _ in 0..<300 {
                var s = base
                for _ in 0..<(1 + next() % 4) {
                    let at = next() % max(1, s.count)
                    switch next() % 3 {
                    case 0: s.insert(alphabet[next() % alphabet.count], at: at)
                    case 1: if !s.isEmpty { s.remove(at: at) }
                    default: if !s.isEmpty { s[at] = alphabet[next() % alphabet.count] }
                    }
                }
                var text = ""
                text.unicodeScalars.append(contentsOf: s)
                _ = try? TOML.parse(text)
            }
        }
        XCTAssertThrowsError(try TOML.parse(String(repeating: "a = ", count: 1) + String(repeating: "[", count: 10_000)))
    }

    /// What --output_config writes reads back as the same values: quotes, backslashes, control characters,
    /// DEL (which TOML, unlike JSON, wants escaped), non-ASCII, keys that must be quoted, numbers, arrays.
    func testFlatDocumentsReadBack() throws {
        let members: [(String, JSON)] = [
            ("output_name", .string("my \"char\" \\ v2\té😀\u{7F}\u{1}")), ("network_dim", .number("32")), ("learning_rate", .number("1e-4")),
            ("noise_offset", .number("-0.05")), ("enable_bucket", .bool(true)), ("a key", .string("x")),
            ("network_args", .array([.string("conv_dim=4"), .number("2")])),
        ]
        let text = TOML.document(members)
        XCTAssertTrue(text.contains("\\u007f"), text)
        XCTAssertTrue(text.hasPrefix("output_name = \""), text)
        XCTAssertTrue(text.contains("\n\"a key\" = \"x\"\n"), text)
        XCTAssertEqual(try TOML.parse(text), .object(members))
    }
}
