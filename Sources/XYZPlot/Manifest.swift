import Foundation

/// The JSON record of a sheet: every cell's inputs, hashes, image and time.
public struct Manifest: Sendable, Encodable {
    public struct AxisEntry: Sendable, Encodable {
        public var axis: String
        public var parameters: [String]
        var labels: [String]

        /// The plan's non-empty axes.
        public static func list(_ plan: Plan) -> [AxisEntry] {
            [("x", plan.x), ("y", plan.y), ("z", plan.z)].filter { !$0.1.kinds.isEmpty }.map { name, axis in
                AxisEntry(axis: name, parameters: axis.kinds.map(\.rawValue), labels: (0..<axis.count).map(axis.label))
            }
        }
    }

    public struct FileEntry: Sendable, Encodable {
        public var path: String
        var sha256: String
        /// A1111's short hash (checkpoint: 10 hex; LoRA: 12 hex of the addnet hash).
        var shortHash: String
    }

    public struct CellEntry: Sendable, Encodable {
        public var index: Int
        public var x: Int, y: Int, z: Int
        var key: String
        public var checkpoint: FileEntry?
        public var vae: FileEntry?
        public var lora: FileEntry?
        public var weight: Double?
        /// --with-lora specs and files.
        public var extraLoRAs: [String]
        public var blockWeights: String?
        public var prompt: String
        var negativePrompt: String
        public var seed: UInt64
        public var steps: Int
        var cfgScale: Double
        public var sampler: String
        public var width: Int, height: Int
        public var clipSkip: Int
        /// torch's CPU noise kernel reproduced: "avx2" (torch on x86-64 with AVX2) or "libm".
        public var rngVariant: String
        /// "fp32", or "bf16" (close to fp32's pixels, not equal).
        public var precision: String
        public var infotext: String
        /// The cached image (nil when no cache has it).
        var image: String?
        /// The named copy, when cells are saved.
        var cellImage: String?
        public var renderSeconds: Double?
        /// "rendered" (this run), "cached", "missing", or "nan-lora" (its LoRA holds NaN/Inf: drawn as a marked box).
        var status: String
    }

    var tool = "lora-xyz"
    public var version: String
    public var axes: [AxisEntry]
    public var legend: String
    public var sheets: [String]
    public var cells: [CellEntry]

    init(planFile: PlanFile, caches: [CellCache], renderSeconds: [Int: Double], result: SheetWriter.Result) {
        version = planFile.version
        let plan = planFile.plan
        axes = AxisEntry.list(plan)
        legend = planFile.legend
        sheets = result.sheets
        cells = plan.cells.map { cell in
            let s = cell.settings, key = planFile.keys[cell.index]
            let cache = caches.first { $0.contains(key) }
            let record = cache?.record(key)
            let checkpoint = planFile.catalog.checkpoints[s.checkpoint].map { FileEntry(path: $0.path, sha256: $0.sha256, shortHash: $0.shortHash) }
            let vae = s.vae.flatMap { planFile.catalog.vaes[$0] }.map { FileEntry(path: $0.path, sha256: $0.sha256, shortHash: $0.shortHash) }
            let lora = s.lora.flatMap { planFile.catalog.loras[$0] }.map { FileEntry(path: $0.path, sha256: $0.sha256, shortHash: $0.a1111Hash) }
            let status = planFile.catalog.nonFiniteLoRA(s) != nil ? "nan-lora"
                : cache == nil ? "missing" : renderSeconds[cell.index] != nil ? "rendered" : "cached"
            return CellEntry(index: cell.index, x: cell.x, y: cell.y, z: cell.z, key: key, checkpoint: checkpoint, vae: vae, lora: lora,
                weight: s.lora == nil ? nil : s.weight, extraLoRAs: s.extraSpecs.map(\.summary), blockWeights: s.blockWeights, prompt: s.finalPrompt,
                             negativePrompt: s.negative, seed: s.seed, steps: s.steps, cfgScale: s.cfg, sampler: s.sampler.description,
                             width: s.width, height: s.height, clipSkip: s.clipSkip, rngVariant: s.noise.rawValue, precision: s.precision.rawValue, infotext: planFile.infotext(cell).text,
                             image: cache?.imagePath(key), cellImage: result.cellCopies[cell.index],
                             renderSeconds: renderSeconds[cell.index] ?? record?.renderSeconds, status: status)
        }
    }
}
