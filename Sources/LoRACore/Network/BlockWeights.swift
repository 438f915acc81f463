/// Per-block multipliers in LoRA Block Weight syntax: a preset name users know
/// (`INALL`, `OUTALL`, `MIDD`, ...) or a list of 12 (SDXL), 17 (SD1/SD2),
/// 20 (SDXL LyCORIS) or 26 (SD1/SD2 LyCORIS) numbers.
///
/// As the LoRA Block Weight extension does, a shorter list is spread into the
/// 26 block slots by id and blocks it does not name get 0; modules outside any
/// block (conv_out, time embedding) keep weight 1.
public struct BlockWeights: Sendable, Equatable, CustomStringConvertible {
    /// Weights for BlockID slots 0 (BASE) … 25 (OUT11).
    public let slots: [Double]
    /// What the user wrote (preset name or list), for metadata and messages.
    public let description: String

    /// The extension's default presets (17 values, SD1/SD2 LoRA order).
    public static let presets: [(name: String, values: [Double])] = [
        ("NONE", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ("ALL", [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
        ("INS", [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ("IND", [1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ("INALL", [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ("MIDD", [1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]),
        ("OUTD", [1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0]),
        ("OUTS", [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]),
        ("OUTALL", [1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
        ("ALL0.5", [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
    ]

    public init(parsing text: String) throws(ModelError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let preset = BlockWeights.presets.first(where: { $0.name.caseInsensitiveCompare(trimmed) == .orderedSame }) {
            try self.init(values: preset.values, description: preset.name)
            return
        }
        var values: [Double] = []
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            guard let v = Double(part.trimmingCharacters(in: .whitespaces)), v.isFinite else {
                let names = BlockWeights.presets.map(\.name).joined(separator: ", ")
                throw ModelError(.mismatch, "block weights '\(text)' are neither a preset (\(names)) nor a list of numbers")
            }
            values.append(v)
        }
        try self.init(values: values, description: trimmed)
    }

    public init(values: [Double], description: String? = nil) throws(ModelError) {
        let ids: [BlockID]
        switch values.count {
        case 12: ids = BlockLists.sdxl12
        case 17: ids = BlockLists.sd17
        case 20: ids = BlockLists.sdxl20
        case 26: ids = BlockLists.sd26
        default:
            throw ModelError(.mismatch, "block weights need 12, 17, 20 or 26 values (LoRA Block Weight lists), got \(values.count)")
        }
        var slots = [Double](repeating: 0, count: 26)
        for (id, v) in zip(ids, values) { slots[id.slot] = v }
        self.slots = slots
        self.description = description ?? values.map(formatNumber).joined(separator: ",")
    }

    /// The multiplier for a module in `block` (nil: outside every block → 1).
    public func weight(for block: BlockID?) -> Double {
        guard let block else { return 1 }
        return slots[block.slot]
    }
}

import Foundation
