import Foundation

/// A caption as it reaches the text encoder at one step, in sd-scripts'
/// order (library/train_util.py `BaseDataset.process_caption`): prefix and
/// suffix; dropout of the whole caption (a rate, or every n-th epoch); then,
/// when shuffling or tag dropout is on, the caption split into tags at the
/// separator — the first `keep_tokens` tags (tags, not CLIP tokens), or the
/// text before `keep_tokens_separator`, stay in front — the rest shuffled and
/// each dropped with the tag dropout rate, and the tags joined with ", ".
/// With `enable_wildcard`, before the tags: one line of a multi-line caption,
/// and each `{a|b|c}` one of its choices (`{{` and `}}` stay literal braces).
public enum CaptionProcessing {
    static func wildcards(_ caption: String, random: inout TrainingRandom) -> String {
        var text = caption
        if text.contains("\n") {
            let lines = text.components(separatedBy: "\n")
            text = lines[random.integer(below: lines.count)]
        }
        // kohya escapes {{ and }} with markers that do not occur in the text, substitutes, then restores them.
        var (open, close) = ("⦅", "⦆")
        while text.contains(open) || text.contains(close) { open += "⦅"; close += "⦆" }
        text = text.replacingOccurrences(of: "{{", with: open).replacingOccurrences(of: "}}", with: close)
        var out = "", rest = Substring(text)
        // re.sub(r"\{([^}]+)\}", …): an empty "{}" is no wildcard and stays as it is.
        while let start = rest.firstIndex(of: "{"), let end = rest[start...].firstIndex(of: "}") {
            guard rest.index(after: start) < end else {
                out += rest[...start]
                rest = rest[rest.index(after: start)...]
                continue
            }
            out += rest[..<start]
            let choices = rest[rest.index(after: start)..<end].components(separatedBy: "|")
            out += choices[random.integer(below: choices.count)]
            rest = rest[rest.index(after: end)...]
        }
        out += rest
        return out.replacingOccurrences(of: open, with: "{").replacingOccurrences(of: close, with: "}")
    }


    public static func process(_ caption: String, subset: DatasetSubset, epoch: Int, random: inout TrainingRandom) -> String {
        var text = caption
        if let prefix = subset.captionPrefix { text = prefix + " " + text }
        if let suffix = subset.captionSuffix { text = text + " " + suffix }
        let dropByRate = subset.captionDropoutRate > 0 && random.uniform() < subset.captionDropoutRate
        let dropByEpoch = subset.captionDropoutEveryNEpochs > 0 && epoch % subset.captionDropoutEveryNEpochs == 0
        if dropByRate || dropByEpoch { return "" }
        if subset.enableWildcard { text = wildcards(text, random: &random) }
        guard subset.shuffleCaption || subset.captionTagDropoutRate > 0 else { return text }

        func tags(_ s: Substring) -> [String] {
            s.split(separator: Character(subset.captionSeparator), omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        var fixed: [String], flexible: [String], fixedSuffix: [String] = []
        if !subset.keepTokensSeparator.isEmpty, let range = text.range(of: subset.keepTokensSeparator) {
            fixed = tags(text[..<range.lowerBound])
            let rest = text[range.upperBound...]
            if let second = rest.range(of: subset.keepTokensSeparator) {
                flexible = tags(rest[..<second.lowerBound])
                fixedSuffix = tags(rest[second.upperBound...])
            } else {
                flexible = tags(rest)
            }
        } else {
            let all = tags(Substring(text))
            let keep = min(max(subset.keepTokens, 0), all.count)
            (fixed, flexible) = (Array(all[..<keep]), Array(all[keep...]))
        }
        if subset.shuffleCaption { random.shuffle(&flexible) }
        if subset.captionTagDropoutRate > 0 {
            flexible = flexible.filter { _ in random.uniform() >= subset.captionTagDropoutRate }
        }
        return (fixed + flexible + fixedSuffix).joined(separator: ", ")
    }
}
