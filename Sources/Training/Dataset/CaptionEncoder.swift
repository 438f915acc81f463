import Diffusion
import LoRACore

/// Captions to the U-Net's context the way sd-scripts encodes them for SD1/SD2
/// (library/strategy_sd.py, strategy_base.py `_get_input_ids`) — not A1111's
/// way: no emphasis parsing, and without `--max-token-length` a caption is
/// cut at 75 tokens (one chunk of 77). With 150 or 225 it is tokenized to
/// that length, cut into chunks of 75 encoded separately, and joined as
/// BOS, every chunk's 75 positions, and the last chunk's final position.
/// `clipSkip` k takes the k-th hidden state from the end and still applies
/// the final LayerNorm; SD2's encoder is the 23-layer one (the penultimate).
///
/// `--weighted_captions` (sd-scripts' `tokenize_with_weights` / `encode_tokens_with_weights`):
/// the caption is parsed for `(text)`, `[text]`, `(text:1.3)` as sd-scripts parses it, each run of
/// text tokenized on its own, and the encoder's output at each token's position multiplied by its
/// weight (BOS, EOS and padding keep 1). Unlike A1111, the mean is not restored afterwards.
public struct CaptionEncoder: Sendable {
    public let text: TextConditioner
    public var maxTokenLength: Int?
    public var clipSkip: Int?
    public var weighted = false

    /// What `backward` needs: the encoder's saved pass and the position weights applied after it.
    public struct Saved {
        public var encoder: CLIPTextEncoder.Saved
        public var weights: [Float]?
    }

    public init(text: TextConditioner, maxTokenLength: Int? = nil, clipSkip: Int? = nil, weighted: Bool = false) throws(ModelError) {
        guard text.family != .sdxl else { throw ModelError(.unsupported, "SDXL training is not supported yet") }
        if let m = maxTokenLength, ![75, 150, 225].contains(m) {
            throw ModelError(.mismatch, "--max-token-length must be 75, 150 or 225 (sd-scripts' values), not \(m)")
        }
        self.text = text
        self.maxTokenLength = maxTokenLength
        self.clipSkip = clipSkip
        self.weighted = weighted
    }

    /// Token ids of each 77-token chunk.
    public func chunks(_ caption: String) -> [[Int]] {
        chunks(tokens: Array(text.chunker.tokenizer.encode(caption).prefix(maxTokenLength ?? 75)))
    }

    /// The weighted form: each parsed run of the caption tokenized on its own (sd-scripts'
    /// `get_prompts_with_weights`: it stops after the run that passes the length, then cuts), and per
    /// chunk the weight of each of its 77 positions.
    public func weightedChunks(_ caption: String) -> (ids: [[Int]], weights: [[Float]]) {
        let length = maxTokenLength ?? 75
        var tokens: [Int] = [], weights: [Float] = []
        for segment in PromptAttention.parse(caption, dialect: .kohya) {
            let ids = text.chunker.tokenizer.encode(segment.text)
            tokens += ids
            weights += [Float](repeating: Float(segment.weight), count: ids.count)
            if tokens.count > length { break }
        }
        tokens = Array(tokens.prefix(length))
        weights = Array(weights.prefix(length)) + [Float](repeating: 1, count: max(0, length - weights.count))
        let chunkWeights = stride(from: 0, to: length, by: 75).map { start in [1] + Array(weights[start..<(start + 75)]) + [1] }
        return (chunks(tokens: tokens), chunkWeights)
    }

    /// Token ids (already cut to the length) → 77-token chunks.
    func chunks(tokens: [Int]) -> [[Int]] {
        let length = maxTokenLength ?? 75
        let openCLIP = text.family == .sd2
        let pad = openCLIP ? 0 : BPETokenizer.endOfText
        var ids = [BPETokenizer.startOfText] + tokens + [BPETokenizer.endOfText]
        ids += [Int](repeating: pad, count: length + 2 - ids.count)
        return stride(from: 0, to: length, by: 75).map { start in
            var chunk = [ids[0]] + Array(ids[(start + 1)..<(start + 76)]) + [ids[ids.count - 1]]
            if openCLIP {
                // sd-scripts' fix-ups where pad ≠ EOS: a chunk cut inside the text ends with EOS;
                // a chunk that starts with padding gets EOS there.
                if chunk[75] != BPETokenizer.endOfText && chunk[75] != pad { chunk[76] = BPETokenizer.endOfText }
                if chunk[1] == pad { chunk[1] = BPETokenizer.endOfText }
            }
            return chunk
        }
    }

    var layerCount: Int {
        let encoder = text.encoders[0]
        let available = text.family == .sd2 ? encoder.config.layers - 1 : encoder.config.layers
        return available - max(0, min((clipSkip ?? 1) - 1, available - 1))
    }

    /// [1, 2 + 75·chunks, contextDim] (77 for one chunk) through the frozen encoder.
    public func context(_ caption: String) throws(ModelError) -> Tensor { try contexts([caption]) }

    /// Several captions through the frozen encoder in one batch: [b, 2 + 75·chunks, contextDim].
    public func contexts(_ captions: [String]) throws(ModelError) -> Tensor {
        let (ids, weights) = tokens(captions)
        var context = join(try text.encoders[0].encode(ids, layerCount: layerCount, finalNorm: true).hidden, items: captions.count,
                           chunks: ids.count / captions.count)
        if let weights { scaleRows(&context, by: weights) }
        return context
    }

    /// The contexts of several captions [b, 2 + 75·chunks, contextDim] with the
    /// tape's text-encoder modules applied, and what `backward` needs.
    public func contextsSaving(_ captions: [String], tape: TrainingTape) -> (Tensor, Saved) {
        let (ids, weights) = tokens(captions)
        let (hidden, saved) = text.encoders[0].forwardSaving(ids, layerCount: layerCount, finalNorm: true, tape: tape)
        var context = join(hidden, items: captions.count, chunks: ids.count / captions.count)
        if let weights { scaleRows(&context, by: weights) }
        return (context, Saved(encoder: saved, weights: weights))
    }

    /// The gradient at the contexts back through the weights and the encoder into the tape's modules.
    public func backward(_ saved: Saved, contextGradient: Tensor, tape: TrainingTape) {
        let items = contextGradient.shape[0], width = contextGradient.shape[2]
        let chunks = (contextGradient.shape[1] - 2) / 75
        var gradient = contextGradient
        if let weights = saved.weights { scaleRows(&gradient, by: weights) }   // d(w·h)/dh = w
        text.encoders[0].backward(saved.encoder, outputGradient: split(gradient, items: items, chunks: chunks, width: width), tape: tape)
    }

    /// Every caption's chunks, and (weighted, when any weight is not 1) the weight of every context position
    /// [b · (2 + 75·chunks)] in `join`'s layout.
    func tokens(_ captions: [String]) -> (ids: [[Int]], weights: [Float]?) {
        guard weighted else { return (captions.flatMap { chunks($0) }, nil) }
        var ids: [[Int]] = [], positions: [Float] = []
        for caption in captions {
            let (chunkIDs, chunkWeights) = weightedChunks(caption)
            ids += chunkIDs
            if chunkWeights.count == 1 { positions += chunkWeights[0] } else {
                // sd-scripts: positions 1…75 of chunk i scale by that chunk's token weights; the first and last stay.
                positions.append(1)
                for w in chunkWeights { positions += w[1...75] }
                positions.append(1)
            }
        }
        return (ids, positions.allSatisfy { $0 == 1 } ? nil : positions)
    }

    /// Row r of [b, n, w] times weights[r].
    func scaleRows(_ tensor: inout Tensor, by weights: [Float]) {
        let width = tensor.shape[2]
        precondition(weights.count * width == tensor.count)
        for (row, w) in weights.enumerated() where w != 1 {
            for j in (row * width)..<((row + 1) * width) { tensor.values[j] *= w }
        }
    }

    /// Chunk outputs [items·chunks, 77, w] → [items, 2 + 75·chunks, w]: BOS of
    /// the first chunk, positions 1…75 of every chunk, the last chunk's final position.
    func join(_ hidden: Tensor, items: Int, chunks: Int) -> Tensor {
        let width = hidden.shape[2]
        guard chunks > 1 else { return hidden }
        var values: [Float] = []
        for item in 0..<items {
            let base = item * chunks * 77
            func take(_ row: Int, _ count: Int) { values += hidden.values[(row * width)..<((row + count) * width)] }
            take(base, 1)
            for c in 0..<chunks { take(base + c * 77 + 1, 75) }
            take(base + chunks * 77 - 1, 1)
        }
        return Tensor(shape: [items, 2 + 75 * chunks, width], values: values)
    }

    /// The inverse of `join` for gradients (positions `join` dropped get zero).
    func split(_ gradient: Tensor, items: Int, chunks: Int, width: Int) -> Tensor {
        guard chunks > 1 else { return gradient }
        var out = Tensor(zeros: [items * chunks, 77, width])
        let length = 2 + 75 * chunks
        for item in 0..<items {
            let source = item * length, base = item * chunks * 77
            func copy(_ from: Int, _ to: Int, _ count: Int) {
                out.values.replaceSubrange((to * width)..<((to + count) * width), with: gradient.values[(from * width)..<((from + count) * width)])
            }
            copy(source, base, 1)
            for c in 0..<chunks { copy(source + 1 + 75 * c, base + c * 77 + 1, 75) }
            copy(source + length - 1, base + chunks * 77 - 1, 1)
        }
        return out
    }
}
