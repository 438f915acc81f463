import Diffusion
import Foundation
import LinearAlgebra
import LoRACore

/// Where a run stands, saved with `--save-state` so `--resume` continues it
/// exactly (the same file as an uninterrupted run): a folder named as kohya
/// names its state folders (`NAME-000002-state`, `NAME-step00000500-state`,
/// `NAME-state`) holding
///   train_state.json      kohya's `current_epoch` / `current_step`, and ours:
///                         the batch to continue from, the loop's random
///                         state, recent losses, the settings that must match
///   network.safetensors   the modules (a loadable kohya LoRA, fp32; a module LyCORIS's max-norm rule
///                         scaled holds its factors unscaled, its scalar is in train_state.json)
///   optimizer.safetensors the optimizer's tensors (moments…) and, in its metadata, its scalars (step, d…)
/// kohya's own state folders hold accelerate pickles; they are not read here.
public struct TrainingState: Sendable {
    public struct Position: Sendable, Codable, Equatable {
        /// 1-based epoch the next batch belongs to, batches of it already done, optimizer steps done.
        public var epoch: Int
        public var batch: Int
        public var step: Int
        /// The step the learning-rate schedule counts from (kohya's --initial_step does not move its scheduler);
        /// absent in states of runs that started at step 0.
        public var scheduleStart: Int? = nil
    }

    struct File: Codable {
        var current_epoch: Int
        var current_step: Int
        var lora_tools: Ours
        struct Ours: Codable {
            var position: Position
            var random: TorchGenerator.Snapshot
            var recentLosses: [Double]
            var settings: [String: String]
            /// LyCORIS's scalars that are not 1, by module name (absent when there are none).
            var scalars: [String: Float]? = nil
        }
    }

    public var position: Position
    var random: TorchGenerator.Snapshot
    var recentLosses: [Double]

    /// What must be the same for a resumed run to continue the saved one.
    static func settings(_ trainer: LoRATrainer) -> [String: String] {
        let c = trainer.configuration
        return ["network_dim": String(c.networkDim), "network_alpha": formatNumber(Double(c.networkAlpha)),
                "conv_dim": c.convDim.map(String.init) ?? "none", "modules": String(trainer.network.modules.count),
                "batches_per_epoch": String(trainer.steps.batchesPerEpoch), "total_steps": String(trainer.steps.totalSteps),
                "batch_size": trainer.plan.parts.map { String($0.batchSize) }.joined(separator: ","), "gradient_accumulation_steps": String(c.gradientAccumulationSteps),
                "seed": String(c.seed), "images": String(trainer.plan.images.count)]
    }
}

extension LoRATrainer {
    /// kohya's state folder name for a save at this epoch/step (nil: the end of training).
    func stateFolder(epoch: Int?, step: Int?) -> String {
        let name: String
        if let epoch { name = String(format: "%@-%06d-state", configuration.outputName, epoch) } else if let step {
            name = String(format: "%@-step%08d-state", configuration.outputName, step)
        } else {
            name = configuration.outputName + "-state"
        }
        return (configuration.outputDirectory as NSString).appendingPathComponent(name)
    }

    func saveState(to folder: String, position: TrainingState.Position, random: TrainingRandom, recentLosses: [Double]) throws(ModelError) {
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw ModelError(.io, "cannot create the state folder: \(error.localizedDescription)", file: folder)
        }
        _ = try saveNetwork(to: (folder as NSString).appendingPathComponent("network.safetensors"), epoch: position.epoch, step: position.step,
                            state: true)
        let state = optimizer.state
        let names = state.tensors.keys.sorted()
        let entries = names.map { SafeTensorsWriter.Entry(name: $0, dtype: .f32, shape: [state.tensors[$0]!.count]) }
        var metadata = Metadata([("optimizer", optimizer.kohyaName)])
        // Doubles as Swift prints them: shortest round-trip text, read back exactly.
        for (key, value) in state.scalars.sorted(by: { $0.key < $1.key }) { metadata["scalar." + key] = "\(value)" }
        let path = (folder as NSString).appendingPathComponent("optimizer.safetensors")
        let writer = try SafeTensorsWriter(path: path, metadata: metadata, entries: entries)
        do {
            try rethrowingModelError {
                for name in names { try state.tensors[name]!.withUnsafeBufferPointer { try writer.write(name: name, floats: $0) } }
            }
            try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
        var scalars: [String: Float] = [:]
        for module in network.modules {
            if let scalar = module.maxNormScalar, scalar.value != 1 { scalars[module.name] = scalar.value }
        }
        let file = TrainingState.File(current_epoch: position.epoch, current_step: position.step,
                                      lora_tools: .init(position: position, random: random.generator.snapshot, recentLosses: recentLosses,
                                                        settings: TrainingState.settings(self), scalars: scalars.isEmpty ? nil : scalars))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { try AtomicOutput.write(Array(try encoder.encode(file)), to: (folder as NSString).appendingPathComponent("train_state.json")) } catch let e as ModelError {
            throw e
        } catch {
            throw ModelError(.io, "cannot encode the training state: \(error)", file: folder)
        }
    }

    /// Loads a state folder into the modules and the optimizer; returns where to continue.
    public func loadState(from folder: String) throws(ModelError) -> TrainingState {
        let jsonPath = (folder as NSString).appendingPathComponent("train_state.json")
        guard let data = FileManager.default.contents(atPath: jsonPath) else {
            throw ModelError(.io, "no train_state.json: not a state folder written by lora-train --save-state", file: folder)
        }
        let file: TrainingState.File
        do { file = try JSONDecoder().decode(TrainingState.File.self, from: data) } catch {
            throw ModelError(.invalid, "train_state.json is not lora-train's (kohya's accelerate states cannot be read): \(error)", file: jsonPath)
        }
        let expected = TrainingState.settings(self)
        for (key, value) in expected.sorted(by: { $0.key < $1.key }) where file.lora_tools.settings[key] != value {
            throw ModelError(.mismatch, "the state was saved with \(key) \(file.lora_tools.settings[key] ?? "unset"), this run has \(value): "
                             + "resume with the same settings and dataset", file: folder)
        }
        // The position indexes the epoch's batches and the schedule: one outside the run it was saved by is refused
        // (a negative epoch stopped the process; a negative step would have trained past the schedule's end).
        let p = file.lora_tools.position
        let positions: [(String, Int, ClosedRange<Int>)] = [("epoch", p.epoch, 1...(steps.epochs + 1)), ("batch", p.batch, 0...steps.batchesPerEpoch),
                                                            ("step", p.step, 0...steps.totalSteps), ("schedule start", p.scheduleStart ?? 0, 0...steps.totalSteps)]
        if let (name, value, range) = positions.first(where: { !$0.2.contains($0.1) }) {
            throw ModelError(.invalid, "the state's \(name) \(value) is outside this run's \(range.lowerBound)…\(range.upperBound)", file: jsonPath, key: name)
        }
        try loadNetworkWeights((folder as NSString).appendingPathComponent("network.safetensors"))
        let scalars = file.lora_tools.scalars ?? [:]
        for module in network.modules {
            guard let scalar = module.maxNormScalar else { continue }
            let value = scalars[module.name] ?? 1
            guard value.isFinite, value > 0 else {
                throw ModelError(.invalid, "the scalar of \(module.name) is \(value), not a positive number", file: jsonPath, key: module.name)
            }
            scalar.value = value
        }
        if let unknown = scalars.keys.sorted().first(where: { name in
            !network.modules.contains { $0.name == name && $0.maxNormScalar != nil }
        }) {
            throw ModelError(.mismatch, "the state has a scalar for \(unknown), a module this network does not scale", file: jsonPath, key: unknown)
        }
        let optimizerFile = try ModelFile.open((folder as NSString).appendingPathComponent("optimizer.safetensors"))
        guard optimizerFile.metadata["optimizer"] == optimizer.kohyaName else {
            throw ModelError(.mismatch, "the state was saved by \(optimizerFile.metadata["optimizer"] ?? "another optimizer"), this run uses "
                             + "\(optimizer.kohyaName)", file: optimizerFile.path)
        }
        var state = OptimizerState()
        for tensor in optimizerFile.tensors { state.tensors[tensor.name] = tensor.floats() }
        for (key, value) in optimizerFile.metadata where key.hasPrefix("scalar.") {
            guard let v = Double(value) else { throw ModelError(.invalid, "optimizer scalar \(key) is not a number", file: optimizerFile.path, key: key) }
            state.scalars[String(key.dropFirst(7))] = v
        }
        do { try optimizer.restore(state) } catch { throw ModelError(.invalid, error.message, file: optimizerFile.path) }
        return TrainingState(position: file.lora_tools.position, random: file.lora_tools.random, recentLosses: file.lora_tools.recentLosses)
    }

    /// Module weights from a kohya LoRA file. A state's network (`strict`) must hold every module of this network
    /// with its shape. `--network-weights` loads as kohya's `load_state_dict(weights, strict=False)`: modules the
    /// file lacks keep their fresh initialisation, tensors of modules this network lacks are ignored (both
    /// counted in the result), a shape that differs is an error.
    @discardableResult
    public func loadNetworkWeights(_ path: String, strict: Bool = true) throws(ModelError) -> (loaded: Int, missing: Int, unused: Int) {
        let file = try ModelFile.open(path)
        let ours = Set(network.parameters.map(\.key))
        // LyCORIS's use_tucker and dora_wd change a module's tensors: name the switch rather than a count that differs.
        let switched = [("lora_mid.weight", "a Tucker core", "use_tucker"), ("hada_t1", "a Tucker core", "use_tucker"), ("lokr_t2", "a Tucker core", "use_tucker"),
                        ("dora_scale", "a DoRA magnitude", "dora_wd")]
        for module in network.modules where module.parameters.contains(where: { file[$0.key] != nil }) {
            for (suffix, what, option) in switched where (file[module.name + "." + suffix] != nil) != ours.contains(module.name + "." + suffix) {
                throw ModelError(.mismatch, ours.contains(module.name + "." + suffix)
                                 ? "the LoRA's \(module.name) has no \(what.dropFirst(2)) (\(suffix)) where \(option) gives this network one: train without \(option)"
                                 : "the LoRA's \(module.name) has \(what) (\(suffix)): train with --network-args \(option)=True", file: path, key: module.name + "." + suffix)
            }
        }
        var loaded = 0, missing = 0
        let trainedScalars = Set(network.modules.compactMap { $0.lycorisScalar?.scalar.parameter.map { ObjectIdentifier($0) } })
        for p in network.parameters {
            guard let tensor = file[p.key] else {
                // A LoRA file holds use_scalar's scalar folded into a factor: it restarts at 1 (LyCORIS's load_weight_hook).
                if !strict && trainedScalars.contains(ObjectIdentifier(p)) { p.values = [1]; continue }
                if !strict { missing += 1; continue }
                throw ModelError(.mismatch, "the LoRA has no \(p.key): it was trained with other modules (dim, conv_dim, text encoder)", file: path)
            }
            guard tensor.elementCount == p.count else {
                throw ModelError(.mismatch, "\(p.key) has \(tensor.elementCount) values, this network \(p.count) (another --network-dim?)", file: path, key: p.key)
            }
            p.values = tensor.floats()
            loaded += 1
        }
        let unused = file.tensors.filter { ($0.name.hasSuffix(".lora_down.weight") || $0.name.hasSuffix(".lora_up.weight")) && !ours.contains($0.name) }.count
        return (loaded, missing, unused)
    }
}

extension TrainedModule {
    /// LyCORIS's scalar where it is a buffer that its max norm moves (the state keeps it in train_state.json); a
    /// trained one (use_scalar) is a parameter of network.safetensors instead.
    var maxNormScalar: ModuleScalar? {
        guard let (scalar, _) = lycorisScalar, scalar.parameter == nil else { return nil }
        return scalar
    }
}
