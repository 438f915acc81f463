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
public struct CaptionEncoder: Sendable {
    public let text: TextConditioner
    public var maxTokenLength: Int?
    public var clipSkip: Int?

    public init(text: TextConditioner, maxTokenLength: Int? = nil, clipSkip: Int? = nil) throws(ModelError) {
        guard text.family != .sdxl else { throw ModelError(.unsupported, "SDXL training is not supported yet") }
        if let m = maxTokenLength, ![75, 150, 225].contains(m) {
            throw ModelError(.mismatch, "--max-token-length must be 75, 150 or 225 (sd-scripts' values), not \(m)")
        }
        self.text = text
        self.maxTokenLength = maxTokenLength
        self.clipSkip = clipSkip
    }

    /// Token ids of each 77-token chunk.
    public func chunks(_ caption: String) -> [[Int]] {
        let length = maxTokenLength ?? 75
        let openCLIP = text.family == .sd2
        let pad = openCLIP ? 0 : BPETokenizer.endOfText
        let tokens = Array(text.chunker.tokenizer.encode(caption).prefix(length))
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

    /// [1, 2 + 75·chunks, contextDim].
    public func context(_ caption: String) throws(ModelError) -> Tensor {
        let encoder = text.encoders[0]
        let available = text.family == .sd2 ? encoder.config.layers - 1 : encoder.config.layers
        let layers = available - max(0, min((clipSkip ?? 1) - 1, available - 1))
        let chunks = chunks(caption)
        let hidden = try encoder.encode(chunks, layerCount: layers, finalNorm: true).hidden
        guard chunks.count > 1 else { return Tensor(shape: [1, 77, hidden.shape[2]], values: hidden.values) }
        let width = hidden.shape[2]
        var values = Array(hidden.values[0..<width])
        for c in chunks.indices { values += hidden.values[((c * 77 + 1) * width)..<((c * 77 + 76) * width)] }
        values += hidden.values[((chunks.count * 77 - 1) * width)..<(chunks.count * 77 * width)]
        return Tensor(shape: [1, values.count / width, width], values: values)
    }
}
