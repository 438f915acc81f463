import FixtureKit
import Foundation
import LoRACore
import XCTest

/// Hostile files and the exit statuses every tool shares: each bad input is
/// one line naming the file and a documented status, never a crash, and
/// text from a file never reaches the terminal as control characters.
final class HostileInputCLITests: XCTestCase {
    var folder = ""

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "hostile-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// 50,000 nested lists in 100 KB, bare and inside a torch zip: SIGSEGV
    /// in every tool before; now exit 2 with one line, and `--summary` over a
    /// downloads folder reports the file and goes on.
    func testDeeplyNestedPickleIsUnreadableInEveryTool() throws {
        let pickle: [UInt8] = [0x80, 0x02] + [UInt8](repeating: UInt8(ascii: "("), count: 50_000)
            + [UInt8](repeating: UInt8(ascii: "l"), count: 50_000) + [UInt8(ascii: ".")]
        let bare = folder + "/deep.pt", zipped = folder + "/deep_zip.ckpt"
        FileManager.default.createFile(atPath: bare, contents: Data(pickle))
        FileManager.default.createFile(atPath: zipped, contents: Data(ZipBuilder.build([("archive/data.pkl", pickle), ("archive/version", Array("3\n".utf8))])))
        let lora = "Fixtures/models/sd1_tiny_lora.safetensors", model = "Fixtures/models/sd1_tiny.safetensors"

        for file in [bare, zipped] {
            let inspect = try ToolRunner.run("lora-inspect", [file])
            XCTAssertEqual(inspect.status, 2, inspect.stdout + inspect.stderr)
            XCTAssertTrue(inspect.stdout.contains("nested more than 200 levels"), inspect.stdout)
            let summary = try ToolRunner.run("lora-inspect", ["--summary", lora, file, model])
            XCTAssertEqual(summary.status, 2)
            let rows = summary.stdout.split(separator: "\n")
            XCTAssertEqual(rows.count, 4, summary.stdout)
            XCTAssertTrue(rows[2].contains("unreadable"), summary.stdout)
            XCTAssertTrue(rows[3].contains("checkpoint"), "the file after it is still inspected: \(summary.stdout)")

            for (tool, arguments) in [("lora-merge", ["--model", file, "--lora", lora, "-o", folder + "/out.safetensors"]),
                                      ("lora-merge", ["--model", model, "--lora", file, "-o", folder + "/out.safetensors"]),
                                      ("lora-merge", ["loras", file, lora, "-o", folder + "/out.safetensors"]),
                                      ("lora-extract", ["--base", file, "--tuned", model, "--rank", "2", "-o", folder + "/out.safetensors"])] {
                let result = try ToolRunner.run(tool, arguments + ["--quiet"])
                XCTAssertEqual(result.status, 2, "\(tool) \(arguments): \(result.stderr)")
                let lines = result.stderr.split(separator: "\n")
                XCTAssertEqual(lines.count, 1, result.stderr)
                XCTAssertTrue(lines.first?.hasPrefix("Error: \(file): pickle: containers nested more than") ?? false, result.stderr)
                XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/out.safetensors"), "nothing written")
            }
        }
        // --json: the error as JSON on standard output too.
        let json = try ToolRunner.run("lora-merge", ["--model", bare, "--lora", lora, "-o", folder + "/out.safetensors", "--json"])
        XCTAssertEqual(json.status, 2)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let error = try XCTUnwrap(object["error"] as? [String: Any])
        XCTAssertEqual(error["kind"] as? String, "invalid")
        XCTAssertEqual(error["file"] as? String, bare)
        XCTAssertEqual(error["exitStatus"] as? Int, 2)
        XCTAssertNotNil(error["offset"])
    }

    /// The same exit status for the same fault in every tool: 3 for a dangerous pickle, 1 for a job
    /// the inputs cannot do (a LoRA of another family), 64 for bad arguments.
    func testExitStatusesAreTheSameInEveryTool() throws {
        let evil = "Fixtures/golden/evil/os_system.ckpt", lora = "Fixtures/models/sd1_tiny_lora.safetensors"
        let model = "Fixtures/models/sd1_tiny.safetensors", out = folder + "/out.safetensors"
        let sdxlLoRA = "Fixtures/golden/sdxl_kohya_lora.safetensors"
        let cases: [(String, [String], Int32)] = [
            ("lora-inspect", [evil], 3),
            ("lora-merge", ["--model", evil, "--lora", lora, "-o", out], 3),
            ("lora-merge", ["--model", model, "--lora", evil, "-o", out], 3),
            ("lora-merge", ["loras", evil, "-o", out], 3),
            ("lora-extract", ["--base", evil, "--tuned", model, "--rank", "2", "-o", out], 3),
            ("lora-extract", ["resize", evil, "--rank", "2", "-o", out], 3),
            ("lora-merge", ["--model", model, "--lora", sdxlLoRA, "-o", out], 1),
            ("lora-merge", ["--model", model, "--lora", lora, "-o", out, "--precision", "fp8"], 64),
            ("lora-xyz", ["--model", model, "--seeds", "x", "--dry-run"], 64),
            ("lora-xyz", ["--model", model, "--width", "0"], 64),
            ("lora-xyz", ["--model", evil, "--dry-run"], 3),
        ]
        for (tool, arguments, status) in cases {
            let result = try ToolRunner.run(tool, arguments + (tool == "lora-inspect" ? [] : ["--quiet"]))
            XCTAssertEqual(result.status, status, "\(tool) \(arguments.joined(separator: " ")): \(result.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
    }

    /// A LoRA whose metadata tries to clear the screen, retitle the terminal,
    /// move up and erase the line above, and reverse a name with a bidi override.
    func testControlCharactersFromMetadataNeverReachTheTerminal() throws {
        let path = folder + "/evil_meta.safetensors"
        var options = FixtureGenerator.LoRAOptions()
        options.metadata["ss_output_name"] = "name\u{1B}[2J\u{1B}]0;pwned\u{07}"
        options.metadata["modelspec.title"] = "title\u{1B}[3A\u{1B}[J\u{202E}txt.exe"
        options.metadata["ss_tag_frequency"] = #"{"1_x": {"tag\u001b[31m": 3, "ok": 2}}"#
        options.metadata["sshs_model_hash"] = "\u{1B}[1A\u{1B}[2Kdeadbeef"
        options.metadata["ss_comment\u{9B}31m"] = "key too"
        try FixtureGenerator.writeLoRA(.tiny(.sd1), to: path, options: options)
        for arguments in [[path], [path, "--metadata"], [path, "--summary"], [path, "--modules", "--metadata"]] {
            let result = try ToolRunner.run("lora-inspect", arguments)
            for (stream, text) in [("stdout", result.stdout), ("stderr", result.stderr)] {
                let controls = text.unicodeScalars.filter { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value)
                    || (0x202A...0x202E).contains($0.value) || (0x2066...0x2069).contains($0.value) }
                XCTAssertTrue(controls.isEmpty, "\(arguments) \(stream) carries \(controls.map { String($0.value, radix: 16) })")
            }
            if arguments.contains("--metadata") {
                XCTAssertTrue(result.stdout.contains(#"name\x1b[2J\x1b]0;pwned\x07"#), result.stdout)
                XCTAssertTrue(result.stdout.contains(#"\u{202e}txt.exe"#), result.stdout)
                XCTAssertTrue(result.stdout.contains(#"ss_comment\x9b31m"#), result.stdout)
            }
        }
        // JSON keeps the text exact (escaped by JSON itself).
        let json = try ToolRunner.run("lora-inspect", [path, "--json"])
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let metadata = try XCTUnwrap(object["metadata"] as? [String: String])
        XCTAssertEqual(metadata["ss_output_name"], "name\u{1B}[2J\u{1B}]0;pwned\u{07}")
    }

    /// The tiny LoRA with one NaN in one module's down factor.
    func nanLoRA() throws -> (path: String, module: String) {
        let source = try ModelFile.open(ToolRunner.repoRoot + "/Fixtures/models/sd1_tiny_lora.safetensors")
        let victim = try XCTUnwrap(source.tensors.first { $0.name.hasSuffix(".lora_down.weight") && $0.name.contains("unet") })
        let path = folder + "/nan.safetensors"
        let writer = try SafeTensorsWriter(
            path: path, metadata: source.metadata, entries: source.tensors.map { .init(name: $0.name, dtype: .f32, shape: $0.shape) })
        for tensor in source.tensors {
            var values = tensor.floats()
            if tensor.name == victim.name { values[1] = .nan }
            try values.withUnsafeBufferPointer { try writer.write(name: tensor.name, floats: $0) }
        }
        try writer.finish()
        return (path, String(victim.name.dropLast(".lora_down.weight".count)))
    }

    /// One NaN: lora-inspect --svd keeps the report (nan-values, exit 1) instead
    /// of calling the file unreadable; the tools that factor ΔW name the module
    /// and say why; --allow-nan merges with a warning.
    func testNaNInALoRAIsNamedNotAnSVDFailure() throws {
        let (nan, module) = try nanLoRA()
        let inspect = try ToolRunner.run("lora-inspect", [nan, "--svd"])
        XCTAssertEqual(inspect.status, 1, inspect.stdout)
        XCTAssertTrue(inspect.stdout.contains("nan-values"), inspect.stdout)
        XCTAssertTrue(inspect.stdout.contains("effective rank"), "the other modules' spectra are kept: \(inspect.stdout)")
        let json = try ToolRunner.run("lora-inspect", [nan, "--svd", "--modules", "--json"])
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let modules = try XCTUnwrap((object["lora"] as? [String: Any])?["modules"] as? [[String: Any]])
        let entry = try XCTUnwrap(modules.first { $0["name"] as? String == module })
        XCTAssertTrue(entry["norm"] is NSNull, "NaN is null in JSON: \(entry)")
        XCTAssertNil(entry["rank90"])

        let out = folder + "/out.safetensors"
        for (tool, arguments) in [("lora-extract", ["resize", nan, "--rank", "1", "-o", out]),
                                  ("lora-merge", ["loras", nan, "--rank", "1", "--allow-nan", "-o", out])] {
            let result = try ToolRunner.run(tool, arguments + ["--quiet"])
            XCTAssertEqual(result.status, 2, "\(tool): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("ΔW holds NaN or Inf values") && result.stderr.contains(module), "\(tool): \(result.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
        let refused = try ToolRunner.run("lora-merge", ["--model", "Fixtures/models/sd1_tiny.safetensors", "--lora", nan, "-o", out, "--quiet"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("--allow-nan"), refused.stderr)
        let allowed = try ToolRunner.run("lora-merge", ["--model", "Fixtures/models/sd1_tiny.safetensors", "--lora", nan, "-o", out, "--quiet", "--allow-nan"])
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
        XCTAssertTrue(allowed.stderr.contains("warning: merged 1 LoRA tensor(s) holding NaN or Inf"), allowed.stderr)
        try? FileManager.default.removeItem(atPath: out)
        let concat = try ToolRunner.run("lora-merge", ["loras", nan, "--allow-nan", "-o", out, "--quiet"])
        XCTAssertEqual(concat.status, 0, concat.stderr)
        XCTAssertTrue(concat.stderr.contains("the combined LoRA holds NaN/Inf too"), concat.stderr)
    }

    /// A LoRA where a checkpoint goes, a checkpoint where a LoRA goes, the same
    /// model as base and tuned: each says so in one line.
    func testSwappedRolesAreNamed() throws {
        let lora = "Fixtures/models/sd1_tiny_lora.safetensors", model = "Fixtures/models/sd1_tiny.safetensors"
        let out = folder + "/out.safetensors"
        let copy = folder + "/copy.safetensors"
        try FileManager.default.copyItem(atPath: model, toPath: copy)
        let cases: [(String, [String], String)] = [
            ("lora-merge", ["--model", lora, "--lora", lora, "-o", out], "\(lora): this is a LoRA (264 modules), not a checkpoint"),
            ("lora-merge", ["--model", model, "--lora", model, "-o", out], "\(model): this is a Stable Diffusion checkpoint, not a LoRA"),
            ("lora-merge", ["loras", model, "-o", out], "this is a Stable Diffusion checkpoint, not a LoRA"),
            ("lora-extract", ["--base", lora, "--tuned", model, "--rank", "2", "-o", out], "this is a LoRA (264 modules), not a checkpoint"),
            ("lora-extract", ["--base", model, "--tuned", lora, "--rank", "2", "-o", out], "this is a LoRA (264 modules), not a checkpoint"),
            ("lora-extract", ["resize", model, "--rank", "2", "-o", out], "this is a Stable Diffusion checkpoint, not a LoRA"),
            ("lora-extract", ["--base", model, "--tuned", model, "--rank", "2", "-o", out], "the same file"),
            ("lora-extract", ["--base", model, "--tuned", copy, "--rank", "2", "-o", out], "identical in every weight"),
            (
                "lora-xyz", ["--model", lora, "--dry-run", "--tokenizer", "Fixtures/tokenizer/clip_bpe_merges.txt.gz"],
                "this is a LoRA (264 modules), not a checkpoint"
            ),
        ]
        for (tool, arguments, message) in cases {
            let result = try ToolRunner.run(tool, arguments + ["--quiet"])
            XCTAssertEqual(result.status, 1, "\(tool) \(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(message), "\(tool) \(arguments): \(result.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(tool) \(arguments) wrote an output")
        }
    }

    /// Outputs: a folder as -o is refused before any work, .SAFETENSORS is a
    /// safetensors name, a replaced output keeps its permissions, and what a
    /// killed run left (a hidden temporary of a dead process) is removed by the next.
    func testOutputPolicy() throws {
        let model = "Fixtures/models/sd1_tiny.safetensors", lora = "Fixtures/models/sd1_tiny_lora.safetensors"
        for (tool, arguments) in [("lora-merge", ["--model", model, "--lora", lora, "-o", folder]),
                                  ("lora-extract", ["resize", lora, "--rank", "2", "-o", folder]),
                                  ("lora-xyz", ["--model", model, "-o", folder, "--dry-run"])] {
            let result = try ToolRunner.run(tool, arguments + ["--quiet"])
            XCTAssertEqual(result.status, 1, "\(tool): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("the output is a folder"), "\(tool): \(result.stderr)")
        }
        let upper = folder + "/MERGED.SAFETENSORS"
        XCTAssertEqual(try ToolRunner.run("lora-merge", ["--model", model, "--lora", lora, "-o", upper, "--quiet"]).status, 0)
        XCTAssertEqual(chmod(upper, 0o664), 0)
        // A dead process's leftover next to it, and a live one's (ours: this test process) that must stay.
        let stale = folder + "/.MERGED.SAFETENSORS.999999.1a2b.tmp", live = folder + "/.MERGED.SAFETENSORS.\(getpid()).3c4d.tmp"
        FileManager.default.createFile(atPath: stale, contents: Data(count: 1000))
        FileManager.default.createFile(atPath: live, contents: Data(count: 10))
        let again = try ToolRunner.run("lora-merge", ["--model", model, "--lora", lora + ":0.5", "-o", upper, "--quiet"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("note: removed \(stale)"), again.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale))
        XCTAssertTrue(FileManager.default.fileExists(atPath: live), "a running process's temporary file is left alone")
        var info = stat()
        XCTAssertEqual(stat(upper, &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o664, "the replaced output keeps its permissions")
    }

    /// A FIFO (or device) among the files is reported, not waited on forever.
    func testNonRegularFilesAreRefusedWithoutHanging() throws {
        let fifo = folder + "/pipe.safetensors"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let started = Date()
        let result = try ToolRunner.run("lora-inspect", ["--summary", fifo, "/dev/zero", "Fixtures/models/sd1_tiny_lora.safetensors"])
        XCTAssertLessThan(Date().timeIntervalSince(started), 20)
        XCTAssertEqual(result.status, 2)
        let report = try ToolRunner.run("lora-inspect", [fifo])
        XCTAssertTrue(report.stdout.contains("is a FIFO (named pipe), not a file"), report.stdout)
        let merge = try ToolRunner.run("lora-merge", ["--model", "Fixtures/models/sd1_tiny.safetensors", "--lora", fifo, "-o", folder + "/o.safetensors", "-q"])
        XCTAssertEqual(merge.status, 2, merge.stderr)
    }
}
