import Foundation
import LoRACore

/// LoRA files of one training run, in epoch order, labelled as users read
/// them on a sheet: "e4", "e8", … when every file's epoch is known (kohya's
/// `ss_epoch`, else a trailing number in the name such as `-000004`), the
/// file name otherwise.
public enum LoRAEpochs {
    public struct Entry: Sendable, Equatable {
        public let path: String
        public let epoch: Int?
        public let label: String
    }

    public static func order(_ paths: [String], epochOf: (String) -> Int?) -> [Entry] {
        func unique(_ list: [(String, Int?)]) -> Bool { list.allSatisfy { $0.1 != nil } && Set(list.compactMap(\.1)).count == list.count }
        var found = paths.map { ($0, epochOf($0)) }
        // Files copied from different runs can share ss_epoch; their names may still tell them apart.
        let byName = paths.map { ($0, nameEpoch(stem($0))) }
        if !unique(found) && unique(byName) { found = byName }
        let allKnown = unique(found)
        let sorted = found.sorted { a, b in
            switch (a.1, b.1) {
            case let (x?, y?) where x != y: return x < y
            case (_?, nil): return true
            case (nil, _?): return false
            default: return a.0.localizedStandardCompare(b.0) == .orderedAscending
            }
        }
        return sorted.map { path, epoch in
            Entry(path: path, epoch: epoch, label: allKnown ? "e\(epoch!)" : stem(path))
        }
    }

    static func stem(_ path: String) -> String {
        ((path as NSString).lastPathComponent as NSString).deletingPathExtension
    }

    /// `ss_epoch` from the file's metadata, else the number after the last '-'
    /// or '_' of the name (kohya saves `name-000004.safetensors`).
    public static func epoch(of path: String) -> Int? {
        if let file = try? ModelFile.open(path), let text = file.metadata[.epoch], let e = Int(text.trimmingCharacters(in: .whitespaces)) {
            return e
        }
        return nameEpoch(stem(path))
    }

    static func nameEpoch(_ stem: String) -> Int? {
        let digits = stem.reversed().prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, digits.count < stem.count else { return nil }
        let before = stem[stem.index(stem.endIndex, offsetBy: -digits.count - 1)]
        guard before == "-" || before == "_" || before == "e" else { return nil }
        return Int(String(digits.reversed()))
    }
}
