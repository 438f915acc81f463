import ArgumentParser
import Foundation

/// kohya's --metadata_* arguments (sd-scripts library/sai_model_spec.py): the ModelSpec fields a model card
/// shows (A1111's and Civitai's metadata views, lora-inspect's training section).
struct ModelCardOptions: ParsableArguments {
    @Option(name: [.long, .customLong("metadata_title")], help: ArgumentHelp("modelspec.title (default: the output name).", valueName: "text"))
    var metadataTitle: String?

    @Option(name: [.long, .customLong("metadata_author")], help: ArgumentHelp("modelspec.author.", valueName: "text"))
    var metadataAuthor: String?

    @Option(name: [.long, .customLong("metadata_description")], help: ArgumentHelp("modelspec.description.", valueName: "text"))
    var metadataDescription: String?

    @Option(name: [.long, .customLong("metadata_license")], help: ArgumentHelp("modelspec.license.", valueName: "text"))
    var metadataLicense: String?

    @Option(name: [.long, .customLong("metadata_tags")], help: ArgumentHelp("modelspec.tags, comma-separated.", valueName: "text"))
    var metadataTags: String?

    @Option(name: [.long, .customLong("metadata_usage_hint")], help: ArgumentHelp("modelspec.usage_hint.", valueName: "text"))
    var metadataUsageHint: String?

    @Option(name: [.long, .customLong("metadata_trigger_phrase")], help: ArgumentHelp("modelspec.trigger_phrase.", valueName: "text"))
    var metadataTriggerPhrase: String?

    @Option(name: [.long, .customLong("metadata_thumbnail")],
            help: ArgumentHelp("modelspec.thumbnail: an image file, stored as a data URL (or a data: URL as given).", valueName: "path"),
            completion: .file(extensions: ["png", "jpg", "jpeg", "webp"]))
    var metadataThumbnail: String?

    @Option(name: [.long, .customLong("metadata_merged_from")], help: ArgumentHelp("modelspec.merged_from.", valueName: "text"))
    var metadataMergedFrom: String?

    @Option(name: [.long, .customLong("metadata_preprocessor")], help: ArgumentHelp("modelspec.preprocessor.", valueName: "text"))
    var metadataPreprocessor: String?

    @Option(name: [.long, .customLong("metadata_is_negative_embedding")], help: ArgumentHelp("modelspec.is_negative_embedding.", valueName: "text"))
    var metadataIsNegativeEmbedding: String?

    /// The fields given, by their modelspec key (kohya's sai_model_spec: every --metadata_X as modelspec.X).
    func fields() throws -> [String: String] {
        var f: [String: String] = [:]
        for (key, value) in [("title", metadataTitle), ("author", metadataAuthor), ("description", metadataDescription), ("license", metadataLicense),
                             ("tags", metadataTags), ("usage_hint", metadataUsageHint), ("trigger_phrase", metadataTriggerPhrase),
                             ("merged_from", metadataMergedFrom), ("preprocessor", metadataPreprocessor),
                             ("is_negative_embedding", metadataIsNegativeEmbedding)] {
            if let value { f["modelspec." + key] = value }
        }
        if let thumbnail = metadataThumbnail { f["modelspec.thumbnail"] = try Self.dataURL(thumbnail) }
        return f
    }

    /// kohya's file_to_data_url: `data:<type by extension, as Python's mimetypes>;base64,<bytes>`. kohya drops a
    /// thumbnail it cannot read with a warning; here it is an error before training.
    static func dataURL(_ path: String) throws -> String {
        if path.hasPrefix("data:") { return path }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("--metadata-thumbnail \(path): cannot read the file")
        }
        let types = ["png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif", "bmp": "image/bmp"]
        let type = types[(path as NSString).pathExtension.lowercased()] ?? "application/octet-stream"
        return "data:\(type);base64,\(data.base64EncodedString())"
    }
}
