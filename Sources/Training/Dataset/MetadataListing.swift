import Foundation
import Imaging
import LoRACore

/// A fine-tuning subset's images and captions as kohya reads its metadata
/// (`--in_json`, a dataset config's `metadata_file`; sd-scripts train_util.py
/// `FineTuningDataset.__init__`): a JSON object from image key to
/// `{"caption": …, "tags": …}` (what finetune/merge_captions_to_metadata.py and
/// merge_dd_tags_to_metadata.py write), or JSON Lines of
/// `{"image_path": …, "caption": …, "tags": …}` (a file ending in `.jsonl`).
///
/// A key is the image's path, absolute or relative to the subset's folder. The
/// metadata scripts write the file name without its extension unless given
/// `--full_path`; today's sd-scripts then finds only a latent cache for it, its
/// earlier versions (and this) the image with one of the dataset extensions.
/// Other fields ("image_size", "train_resolution") are not read: the image's
/// own header gives its size.
public enum MetadataListing {
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var path: String
        /// The caption with the tags joined on as kohya does.
        public var caption: String
        /// The tags as kohya counts them for `ss_tag_frequency` (nil: the entry has none).
        public var tags: String?
    }

    /// The subset's entries in kohya's order: the longest keys first (ties as in the file).
    public static func entries(of subset: DatasetSubset) throws(ModelError) -> [Entry] {
        guard let file = subset.metadataFile else { return [] }
        let records = try read(file)
        var entries: [Entry] = []
        // Python's sort is stable: keys of one length keep the file's order; len() counts code points.
        let order = records.indices.sorted {
            let (a, b) = (records[$0].key.unicodeScalars.count, records[$1].key.unicodeScalars.count)
            return a != b ? a > b : $0 < $1
        }
        for (key, record) in order.map({ records[$0] }) {
            func text(_ field: String) throws(ModelError) -> String? {
                switch record[field] {
                case nil, .null?: return nil
                case let .string(s)?: return s
                default: throw ModelError(.invalid, "\"\(field)\" of \"\(TerminalText.escape(key))\" is not a string", file: file, key: key)
                }
            }
            var caption = try text("caption") ?? ""
            var tags = try text("tags")
            let separator = subset.captionSeparator
            if subset.enableWildcard {
                // Tags on one line, joined to every non-empty line of the caption.
                if let t = tags {
                    let line = t.replacingOccurrences(of: "\n", with: separator)
                    tags = line
                    caption = caption.split(separator: "\n", omittingEmptySubsequences: false)
                        .filter { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }.map { String($0) + separator + line }.joined(separator: "\n")
                }
            } else if let t = tags, !t.isEmpty {
                caption += (caption.isEmpty ? "" : separator) + t
            } else {
                tags = nil  // kohya counts only non-empty tags here
            }
            entries.append(Entry(key: key, path: try imagePath(key, directory: subset.imageDirectory, file: file), caption: caption, tags: tags))
        }
        return entries
    }

    /// The records of a metadata file, in file order.
    static func read(_ file: String) throws(ModelError) -> [(key: String, fields: JSON)] {
        guard let data = FileManager.default.contents(atPath: file) else { throw ModelError(.io, "cannot read the metadata file", file: file) }
        if file.hasSuffix(".jsonl") {
            var records: [(String, JSON)] = []
            for (number, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
                guard line.contains(where: { ![0x20, 0x09, 0x0D].contains($0) }) else { continue }
                let record: JSON
                do { record = try JSONParser.parse([UInt8](line)) } catch {
                    throw ModelError(.invalid, "line \(number + 1): \(error.message)", file: file)
                }
                guard case .object = record, let path = record["image_path"]?.stringValue else {
                    throw ModelError(.invalid, "line \(number + 1) is not an object with an \"image_path\" string", file: file)
                }
                records.append((path, record))
            }
            return records
        }
        let root: JSON
        do { root = try JSONParser.parse([UInt8](data)) } catch {
            throw ModelError(.invalid, "not valid JSON: \(error.message)", file: file, offset: UInt64(error.offset))
        }
        guard case let .object(members) = root else {
            throw ModelError(.invalid, "not a JSON object of image keys (kohya's metadata: {\"image\": {\"caption\": …}})", file: file)
        }
        for (key, value) in members {
            guard case .object = value else {
                throw ModelError(.invalid, "the entry of \"\(TerminalText.escape(key))\" is not an object", file: file, key: key)
            }
        }
        return members
    }

    /// The image a key names: the path itself (relative to `directory`), or, for a key without
    /// an image extension, the first of `<key>.png`, `<key>.jpg` … that exists (sd-scripts' `glob_images(dir, key)`).
    static func imagePath(_ key: String, directory: String, file: String) throws(ModelError) -> String {
        let isAbsolute = key.hasPrefix("/")
        guard isAbsolute || !directory.isEmpty else {
            throw ModelError(.mismatch, "\"\(TerminalText.escape(key))\" is a relative path: give the image folder (--train-data-dir, or image_dir "
                             + "in the dataset config)", file: file, key: key)
        }
        let path = isAbsolute ? key : (directory as NSString).appendingPathComponent(key)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue { return path }
        let extensions = ImageFile.datasetExtensions + ImageFile.datasetExtensions.map { $0.uppercased() }
        if let found = extensions.map({ path + $0 }).sorted().first(where: { FileManager.default.fileExists(atPath: $0) }) { return found }
        throw ModelError(.io, "no image for \"\(TerminalText.escape(key))\": neither \(TerminalText.escape(path)) nor it with "
                         + ImageFile.datasetExtensions.joined(separator: ", ") + " exists", file: file, key: key)
    }
}
