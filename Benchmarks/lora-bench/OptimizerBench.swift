import ArgumentParser
import Foundation
import LoRACore
import ToolSupport
import Training

/// One optimizer step over the parameters of kohya's SD1.5 LoRA (U-Net and text encoder, at a rank), per optimizer:
/// the share of a training step each one takes, beside optimizer_reference.py running the same packages in torch on
/// the same shapes (`--shapes-out` writes them).
struct OptimizerBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "optimizer", abstract: "Time optimizer steps on an SD1.5 LoRA's parameters.")

    @Option(help: "Network dim (rank).")
    var rank = 32

    @Option(help: "Timed steps per optimizer (the median is reported).")
    var steps = 5

    @Option(parsing: .upToNextOption, help: "Optimizers, by lora-train's --optimizer-type names.")
    var optimizers = ["AdamW", "Lion", "Prodigy", "Adafactor", "AdamWScheduleFree", "pytorch_optimizer.CAME",
                      "bitsandbytes.optim.AdEMAMix8bit", "prodigyplus.ProdigyPlusScheduleFree"]

    @Option(help: "Write the parameter shapes as JSON for optimizer_reference.py.")
    var shapesOut: String?

    func run() throws {
        ToolEnvironment.prepare()
        for line in ToolEnvironment.hostReport { print(line) }
        let network = LoRANetwork.kohya(ModelLayout(.real(.sd1)), dim: rank, alpha: Float(rank) / 2) { 0.01 }
        let parameters = network.parameters
        if let shapesOut {
            try JSON.array(parameters.map { .array($0.shape.map { .number(String($0)) }) }).serialized().write(toFile: shapesOut, atomically: true, encoding: .utf8)
        }
        // Fixed gradients of a realistic size (a LoRA step's are around 1e-4).
        for (k, p) in parameters.enumerated() {
            for i in 0..<p.count { p.gradient.values[i] = Float(sin(Double(i) * 0.37 + Double(k))) * 1e-4 }
        }
        let total = parameters.reduce(0) { $0 + $1.count }
        print("\(network.modules.count) modules, \(parameters.count) tensors, \(total) parameters (rank \(rank))")
        for name in optimizers {
            guard let choice = OptimizerChoice(kohyaName: name) else { throw ValidationError("unknown optimizer \(name)") }
            var optimizer = try choice.make(arguments: [])
            let rate = choice.adaptive || choice == .prodigyPlusScheduleFree ? 1.0 : 1e-4
            let groups = [ParameterGroup(name: "unet", parameters: parameters, learningRate: rate)]
            optimizer.useGradientPointWeights(parameters)
            try optimizer.update(groups)   // first step: state allocation
            var times: [Double] = []
            for _ in 0..<steps {
                let start = Date()
                try optimizer.update(groups)
                times.append(Date().timeIntervalSince(start))
            }
            let median = times.sorted()[times.count / 2]
            print(name.padding(toLength: 40, withPad: " ", startingAt: 0) + String(format: "%8.1f ms", median * 1000))
        }
    }
}
