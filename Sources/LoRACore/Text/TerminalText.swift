/// Text from a file (metadata, captions, key names, hashes it quotes) is
/// untrusted: an escape sequence in `ss_output_name` could clear the screen,
/// retitle the window or move the cursor up and erase an error line, and a
/// bidi override could make a name read backwards. Human output passes every
/// such string through `escape`, which shows control characters instead of
/// sending them (JSON output escapes on its own).
public enum TerminalText {
    /// C0 controls (newline and tab included: values are single-line), DEL and
    /// C1 controls as `\xNN`; bidi embeddings, overrides and isolates
    /// (U+202A–U+202E, U+2066–U+2069) as `\u{NNNN}`. Everything else unchanged.
    public static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            if !needsEscape(scalar) {
                out.unicodeScalars.append(scalar)
            } else if scalar.value < 0x100 {
                out += "\\x" + hex(scalar.value, digits: 2)
            } else {
                out += "\\u{" + hex(scalar.value, digits: 4) + "}"
            }
        }
        return out
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        return v < 0x20 || (v >= 0x7F && v <= 0x9F) || (v >= 0x202A && v <= 0x202E) || (v >= 0x2066 && v <= 0x2069)
    }

    private static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
