import Foundation
import LoRACore

/// CLIP's byte-level BPE tokenizer (the one SD1/SD2/SDXL text encoders use):
/// lowercase, whitespace-collapsed text is split by CLIP's pattern (special
/// tokens, contractions, letter runs, single digits, other-symbol runs), each
/// piece is mapped byte by byte to printable characters, ends in `</w>`, and
/// is merged pair by pair in merge-rank order.
public final class BPETokenizer: @unchecked Sendable {
    public static let startOfText = 49406
    public static let endOfText = 49407

    public let vocabulary: [String: Int]
    private let ranks: [Pair: Int]
    private let byteToCharacter: [Character]
    private var cache: [String: [Int]] = [:]
    private let lock = NSLock()

    struct Pair: Hashable {
        let first: String
        let second: String
    }

    /// - Parameters:
    ///   - merges: merge pairs in rank order.
    ///   - vocabulary: token → id; derived from the merges (CLIP's construction) when nil.
    public init(merges: [(String, String)], vocabulary: [String: Int]? = nil) {
        let bytes = BPETokenizer.byteEncoder()
        byteToCharacter = bytes
        var ranks: [Pair: Int] = [:]
        for (i, m) in merges.enumerated() where ranks[Pair(first: m.0, second: m.1)] == nil {
            ranks[Pair(first: m.0, second: m.1)] = i
        }
        self.ranks = ranks
        if let vocabulary {
            self.vocabulary = vocabulary
        } else {
            // CLIP's order: the 256 byte symbols (in byte-encoder order), the same
            // with </w>, every merge result, then the two special tokens.
            var tokens = BPETokenizer.byteEncoderOrder().map { String(bytes[Int($0)]) }
            tokens += tokens.map { $0 + "</w>" }
            tokens += merges.map { $0.0 + $0.1 }
            tokens += ["<|startoftext|>", "<|endoftext|>"]
            var vocab: [String: Int] = [:]
            for (i, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = i }
            self.vocabulary = vocab
        }
    }

    /// Printable stand-ins for the 256 byte values (GPT-2's bytes_to_unicode).
    static func byteEncoder() -> [Character] {
        var map = [Character](repeating: " ", count: 256)
        var printable = Set<Int>()
        for range in [33...126, 161...172, 174...255] { for b in range { printable.insert(b) } }
        var next = 0
        for b in 0..<256 {
            if printable.contains(b) {
                map[b] = Character(Unicode.Scalar(UInt32(b))!)
            } else {
                map[b] = Character(Unicode.Scalar(UInt32(256 + next))!)
                next += 1
            }
        }
        return map
    }

    /// Byte values in the order CLIP lists them in its vocabulary.
    static func byteEncoderOrder() -> [UInt8] {
        var order: [UInt8] = []
        for range in [33...126, 161...172, 174...255] { order += range.map { UInt8($0) } }
        for b in 0..<256 where !order.contains(UInt8(b)) { order.append(UInt8(b)) }
        return order
    }

    /// Token ids of `text`, without start/end tokens.
    /// - Parameter unescapeHTML: OpenCLIP's tokenizer (SD2, SDXL's second encoder)
    ///   also decodes HTML entities such as `&amp;`; Hugging Face's does not.
    public func encode(_ text: String, unescapeHTML: Bool = false) -> [Int] {
        var ids: [Int] = []
        var text = TextNormalization.fixText(text)
        if unescapeHTML { text = TextNormalization.unescapeHTML(TextNormalization.unescapeHTML(text)) }
        for piece in BPETokenizer.pretokenize(BPETokenizer.clean(text)) {
            if piece == "<|startoftext|>" { ids.append(BPETokenizer.startOfText); continue }
            if piece == "<|endoftext|>" { ids.append(BPETokenizer.endOfText); continue }
            ids += bpe(piece)
        }
        return ids
    }

    /// NFC, whitespace runs collapsed to one space, trimmed, lowercased (the
    /// Hugging Face tokenizers' normalisation; ASCII prompts match every variant).
    static func clean(_ text: String) -> String {
        let normalized = text.precomposedStringWithCanonicalMapping
        var out = ""
        var pendingSpace = false
        for scalar in normalized.unicodeScalars {
            if scalar.properties.isWhitespace {
                pendingSpace = !out.isEmpty
                continue
            }
            if pendingSpace { out.unicodeScalars.append(" "); pendingSpace = false }
            out.unicodeScalars.append(scalar)
        }
        return out.lowercased()
    }

    /// CLIP's pattern: special tokens | 's 't 're 've 'm 'll 'd | letter runs |
    /// one digit | runs of anything else that is not whitespace.
    static func pretokenize(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var pieces: [String] = []
        var i = 0
        func isLetter(_ s: Unicode.Scalar) -> Bool {
            switch s.properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
            default: return false
            }
        }
        func isNumber(_ s: Unicode.Scalar) -> Bool {
            switch s.properties.generalCategory {
            case .decimalNumber, .letterNumber, .otherNumber: return true
            default: return false
            }
        }
        func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }
        func matches(_ literal: String, at index: Int) -> Bool {
            let l = Array(literal.unicodeScalars)
            guard index + l.count <= scalars.count else { return false }
            return Array(scalars[index..<(index + l.count)]) == l
        }
        while i < scalars.count {
            let s = scalars[i]
            if isSpace(s) { i += 1; continue }
            var matched: String?
            for special in ["<|startoftext|>", "<|endoftext|>"] where matches(special, at: i) { matched = special; break }
            if matched == nil, s == "'" {
                for contraction in ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"] where matches(contraction, at: i) { matched = contraction; break }
            }
            if let m = matched {
                pieces.append(m)
                i += m.unicodeScalars.count
                continue
            }
            var j = i + 1
            if isLetter(s) {
                while j < scalars.count && isLetter(scalars[j]) { j += 1 }
            } else if isNumber(s) {
                // one digit per piece
            } else {
                while j < scalars.count && !isSpace(scalars[j]) && !isLetter(scalars[j]) && !isNumber(scalars[j]) { j += 1 }
            }
            var piece = String.UnicodeScalarView()
            piece.append(contentsOf: scalars[i..<j])
            pieces.append(String(piece))
            i = j
        }
        return pieces
    }

    /// Merge one pre-tokenized piece; cached, since prompts repeat words.
    func bpe(_ piece: String) -> [Int] {
        lock.lock()
        if let hit = cache[piece] { lock.unlock(); return hit }
        lock.unlock()
        var symbols = Array(piece.utf8).map { String(byteToCharacter[Int($0)]) }
        guard !symbols.isEmpty else { return [] }
        symbols[symbols.count - 1] += "</w>"
        while symbols.count > 1 {
            var best: (rank: Int, index: Int)?
            for k in 0..<(symbols.count - 1) {
                if let r = ranks[Pair(first: symbols[k], second: symbols[k + 1])], r < (best?.rank ?? Int.max) { best = (r, k) }
            }
            guard let (_, _) = best else { break }
            // Merge every occurrence of the best pair, left to right.
            let pair = (symbols[best!.index], symbols[best!.index + 1])
            var merged: [String] = []
            var k = 0
            while k < symbols.count {
                if k < symbols.count - 1 && symbols[k] == pair.0 && symbols[k + 1] == pair.1 {
                    merged.append(pair.0 + pair.1)
                    k += 2
                } else {
                    merged.append(symbols[k])
                    k += 1
                }
            }
            symbols = merged
        }
        let ids = symbols.map { vocabulary[$0] ?? BPETokenizer.endOfText }
        lock.lock()
        cache[piece] = ids
        lock.unlock()
        return ids
    }
}
