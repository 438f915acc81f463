/// A block id as the LoRA Block Weight extension names them: BASE (the text
/// encoders), IN00–IN11, M00, OUT00–OUT11 (LDM U-Net block indices).
public struct BlockID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Position in the 26-slot list: 0 = BASE, 1–12 = IN00–IN11, 13 = M00, 14–25 = OUT00–OUT11.
    public let slot: Int

    public static let base = BlockID(slot: 0)
    public static let middle = BlockID(slot: 13)
    public static func input(_ i: Int) -> BlockID { BlockID(slot: 1 + i) }
    public static func output(_ i: Int) -> BlockID { BlockID(slot: 14 + i) }

    public init(slot: Int) { self.slot = slot }

    public init?(_ name: String) {
        let upper = name.uppercased()
        if upper == "BASE" { self = .base; return }
        if upper == "M00" || upper == "MID" { self = .middle; return }
        if upper.hasPrefix("IN"), let i = Int(upper.dropFirst(2)), (0...11).contains(i) { self = .input(i); return }
        if upper.hasPrefix("OUT"), let i = Int(upper.dropFirst(3)), (0...11).contains(i) { self = .output(i); return }
        return nil
    }

    public var description: String {
        switch slot {
        case 0: return "BASE"
        case 13: return "M00"
        case 1...12: return "IN" + twoDigits(slot - 1)
        default: return "OUT" + twoDigits(slot - 14)
        }
    }

    private func twoDigits(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }

    public static func < (a: BlockID, b: BlockID) -> Bool { a.slot < b.slot }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = BlockID(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad block id \(text)"))
        }
        self = id
    }
}

/// The block lists users type in LoRA Block Weight syntax.
public enum BlockLists {
    /// 17 values: SD1/SD2 LoRA (attention-bearing blocks only).
    public static let sd17: [BlockID] = ["BASE", "IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "M00",
                                         "OUT03", "OUT04", "OUT05", "OUT06", "OUT07", "OUT08", "OUT09", "OUT10", "OUT11"].map { BlockID($0)! }
    /// 26 values: SD1/SD2 LyCORIS/LoCon (every block).
    public static let sd26: [BlockID] = (0..<26).map { BlockID(slot: $0) }
    /// 12 values: SDXL LoRA.
    public static let sdxl12: [BlockID] = ["BASE", "IN04", "IN05", "IN07", "IN08", "M00",
                                           "OUT00", "OUT01", "OUT02", "OUT03", "OUT04", "OUT05"].map { BlockID($0)! }
    /// 20 values: SDXL LyCORIS/LoCon.
    public static let sdxl20: [BlockID] = [BlockID.base] + (0...8).map { BlockID.input($0) } + [BlockID.middle] + (0...8).map { BlockID.output($0) }

    /// The list a report for this family shows: the full list, so conv-only blocks appear too.
    public static func reportOrder(_ family: Family?) -> [BlockID] {
        family == .sdxl ? sdxl20 : sd26
    }
}
