import Foundation
import ToolSupport
import XCTest

/// man/ and completions/ are generated from the argument parsers; this test
/// fails when they are stale. Regenerate with:
///     LORA_TOOLS_UPDATE_DOCS=1 swift test --filter DocsSyncTests
final class DocsSyncTests: XCTestCase {
    private var updating: Bool { ProcessInfo.processInfo.environment["LORA_TOOLS_UPDATE_DOCS"] == "1" }

    private func check(_ generated: String, against relative: String) throws {
        let path = ToolRunner.repoRoot + "/" + relative
        if updating {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try generated.write(toFile: path, atomically: false, encoding: .utf8)
            return
        }
        let committed = try? String(contentsOfFile: path, encoding: .utf8)
        XCTAssertEqual(committed, generated, "\(relative) is stale: run LORA_TOOLS_UPDATE_DOCS=1 swift test --filter DocsSyncTests")
    }

    func testManPagesMatchTheParsers() throws {
        for tool in ToolRunner.tools {
            let dump = try ToolRunner.run(tool, ["--experimental-dump-help"])
            XCTAssertEqual(dump.status, 0, dump.stderr)
            let page = try ManualPage.render(dumpHelpJSON: Data(dump.stdout.utf8))
            XCTAssertTrue(page.hasPrefix(".TH \(tool.uppercased()) 1"))
            try check(page, against: "man/\(tool).1")
        }
    }

    func testCompletionScriptsMatchTheParsers() throws {
        for tool in ToolRunner.tools {
            for (shell, file) in [("bash", "completions/\(tool).bash"), ("zsh", "completions/_\(tool)"), ("fish", "completions/\(tool).fish")] {
                let result = try ToolRunner.run(tool, ["--generate-completion-script", shell])
                XCTAssertEqual(result.status, 0, result.stderr)
                XCTAssertFalse(result.stdout.isEmpty)
                try check(result.stdout, against: file)
            }
        }
    }
}
