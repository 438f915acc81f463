/// A1111's extra-network tags — `<lora:name:0.8>`, `<hypernet:x:1>` — are
/// instructions, not text: A1111 removes every `<word:anything>` from the
/// prompt before encoding it (regex `<(\w+):([^>]+)>`), so the same prompt
/// encodes the same here.
public enum ExtraNetworks {
    public struct Tag: Sendable, Equatable {
        public var kind: String
        public var arguments: [String]
        public init(kind: String, arguments: [String]) {
            self.kind = kind
            self.arguments = arguments
        }
    }

    /// The prompt without tags, and the tags in order.
    public static func parse(_ prompt: String) -> (text: String, tags: [Tag]) {
        var text = "", tags: [Tag] = []
        let chars = Array(prompt)
        var i = 0
        while i < chars.count {
            if chars[i] == "<", let tag = match(chars, at: i) {
                tags.append(tag.tag)
                i = tag.end
                continue
            }
            text.append(chars[i])
            i += 1
        }
        return (text, tags)
    }

    public static func strip(_ prompt: String) -> String { parse(prompt).text }

    /// `<` word-characters `:` one or more non-`>` `>`, starting at `start`.
    private static func match(_ chars: [Character], at start: Int) -> (tag: Tag, end: Int)? {
        var i = start + 1
        while i < chars.count, chars[i] == "_" || chars[i].isLetter || chars[i].isNumber { i += 1 }
        guard i > start + 1, i < chars.count, chars[i] == ":" else { return nil }
        let kind = String(chars[(start + 1)..<i])
        i += 1
        let argumentStart = i
        while i < chars.count, chars[i] != ">" { i += 1 }
        guard i < chars.count, i > argumentStart else { return nil }
        let arguments = String(chars[argumentStart..<i]).split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        return (Tag(kind: kind, arguments: arguments), i + 1)
    }
}
