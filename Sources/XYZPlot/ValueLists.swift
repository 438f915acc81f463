import Foundation
import LoRACore

/// The list syntax of A1111's X/Y/Z plot for numeric axes: comma-separated
/// values and ranges — "1-5" (step 1), "0-1 (+0.25)" (step), "0-1 [5]"
/// (count, inclusive).
public enum ValueLists {
    public static func numbers(_ text: String, what: String) throws(RequestError) -> [Double] {
        var values: [Double] = []
        for raw in text.split(separator: ",") {
            let part = raw.trimmingCharacters(in: .whitespaces)
            guard !part.isEmpty else { continue }
            if let value = Double(part), value.isFinite {
                values.append(value)
                continue
            }
            guard let range = try parseRange(part) else {
                throw RequestError("\(what): '\(part)' is neither a number nor a range like 1-5, 0-1 (+0.25) or 0-1 [5]")
            }
            values += range
        }
        guard !values.isEmpty else { throw RequestError("\(what): no values in '\(text)'") }
        guard values.count <= 10_000 else { throw RequestError("\(what): \(values.count) values is more than a sheet can show") }
        return values
    }

    public static func integers(_ text: String, what: String) throws(RequestError) -> [Int] {
        try numbers(text, what: what).map { v throws(RequestError) in
            guard abs(v) < 1e15 else { throw RequestError("\(what): \(formatNumber(v)) is out of range (at most 15 digits)") }
            guard v == v.rounded() else { throw RequestError("\(what): \(formatNumber(v)) is not a whole number") }
            return Int(v)
        }
    }

    /// "a-b", "a-b (+s)", "a-b [n]"; a and b may be negative.
    static func parseRange(_ text: String) throws(RequestError) -> [Double]? {
        var body = text, step: Double?, count: Int?
        if let open = body.firstIndex(of: "("), body.hasSuffix(")") {
            let inner = body[body.index(after: open)..<body.index(before: body.endIndex)].trimmingCharacters(in: .whitespaces)
            guard let s = Double(inner.hasPrefix("+") ? String(inner.dropFirst()) : inner), s.isFinite, s != 0 else { return nil }
            step = s
            body = String(body[..<open])
        } else if let open = body.firstIndex(of: "["), body.hasSuffix("]") {
            let inner = body[body.index(after: open)..<body.index(before: body.endIndex)].trimmingCharacters(in: .whitespaces)
            guard let n = Int(inner), n >= 1, n <= 10_000 else { return nil }
            count = n
            body = String(body[..<open])
        }
        body = body.trimmingCharacters(in: .whitespaces)
        // Split at a '-' that is not a sign: not first, not after 'e'.
        let chars = Array(body)
        guard let dash = chars.indices.dropFirst().first(where: { chars[$0] == "-" && chars[$0 - 1] != "e" && chars[$0 - 1] != "E" }),
              let a = Double(String(chars[..<dash]).trimmingCharacters(in: .whitespaces)),
              let b = Double(String(chars[(dash + 1)...]).trimmingCharacters(in: .whitespaces)), a.isFinite, b.isFinite else { return nil }
        if let count {
            return count == 1 ? [a] : (0..<count).map { a + (b - a) * Double($0) / Double(count - 1) }
        }
        let s = step ?? (b >= a ? 1 : -1)
        guard (b - a) / s >= 0, (b - a) / s <= 10_000 else {
            throw RequestError("range '\(text)' never reaches its end or has more than 10,000 values")
        }
        var values: [Double] = []
        var i = 0
        while true {
            // Accumulate by index (not by repeated addition) so 0-1 (+0.1) ends at 1.
            let v = a + Double(i) * s
            if s > 0 ? v > b + abs(s) * 1e-9 : v < b - abs(s) * 1e-9 { break }
            values.append((v * 1e9).rounded() / 1e9)
            i += 1
        }
        return values
    }

    /// Comma-separated text values (sampler names, Prompt S/R), with A1111's
    /// CSV quoting: "a, b" keeps its comma.
    public static func strings(_ text: String) -> [String] {
        var values: [String] = [], current = "", quoted = false
        var chars = Array(text)[...]
        while let c = chars.popFirst() {
            if c == "\"" {
                if quoted, chars.first == "\"" {
                    current.append("\"")
                    chars.removeFirst()
                } else {
                    quoted.toggle()
                }
            } else if c == ",", !quoted {
                values.append(current.trimmingCharacters(in: .whitespaces))
                current = ""
            } else {
                current.append(c)
            }
        }
        values.append(current.trimmingCharacters(in: .whitespaces))
        return values.filter { !$0.isEmpty }
    }
}
