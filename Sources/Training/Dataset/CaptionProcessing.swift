import Foundation

/// A caption as it reaches the text encoder at one step, in sd-scripts'
/// order (library/train_util.py `BaseDataset.process_caption`): prefix and
/// suffix; dropout of the whole caption (a rate, or every n-th epoch); then,
/// when shuffling or tag dropout is on, the caption split into tags at the
/// separator — the first `keep_tokens` tags (tags, not CLIP tokens), or the
/// text before `keep_tokens_separator`, stay in front — the rest shuffled and
/// each dropped with the tag dropout rate, and the tags joined with ", ".
public enum CaptionProcessing {
    public static func process(_ caption: String, subset: DatasetSubset, epoch: Int, random: inout TrainingRandom) -> String {
        var text = caption
        if let prefix = subset.captionPrefix { text = prefix + " " + text }
        if let suffix = subset.captionSuffix { text = text + " " + suffix }
        let dropByRate = subset.captionDropoutRate > 0 && random.uniform() < subset.captionDropoutRate
        let dropByEpoch = subset.captionDropoutEveryNEpochs > 0 && epoch % subset.captionDropoutEveryNEpochs == 0
        if dropByRate || dropByEpoch { return "" }
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
