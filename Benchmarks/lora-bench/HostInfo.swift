import ArgumentParser
import Diffusion
import ToolSupport

/// Which host a run was on and which code paths it takes: printed by CI
/// before the tests and at the top of benchmark notes, so a failure or a
/// figure can be traced to the CPU it came from.
struct HostInfo: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "host", abstract: "Print the CPU, the kernel paths and the OpenBLAS core type in use.")

    func run() throws {
        ToolEnvironment.prepare()
        for line in ToolEnvironment.hostReport { print(line) }
        print("torch noise kernel (default for --rng-variant auto): \(TorchGenerator.Variant.native.rawValue)")
    }
}
