import ArgumentParser
import Foundation
import FixtureKit
import LoRACore
import ToolSupport

@main
struct LoRABench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora-bench",
        abstract: "Fixtures and side-by-side benchmarks for LoRA Tools (see Benchmarks/README.md).",
        version: LoRATools.version,
        subcommands: [
            HostInfo.self, MakeFixtures.self, MakeModel.self, InspectBench.self, MergeBench.self, ExtractBench.self, ExtractError.self, EngineBench.self, OptimizerBench.self,
            GemmBench.self, AttentionBench.self, TrainBench.self, KohyaTrainBench.self, ShapesDataset.self, TinyModel.self, ShapesEval.self,
        ])

    static func main() { toolMain() }
}

/// Writes the deterministic tiny fixture set committed under Fixtures/models.
struct MakeFixtures: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fixtures", abstract: "Write the tiny SD-shaped fixture models and LoRAs.")

    @Option(help: "Output folder.")
    var out = "Fixtures/models"

    @Flag(help: "Write every fixture kind, not only the committed ones.")
    var all = false

    func run() throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for (name, path) in try FixtureSet.write(to: out, all: all) {
            print("\(name): \(path)")
        }
    }
}

/// Writes a full-size SD-shaped checkpoint (random weights) for benchmarks.
struct MakeModel: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "make-model", abstract: "Write a full-size SD-shaped checkpoint or LoRA with random weights.")

    @Option(help: "sd1, sd2 or sdxl.")
    var family = "sd1"

    @Option(help: "checkpoint, or a LoRA layout: lora, locon, loha, lokr.")
    var kind = "checkpoint"

    @Option(help: "LoRA rank.")
    var rank = 32

    @Option(help: "LoRA alpha.")
    var alpha: Double = 16

    @Option(help: "Seed.")
    var seed: UInt64 = 1

    @Option(help: "Comma-separated kohya module names to plant rank-8 changes in (a 'fine-tuned' copy); 'all' for every attention and resnet module.")
    var plant: String?

    @Argument(help: "Output path.")
    var output: String

    func run() throws {
        ToolEnvironment.prepare()
        let families: [String: Family] = ["sd1": .sd1, "sd2": .sd2, "sdxl": .sdxl]
        guard let fam = families[family] else { throw ValidationError("unknown family \(family)") }
        let config = ArchitectureConfig.real(fam)
        let start = Date()
        if kind == "checkpoint" {
            var options = FixtureGenerator.CheckpointOptions()
            options.seed = seed
            if let plant {
                let names = plant == "all" ? ModelLayout(config).targets.filter { $0.set == .attention || $0.set == .resnet }.map(\.kohyaName)
                    : plant.split(separator: ",").map(String.init)
                for n in names { options.plantedDeltas[n] = 8 }
            }
            let bar = ProgressBar(label: "writing", total: ModelLayout(config).tensors.reduce(0) { $0 + $1.shape.reduce(1, *) * 2 })
            try FixtureGenerator.writeCheckpoint(config, to: output, options: options, progress: { bar.advance(by: $0) })
            bar.finish()
        } else {
            guard let layout = FixtureGenerator.LoRALayout(rawValue: kind) else { throw ValidationError("unknown kind \(kind)") }
            var options = FixtureGenerator.LoRAOptions()
            options.layout = layout
            options.rank = rank
            options.alpha = alpha
            options.convRank = rank
            options.convAlpha = alpha
            options.seed = seed
            try FixtureGenerator.writeLoRA(config, to: output, options: options)
        }
        print("wrote \(output) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
    }
}
