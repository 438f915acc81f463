/// A minimal zip writer (stored or declared-deflated members) for torch-format
/// checkpoints and hostile-archive tests.
public enum ZipBuilder {
    public static func build(_ entries: [(String, [UInt8])], method: UInt16 = 0, declaredSize: UInt32? = nil,
                      overlapLastWithFirst: Bool = false, corruptLocalOffset: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        var offsets: [Int] = []
        func le16(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt16(v).littleEndian) { Array($0) } }
        func le32(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(truncatingIfNeeded: v).littleEndian) { Array($0) } }
        for (name, data) in entries {
            offsets.append(out.count)
            let size = declaredSize.map(Int.init) ?? data.count
            out += le32(0x0403_4B50) + le16(20) + le16(0) + le16(Int(method)) + le16(0) + le16(0) + le32(0)
            out += le32(data.count) + le32(size) + le16(name.utf8.count) + le16(0) + Array(name.utf8) + data
        }
        for (i, (name, data)) in entries.enumerated() {
            var local = offsets[i]
            if overlapLastWithFirst && i == entries.count - 1 { local = offsets[0] }
            if corruptLocalOffset { local = 1_000_000 }
            let size = declaredSize.map(Int.init) ?? data.count
            central += le32(0x0201_4B50) + le16(20) + le16(20) + le16(0) + le16(Int(method)) + le16(0) + le16(0) + le32(0)
            central += le32(data.count) + le32(size) + le16(name.utf8.count) + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(local)
            central += Array(name.utf8)
        }
        let centralOffset = out.count
        out += central
        out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(entries.count) + le16(entries.count) + le32(central.count) + le32(centralOffset) + le16(0)
        return out
    }
}
