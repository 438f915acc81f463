import Foundation
import LoRACore

/// One axis of the sheet: the product of the values of one or more
/// parameters (a Z axis of "prompt, seed" shows every prompt with every seed).
public struct Axis: Sendable, Codable, Equatable {
    public var kinds: [AxisKind]
    /// Each entry: one value per kind, in `kinds` order.
    public var values: [[AxisValue]]

    public init(kinds: [AxisKind], values: [[AxisValue]]) {
        self.kinds = kinds
        self.values = values
    }

    static let single = Axis(kinds: [], values: [[]])
    public var count: Int { values.count }
    public var title: String { kinds.map(\.title).joined(separator: " × ") }
    public func label(_ index: Int) -> String { values[index].map(\.label).joined(separator: " | ") }

    /// The axis of several parameters: every combination, first kind slowest.
    static func product(_ parts: [(AxisKind, [AxisValue])]) -> Axis {
        var combos: [[AxisValue]] = [[]]
        for (_, values) in parts {
            combos = combos.flatMap { combo in values.map { combo + [$0] } }
        }
        return Axis(kinds: parts.map(\.0), values: combos)
    }
}

/// A cell: its place on the sheet and its settings.
public struct PlannedCell: Sendable, Codable, Equatable {
    public var x: Int, y: Int, z: Int
    /// Position in the plan (z, then y, then x): what shards split.
    public var index: Int
    public var settings: CellSettings
}

/// The sheet: three axes over base settings. Cells are listed Z-major, then
/// Y, then X — the reading order of the sheets.
public struct Plan: Sendable, Codable, Equatable {
    var base: CellSettings
    public var x: Axis, y: Axis, z: Axis
    public var cells: [PlannedCell]

    public init(base: CellSettings, x: Axis, y: Axis, z: Axis) throws(ModelError) {
        self.base = base
        self.x = x
        self.y = y
        self.z = z
        var cells: [PlannedCell] = []
        for zi in 0..<z.count { for yi in 0..<y.count { for xi in 0..<x.count {
            var s = base
            // Z, then Y, then X, as A1111 nests them: Prompt S/R on an inner
            // axis sees the prompt an outer axis chose.
            for value in z.values[zi] + y.values[yi] + x.values[xi] { try s.apply(value) }
            cells.append(PlannedCell(x: xi, y: yi, z: zi, index: cells.count, settings: s))
        } } }
        self.cells = cells
    }

    /// Shard `part` of `count` (1-based, as job arrays count): every
    /// `count`-th cell, so each shard gets a similar mix of slow and fast cells.
    public func shard(_ part: Int, of count: Int) -> [PlannedCell] {
        cells.filter { $0.index % count == part - 1 }
    }
}

/// "i/n" for --shard.
public struct Shard: Sendable, Equatable, Codable {
    let part: Int, count: Int

    public init(part: Int, count: Int) {
        self.part = part
        self.count = count
    }

    public init?(_ text: String) {
        let pieces = text.split(separator: "/")
        guard pieces.count == 2, let i = Int(pieces[0]), let n = Int(pieces[1]), n >= 1, i >= 1, i <= n else { return nil }
        part = i
        count = n
    }

    public var description: String { "\(part)/\(count)" }
}
