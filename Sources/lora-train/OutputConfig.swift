import ArgumentParser
import Foundation
import LoRACore
import ToolSupport

/// lora-train's option names as its help lists them (hidden ones included): every spelling, normalized; which
/// are flags; and the key each is written under in a config file — kohya's spelling where sd-scripts has the
/// option (`--model` → `pretrained_model_name_or_path`), lora-train's own with underscores otherwise.
struct OptionNames {
    var all = Set<String>()
    var flags = Set<String>()
    /// Options that take several values (`--network-args a b`).
    var lists = Set<String>()
    var configKey: [String: String] = [:]
    /// Single-letter spellings (`-m`) → the option's first long name, normalized.
    var short: [String: String] = [:]

    /// From the help's option lines: "  -m, --model, --pretrained_model_name_or_path <path>   …".
    init(help: String) {
        let kohya = Dictionary(KohyaArgumentNames.trainNetwork.map { (ConfigFile.normalized($0), $0) }, uniquingKeysWith: { a, _ in a })
        for line in help.split(separator: "\n") where line.hasPrefix("  -") {
            let synopsis = line.split(separator: "  ", maxSplits: 1, omittingEmptySubsequences: true).first ?? line
            let spellings = synopsis.matches(of: /--([A-Za-z0-9_-]+)/).map { String($0.1) }
            guard let first = spellings.first else { continue }
            let names = spellings.map(ConfigFile.normalized)
            let key = names.lazy.compactMap { kohya[$0] }.first ?? first.replacingOccurrences(of: "-", with: "_")
            all.formUnion(names)
            if !synopsis.contains("<") { flags.formUnion(names) }
            if synopsis.contains("...") { lists.formUnion(names) }
            for name in names { configKey[name] = key }
            for letter in synopsis.matches(of: /(?:^|[\s,])-([A-Za-z])(?=[,\s]|$)/) { short[String(letter.1)] = names[0] }
        }
    }

    init() {}
}

/// kohya's `--output_config` (train_util.py `read_config_from_file`): the settings on the command line are written
/// to the TOML `--config-file` names (".toml" added, as kohya adds it) and nothing runs. The file is flat, keyed by
/// kohya's spellings, so `lora-train --config-file` and sd-scripts both read it back; an existing file is never
/// overwritten (kohya refuses too). The run modes (--dry-run, --json) are not settings and are left out.
enum OutputConfig {
    static let spellings = ["--output-config", "--output_config"]
    static let runModes: Set<String> = ["dry-run", "json", "help", "version"]

    /// The config file's path when the arguments ask for one to be written.
    static func destination(_ arguments: [String]) throws(ValidationError) -> String? {
        guard arguments.contains(where: spellings.contains) else { return nil }
        guard let index = arguments.firstIndex(where: ConfigFile.spellings.contains), index + 1 < arguments.count else {
            throw ValidationError("--output-config writes the file --config-file names; give --config-file too")
        }
        let path = arguments[index + 1]
        return path.hasSuffix(".toml") ? path : path + ".toml"
    }

    /// The TOML for `arguments` (the command line without --config-file and --output-config): `--flag` (or `-q`) → `flag = true`,
    /// `--option v` → a number when v reads as a TOML number, else a string; several values → an array. What the
    /// parser would refuse by its shape (an unknown option, a flag with a value, an option without one) is refused
    /// here; the values themselves are checked when a run reads the file.
    static func document(_ arguments: [String], names: OptionNames) throws(ValidationError) -> String {
        var members: [(String, JSON)] = [], seen = Set<String>()
        var i = 0
        while i < arguments.count {
            let token = arguments[i]
            var name: String, values: [String] = []
            if let long = names.short[String(token.dropFirst())], token.count == 2, token.hasPrefix("-") {
                name = long
            } else if token.hasPrefix("--"), token.count > 2 {
                name = String(token.dropFirst(2))
            } else {
                throw ValidationError("\(TerminalText.escape(token)): a value without an option before it")
            }
            if let equals = name.firstIndex(of: "=") {
                values.append(String(name[name.index(after: equals)...]))
                name = String(name[..<equals])
            }
            i += 1
            while i < arguments.count, !(arguments[i].hasPrefix("--") || names.short[String(arguments[i].dropFirst())] != nil && arguments[i].count == 2)
                    || Double(arguments[i]) != nil {
                values.append(arguments[i])
                i += 1
            }
            let normalized = ConfigFile.normalized(name)
            guard let key = names.configKey[normalized] else { throw ValidationError("unknown option --\(TerminalText.escape(name)) (lora-train has no such option)") }
            if runModes.contains(normalized) { continue }
            guard !seen.contains(key) else { throw ValidationError("--\(TerminalText.escape(name)) is given twice") }
            seen.insert(key)
            if names.flags.contains(normalized) {
                guard values.isEmpty else { throw ValidationError("--\(TerminalText.escape(name)) is a flag; it takes no value (\(TerminalText.escape(values[0])))") }
                members.append((key, .bool(true)))
            } else {
                guard !values.isEmpty else { throw ValidationError("--\(TerminalText.escape(name)) needs a value") }
                let typed = values.map(value)
                members.append((key, typed.count == 1 ? typed[0] : .array(typed)))
            }
        }
        return TOML.document(members)
    }

    /// A number as TOML writes one (`32`, `1e-4`, `0.5`; not `.5` or `1.`), else a string.
    static func value(_ text: String) -> JSON {
        text.wholeMatch(of: /[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/) != nil ? .number(text) : .string(text)
    }

    /// Writes the file (never over an existing one) and says where.
    static func write(_ arguments: [String], to path: String, names: OptionNames) throws {
        var rest = arguments
        while let index = rest.firstIndex(where: spellings.contains) { rest.remove(at: index) }
        while let index = rest.firstIndex(where: ConfigFile.spellings.contains) { rest.removeSubrange(index...min(index + 1, rest.count - 1)) }
        let text = try document(rest, names: names)
        guard !FileManager.default.fileExists(atPath: path) else {
            throw ModelError(.mismatch, "the config file exists already; not overwritten (kohya refuses too)", file: path)
        }
        try AtomicOutput.write(Array(text.utf8), to: path)
        print("saved the config file: \(TerminalText.escape(path)) (lora-train --config-file \(TerminalText.escape(path)) reads it back)")
    }
}
