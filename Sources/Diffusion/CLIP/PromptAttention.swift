/// AUTOMATIC1111's emphasis syntax, parsed as `parse_prompt_attention` does:
/// `(text)` ×1.1, `[text]` ÷1.1, `(text:1.3)` ×1.3, nesting multiplies,
/// `\(` `\)` `\[` `\]` `\\` are literal, unclosed brackets apply to the end,
/// `BREAK` (a whole word) starts a new 75-token chunk, and neighbouring runs
/// with equal weight are merged. sd-scripts' copy of the parser (library/strategy_base.py, for
/// `--weighted_captions`) is the older one: no `BREAK`, and no whitespace inside `(text:1.3)`.
public enum PromptAttention {
    public enum Dialect: Sendable {
        /// A1111's current parser (prompts of lora-xyz, infotext).
        case a1111
        /// sd-scripts' `parse_prompt_attention` (training captions).
        case kohya
    }

    public struct Segment: Sendable, Equatable, CustomStringConvertible {
        public var text: String
        public var weight: Double
        /// A `BREAK` marker (A1111 represents it as the text "BREAK" with weight -1).
        public var isBreak: Bool { text == "BREAK" && weight == -1 }
        public var description: String { "[\(text.debugDescription), \(weight)]" }
        public init(text: String, weight: Double) {
            self.text = text
            self.weight = weight
        }
    }

    public static func parse(_ prompt: String, dialect: Dialect = .a1111) -> [Segment] {
        var result: [Segment] = []
        var round: [Int] = []
        var square: [Int] = []
        func multiply(from start: Int, by factor: Double) {
            for i in start..<result.count { result[i].weight *= factor }
        }
        func appendText(_ text: String, to result: inout [Segment]) {
            if dialect == .kohya { result.append(Segment(text: text, weight: 1)) } else { Self.appendText(text, to: &result) }
        }
        for token in tokens(prompt, spacedWeights: dialect == .a1111) {
            switch token {
            case .literal(let text):
                result.append(Segment(text: text, weight: 1))
            case .openRound:
                round.append(result.count)
            case .openSquare:
                square.append(result.count)
            case .weight(let value, let raw):
                if let start = round.popLast() {
                    multiply(from: start, by: value)
                } else {
                    appendText(raw, to: &result)
                }
            case .closeRound:
                if let start = round.popLast() { multiply(from: start, by: 1.1) } else { appendText(")", to: &result) }
            case .closeSquare:
                if let start = square.popLast() { multiply(from: start, by: 1 / 1.1) } else { appendText("]", to: &result) }
            case .text(let text):
                appendText(text, to: &result)
            }
        }
        for start in round { multiply(from: start, by: 1.1) }
        for start in square { multiply(from: start, by: 1 / 1.1) }
        if result.isEmpty { result = [Segment(text: "", weight: 1)] }
        var i = 0
        while i + 1 < result.count {
            if result[i].weight == result[i + 1].weight {
                result[i].text += result[i + 1].text
                result.remove(at: i + 1)
            } else {
                i += 1
            }
        }
        return result
    }

    enum Token: Equatable {
        case literal(String)
        case openRound, openSquare, closeRound, closeSquare
        case weight(Double, raw: String)
        case text(String)
    }

    /// The lexer: A1111's regular expression, alternative by alternative.
    /// `spacedWeights`: A1111's `:\s*…\s*\)`; sd-scripts' `:([+-]?[.\d]+)\)` allows no spaces.
    static func tokens(_ prompt: String, spacedWeights: Bool = true) -> [Token] {
        let s = Array(prompt.unicodeScalars)
        var out: [Token] = []
        var i = 0
        func string(_ range: Range<Int>) -> String {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: s[range])
            return String(view)
        }
        while i < s.count {
            let c = s[i]
            switch c {
            case "\\":
                if i + 1 < s.count, "()[]\\".unicodeScalars.contains(s[i + 1]) {
                    out.append(.literal(String(s[i + 1])))
                    i += 2
                } else {
                    // A lone backslash: A1111 keeps what follows it, i.e. nothing.
                    out.append(.literal(""))
                    i += 1
                }
            case "(": out.append(.openRound); i += 1
            case "[": out.append(.openSquare); i += 1
            case ")": out.append(.closeRound); i += 1
            case "]": out.append(.closeSquare); i += 1
            case ":":
                if let (value, end) = weight(s, after: i, spaces: spacedWeights) {
                    out.append(.weight(value, raw: string(i..<end)))
                    i = end
                } else {
                    out.append(.text(":"))
                    i += 1
                }
            default:
                var j = i
                while j < s.count, !"\\()[]:".unicodeScalars.contains(s[j]) { j += 1 }
                out.append(.text(string(i..<j)))
                i = j
            }
        }
        return out
    }

    /// `:\s*([+-]?[.\d]+)\s*\)` at `colon`: the value and the index after `)`.
    static func weight(_ s: [Unicode.Scalar], after colon: Int, spaces: Bool = true) -> (Double, Int)? {
        var j = colon + 1
        while spaces, j < s.count, s[j].properties.isWhitespace { j += 1 }
        let start = j
        if j < s.count, s[j] == "+" || s[j] == "-" { j += 1 }
        let digitsStart = j
        while j < s.count, s[j] == "." || ("0"..."9").contains(s[j]) { j += 1 }
        guard j > digitsStart else { return nil }
        var numberText = String.UnicodeScalarView()
        numberText.append(contentsOf: s[start..<j])
        while spaces, j < s.count, s[j].properties.isWhitespace { j += 1 }
        guard j < s.count, s[j] == ")" else { return nil }
        // Python's float() rejects "1.2.3" (A1111 then fails); treat it as text instead.
        guard let value = Double(String(numberText)) else { return nil }
        return (value, j + 1)
    }

    /// Plain text, split at `BREAK` words (whitespace around them is dropped).
    static func appendText(_ text: String, to result: inout [Segment]) {
        for (index, part) in splitAtBreak(text).enumerated() {
            if index > 0 { result.append(Segment(text: "BREAK", weight: -1)) }
            result.append(Segment(text: part, weight: 1))
        }
    }

    /// `re.split(r"\s*\bBREAK\b\s*", text)`.
    static func splitAtBreak(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        func isWord(_ c: Unicode.Scalar) -> Bool { c == "_" || c.properties.isAlphabetic || c.properties.numericType != nil }
        let word = Array("BREAK".unicodeScalars)
        var parts: [String] = []
        var pieceStart = 0
        var i = 0
        while i + word.count <= s.count {
            if Array(s[i..<(i + word.count)]) == word, i == 0 || !isWord(s[i - 1]), i + word.count == s.count || !isWord(s[i + word.count]) {
                var before = i
                while before > pieceStart, s[before - 1].properties.isWhitespace { before -= 1 }
                var after = i + word.count
                while after < s.count, s[after].properties.isWhitespace { after += 1 }
                var piece = String.UnicodeScalarView()
                piece.append(contentsOf: s[pieceStart..<before])
                parts.append(String(piece))
                pieceStart = after
                i = after
            } else {
                i += 1
            }
        }
        var last = String.UnicodeScalarView()
        last.append(contentsOf: s[pieceStart...])
        parts.append(String(last))
        return parts
    }
}
