import ArgumentParser

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

    /// The fields given, by their modelspec key.
    var fields: [String: String] {
        var f: [String: String] = [:]
        for (key, value) in [("title", metadataTitle), ("author", metadataAuthor), ("description", metadataDescription), ("license", metadataLicense),
                             ("tags", metadataTags), ("usage_hint", metadataUsageHint), ("trigger_phrase", metadataTriggerPhrase)] {
            if let value { f["modelspec." + key] = value }
        }
        return f
    }
}
