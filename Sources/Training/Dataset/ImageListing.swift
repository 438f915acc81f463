import Foundation
import Imaging
import LoRACore

/// One training image as the dataset lists it.
public struct DatasetImage: Sendable, Equatable {
    public var path: String
    /// The caption file's first line, stripped; or the subset's class tokens; or the metadata file's caption and tags; or "".
    public var caption: String
    /// Where the caption came from, for the plan and its warnings.
    public enum CaptionSource: String, Sendable { case file, classTokens, metadata, none }
    public var captionSource: CaptionSource
    public var subsetIndex: Int
    public var repeats: Int
    public var isRegularization: Bool
    public var width = 0, height = 0
    /// The face its file name places, when its subset crops around faces and it is encoded without buckets (`FaceCrop`).
    public var face: FaceCrop.Box?
}

/// Listing a subset's images and reading their captions the way sd-scripts
/// does (library/train_util.py `glob_images`, `read_caption`): not recursive,
/// the listed extensions in both cases, sorted by path; the caption file is
/// `<image minus extension><caption extension>`, or, for names with five or
/// more `_`-separated parts, the name without its last four (face-crop
/// coordinates); only its first line counts, and an empty one is an error.
public enum ImageListing {
    public static func images(in directory: String) throws(ModelError) -> [String] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw ModelError(.io, "cannot list the folder: \(error.localizedDescription)", file: directory)
        }
        let extensions = Set(ImageFile.datasetExtensions + ImageFile.datasetExtensions.map { $0.uppercased() })
        return names.filter { name in
            guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return false }
            return extensions.contains(String(name[dot...]))
        }.map { (directory as NSString).appendingPathComponent($0) }.sorted()
    }

    /// The caption for `imagePath`, or nil when no caption file exists.
    /// With `wildcard` (kohya's enable_wildcard) every non-empty line, joined by newlines (one is drawn at each step).
    public static func caption(for imagePath: String, extension captionExtension: String, wildcard: Bool = false) throws(ModelError) -> String? {
        let base = (imagePath as NSString).deletingPathExtension
        let parts = base.split(separator: "_", omittingEmptySubsequences: false)
        var candidates = [base + captionExtension]
        if parts.count >= 5 { candidates.append(parts.dropLast(4).joined(separator: "_") + captionExtension) }
        for candidate in candidates where FileManager.default.fileExists(atPath: candidate) {
            guard let data = FileManager.default.contents(atPath: candidate) else {
                throw ModelError(.io, "cannot read the caption file", file: candidate)
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw ModelError(.invalid, "the caption file is not UTF-8", file: candidate)
            }
            guard !text.isEmpty else { throw ModelError(.invalid, "the caption file is empty", file: candidate) }
            if wildcard {
                return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }.joined(separator: "\n")
            }
            // Any line break (a Windows "\r\n" is one Character in Swift, not a "\n").
            let firstLine = text.split(maxSplits: 1, omittingEmptySubsequences: false, whereSeparator: \.isNewline).first ?? ""
            return firstLine.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return nil
    }

    /// Extensions of caption-like files beside the images that are not the one asked for
    /// (`.txt` when `.caption` was asked): kohya's most silent beginner mistake.
    public static func otherCaptionExtensions(in directory: String, images: [String], asked: String) -> [String] {
        var found: Set<String> = []
        for image in images {
            let base = (image as NSString).deletingPathExtension
            for candidate in [".txt", ".caption", ".tags"] where candidate != asked {
                if FileManager.default.fileExists(atPath: base + candidate) { found.insert(candidate) }
            }
        }
        return found.sorted()
    }
}
