/// How A1111 weights emphasised tokens (its "Emphasis mode" setting).
public enum EmphasisMode: String, Sendable, CaseIterable, Codable {
    /// Scale each token's output by its weight, then restore the chunk's mean (A1111's default).
    case original = "Original"
    /// Scale without restoring the mean.
    case noNorm = "No norm"
    /// Parse the brackets but ignore the weights.
    case ignore = "Ignore"
    /// No parsing: brackets are literal text.
    case none = "None"
}

/// 77 token ids (start, 75 prompt tokens, end) and a weight per token.
public struct PromptChunk: Sendable, Equatable {
    public var tokens: [Int]
    public var multipliers: [Double]
}

/// A1111's `tokenize_line`: the prompt's weighted segments are tokenized one by
/// one and packed into chunks of 75 tokens. A full chunk whose last comma is
/// within `commaBacktrack` tokens of its end moves the text after that comma
/// to the next chunk; `BREAK` closes the chunk; chunks are padded with the end
/// token and framed by start and end tokens.
public struct PromptChunker: Sendable {
    public let tokenizer: BPETokenizer
    public var chunkLength = 75
    public var commaBacktrack = 20
    /// Tokenize as OpenCLIP does (SD2 and SDXL's second encoder): HTML entities decoded.
    public var openCLIP = false

    public init(tokenizer: BPETokenizer, openCLIP: Bool = false) {
        self.tokenizer = tokenizer
        self.openCLIP = openCLIP
    }

    public func chunks(_ prompt: String, emphasis: EmphasisMode = .original) -> [PromptChunk] {
        let segments = emphasis == .none ? [PromptAttention.Segment(text: prompt, weight: 1)] : PromptAttention.parse(prompt)
        let start = BPETokenizer.startOfText, end = BPETokenizer.endOfText
        let comma = tokenizer.vocabulary[",</w>"] ?? 267
        var chunks: [PromptChunk] = []
        var tokens: [Int] = [], weights: [Double] = []
        var lastComma = -1

        func close() {
            let missing = chunkLength - tokens.count
            if missing > 0 {
                tokens += Array(repeating: end, count: missing)
                weights += Array(repeating: 1, count: missing)
            }
            chunks.append(PromptChunk(tokens: [start] + tokens + [end], multipliers: [1] + weights + [1]))
            tokens = []
            weights = []
            lastComma = -1
        }

        for segment in segments {
            if segment.isBreak {
                close()
                continue
            }
            for token in tokenizer.encode(segment.text, unescapeHTML: openCLIP) {
                if token == comma {
                    lastComma = tokens.count
                } else if commaBacktrack != 0, tokens.count == chunkLength, lastComma != -1, tokens.count - lastComma <= commaBacktrack {
                    let split = lastComma + 1
                    let movedTokens = Array(tokens[split...]), movedWeights = Array(weights[split...])
                    tokens.removeSubrange(split...)
                    weights.removeSubrange(split...)
                    close()
                    tokens = movedTokens
                    weights = movedWeights
                }
                if tokens.count == chunkLength { close() }
                tokens.append(token)
                weights.append(segment.weight)
            }
        }
        if !tokens.isEmpty || chunks.isEmpty { close() }
        return chunks
    }
}
