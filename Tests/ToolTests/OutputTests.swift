import LoRACore
import ToolSupport
import XCTest

/// What every tool prints goes through these: escaped human text, JSON with
/// null for non-finite numbers, exit statuses by error kind.
final class OutputTests: XCTestCase {
    func testTerminalEscapingShowsControlsAndBidiOverrides() {
        XCTAssertEqual(TerminalText.escape("plain ‖ΔW‖ café"), "plain ‖ΔW‖ café")
        XCTAssertEqual(TerminalText.escape("a\u{1B}[2Jb"), #"a\x1b[2Jb"#)
        XCTAssertEqual(TerminalText.escape("x\ny\tz\r"), #"x\x0ay\x09z\x0d"#)
        XCTAssertEqual(TerminalText.escape("\u{7F}\u{85}\u{9B}"), #"\x7f\x85\x9b"#)
        XCTAssertEqual(TerminalText.escape("abc\u{202E}exe.txt\u{2066}"), #"abc\u{202e}exe.txt\u{2066}"#)
        XCTAssertEqual(TerminalText.escape("\u{200F}"), "\u{200F}", "marks that only hint direction are left")
    }

    func testNonFiniteNumbersAreNullInJSON() throws {
        struct Row: Encodable { var norm: Double; var max: Float; var name: String }
        let text = try JSONOutput.string([Row(norm: .nan, max: .infinity, name: "nan"), Row(norm: 1.5, max: -.infinity, name: "x")])
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])
        XCTAssertTrue(rows[0]["norm"] is NSNull, text)
        XCTAssertTrue(rows[0]["max"] is NSNull, text)
        XCTAssertTrue(rows[1]["max"] is NSNull, text)
        XCTAssertEqual(rows[1]["norm"] as? Double, 1.5)
        XCTAssertEqual(rows[0]["name"] as? String, "nan", "strings are left alone")
    }

    func testExitStatusByErrorKind() {
        XCTAssertEqual(ExitStatus.of(ModelError(.dangerous, "")), 3)
        XCTAssertEqual(ExitStatus.of(ModelError(.invalid, "")), 2)
        XCTAssertEqual(ExitStatus.of(ModelError(.io, "")), 2)
        XCTAssertEqual(ExitStatus.of(ModelError(.unsupported, "")), 2)
        XCTAssertEqual(ExitStatus.of(ModelError(.mismatch, "")), 1)
    }
}
