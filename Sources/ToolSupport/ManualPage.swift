import Foundation

/// Renders a man page (man(7) macros) from the JSON a swift-argument-parser
/// tool prints with `--experimental-dump-help`, so the page is generated from
/// the parser itself and a test can keep `man/` in sync.
public enum ManualPage {
    struct Dump: Decodable {
        var command: Command
    }

    struct Command: Decodable {
        var commandName: String
        var abstract: String?
        var discussion: String?
        var arguments: [Argument]?
        var subcommands: [Command]?
        var shouldDisplay: Bool?
        var superCommands: [String]?
    }

    struct Argument: Decodable {
        struct Name: Decodable {
            var kind: String
            var name: String
        }
        var kind: String
        var names: [Name]?
        var valueName: String?
        var isOptional: Bool?
        var isRepeating: Bool?
        var abstract: String?
        var discussion: String?
        var defaultValue: String?
        var allValues: [String]?
        var shouldDisplay: Bool?
    }

    public static func render(dumpHelpJSON: Data, section: Int = 1) throws -> String {
        let dump = try JSONDecoder().decode(Dump.self, from: dumpHelpJSON)
        let root = dump.command
        var out: [String] = []
        out.append(".TH \(root.commandName.uppercased()) \(section) \"\" \"LoRA Tools\" \"User Commands\"")
        out.append(".SH NAME")
        out.append("\(escape(root.commandName)) \\- \(escape(root.abstract ?? ""))")
        out.append(".SH SYNOPSIS")
        let visibleSubcommands = (root.subcommands ?? []).filter { $0.shouldDisplay ?? true && $0.commandName != "help" }
        var synopses: [[String]] = []
        if !visible(root.arguments).isEmpty || visibleSubcommands.isEmpty { synopses.append(synopsis(root, path: [root.commandName])) }
        for sub in visibleSubcommands { synopses.append(synopsis(sub, path: [root.commandName, sub.commandName])) }
        for (i, lines) in synopses.enumerated() {
            if i > 0 { out.append(".br") }
            out.append(contentsOf: lines)
        }
        if let discussion = root.discussion, !discussion.isEmpty {
            out.append(".SH DESCRIPTION")
            out.append(contentsOf: paragraphs(discussion))
        }
        let options = visible(root.arguments)
        if !options.isEmpty {
            out.append(".SH OPTIONS")
            out.append(contentsOf: options.flatMap(describe))
        }
        for sub in visibleSubcommands {
            out.append(".SH \"\(escape(root.commandName.uppercased())) \(escape(sub.commandName.uppercased()))\"")
            if let abstract = sub.abstract { out.append(escape(abstract)) }
            if let discussion = sub.discussion, !discussion.isEmpty { out.append(contentsOf: paragraphs(discussion)) }
            let subOptions = visible(sub.arguments)
            if !subOptions.isEmpty {
                out.append(".PP")
                out.append(".B Options")
                out.append(contentsOf: subOptions.flatMap(describe))
            }
        }
        out.append(".SH SEE ALSO")
        let tools = ["lora-inspect", "lora-merge", "lora-extract", "lora-xyz", "lora-train"].filter { $0 != root.commandName }
        out.append(tools.map { "\\fB\(escape($0))\\fR(1)" }.joined(separator: ", "))
        return out.joined(separator: "\n") + "\n"
    }

    static func visible(_ arguments: [Argument]?) -> [Argument] {
        let shown = (arguments ?? []).filter { ($0.shouldDisplay ?? true) && !($0.names ?? []).contains { $0.name == "help" || $0.name == "version" } }
        // A flag with an inversion (--hash / --no-hash) arrives as two arguments
        // with the same help: show it once with both names.
        var merged: [Argument] = []
        for arg in shown {
            if var last = merged.last, last.kind == "flag", arg.kind == "flag", last.abstract == arg.abstract,
               let extra = arg.names, let first = last.names?.first, extra.first?.name == "no-" + first.name {
                last.names = (last.names ?? []) + extra
                merged[merged.count - 1] = last
            } else {
                merged.append(arg)
            }
        }
        return merged
    }

    static func synopsis(_ command: Command, path: [String]) -> [String] {
        var parts = ["\\fB\(path.map(escape).joined(separator: " "))\\fR"]
        for arg in visible(command.arguments) {
            var text: String
            if arg.kind == "positional" {
                text = "\\fI\(escape(arg.valueName ?? "value"))\\fR"
            } else {
                let names = (arg.names ?? []).filter { $0.kind == "long" }.map { "--" + $0.name }
                text = names.count > 1 ? names.map { "\\fB\(escape($0))\\fR" }.joined(separator: "|") : "\\fB\(escape(preferred(arg)))\\fR"
                if arg.kind == "option" { text += " \\fI\(escape(arg.valueName ?? "value"))\\fR" }
            }
            if arg.isRepeating ?? false { text += " ..." }
            parts.append((arg.isOptional ?? false) ? "[\(text)]" : text)
        }
        return [parts.joined(separator: " ")]
    }

    static func preferred(_ arg: Argument) -> String {
        let names = arg.names ?? []
        if let long = names.first(where: { $0.kind == "long" || $0.kind == "longWithSingleDash" }) {
            return (long.kind == "long" ? "--" : "-") + long.name
        }
        if let short = names.first { return "-" + short.name }
        return arg.valueName ?? ""
    }

    static func describe(_ arg: Argument) -> [String] {
        var lines = [".TP"]
        if arg.kind == "positional" {
            lines.append("\\fI\(escape(arg.valueName ?? "value"))\\fR\((arg.isRepeating ?? false) ? " ..." : "")")
        } else {
            let names = (arg.names ?? []).map { ($0.kind == "long" ? "--" : "-") + $0.name }
            var head = names.map { "\\fB\(escape($0))\\fR" }.joined(separator: ", ")
            if arg.kind == "option" { head += " \\fI\(escape(arg.valueName ?? "value"))\\fR" }
            lines.append(head)
        }
        var body = arg.abstract ?? ""
        if let values = arg.allValues, !values.isEmpty, arg.kind == "option" {
            body += " (values: \(values.joined(separator: ", ")))"
        }
        if let def = arg.defaultValue, !def.isEmpty, arg.kind != "flag" { body += " (default: \(def))" }
        lines.append(escape(body))
        if let discussion = arg.discussion, !discussion.isEmpty { lines.append(contentsOf: paragraphs(discussion, indentedBlock: true)) }
        return lines
    }

    static func paragraphs(_ text: String, indentedBlock: Bool = false) -> [String] {
        var out: [String] = []
        for block in text.components(separatedBy: "\n\n") {
            let lines = block.components(separatedBy: "\n")
            // Lines starting with spaces are examples: keep them verbatim.
            if lines.allSatisfy({ $0.hasPrefix("  ") || $0.isEmpty }) {
                out.append(".PP")
                out.append(".RS 4")
                out.append(".nf")
                out.append(contentsOf: lines.map { escape(String($0.dropFirst(2))) })
                out.append(".fi")
                out.append(".RE")
            } else {
                out.append(indentedBlock ? ".IP" : ".PP")
                out.append(contentsOf: lines.map { escape($0.trimmingCharacters(in: .whitespaces)) })
            }
        }
        return out
    }

    /// Escape text for roff: backslashes, leading control characters, hyphens.
    static func escape(_ text: String) -> String {
        var s = text.replacingOccurrences(of: "\\", with: "\\e").replacingOccurrences(of: "-", with: "\\-")
        if s.hasPrefix(".") || s.hasPrefix("'") { s = "\\&" + s }
        return s
    }
}
