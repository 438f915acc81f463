/// LoRA modules attached to a model at run time, looked up by the checkpoint
/// key of the weight they change. The base weights are never modified:
/// plain LoRA/LoCon modules run as low-rank side paths (y += s·up(down(x))),
/// so switching LoRAs or weights costs almost nothing; every other kind (LoHa,
/// LoKr, full, (IA)^3, DoRA, …) is folded once into a replacement weight with
/// the same code `lora-merge` bakes with.
public final class AdapterSet: Sendable {
    public struct LowRank: Sendable {
        /// [rank, in·kh·kw]: a linear map, or a kh×kw convolution for LoCon.
        public let down: [Float]
        /// [out, rank]
        public let up: [Float]
        public let rank: Int
        /// alpha/rank × the user's multiplier × the block weight.
        public let scale: Float
        /// Rows of a packed weight (OpenCLIP's q/k/v) the module writes to.
        public let rows: Range<Int>?

        public init(down: [Float], up: [Float], rank: Int, scale: Float, rows: Range<Int>?) {
            self.down = down
            self.up = up
            self.rank = rank
            self.scale = scale
            self.rows = rows
        }
    }

    /// Weight key → low-rank side paths.
    public let lowRank: [String: [LowRank]]
    /// Weight or bias key → the merged tensor that replaces the base one.
    public let replacements: [String: [Float]]

    public init(lowRank: [String: [LowRank]] = [:], replacements: [String: [Float]] = [:]) {
        self.lowRank = lowRank
        self.replacements = replacements
    }

    public static let empty = AdapterSet()
    public var isEmpty: Bool { lowRank.isEmpty && replacements.isEmpty }
}
