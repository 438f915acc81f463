import Diffusion
import Foundation
import LoRACore

/// The files a plan names, opened, identified and checked before anything
/// renders: every checkpoint and LoRA readable, each LoRA's family and
/// modules matching each checkpoint (with its block weights), image sizes the
/// U-Net can take. Hashes identify the files for the cache and the infotext.
public struct Catalog: Sendable, Codable {
    public struct Checkpoint: Sendable, Codable {
        public var path: String
        var family: String
        var sha256: String
        public var name: String { LoRAEpochs.stem(path) }
        /// A1111's short model hash.
        var shortHash: String { String(sha256.prefix(10)) }
        /// Pixels per latent side multiple (64 for SD1/SD2's four levels).
        var sizeMultiple: Int
    }

    public struct LoRA: Sendable, Codable {
        public var path: String
        var sha256: String
        /// A1111's "Lora hashes" value.
        var a1111Hash: String
        var family: String?
        var hasTextEncoder: Bool
        /// The first tensor holding NaN or Inf, if any: a diverged epoch. Its
        /// cells are drawn as marked boxes instead of rendered.
        public var nonFiniteTensor: String?
        public var name: String { LoRAEpochs.stem(path) }
    }

    public struct VAE: Sendable, Codable {
        public var path: String
        var sha256: String
        /// As A1111 names it in the infotext: the file name with its extension.
        public var name: String { (path as NSString).lastPathComponent }
        var shortHash: String { String(sha256.prefix(10)) }
    }

    public var checkpoints: [String: Checkpoint] = [:]
    public var vaes: [String: VAE] = [:]
    public var loras: [String: LoRA] = [:]

    /// Open and check everything `cells` use. `hashCache` remembers hashes by
    /// path, size and modification time so re-runs do not re-read gigabytes.
    static func check(_ cells: [PlannedCell], hashCache: HashCache?, progress: ((String) -> Void)? = nil) throws(ModelError) -> Catalog {
        var catalog = Catalog()
        var opened: [String: ModelFile] = [:]
        for path in orderedUnique(cells.map(\.settings.checkpoint)) {
            progress?("checking \(path)")
            let file = try ModelFile.open(path)
            let (family, _) = try StableDiffusionModel.renderableFamily(file)
            let config = try ArchitectureConfig.infer(from: file, family: family)
            try StableDiffusionModel.checkAttention(config, path: path)
            let sha = try hashCache?.sha256(file.file, path: path) ?? Hashing.sha256(file.file)
            catalog.checkpoints[path] = Checkpoint(path: path, family: family.rawValue, sha256: sha,
                                                   sizeMultiple: Pipeline.sizeMultiple)
            opened[path] = file
        }
        for path in orderedUnique(cells.compactMap(\.settings.vae)) {
            progress?("checking \(path)")
            let weights = try StableDiffusionModel.vaeWeights(path)
            let sha = try hashCache?.sha256(weights.file.file, path: path) ?? Hashing.sha256(weights.file.file)
            catalog.vaes[path] = VAE(path: path, sha256: sha)
        }
        for path in orderedUnique(cells.flatMap(\.settings.loraPaths)) {
            progress?("checking \(path)")
            let lora = try LoadedLoRA.open(LoRASpec(path: path))
            let hashes = try hashCache?.hashes(lora.network.model, path: path) ?? Hashing.hashes(of: lora.network.model)
            catalog.loras[path] = LoRA(path: path, sha256: hashes.sha256, a1111Hash: hashes.a1111LoRAHash,
                                       family: lora.family.family?.rawValue, hasTextEncoder: false,
                                       nonFiniteTensor: CheckpointBaker.nonFiniteTensors(lora).first)
        }
        // Every (checkpoint, LoRA, block weights) combination the cells use, as lora-merge would plan it.
        var checked = Set<String>()
        for cell in cells {
            let s = cell.settings
            guard let checkpoint = catalog.checkpoints[s.checkpoint] else { continue }
            guard s.width % checkpoint.sizeMultiple == 0, s.height % checkpoint.sizeMultiple == 0, s.width > 0, s.height > 0 else {
                throw ModelError(
                    .mismatch,
                    "\(s.width)x\(s.height) is not a size \(checkpoint.family) can render: width and height must be multiples of \(checkpoint.sizeMultiple)")
            }
            guard s.steps >= 1, s.steps <= 1000 else { throw ModelError(.mismatch, "steps must be between 1 and 1000 (got \(s.steps))") }
            guard s.cfg.isFinite else { throw ModelError(.mismatch, "CFG scale must be a finite number") }
            guard s.clipSkip >= 1, s.clipSkip <= 12 else { throw ModelError(.mismatch, "clip skip must be between 1 and 12 (got \(s.clipSkip))") }
            guard let base = opened[s.checkpoint] else { continue }
            var specs = try s.extraLoRAs.map { text throws(ModelError) in try LoRASpec(parsing: text) }
            if let lora = s.lora {
                specs.append(LoRASpec(path: lora, ratio: 1, blockWeights: try s.blockWeights.map { b throws(ModelError) in try BlockWeights(parsing: b) }))
            }
            for spec in specs {
                let key = [s.checkpoint, spec.path, spec.blockWeights?.description ?? ""].joined(separator: "\u{0}")
                guard checked.insert(key).inserted else { continue }
                do {
                    let plan = try MergePlan.make(base: base, loras: [try LoadedLoRA.open(spec)], allowUnmatched: false)
                    // Text-encoder modules decide whether prompts can be encoded once for all weights.
                    if plan.contributions.keys.contains(where: { $0.hasPrefix("cond_stage_model.") || $0.hasPrefix("conditioner.") }) {
                        catalog.loras[spec.path]?.hasTextEncoder = true
                    }
                } catch {
                    throw ModelError(error.kind, "\(LoRAEpochs.stem(spec.path)) with \(LoRAEpochs.stem(s.checkpoint)): \(error.message)",
                                     file: error.file ?? spec.path)
                }
            }
        }
        return catalog
    }

    /// The LoRA of this cell that holds NaN or Inf (the axis LoRA at a weight
    /// other than 0, or a --with-lora one), if any: such a cell is not rendered.
    public func nonFiniteLoRA(_ s: CellSettings) -> LoRA? {
        var paths = s.extraSpecs.filter { $0.ratio != 0 || ($0.textEncoderRatio ?? 0) != 0 || ($0.unetRatio ?? 0) != 0 }.map(\.path)
        if let lora = s.lora, s.weight != 0 { paths.insert(lora, at: 0) }
        return paths.compactMap { loras[$0] }.first { $0.nonFiniteTensor != nil }
    }

    static func orderedUnique(_ items: [String]) -> [String] {
        var seen = Set<String>()
        return items.filter { seen.insert($0).inserted }
    }
}
