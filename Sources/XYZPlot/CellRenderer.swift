import Diffusion
import Foundation
import LoRACore

/// Renders cells with one engine: the checkpoint loaded once (cells come
/// grouped by checkpoint), LoRAs attached at run time and switched between
/// cells, text-encoder outputs reused by every cell with the same prompt and
/// text-encoder weights.
public final class CellRenderer: @unchecked Sendable {
    public let tokenizer: BPETokenizer
    public let catalog: Catalog
    private var pipeline: Pipeline?
    private var loadedVAE: String?
    private var adapterKey: String?
    private var adapters = AdapterSet.empty
    private var conditions: [String: Pipeline.Conditions] = [:]
    private var conditionOrder: [String] = []
    /// Prompt encodings kept (each a few hundred KB for SD1, more for SDXL).
    var conditionCapacity = 64
    /// Counters for reports and tests.
    private(set) var modelLoads = 0
    private(set) var adapterBuilds = 0
    private(set) var textEncodings = 0

    public init(tokenizer: BPETokenizer, catalog: Catalog) {
        self.tokenizer = tokenizer
        self.catalog = catalog
    }

    /// The order that loads each checkpoint once, builds each LoRA setting
    /// once and keeps prompts together; plan order within a group.
    static func renderOrder(_ cells: [PlannedCell]) -> [PlannedCell] {
        func group(_ c: PlannedCell) -> [String] {
            let s = c.settings
            let lora = s.weight == 0 ? "" : (s.lora ?? "")
            return [s.checkpoint, s.vae ?? "", s.extraLoRAs.joined(separator: "|"), lora, s.weight == 0 ? "" : Infotext.number(s.weight),
                    s.blockWeights ?? "", s.finalPrompt, s.negative]
        }
        return cells.enumerated().sorted { a, b in
            let ga = group(a.element), gb = group(b.element)
            return ga == gb ? a.offset < b.offset : ga.lexicographicallyPrecedes(gb)
        }.map(\.element)
    }

    public func render(_ settings: CellSettings, progress: KDiffusion.Progress? = nil) throws(ModelError) -> RGBImage {
        let pipeline = try pipeline(for: settings.checkpoint, vae: settings.vae, precision: settings.precision)
        let specs = try settings.loraSpecs
        let key = specs.map { "\($0.path)\u{0}\($0.summary)" }.joined(separator: "\u{1}")
        if key != adapterKey {
            adapters = .empty
            if !specs.isEmpty {
                var loaded: [LoadedLoRA] = []
                for spec in specs { loaded.append(try LoadedLoRA.open(spec)) }
                adapters = try RuntimeLoRA.adapters(for: pipeline.model, loras: loaded).0
                adapterBuilds += 1
            }
            adapterKey = key
        }
        let parameters = settings.generationParameters
        // Only the LoRAs' text-encoder parts change the prompt's encoding.
        let teKey = specs.contains { catalog.loras[$0.path]?.hasTextEncoder ?? true } ? key : ""
        let conditionKey = [parameters.prompt, parameters.negativePrompt, String(parameters.clipSkip), teKey].joined(separator: "\u{0}")
        let encoded: Pipeline.Conditions
        if let hit = conditions[conditionKey] {
            encoded = hit
        } else {
            encoded = try pipeline.conditions(prompt: parameters.prompt, negative: parameters.negativePrompt,
                                              clipSkip: parameters.clipSkip, adapters: adapters)
            textEncodings += 1
            conditions[conditionKey] = encoded
            conditionOrder.append(conditionKey)
            if conditionOrder.count > conditionCapacity { conditions[conditionOrder.removeFirst()] = nil }
        }
        let latents = try pipeline.sample(parameters, conditions: encoded, adapters: adapters, progress: progress)
        return try pipeline.decode(latents)
    }

    private func pipeline(for checkpoint: String, vae: String?, precision: ComputePrecision) throws(ModelError) -> Pipeline {
        if let pipeline, pipeline.model.path == checkpoint, loadedVAE == vae {
            if pipeline.precision == precision { return pipeline }
            self.pipeline = Pipeline(model: pipeline.model, precision: precision)
            return self.pipeline!
        }
        // Free the previous model before loading the next: two SDXL models do not fit next to each other.
        pipeline = nil
        adapterKey = nil
        adapters = .empty
        conditions = [:]
        conditionOrder = []
        let loaded = Pipeline(model: try StableDiffusionModel(checkpoint: checkpoint, tokenizer: tokenizer, options: .init(vae: vae)),
                              precision: precision)
        loadedVAE = vae
        modelLoads += 1
        pipeline = loaded
        return loaded
    }

    /// The steps a cell's sampler reports progress for: those asked, or a timestep sampler's timesteps (DDIM and
    /// PLMS run one fewer than A1111 lists).
    public static func samplerSteps(_ s: CellSettings) -> Int {
        s.sampler.sampler.usesTimesteps ? s.sampler.timesteps(steps: s.steps).count : s.steps
    }

    /// U-Net evaluations of a cell: steps × evaluations per step × 2 (CFG); PLMS's first step evaluates twice.
    public static func unetEvaluations(_ s: CellSettings) -> Int {
        let steps = samplerSteps(s)
        return 2 * (steps * s.sampler.sampler.evaluationsPerStep + (s.sampler.sampler == .plms && steps > 0 ? 1 : 0))
    }
}
