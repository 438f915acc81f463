import Foundation
import XCTest

/// The committed bash completions, run by bash as a user's TAB would: the
/// README's form without a subcommand completes the default subcommand's
/// options, and option values complete from their lists.
final class CompletionTests: XCTestCase {
    /// COMPREPLY for a command line whose last word is being completed.
    func complete(_ tool: String, _ words: [String]) throws -> [String] {
        let driver = """
            source "$1"; shift; fn="$1"; shift
            COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
            COMPREPLY=(); "$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", driver, "bash", ToolRunner.repoRoot + "/completions/\(tool).bash", "_" + tool, tool] + words
        process.currentDirectoryURL = URL(fileURLWithPath: ToolRunner.repoRoot)
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    func testDefaultSubcommandAndOptionValuesComplete() throws {
        XCTAssertEqual(try complete("lora-merge", ["--prec"]), ["--precision"])
        let precisions = try complete("lora-merge", ["--model", "x.safetensors", "--precision", ""])
        XCTAssertEqual(precisions, ["fp16", "bf16", "fp32"], "values only, no subcommand names after the first word")
        XCTAssertTrue(try complete("lora-merge", [""]).contains("loras"), "subcommands are still offered first")
        XCTAssertTrue(try complete("lora-merge", ["loras", "--ra"]).contains("--rank"))
        XCTAssertTrue(try complete("lora-xyz", ["--sampler", ""]).contains("euler_a"))
        XCTAssertTrue(try complete("lora-xyz", ["--x", ""]).contains("prompt-sr"))
        XCTAssertTrue(try complete("lora-xyz", ["--lbw", ""]).contains("OUTALL"))
        XCTAssertTrue(try complete("lora-xyz", ["--rng-"]).contains("--rng-variant"))
        XCTAssertTrue(try complete("lora-extract", ["--conv"]).contains("--conv-rank"))
        XCTAssertTrue(try complete("lora-extract", ["--base", "Fixtures/models/"]).contains("Fixtures/models/sd1_tiny.safetensors"),
                      "files by extension")
    }
}
