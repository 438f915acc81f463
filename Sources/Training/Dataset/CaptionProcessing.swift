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


    /// `step`: optimizer steps taken so far and `totalSteps` the run's, for the token warm-up.
    public static func process(_ caption: String, subset: DatasetSubset, epoch: Int, step: Int = 0, totalSteps: Int = 0,
                               random: inout TrainingRandom) -> String {
        var text = caption
        if let prefix = subset.captionPrefix { text = prefix + " " + text }
        if let suffix = subset.captionSuffix { text = text + " " + suffix }
        let dropByRate = subset.captionDropoutRate > 0 && random.uniform() < subset.captionDropoutRate
        let dropByEpoch = subset.captionDropoutEveryNEpochs > 0 && epoch % subset.captionDropoutEveryNEpochs == 0
        if dropByRate || dropByEpoch { return "" }
        if subset.enableWildcard { text = wildcards(text, random: &random) }
        if subset.shuffleCaption || subset.tokenWarmupStep > 0 || subset.captionTagDropoutRate > 0 {
            text = tags(text, subset: subset, step: step, totalSteps: totalSteps, random: &random)
        }
        // After the shuffle: groups written with the secondary separator moved as one tag.
        if let secondary = subset.secondarySeparator, !secondary.isEmpty {
            text = text.replacingOccurrences(of: secondary, with: subset.captionSeparator)
        }
        return text
    }

    /// The tag step: kept tags in front (and behind, with the separator's second occurrence), the rest cut by
    /// the warm-up, shuffled, dropped one by one, joined with ", ".
    static func tags(_ text: String, subset: DatasetSubset, step: Int, totalSteps: Int, random: inout TrainingRandom) -> String {
        // kohya drops empty tags around keep_tokens_separator, but keeps them otherwise ("a, , b" stays so).
        func split(_ s: Substring, keepEmpty: Bool) -> [String] {
            String(s).components(separatedBy: subset.captionSeparator).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { keepEmpty || !$0.isEmpty }
        }
        var fixed: [String] = [], flexible: [String], fixedSuffix: [String] = []
        if !subset.keepTokensSeparator.isEmpty, let range = text.range(of: subset.keepTokensSeparator) {
            fixed = split(text[..<range.lowerBound], keepEmpty: false)
            let rest = text[range.upperBound...]
            if let second = rest.range(of: subset.keepTokensSeparator) {
                flexible = split(rest[..<second.lowerBound], keepEmpty: false)
                fixedSuffix = split(rest[second.upperBound...], keepEmpty: false)
            } else {
                flexible = split(rest, keepEmpty: false)
            }
        } else {
            let all = split(Substring(text.trimmingCharacters(in: .whitespacesAndNewlines)), keepEmpty: true)
            let keep = min(max(subset.keepTokens, 0), all.count)
            (fixed, flexible) = (Array(all[..<keep]), Array(all[keep...]))
        }
        // token_warmup_step (a fraction of the run below 1): from token_warmup_min flexible tags up to all of them.
        let warmup = subset.tokenWarmupStep < 1 ? Int((subset.tokenWarmupStep * Double(totalSteps)).rounded(.down)) : Int(subset.tokenWarmupStep)
        if warmup > 0 && step < warmup {
            let count = Int((Double(step) * (Double(flexible.count - subset.tokenWarmupMin) / Double(warmup))).rounded(.down)) + subset.tokenWarmupMin
            flexible = Array(flexible.prefix(max(0, count)))
        }
        if subset.shuffleCaption { random.shuffle(&flexible) }
        if subset.captionTagDropoutRate > 0 {
            flexible = flexible.filter { _ in random.uniform() >= subset.captionTagDropoutRate }
        }
        return (fixed + flexible + fixedSuffix).joined(separator: ", ")
    }
}
