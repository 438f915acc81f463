import Diffusion
import Foundation
import Imaging
import LoRACore

/// A sheet from plan to files: checks, cache lookup, rendering the missing
/// cells (of this shard), drawing the grids, writing the manifest.
public final class Session: @unchecked Sendable {
    public struct Options: Sendable {
        public var cacheFolder: String
        public var shard: Shard?
        /// Also save each cell as a named PNG here.
        public var cellsFolder: String?
        public var version = "0"
        /// Only look: write nothing into the cache folder (--dry-run).
        public var readOnly = false
        public init(cacheFolder: String) { self.cacheFolder = cacheFolder }
    }

    public enum Event {
        case checking(String)
        case loading(String)
        case cellStarted(PlannedCell, position: Int, of: Int)
        case step(Int)
        case cellFinished(PlannedCell, seconds: Double)
    }

    public let planFile: PlanFile
    public let cache: CellCache
    public let options: Options
    /// Render seconds of this run's cells, by cell index.
    public private(set) var renderSeconds: [Int: Double] = [:]

    /// What the last `render` did: model loads, LoRA switches, prompt encodings.
    struct Statistics: Sendable, Equatable {
        var modelLoads = 0, adapterBuilds = 0, textEncodings = 0
    }
    private(set) var statistics = Statistics()

    /// Check every file and write the plan into the cache folder.
    public init(plan: Plan, options: Options, events: ((Event) -> Void)? = nil) throws(ModelError) {
        self.options = options
        cache = CellCache(folder: options.cacheFolder)
        let hashCache = HashCache(path: cache.hashCachePath, readOnly: options.readOnly)
        let catalog = try Catalog.check(plan.cells, hashCache: hashCache) { events?(.checking($0)) }
        let keys = plan.cells.map { CellCache.key($0.settings, catalog: catalog) }
        planFile = PlanFile(version: options.version, plan: plan, keys: keys, catalog: catalog)
    }

    /// Cells of this shard.
    public var shardCells: [PlannedCell] {
        options.shard.map { planFile.plan.shard($0.part, of: $0.count) } ?? planFile.plan.cells
    }

    /// Cells of this shard whose image is not cached yet, in render order.
    public var pending: [PlannedCell] {
        var seen = Set<String>()
        // Cells with the same key (e.g. an axis that changes nothing) render once;
        // cells of a LoRA with NaN/Inf are drawn as marked boxes, never rendered.
        let missing = shardCells.filter { !cache.contains(planFile.keys[$0.index]) && planFile.catalog.nonFiniteLoRA($0.settings) == nil
            && seen.insert(planFile.keys[$0.index]).inserted }
        return CellRenderer.renderOrder(missing)
    }

    /// Cached cells of this shard whose PNG does not decode, has the wrong
    /// size or lost its record (a crash mid-write, a disk error, a cache copied
    /// in part) are removed so they render again; returns them with the reason.
    public func dropDamagedCells() -> [(cell: PlannedCell, reason: String)] {
        var dropped: [(PlannedCell, String)] = []
        var checked = Set<String>()
        for cell in shardCells {
            let key = planFile.keys[cell.index]
            guard checked.insert(key).inserted, cache.contains(key) else { continue }
            var reason: String?
            do {
                let image = try cache.image(key)
                if image.width != cell.settings.width || image.height != cell.settings.height {
                    reason = "it is \(image.width)x\(image.height), the cell is \(cell.settings.width)x\(cell.settings.height)"
                } else if cache.record(key) == nil {
                    reason = "its record is unreadable"
                }
            } catch {
                reason = error.description
            }
            if let reason {
                cache.remove(key)
                dropped.append((cell, reason))
            }
        }
        return dropped
    }

    /// Seconds per U-Net evaluation and pixel for a checkpoint: the median
    /// over up to 16 of this cache's records (a cell costs its evaluations
    /// plus about two more for the VAE decode), nil when there are none.
    func measuredRate(checkpoint: String) -> Double? {
        var samples: [Double] = []
        for (index, key) in planFile.keys.enumerated() where planFile.plan.cells[index].settings.checkpoint == checkpoint {
            if let r = cache.record(key), r.unetEvaluations > 0 {
                samples.append(r.renderSeconds / Double(r.unetEvaluations + Session.decodeEvaluations) / Double(r.width * r.height))
            }
            if samples.count >= 16 { break }
        }
        return samples.isEmpty ? nil : samples.sorted()[samples.count / 2]
    }

    /// Seconds per U-Net evaluation of a cell: from the measured rate, else a
    /// rough figure for this CPU class scaled by image size.
    func secondsPerEvaluation(for cell: PlannedCell, measuredRate: Double?) -> (seconds: Double, measured: Bool) {
        let pixels = Double(cell.settings.width * cell.settings.height)
        if let measuredRate { return (measuredRate * pixels, true) }
        let family = planFile.catalog.checkpoints[cell.settings.checkpoint]?.family ?? "SD1.x"
        // Measured on a 2-core EPYC (AVX2): 6.9 s per SD1.5 U-Net evaluation at 512², decode ≈ 2 of them.
        let cores = Double(max(1, ProcessInfo.processInfo.activeProcessorCount))
        let perEval = 6.9 * 2 / cores * pow(pixels / 262_144, 1.15) * (family.hasPrefix("SDXL") ? 2.2 : 1)
        return (perEval, false)
    }

    /// The VAE decode of a cell, in U-Net evaluations of the same image (measured: 14.9 s vs 6.9 s for SD1.5).
    static let decodeEvaluations = 2

    public struct Estimate: Sendable {
        public var cells: Int
        public var evaluations: Int
        public var seconds: Double
        public var measured: Bool
    }

    public func estimate(_ cells: [PlannedCell]) -> Estimate {
        var total = Estimate(cells: cells.count, evaluations: 0, seconds: 0, measured: true)
        // Records are read once per checkpoint, not once per cell.
        var rates: [String: Double?] = [:]
        for cell in cells {
            let checkpoint = cell.settings.checkpoint
            if rates[checkpoint] == nil { rates[checkpoint] = .some(measuredRate(checkpoint: checkpoint)) }
            let n = CellRenderer.unetEvaluations(cell.settings)
            let (perEval, measured) = secondsPerEvaluation(for: cell, measuredRate: rates[checkpoint] ?? nil)
            total.evaluations += n
            total.seconds += perEval * Double(n + Session.decodeEvaluations)
            total.measured = total.measured && measured
        }
        return total
    }

    /// Render what is pending; each cell goes to the cache as soon as it is done.
    public func render(tokenizer: BPETokenizer, events: ((Event) -> Void)? = nil) throws(ModelError) {
        try planFile.write(cache.planPath(id: planFile.id))
        try planFile.write(cache.planPath)
        let todo = pending
        guard !todo.isEmpty else { return }
        let renderer = CellRenderer(tokenizer: tokenizer, catalog: planFile.catalog)
        var lastCheckpoint: String?
        for (position, cell) in todo.enumerated() {
            let s = cell.settings
            if s.checkpoint != lastCheckpoint {
                events?(.loading(s.checkpoint))
                lastCheckpoint = s.checkpoint
            }
            events?(.cellStarted(cell, position: position, of: todo.count))
            let start = Date()
            let image = try renderer.render(s) { _, _ in events?(.step(1)) }
            let seconds = Date().timeIntervalSince(start)
            let key = planFile.keys[cell.index]
            let infotext = planFile.infotext(cell)
            let png: [UInt8]
            do {
                png = try PNGCodec.encode(Bitmap(image), text: [("parameters", infotext.text)])
            } catch {
                throw ModelError(.io, error.description)
            }
            let record = CellRecord(key: key, settings: s, prompt: s.finalPrompt, infotext: infotext.text,
                                    checkpointSHA256: planFile.catalog.checkpoints[s.checkpoint]?.sha256 ?? "",
                                    loraSHA256: s.lora.flatMap { planFile.catalog.loras[$0]?.sha256 }, renderSeconds: seconds,
                                    unetEvaluations: CellRenderer.unetEvaluations(s), width: s.width, height: s.height)
            try cache.store(key, png: png, record: record)
            renderSeconds[cell.index] = seconds
            statistics = Statistics(modelLoads: renderer.modelLoads, adapterBuilds: renderer.adapterBuilds, textEncodings: renderer.textEncodings)
            events?(.cellFinished(cell, seconds: seconds))
        }
    }
}

extension Bitmap {
    public init(_ image: RGBImage) {
        self.init(width: image.width, height: image.height, pixels: image.pixels)
    }
}
