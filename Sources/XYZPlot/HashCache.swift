import Foundation
import LoRACore

/// File hashes remembered by path, size and modification time, so a re-run
/// does not read a 7 GB checkpoint again just to name it.
final class HashCache: @unchecked Sendable {
    struct Entry: Codable {
        var size: Int
        var modified: Double
        var hashes: FileHashes
    }

    private let path: String
    private var entries: [String: Entry]
    private let lock = NSLock()
    /// Read the file but never write it (a dry run leaves the cache folder as it was).
    private let readOnly: Bool

    init(path: String, readOnly: Bool = false) {
        self.path = path
        self.readOnly = readOnly
        if let data = FileManager.default.contents(atPath: path),
           let decoded = try? JSONDecoder().decode([String: Entry].self, from: data) {
            entries = decoded
        } else {
            entries = [:]
        }
    }

    private func stamp(_ path: String) -> (Int, Double)? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let size = (attributes[.size] as? NSNumber)?.intValue,
              let date = attributes[.modificationDate] as? Date else { return nil }
        return (size, date.timeIntervalSince1970)
    }

    private func cached(_ path: String) -> FileHashes? {
        let absolute = (path as NSString).standardizingPath
        lock.lock(); defer { lock.unlock() }
        guard let entry = entries[absolute], let (size, modified) = stamp(path), entry.size == size, entry.modified == modified else { return nil }
        return entry.hashes
    }

    private func remember(_ path: String, _ hashes: FileHashes) {
        guard let (size, modified) = stamp(path) else { return }
        lock.lock()
        entries[(path as NSString).standardizingPath] = Entry(size: size, modified: modified, hashes: hashes)
        let snapshot = entries
        lock.unlock()
        if !readOnly, let bytes = try? FileOutput.json(snapshot) { try? FileOutput.write(bytes, to: self.path) }
    }

    func hashes(_ model: ModelFile, path: String) throws(ModelError) -> FileHashes {
        if let hit = cached(path) { return hit }
        let computed = Hashing.hashes(of: model)
        remember(path, computed)
        return computed
    }

    func sha256(_ file: MappedFile, path: String) throws(ModelError) -> String {
        if let hit = cached(path) { return hit.sha256 }
        let sha = Hashing.sha256(file)
        remember(path, FileHashes(sha256: sha, autoV1: Hashing.legacyModelHash(file), addnet: nil))
        return sha
    }
}
