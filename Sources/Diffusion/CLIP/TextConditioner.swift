import LoRACore

/// A prompt turned into what the U-Net attends to.
public struct Conditioning: Sendable, Equatable {
    /// [1, 77·chunks, contextDim]
    public var context: Tensor
    /// SDXL: the pooled output of the second encoder, [1, width].
    public var pooled: Tensor?
}

/// Prompt → conditioning the way A1111 does it for each family: emphasis
/// parsing, 75-token chunks encoded separately and concatenated, clip skip
/// (SD1), the penultimate layer (SD2 with its final LayerNorm, SDXL without),
/// SDXL's two encoders side by side with the pooled vector of the first chunk,
/// and zeros for an empty SDXL negative prompt.
public struct TextConditioner: Sendable {
    public let family: Family
    public let encoders: [CLIPTextEncoder]
    public let chunker: PromptChunker
    /// A1111's "Clip skip" (1 = last layer). Only SD1 uses it, as in A1111.
    public var clipSkip = 1
    public var emphasis: EmphasisMode = .original

    public init(family: Family, encoders: [CLIPTextEncoder], tokenizer: BPETokenizer) {
        self.family = family
        self.encoders = encoders
        chunker = PromptChunker(tokenizer: tokenizer)
    }

    public func encode(_ prompt: String, isNegative: Bool = false, adapters: AdapterSet = .empty) throws(ModelError) -> Conditioning {
        let chunks = chunker.chunks(prompt, emphasis: emphasis)
        var openCLIPChunker = chunker
        openCLIPChunker.openCLIP = true
        // A1111 tokenizes for each encoder with that encoder's own tokenizer.
        let openCLIPChunks = family == .sd1 ? [] : openCLIPChunker.chunks(prompt, emphasis: emphasis)
        switch family {
        case .sd1:
            let te = encoders[0]
            let layers = te.config.layers - max(0, min(clipSkip - 1, te.config.layers - 1))
            return Conditioning(context: try encodeChunks(chunks, encoder: te, layers: layers, finalNorm: true, zeroPad: false, adapters: adapters).context,
                                pooled: nil)
        case .sd2:
            let te = encoders[0]
            return Conditioning(context: try encodeChunks(openCLIPChunks, encoder: te, layers: te.config.layers - 1, finalNorm: true, zeroPad: true,
                                                          adapters: adapters).context, pooled: nil)
        case .sdxl:
            let first = try encodeChunks(chunks, encoder: encoders[0], layers: encoders[0].config.layers - 1, finalNorm: false,
                                         zeroPad: false, adapters: adapters)
            // HTML entities can change the chunk count; keep the encoders aligned.
            let secondChunks = openCLIPChunks.count == chunks.count ? openCLIPChunks : chunks
            let second = try encodeChunks(secondChunks, encoder: encoders[1], layers: encoders[1].config.layers - 1, finalNorm: false,
                                          zeroPad: true, pooled: true, adapters: adapters)
            var context = concatenateLastAxis(first.context, second.context)
            var pooled = second.pooled
            if isNegative && prompt.isEmpty {
                // sgm's force_zero_embeddings=['txt']: cross-attention and pooled text are zero.
                context = Tensor(zeros: context.shape)
                pooled = pooled.map { Tensor(zeros: $0.shape) }
            }
            return Conditioning(context: context, pooled: pooled)
        }
    }

    /// Encode each chunk, apply emphasis, concatenate along the tokens.
    func encodeChunks(_ chunks: [PromptChunk], encoder: CLIPTextEncoder, layers: Int, finalNorm: Bool, zeroPad: Bool,
                      pooled: Bool = false, adapters: AdapterSet) throws(ModelError) -> Conditioning {
        var parts: [Tensor] = []
        var firstPooled: Tensor?
        for (index, chunk) in chunks.enumerated() {
            var ids = chunk.tokens
            if zeroPad, let end = ids.firstIndex(of: BPETokenizer.endOfText) {
                // OpenCLIP pads with 0 after the end token (A1111's id_pad for SD2/SDXL-G).
                for i in (end + 1)..<ids.count { ids[i] = 0 }
            }
            let output = try encoder.encode([ids], layerCount: layers, finalNorm: finalNorm, pooled: pooled && index == 0, adapters: adapters)
            if index == 0 { firstPooled = output.pooled }
            parts.append(applyEmphasis(output.hidden, multipliers: chunk.multipliers))
        }
        let width = encoder.config.width
        let tokens = parts.reduce(0) { $0 + $1.shape[1] }
        return Conditioning(context: Tensor(shape: [1, tokens, width], values: parts.flatMap(\.values)), pooled: firstPooled)
    }

    /// z·w per token, then (Original) rescaled so the chunk's mean is unchanged.
    func applyEmphasis(_ z: Tensor, multipliers: [Double]) -> Tensor {
        guard emphasis == .original || emphasis == .noNorm else { return z }
        let width = z.shape.last!
        var out = z
        let before = z.values.reduce(0.0) { $0 + Double($1) } / Double(z.count)
        for (t, m) in multipliers.enumerated() {
            let w = Float(m)
            for i in 0..<width { out.values[t * width + i] *= w }
        }
        guard emphasis == .original else { return out }
        let after = out.values.reduce(0.0) { $0 + Double($1) } / Double(out.count)
        let factor = Float(before) / Float(after)
        for i in out.values.indices { out.values[i] *= factor }
        return out
    }

    func concatenateLastAxis(_ a: Tensor, _ b: Tensor) -> Tensor {
        let tokens = a.shape[1], wa = a.shape[2], wb = b.shape[2]
        var values: [Float] = []
        values.reserveCapacity(tokens * (wa + wb))
        for t in 0..<tokens {
            values += a.values[(t * wa)..<((t + 1) * wa)]
            values += b.values[(t * wb)..<((t + 1) * wb)]
        }
        return Tensor(shape: [1, tokens, wa + wb], values: values)
    }

    /// SDXL's `y`: pooled text, then sinusoidal embeddings of the original size
    /// (h, w), the crop (top, left) and the target size (h, w).
    public static func sdxlVector(pooled: Tensor, originalSize: (Int, Int), crop: (Int, Int) = (0, 0), targetSize: (Int, Int),
                                  dim: Int = 256) -> Tensor {
        let values = [originalSize.0, originalSize.1, crop.0, crop.1, targetSize.0, targetSize.1].map(Float.init)
        let embedded = timestepEmbedding(values, dim: dim)
        return Tensor(shape: [1, pooled.count + embedded.count], values: pooled.values + embedded.values)
    }
}
