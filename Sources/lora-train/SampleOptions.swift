import ArgumentParser
import LoRACore
import ToolSupport
import Training

/// Sample images during training (sd-scripts' sample arguments and prompt-file format).
struct SampleOptions: ParsableArguments {
    @Option(name: [.long, .customLong("sample_prompts")],
            help: ArgumentHelp("kohya prompt file: .txt (a prompt per line with --n negative --w --h --d seed --l cfg --s steps --ss sampler), .json or .toml.",
                               valueName: "path"), completion: .file(extensions: ["txt", "json", "toml"]))
    var samplePrompts: String?

    @Option(name: [.long, .customLong("sample_every_n_epochs")], help: ArgumentHelp("Render the samples every n epochs.", valueName: "n"))
    var sampleEveryNEpochs: Int?

    @Option(name: [.long, .customLong("sample_every_n_steps")],
            help: ArgumentHelp("Render the samples every n steps (ignored with --sample-every-n-epochs, as in kohya).", valueName: "n"))
    var sampleEveryNSteps: Int?

    @Flag(name: [.long, .customLong("sample_at_first")], help: "Also render the samples before the first step.")
    var sampleAtFirst = false

    @Option(name: [.long, .customLong("sample_sampler")],
            help: ArgumentHelp("Sampler of the samples: \(SamplePrompt.samplerNames.joined(separator: ", ")) (kohya's default ddim).", valueName: "name"),
            completion: .list(SamplePrompt.samplerNames))
    var sampleSampler = "ddim"

    func validate() throws {
        guard SamplePrompt.sampler(named: sampleSampler) != nil else {
            throw ValidationError("--sample-sampler \(sampleSampler) is not available (\(SamplePrompt.samplerNames.joined(separator: ", ")))")
        }
        for (name, value) in [("--sample-every-n-epochs", sampleEveryNEpochs), ("--sample-every-n-steps", sampleEveryNSteps)] {
            if let value, value < 1 { throw ValidationError("\(name) must be at least 1") }
        }
        if samplePrompts == nil && (sampleEveryNEpochs != nil || sampleEveryNSteps != nil || sampleAtFirst) {
            throw ValidationError("sampling asked without --sample-prompts (a kohya prompt file)")
        }
    }

    /// The prompts, read (and their samplers checked) before anything is trained.
    func prompts() throws -> [SamplePrompt] {
        guard let samplePrompts else { return [] }
        let prompts = try SamplePrompt.load(samplePrompts)
        if prompts.isEmpty && (sampleEveryNEpochs != nil || sampleEveryNSteps != nil || sampleAtFirst) {
            printError("warning: \(TerminalText.escape(samplePrompts)) has no prompts: no sample images are rendered")
        }
        if let bad = prompts.compactMap(\.sampler).first(where: { SamplePrompt.sampler(named: $0) == nil }) {
            throw ValidationError("\(samplePrompts): --ss \(bad) is not available (\(SamplePrompt.samplerNames.joined(separator: ", ")))")
        }
        return prompts
    }
}
