import Foundation
import LoRACore
import ToolSupport

/// kohya's `--config_file` (sd-scripts train_util.py `read_config_from_file`):
/// a TOML of training arguments, top-level or in sections (the sections are
/// flattened), whose values act as defaults that the command line overrides.
/// Here they become arguments in front of the user's: `key = true` → `--key`,
/// `key = "v"` / number → `--key v`, arrays → `--key a b`. A key set to
/// false, "" or [] asks for nothing and is skipped (the kohya_ss GUI writes
/// many such). A flag given a number (the GUI writes `persistent_data_loader_workers = 0`, and argparse
/// keeps the TOML's value as it is) is set when the number is not 0. A key that is no sd-scripts argument either (the GUI's own
/// `epoch`, `noise_offset_type` …) is skipped with a note, as sd-scripts
/// skips it silently; an sd-scripts argument lora-train does not have is
/// refused by the parser, and the error says it came from the file.
enum ConfigFile {
    static let spellings = ["--config-file", "--config_file", "--config"]

    /// The arguments with the config file's in front; the keys it supplied (for error messages).
    /// `ours`: lora-train's option names (asked for only when there is a config file).
    static func expand(_ arguments: [String], ours names: () -> OptionNames = { OptionNames() })
        throws(ModelError) -> (arguments: [String], keys: [String: String]) {
        guard let index = arguments.firstIndex(where: { spellings.contains($0) }) else { return (arguments, [:]) }
        guard index + 1 < arguments.count else { throw ModelError(.mismatch, "\(arguments[index]) needs a file") }
        var path = arguments[index + 1]
        if !path.hasSuffix(".toml") { path += ".toml" } // as kohya
        var rest = arguments
        rest.removeSubrange(index...(index + 1))
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ModelError(.io, "cannot read the config file (UTF-8 TOML)", file: path)
        }
        let root: JSON
        do { root = try TOML.parse(text) } catch { throw ModelError(.invalid, error.description, file: path) }
        guard case let .object(top) = root else { throw ModelError(.invalid, "not a TOML table", file: path) }
        var flat: [(String, JSON)] = []
        for (key, value) in top {
            if case let .object(section) = value { flat += section } else { flat.append((key, value)) }
        }
        let given = Set(rest.filter { $0.hasPrefix("--") }.map { normalized(String($0.dropFirst(2)).split(separator: "=").first.map(String.init) ?? "") })
        var expanded: [String] = [], keys: [String: String] = [:]
        let kohya = Set(KohyaArgumentNames.trainNetwork.map(normalized)), option = names(), (ours, flags) = (option.all, option.flags)
        for (key, value) in flat where !given.contains(normalized(key)) {
            if [.bool(false), .string(""), .array([]), .null].contains(value) { continue } // asks for nothing
            if !ours.isEmpty && !ours.contains(normalized(key)) && !kohya.contains(normalized(key)) {
                printError("note: \(TerminalText.escape(key)) in \(TerminalText.escape(path)) is not an sd-scripts argument (the kohya_ss GUI writes "
                           + "a few of its own); ignored, as sd-scripts ignores it")
                continue
            }
            let option = "--" + key
            switch value {
            case .bool(true): expanded.append(option)
            // `--key=value`: a value that starts with "-" (a negative number) stays a value.
            case let .string(s): expanded.append(option + "=" + s)
            case let .number(n) where flags.contains(normalized(key)):
                if (Double(n) ?? 0) == 0 { continue }
                expanded.append(option)
            case let .number(n): expanded.append(option + "=" + n)
            case let .array(items):
                var values: [String] = []
                for item in items {
                    switch item {
                    case let .string(s): values.append(s)
                    case let .number(n): values.append(n)
                    case let .bool(b): values.append(b ? "True" : "False")
                    default: throw ModelError(.invalid, "\(key): arrays of tables are not arguments", file: path, key: key)
                    }
                }
                expanded += [option] + values
            case .object: throw ModelError(.invalid, "\(key): tables nest one level at most in a kohya config", file: path, key: key)
            case .bool, .null: continue  // false and null never get here (skipped above)
            }
            keys[option] = path
        }
        // kohya keeps the option, without its extension (os.path.splitext), for --log_config's record.
        let configOption = "--config-file=" + (arguments[index + 1] as NSString).deletingPathExtension
        return ([configOption] + expanded + rest, keys)
    }

    /// argparse takes `--noise_offset -0.05` (a negative number is a value when no option looks like one);
    /// the argument parser here would read "-0.05" as an option, so such a pair becomes `--noise_offset=-0.05`.
    /// Only for options of one value: a list (`--network-args`) ends where argparse's would not, at the number.
    static func joiningNegativeValues(_ arguments: [String], ours names: () -> OptionNames) -> [String] {
        func negative(_ s: String) -> Bool { s.hasPrefix("-") && Double(s) != nil }
        guard arguments.contains(where: negative) else { return arguments }
        let option = names()
        var out: [String] = [], i = 0
        while i < arguments.count {
            let a = arguments[i]
            let name = normalized(String(a.dropFirst(2)))
            if a.hasPrefix("--"), !a.contains("="), i + 1 < arguments.count, negative(arguments[i + 1]),
               option.all.contains(name), !option.flags.contains(name), !option.lists.contains(name) {
                out.append(a + "=" + arguments[i + 1])
                i += 2
            } else {
                out.append(a)
                i += 1
            }
        }
        return out
    }

    /// kohya's spelling and ours name the same option: `train_data_dir` = `train-data-dir`.
    static func normalized(_ name: String) -> String { name.replacingOccurrences(of: "_", with: "-").lowercased() }
}
