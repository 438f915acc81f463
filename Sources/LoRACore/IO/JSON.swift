/// A JSON value parsed strictly (RFC 8259).
///
/// Foundation's parser silently keeps the last of duplicate keys and turns large
/// integers into lossy doubles; a safetensors header must not be read either way,
/// so headers go through this parser. Objects keep their key order.
public indirect enum JSON: Equatable, Sendable {
    case null
    case bool(Bool)
    /// The number's literal text, kept exact; see `uint64` and `double`.
    case number(String)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (lhs: JSON, rhs: JSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public subscript(key: String) -> JSON? {
        if case let .object(members) = self {
            return members.first(where: { $0.0 == key })?.1
        }
        return nil
    }

    public var stringValue: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    /// A non-negative integer literal that fits in 64 bits (no sign, fraction or exponent).
    public var uint64: UInt64? {
        guard case let .number(text) = self, !text.isEmpty,
              text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return UInt64(text)
    }

    public var double: Double? {
        switch self {
        case let .number(text): return Double(text)
        case let .string(text): return Double(text)
        default: return nil
        }
    }

    /// Serialise compactly; `sortKeys` gives reproducible output.
    public func serialized(sortKeys: Bool = false) -> String {
        var out = ""
        write(to: &out, sortKeys: sortKeys, python: false)
        return out
    }

    /// As Python's `json.dumps(value)` with its defaults writes it, which is how sd-scripts stores its JSON
    /// metadata (ss_tag_frequency, ss_datasets, ss_network_args …): ", " and ": " between items, and
    /// everything outside printable ASCII escaped as \uXXXX (lower-case hex, surrogate pairs above U+FFFF).
    public func pythonDumps() -> String {
        var out = ""
        write(to: &out, sortKeys: false, python: true)
        return out
    }

    func write(to out: inout String, sortKeys: Bool, python: Bool) {
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .number(n): out += n
        case let .string(s): JSON.appendQuoted(s, to: &out, asciiOnly: python)
        case let .array(items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += python ? ", " : "," }
                item.write(to: &out, sortKeys: sortKeys, python: python)
            }
            out += "]"
        case let .object(members):
            out += "{"
            let ordered = sortKeys ? members.sorted { $0.0 < $1.0 } : members
            for (i, (key, value)) in ordered.enumerated() {
                if i > 0 { out += python ? ", " : "," }
                JSON.appendQuoted(key, to: &out, asciiOnly: python)
                out += python ? ": " : ":"
                value.write(to: &out, sortKeys: sortKeys, python: python)
            }
            out += "}"
        }
    }

    /// JSON string literal: `"` `\\` and \n \r \t \b \f by name, other control characters as \uXXXX;
    /// non-ASCII written as UTF-8 (as serde_json does), or with `asciiOnly` (Python's json.dumps default,
    /// ensure_ascii) every scalar outside space…tilde as \uXXXX UTF-16 units in lower-case hex.
    public static func appendQuoted(_ s: String, to out: inout String, asciiOnly: Bool = false) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 || (asciiOnly && scalar.value > 0x7E) {
                    for unit in String(scalar).utf16 {
                        let hex = String(unit, radix: 16)
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

/// Strict JSON parser over UTF-8 bytes.
public struct JSONParser {
    public struct Failure: Error, Sendable {
        public var message: String
        public var offset: Int
    }

    private let bytes: [UInt8]
    private var position = 0
    private let maxDepth: Int

    /// Parse a complete document. Whitespace is allowed around the value.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws(Failure) -> JSON {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.position != bytes.count {
            throw Failure(message: "unexpected data after the JSON value", offset: parser.position)
        }
        return value
    }

    public static func parse(_ text: String, maxDepth: Int = 64) throws(Failure) -> JSON {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }

    private init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    private func fail(_ message: String) -> Failure {
        Failure(message: message, offset: position)
    }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws(Failure) -> JSON {
        guard depth <= maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        guard position < bytes.count else { throw fail("unexpected end of JSON") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: String) throws(Failure) {
        for byte in literal.utf8 {
            guard position < bytes.count, bytes[position] == byte else { throw fail("invalid literal") }
            position += 1
        }
    }

    private mutating func parseObject(depth: Int) throws(Failure) -> JSON {
        position += 1
        var members: [(String, JSON)] = []
        var seen = Set<String>()
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
                throw fail("expected a string key")
            }
            let keyOffset = position
            let key = try parseString()
            if !seen.insert(key).inserted {
                throw Failure(message: "duplicate key \"\(key)\"", offset: keyOffset)
            }
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            position += 1
            skipWhitespace()
            members.append((key, try parseValue(depth: depth + 1)))
            skipWhitespace()
            guard position < bytes.count else { throw fail("unexpected end of JSON in an object") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            if bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
            throw fail("expected ',' or '}'")
        }
    }

    private mutating func parseArray(depth: Int) throws(Failure) -> JSON {
        position += 1
        var items: [JSON] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
            position += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard position < bytes.count else { throw fail("unexpected end of JSON in an array") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            if bytes[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
            throw fail("expected ',' or ']'")
        }
    }

    private mutating func parseNumber() throws(Failure) -> JSON {
        let start = position
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        guard position < bytes.count, isDigit(bytes[position]) else { throw fail("invalid number") }
        if bytes[position] == UInt8(ascii: "0") {
            position += 1
        } else {
            while position < bytes.count, isDigit(bytes[position]) { position += 1 }
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            guard position < bytes.count, isDigit(bytes[position]) else { throw fail("invalid number") }
            while position < bytes.count, isDigit(bytes[position]) { position += 1 }
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                position += 1
            }
            guard position < bytes.count, isDigit(bytes[position]) else { throw fail("invalid number") }
            while position < bytes.count, isDigit(bytes[position]) { position += 1 }
        }
        return .number(String(decoding: bytes[start..<position], as: UTF8.self))
    }

    private func isDigit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }

    private mutating func parseString() throws(Failure) -> String {
        position += 1 // opening quote
        var scalars = String.UnicodeScalarView()
        var runStart = position
        while true {
            guard position < bytes.count else { throw fail("unterminated string") }
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                try appendRun(runStart, position, to: &scalars)
                position += 1
                return String(scalars)
            }
            if byte < 0x20 { throw fail("control character in a string") }
            if byte != UInt8(ascii: "\\") { position += 1; continue }
            try appendRun(runStart, position, to: &scalars)
            position += 1
            guard position < bytes.count else { throw fail("unterminated escape") }
            let escape = bytes[position]
            position += 1
            switch escape {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                var code = try parseHex4()
                if code >= 0xD800 && code < 0xDC00 {
                    // A high surrogate must be followed by an escaped low surrogate.
                    guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
                          bytes[position + 1] == UInt8(ascii: "u") else { throw fail("lone surrogate") }
                    position += 2
                    let low = try parseHex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw fail("invalid surrogate pair") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                } else if code >= 0xDC00 && code < 0xE000 {
                    throw fail("lone surrogate")
                }
                guard let scalar = Unicode.Scalar(code) else { throw fail("invalid escape") }
                scalars.append(scalar)
            default:
                throw fail("invalid escape")
            }
            runStart = position
        }
    }

    /// Append the validated UTF-8 bytes [start, end) as scalars.
    private func appendRun(_ start: Int, _ end: Int, to scalars: inout String.UnicodeScalarView) throws(Failure) {
        guard end > start else { return }
        guard let text = String(validating: bytes[start..<end], as: UTF8.self) else {
            throw Failure(message: "invalid UTF-8 in a string", offset: start)
        }
        scalars.append(contentsOf: text.unicodeScalars)
    }

    private mutating func parseHex4() throws(Failure) -> UInt32 {
        guard position + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[position]
            let digit: UInt32
            switch b {
            case 48...57: digit = UInt32(b - 48)
            case 65...70: digit = UInt32(b - 55)
            case 97...102: digit = UInt32(b - 87)
            default: throw fail("invalid \\u escape")
            }
            value = value * 16 + digit
            position += 1
        }
        return value
    }
}
