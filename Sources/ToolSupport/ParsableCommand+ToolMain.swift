import ArgumentParser

extension ParsableCommand {
    /// Every tool's entry point: a shell's completion request is answered, the process is set up, then the command
    /// line is parsed and run. The set-up comes before parsing because it may run the process again
    /// (`ToolEnvironment.prepare`: OpenBLAS's kernels are chosen at load time); done later, every note printed while
    /// parsing and validating (a config file's unknown keys, options accepted and not acted on) came out twice.
    public static func toolMain() {
        Completions.answerBashRequest(Self.self)
        ToolEnvironment.prepare()
        Self.main(nil)
    }
}
