import ArgumentParser
struct InspectBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "placeholder")
    func run() throws {}
}
