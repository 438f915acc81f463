import Foundation

/// One LoRA on a command line: `path[:ratio][:te=x][:unet=x][:lbw=preset|list]`.
///
/// `ratio` scales the whole LoRA (default 1); `te` and `unet` replace it for the
/// text encoder(s) and the U-Net, as A1111's `<lora:name:te:unet>` does; `lbw`
/// multiplies per block, as the LoRA Block Weight extension does.
public struct LoRASpec: Sendable, Equatable {
    public var path: String
    public var ratio: Double = 1
    public var textEncoderRatio: Double?
    public var unetRatio: Double?
    public var blockWeights: BlockWeights?

    public init(path: String, ratio: Double = 1, textEncoderRatio: Double? = nil, unetRatio: Double? = nil, blockWeights: BlockWeights? = nil) {
        self.path = path
        self.ratio = ratio
        self.textEncoderRatio = textEncoderRatio
        self.unetRatio = unetRatio
        self.blockWeights = blockWeights
    }

    public init(parsing text: String, fileExists: (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }) throws(ModelError) {
        var parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        // Paths may contain ':'; take the longest prefix that names an existing file.
        var pathCount = 1
        for n in stride(from: parts.count, through: 1, by: -1) where fileExists(parts[0..<n].joined(separator: ":")) {
            pathCount = n
            break
        }
        path = parts[0..<pathCount].joined(separator: ":")
        parts.removeFirst(pathCount)
        guard !path.isEmpty else { throw ModelError(.mismatch, "empty LoRA path in '\(text)'") }
        // Bare numbers are A1111's positional multipliers: <lora:name:te:unet>,
        // the first also the ratio of everything else; a third (dyn dim) is not supported.
        var positional = 0
        for part in parts {
            let pieces = part.split(separator: "=", maxSplits: 1).map(String.init)
            if pieces.count == 1 {
                guard let value = Double(part), value.isFinite else {
                    throw ModelError(.mismatch, "'\(part)' in '\(text)' is not a number (expected path[:ratio][:unet ratio][:te=x][:unet=x][:lbw=...])")
                }
                switch positional {
                case 0: ratio = value
                case 1: unetRatio = value
                default: throw ModelError(.mismatch, "'\(text)' has \(positional + 1) numbers; A1111's third one (dyn dim) is not supported")
                }
                positional += 1
                continue
            }
            let (key, value) = (pieces[0].lowercased(), pieces[1])
            switch key {
            case "te":
                guard let v = Double(value) else { throw ModelError(.mismatch, "te=\(value) is not a number") }
                textEncoderRatio = v
            case "unet":
                guard let v = Double(value) else { throw ModelError(.mismatch, "unet=\(value) is not a number") }
                unetRatio = v
            case "lbw", "w":
                blockWeights = try BlockWeights(parsing: value)
            default:
                throw ModelError(.mismatch, "unknown option '\(key)=' in '\(text)' (known: te=, unet=, lbw=)")
            }
        }
    }

    /// The total multiplier of a module: ratio (or te/unet) × block weight.
    public func multiplier(component: Component, block: BlockID?) -> Double {
        let base: Double
        switch component {
        case .unet: base = unetRatio ?? ratio
        case .textEncoder1, .textEncoder2: base = textEncoderRatio ?? ratio
        default: base = ratio
        }
        return base * (blockWeights?.weight(for: block) ?? 1)
    }

    /// As written in merge records.
    public var summary: String {
        var s = (path as NSString).lastPathComponent + ":" + formatNumber(ratio)
        if let te = textEncoderRatio { s += ":te=\(formatNumber(te))" }
        if let unet = unetRatio { s += ":unet=\(formatNumber(unet))" }
        if let lbw = blockWeights { s += ":lbw=\(lbw.description)" }
        return s
    }
}
