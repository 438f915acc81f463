/// The text clean-up CLIP's tokenizers do before BPE, for the cases prompts
/// actually contain. Both A1111 tokenizers run `ftfy.fix_text`; this ports
/// its deterministic fixes (HTML entities ending in ";" unless the text has a
/// literal "<", curly quotes, Latin ligatures, full-width characters, control
/// characters) but not its mojibake repair, which only matters for text that
/// was decoded with the wrong encoding.
enum TextNormalization {
    static func fixText(_ text: String) -> String {
        let unescaped = text.contains("<") ? text : unescapeHTML(text, semicolonRequired: true)
        var out = String.UnicodeScalarView()
        for scalar in unescaped.unicodeScalars {
            switch scalar.value {
            case 0x02BC, 0x2018...0x201B: out.append("'")
            case 0x201C...0x201F: out.append("\"")
            case 0xFB00: out.append(contentsOf: "ff".unicodeScalars)
            case 0xFB01: out.append(contentsOf: "fi".unicodeScalars)
            case 0xFB02: out.append(contentsOf: "fl".unicodeScalars)
            case 0xFB03: out.append(contentsOf: "ffi".unicodeScalars)
            case 0xFB04: out.append(contentsOf: "ffl".unicodeScalars)
            case 0xFB05: out.append(contentsOf: "\u{17F}t".unicodeScalars)
            case 0xFB06: out.append(contentsOf: "st".unicodeScalars)
            case 0x0132: out.append(contentsOf: "IJ".unicodeScalars)
            case 0x0133: out.append(contentsOf: "ij".unicodeScalars)
            case 0xFF01...0xFF5E: out.append(Unicode.Scalar(scalar.value - 0xFEE0)!)
            case 0x3000: out.append(" ")
            case 0x0000...0x0008, 0x000B, 0x000E...0x001F, 0x007F, 0x206A...0x206F, 0xFEFF, 0xFFF9...0xFFFC, 0xE0000...0xE007F:
                continue
            default: out.append(scalar)
            }
        }
        return String(out)
    }

    /// Python's `html.unescape` (or, with `semicolonRequired`, ftfy's stricter
    /// version) for numeric references and the named entities prompts contain
    /// in practice; `&amp` `&lt` `&gt` `&quot` `&nbsp` also without the
    /// semicolon, as HTML5 allows.
    static func unescapeHTML(_ text: String, semicolonRequired: Bool = false) -> String {
        guard text.contains("&") else { return text }
        let s = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        let named: [(String, String, Bool)] = [
            ("amp", "&", true), ("lt", "<", true), ("gt", ">", true), ("quot", "\"", true), ("nbsp", "\u{A0}", true),
            ("apos", "'", false), ("lsquo", "\u{2018}", false), ("rsquo", "\u{2019}", false), ("ldquo", "\u{201C}", false),
            ("rdquo", "\u{201D}", false), ("hellip", "\u{2026}", false), ("mdash", "\u{2014}", false), ("ndash", "\u{2013}", false),
            ("times", "\u{D7}", false), ("deg", "\u{B0}", false), ("copy", "\u{A9}", false), ("reg", "\u{AE}", false),
        ]
        outer: while i < s.count {
            guard s[i] == "&" else { out.append(s[i]); i += 1; continue }
            if i + 1 < s.count, s[i + 1] == "#" {
                var j = i + 2
                let hex = j < s.count && (s[j] == "x" || s[j] == "X")
                if hex { j += 1 }
                let start = j
                while j < s.count, hex ? s[j].properties.isASCIIHexDigit : ("0"..."9").contains(s[j]) { j += 1 }
                if j > start {
                    var digits = String.UnicodeScalarView()
                    digits.append(contentsOf: s[start..<j])
                    let value = UInt32(String(digits), radix: hex ? 16 : 10) ?? 0xFFFD
                    let terminated = j < s.count && s[j] == ";"
                    if terminated || !semicolonRequired {
                        out.append(Unicode.Scalar(value == 0 || value > 0x10FFFF ? 0xFFFD : value) ?? "\u{FFFD}")
                        i = terminated ? j + 1 : j
                        continue
                    }
                }
            }
            for (name, value, semicolonOptional) in named {
                let letters = Array(name.unicodeScalars)
                guard i + 1 + letters.count <= s.count, Array(s[(i + 1)..<(i + 1 + letters.count)]) == letters else { continue }
                let end = i + 1 + letters.count
                if end < s.count, s[end] == ";" {
                    out.append(contentsOf: value.unicodeScalars)
                    i = end + 1
                    continue outer
                }
                if semicolonOptional && !semicolonRequired {
                    out.append(contentsOf: value.unicodeScalars)
                    i = end
                    continue outer
                }
            }
            out.append("&")
            i += 1
        }
        return String(out)
    }
}
