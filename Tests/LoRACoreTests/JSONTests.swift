import LoRACore
import XCTest

final class JSONTests: XCTestCase {
    func testParsesValuesExactly() throws {
        let json = try JSONParser.parse(#" {"a": [1, -2.5e3, true, false, null], "b": "x\u00e9\n\ud83d\ude00", "big": 18446744073709551615} "#)
        XCTAssertEqual(json["big"]?.uint64, UInt64.max)
        XCTAssertEqual(json["b"]?.stringValue, "xé\n😀")
        guard case let .array(items)? = json["a"] else { return XCTFail() }
        XCTAssertEqual(items[1].double, -2500)
        XCTAssertNil(items[1].uint64)
        XCTAssertEqual(items[2], .bool(true))
    }

    func testRejectsWhatStrictJSONForbids() {
        let bad = [#"{"a":1,"a":2}"#, "{", #"{"a":}"#, "[1,]", "01", "1.", #"{"a":"\x"}"#, "\"\u{01}\"", #""\ud800""#,
                   "nul", "[1] 2", #"{"a" 1}"#, "+1", "-", String(repeating: "[", count: 100) + String(repeating: "]", count: 100)]
        for text in bad {
            XCTAssertThrowsError(try JSONParser.parse(text), text)
        }
    }

    func testSerialisationRoundTrips() throws {
        let value = JSON.object([("k\"ey", .string("a\\b\u{1}")), ("n", .number("12")), ("l", .array([.null, .bool(false)]))])
        XCTAssertEqual(try JSONParser.parse(value.serialized()), value)
    }

    /// sd-scripts stores its JSON metadata with Python's json.dumps defaults; this is what CPython 3.11 printed for
    /// json.dumps({'a"b': [1, 'é🚀\x7f\n', None, True], 'c': {'d': 'x'}}).
    func testPythonDumpsAsCPython() {
        let value = JSON.object([("a\"b", .array([.number("1"), .string("é🚀\u{7f}\n"), .null, .bool(true)])), ("c", .object([("d", .string("x"))]))])
        XCTAssertEqual(value.pythonDumps(), #"{"a\"b": [1, "\u00e9\ud83d\ude80\u007f\n", null, true], "c": {"d": "x"}}"#)
        XCTAssertEqual(try JSONParser.parse(value.pythonDumps()), value, "and it reads back")
    }
}
