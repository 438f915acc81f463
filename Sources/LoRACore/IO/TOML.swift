import Foundation

/// TOML 1.0 as kohya's configuration files use it (`--config_file`,
/// `--dataset_config`, written by hand or by the kohya_ss GUI), read into the
/// JSON value type: tables and arrays of tables (dotted headers), dotted and
/// quoted keys, basic and literal strings (one-line and multi-line), integers
/// (with `_`, hex/octal/binary), floats (inf, nan), booleans, arrays over
/// several lines, inline tables. Dates are read as strings. A redefined key
/// or table is an error, as the format requires; every error names its line.
public enum TOML {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var line: Int
        public var description: String { "line \(line): \(message)" }
    }

    public static func parse(_ text: String, maxDepth: Int = 32) throws(Failure) -> JSON {
        var parser = Parser(Array(text.unicodeScalars), maxDepth: maxDepth)
        return try parser.document()
    }

    /// A flat document, one `key = value` line each (what kohya's `--output_config` writes): bare keys where
    /// the format allows, quoted otherwise; strings as basic strings (JSON's escapes, which TOML shares, and
    /// DEL escaped as TOML requires); numbers as given. Tables are not written (a flat config has none).
    public static func document(_ members: [(String, JSON)]) -> String {
        func quoted(_ s: String) -> String {
            var out = ""
            JSON.appendQuoted(s, to: &out)
            return out.replacingOccurrences(of: "\u{7F}", with: "\\u007f")
        }
        func value(_ v: JSON) -> String {
            switch v {
            case let .string(s): return quoted(s)
            case let .array(items): return "[" + items.map(value).joined(separator: ", ") + "]"
            case .null, .object: return "\"\""
            case .bool, .number: return v.serialized()
            }
        }
        return members.map { key, v in
            (key.wholeMatch(of: /[A-Za-z0-9_-]+/) != nil ? key : quoted(key)) + " = " + value(v) + "\n"
        }.joined()
    }

    /// A mutable tree while parsing; arrays of tables are arrays of tables.
    fileprivate final class Table {
        var keys: [String] = []
        var values: [String: Node] = [:]
        /// Defined by a [header] or by dotted keys (may not be reopened as a header).
        var explicit = false
        var inline = false
    }

    fileprivate enum Node {
        case value(JSON)
        case table(Table)
        case tables([Table])
    }

    fileprivate struct Parser {
        let s: [Unicode.Scalar]
        var i = 0
        var line = 1
        let maxDepth: Int

        init(_ s: [Unicode.Scalar], maxDepth: Int) {
            self.s = s
            self.maxDepth = maxDepth
        }

        func fail(_ message: String) -> Failure { Failure(message: message, line: line) }
        var atEnd: Bool { i >= s.count }
        var current: Unicode.Scalar? { i < s.count ? s[i] : nil }

        mutating func advance() {
            if s[i] == "\n" { line += 1 }
            i += 1
        }

        mutating func skipSpaces() { while let c = current, c == " " || c == "\t" { advance() } }

        /// Spaces, newlines and comments (inside arrays).
        mutating func skipBlank() throws(Failure) {
            while let c = current {
                if c == " " || c == "\t" || c == "\n" { advance() } else if c == "\r" { try newline() } else if c == "#" { skipComment() } else { return }
            }
        }

        mutating func skipComment() { while let c = current, c != "\n" { advance() } }

        mutating func newline() throws(Failure) {
            if current == "\r" {
                advance()
                guard current == "\n" else { throw fail("a carriage return must be followed by a newline") }
            }
            if current == "\n" { advance() }
        }

        /// After a key/value or header: spaces, an optional comment, then a newline or the end.
        mutating func endOfLine() throws(Failure) {
            skipSpaces()
            if current == "#" { skipComment() }
            guard atEnd || current == "\n" || current == "\r" else { throw fail("unexpected text after the value: \(String(current!))") }
            if !atEnd { try newline() }
        }

        mutating func document() throws(Failure) -> JSON {
            let root = Table()
            var table = root
            while true {
                try skipBlank()
                guard let c = current else { break }
                if c == "[" {
                    advance()
                    let array = current == "["
                    if array { advance() }
                    skipSpaces()
                    let path = try key()
                    skipSpaces()
                    guard current == "]" else { throw fail("expected ] after the table name") }
                    advance()
                    if array {
                        guard current == "]" else { throw fail("expected ]] after the array-of-tables name") }
                        advance()
                    }
                    try endOfLine()
                    table = array ? try appendTable(root, path) : try openTable(root, path)
                } else {
                    try keyValue(into: table)
                    try endOfLine()
                }
            }
            return json(root)
        }

        mutating func keyValue(into table: Table, depth: Int = 0) throws(Failure) {
            let path = try key()
            skipSpaces()
            guard current == "=" else { throw fail("expected = after the key \(path.joined(separator: "."))") }
            advance()
            skipSpaces()
            let v = try value(depth: depth)
            var target = table
            for part in path.dropLast() {
                switch target.values[part] {
                case nil:
                    let t = Table()
                    target.keys.append(part)
                    target.values[part] = .table(t)
                    target = t
                case .table(let t)? where !t.inline:
                    target = t
                default:
                    throw fail("the key \(part) is already a value")
                }
            }
            let last = path.last!
            guard target.values[last] == nil else { throw fail("the key \(path.joined(separator: ".")) is defined twice") }
            target.keys.append(last)
            target.values[last] = v
        }

        mutating func key() throws(Failure) -> [String] {
            var parts: [String] = []
            while true {
                skipSpaces()
                guard let c = current else { throw fail("a key is missing") }
                if c == "\"" {
                    parts.append(try basicString())
                } else if c == "'" {
                    parts.append(try literalString())
                } else {
                    var bare = ""
                    while let c = current, c.properties.isASCIIHexDigit || ("a"..."z").contains(c) || ("A"..."Z").contains(c) || c == "_" || c == "-" {
                        bare.unicodeScalars.append(c)
                        advance()
                    }
                    guard !bare.isEmpty else { throw fail("a key is missing or has a character keys cannot have: \(String(c))") }
                    parts.append(bare)
                }
                skipSpaces()
                guard current == "." else { return parts }
                advance()
            }
        }

        mutating func value(depth: Int) throws(Failure) -> Node {
            guard depth < maxDepth else { throw fail("nested deeper than \(maxDepth) levels") }
            guard let c = current else { throw fail("a value is missing") }
            switch c {
            case "\"": return .value(.string(try basicString()))
            case "'": return .value(.string(try literalString()))
            case "[":
                advance()
                var items: [JSON] = []
                while true {
                    try skipBlank()
                    if current == "]" { advance(); break }
                    guard case let .value(item) = try inlineAsValue(try value(depth: depth + 1)) else { throw fail("bad array item") }
                    items.append(item)
                    try skipBlank()
                    if current == "," { advance(); continue }
                    guard current == "]" else { throw fail("expected , or ] in an array") }
                    advance()
                    break
                }
                return .value(.array(items))
            case "{":
                advance()
                let t = Table()
                t.inline = true
                skipSpaces()
                if current == "}" { advance(); return .table(t) }
                while true {
                    try keyValue(into: t, depth: depth + 1)
                    skipSpaces()
                    if current == "," { advance(); continue }
                    guard current == "}" else { throw fail("expected , or } in an inline table") }
                    advance()
                    return .table(t)
                }
            default:
                var word = ""
                while let c = current, !" \t\n\r,]}#".unicodeScalars.contains(c) {
                    word.unicodeScalars.append(c)
                    advance()
                }
                return .value(try scalar(word))
            }
        }

        func inlineAsValue(_ node: Node) throws(Failure) -> Node {
            if case .table(let t) = node { return .value(Parser.jsonStatic(t)) }
            return node
        }

        func scalar(_ word: String) throws(Failure) -> JSON {
            switch word {
            case "true": return .bool(true)
            case "false": return .bool(false)
            case "inf", "+inf": return .number("inf")
            case "-inf": return .number("-inf")
            case "nan", "+nan", "-nan": return .number("nan")
            default: break
            }
            guard !word.isEmpty else { throw fail("a value is missing") }
            let digits = word.replacingOccurrences(of: "_", with: "")
            if word.contains("__") || word.hasPrefix("_") || word.hasSuffix("_") { throw fail("misplaced _ in the number \(word)") }
            for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where digits.hasPrefix(prefix) {
                guard let v = Int64(digits.dropFirst(2), radix: radix) else { throw fail("not a number: \(word)") }
                return .number(String(v))
            }
            let unsigned = digits.hasPrefix("+") || digits.hasPrefix("-") ? digits.dropFirst() : Substring(digits)
            if unsigned.count > 1 && unsigned.hasPrefix("0") && unsigned.dropFirst().first?.isNumber == true {
                throw fail("leading zeros are not allowed in \(word)")
            }
            if let v = Int64(digits) { return .number(String(v)) }
            if let v = Double(digits), digits.first != ".", digits.last != ".", !digits.lowercased().contains("x") {
                return .number(digits.hasPrefix("+") ? String(digits.dropFirst()) : (v.isFinite ? digits : String(v)))
            }
            // Dates and times (1979-05-27T07:32:00Z …) are kept as text.
            if word.first?.isNumber == true && (word.contains("-") || word.contains(":")) { return .string(word) }
            throw fail("not a TOML value: \(word) (strings need quotes)")
        }

        /// After an opening quote: whether it opens a multi-line string (three quotes; a newline right after is
        /// not part of it).
        mutating func opensMultiline(_ quote: Unicode.Scalar) throws(Failure) -> Bool {
            advance()
            guard current == quote && i + 1 < s.count && s[i + 1] == quote else { return false }
            advance(); advance()
            if current == "\n" || current == "\r" { try newline() }
            return true
        }

        /// At a quote inside a multi-line string: whether three close it (up to two more quotes belong to the string).
        mutating func closesMultiline(_ quote: Unicode.Scalar, into out: inout String) -> Bool {
            guard i + 2 < s.count && s[i + 1] == quote && s[i + 2] == quote else { return false }
            advance(); advance(); advance()
            while current == quote { out.unicodeScalars.append(quote); advance() }
            return true
        }

        mutating func basicString() throws(Failure) -> String {
            let multi = try opensMultiline("\"")
            var out = ""
            while true {
                guard let c = current else { throw fail("a string is not closed") }
                if c == "\"" {
                    if !multi { advance(); return out }
                    if closesMultiline("\"", into: &out) { return out }
                    out.append("\""); advance()
                } else if c == "\\" {
                    advance()
                    guard let e = current else { throw fail("a string is not closed") }
                    switch e {
                    case "n": out.append("\n"); advance()
                    case "t": out.append("\t"); advance()
                    case "r": out.append("\r"); advance()
                    case "b": out.append("\u{8}"); advance()
                    case "f": out.append("\u{C}"); advance()
                    case "e": out.append("\u{1B}"); advance()
                    case "\"": out.append("\""); advance()
                    case "\\": out.append("\\"); advance()
                    case "u", "U":
                        advance()
                        let count = e == "u" ? 4 : 8
                        var hex = ""
                        for _ in 0..<count {
                            guard let h = current, h.properties.isASCIIHexDigit else { throw fail("bad \\\(e) escape") }
                            hex.unicodeScalars.append(h)
                            advance()
                        }
                        guard let code = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(code) else { throw fail("bad \\\(e) escape") }
                        out.unicodeScalars.append(scalar)
                    case let w where multi && (w == " " || w == "\t" || w == "\n" || w == "\r"):
                        // A line-ending backslash trims the newline and the whitespace after it.
                        while let w = current, w == " " || w == "\t" || w == "\n" || w == "\r" { advance() }
                    default: throw fail("unknown escape \\\(String(e)) in a string")
                    }
                } else if c == "\n" && !multi {
                    throw fail("a one-line string is not closed")
                } else {
                    out.unicodeScalars.append(c)
                    advance()
                }
            }
        }

        mutating func literalString() throws(Failure) -> String {
            let multi = try opensMultiline("'")
            var out = ""
            while true {
                guard let c = current else { throw fail("a string is not closed") }
                if c == "'" {
                    if !multi { advance(); return out }
                    if closesMultiline("'", into: &out) { return out }
                } else if c == "\n" && !multi {
                    throw fail("a one-line string is not closed")
                }
                out.unicodeScalars.append(c)
                advance()
            }
        }

        func openTable(_ root: Table, _ path: [String]) throws(Failure) -> Table {
            var t = root
            for (n, part) in path.enumerated() {
                switch t.values[part] {
                case nil:
                    let next = Table()
                    t.keys.append(part)
                    t.values[part] = .table(next)
                    t = next
                case .table(let next)?:
                    guard !next.inline else { throw fail("\(part) is an inline table and cannot be extended") }
                    if n == path.count - 1 && next.explicit { throw fail("the table [\(path.joined(separator: "."))] is defined twice") }
                    t = next
                case .tables(let list)?:
                    guard n < path.count - 1, let last = list.last else { throw fail("\(part) is an array of tables") }
                    t = last
                case .value?:
                    throw fail("\(part) is already a value")
                }
            }
            t.explicit = true
            return t
        }

        func appendTable(_ root: Table, _ path: [String]) throws(Failure) -> Table {
            let parent = path.count > 1 ? try openTablePath(root, Array(path.dropLast())) : root
            let name = path.last!
            let t = Table()
            t.explicit = true
            switch parent.values[name] {
            case nil:
                parent.keys.append(name)
                parent.values[name] = .tables([t])
            case .tables(let list)?:
                parent.values[name] = .tables(list + [t])
            default:
                throw fail("\(name) is already a table or a value, not an array of tables")
            }
            return t
        }

        /// The table a dotted [[a.b]] header hangs under, without marking it defined.
        func openTablePath(_ root: Table, _ path: [String]) throws(Failure) -> Table {
            var t = root
            for part in path {
                switch t.values[part] {
                case nil:
                    let next = Table()
                    t.keys.append(part)
                    t.values[part] = .table(next)
                    t = next
                case .table(let next)?: t = next
                case .tables(let list)?: t = list.last!
                case .value?: throw fail("\(part) is already a value")
                }
            }
            return t
        }

        func json(_ t: Table) -> JSON { Parser.jsonStatic(t) }

        static func jsonStatic(_ t: Table) -> JSON {
            .object(t.keys.map { key in
                switch t.values[key]! {
                case .value(let v): return (key, v)
                case .table(let sub): return (key, jsonStatic(sub))
                case .tables(let list): return (key, .array(list.map(jsonStatic)))
                }
            })
        }
    }
}
