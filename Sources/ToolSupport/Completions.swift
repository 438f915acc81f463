import ArgumentParser
import Foundation

/// Shell completion as users type our commands: ArgumentParser's bash script
/// completes a subcommand's options only after the subcommand's name, but the
/// README writes `lora-merge --model …` (bake is the default subcommand). The
/// generated script is kept and taught to fall back to the default
/// subcommand when no subcommand has been typed.
public enum Completions {
    /// Call first in a tool's `main()`: answers `--generate-completion-script bash`
    /// with the patched script and exits; does nothing otherwise.
    public static func answerBashRequest<C: ParsableCommand>(_ command: C.Type) {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard arguments == ["--generate-completion-script", "bash"] || arguments == ["--generate-completion-script=bash"] else { return }
        print(bashScript(command), terminator: "")
        exit(0)
    }

    /// The bash script with the default subcommand's completions offered at the top level.
    public static func bashScript<C: ParsableCommand>(_ command: C.Type) -> String {
        let script = C.completionScript(for: .bash)
        guard let defaultCommand = C.configuration.defaultSubcommand, let defaultName = defaultCommand.configuration.commandName,
              let root = C.configuration.commandName else { return script }
        let marker = "        # Offer subcommand completions\n"
        guard let range = script.range(of: marker),
              let lineEnd = script[range.upperBound...].firstIndex(of: "\n") else { return script }
        let addition = """
                    # \(root) runs \(defaultName) when no subcommand is named: complete its arguments too
                    # (subcommand names only as the first word)
                    (( COMP_CWORD > 1 )) && COMPREPLY=()
                    unparsed_words=("${COMP_WORDS[@]:1:${COMP_CWORD}}")
                    "_\(root)_\(defaultName)"

            """
        var patched = script
        patched.insert(contentsOf: addition, at: script.index(after: lineEnd))
        return patched
    }
}
