import Diffusion
import Foundation
import LoRACore

/// The plan as written into the cache folder (`plan.json`): enough to draw
/// the sheet again from cached cells (`lora-xyz assemble`) on any machine.
public struct PlanFile: Sendable, Codable {
    var tool = "lora-xyz"
    public var version: String
    public var plan: Plan
    /// Cache key of each cell, by cell index.
    public var keys: [String]
    public var catalog: Catalog

    public init(version: String, plan: Plan, keys: [String], catalog: Catalog) {
        self.version = version
        self.plan = plan
        self.keys = keys
        self.catalog = catalog
    }

    public static func read(_ path: String) throws(ModelError) -> PlanFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(.io, "no plan here (run lora-xyz with this --cache first)", file: path)
        }
        let planFile: PlanFile
        do {
            planFile = try JSONDecoder().decode(PlanFile.self, from: data)
        } catch {
            // A plan of an older cache layout lacks fields this version needs: rendering again rewrites it.
            let older = (try? JSONDecoder().decode(Header.self, from: data)).map { $0.tool == "lora-xyz" } ?? false
            throw ModelError(.invalid, older ? "written by an older lora-xyz: run lora-xyz render with this --cache to bring it up to date"
                                             : "not a lora-xyz plan: \(error)", file: path)
        }
        // Keys name files in the cache: a plan from elsewhere must not point outside it.
        guard planFile.keys.count == planFile.plan.cells.count else {
            throw ModelError(.invalid, "the plan has \(planFile.plan.cells.count) cells but \(planFile.keys.count) cell keys", file: path)
        }
        if let bad = planFile.keys.firstIndex(where: { !CellCache.isValidKey($0) }) {
            throw ModelError(.invalid, "cell key \(bad + 1) is not a cache key (32 hex digits): \(TerminalText.escape(String(planFile.keys[bad].prefix(80))))",
                             file: path)
        }
        // Cells fill the grid in reading order (z, y, x), as the sheet draws them.
        let plan = planFile.plan
        guard plan.x.count >= 1, plan.y.count >= 1, plan.z.count >= 1 else { throw ModelError(.invalid, "the plan has an empty axis", file: path) }
        let (nx, ny, nz) = (plan.x.count, plan.y.count, plan.z.count)
        guard plan.cells.count == nx * ny * nz else {
            throw ModelError(.invalid, "the plan has \(plan.cells.count) cells for a \(nx)×\(ny)×\(nz) grid", file: path)
        }
        for (i, cell) in plan.cells.enumerated() where cell.index != i || cell.x != i % nx || cell.y != i / nx % ny || cell.z != i / (nx * ny) {
            throw ModelError(.invalid, "cell \(i + 1) of the plan is not at its place in the grid", file: path)
        }
        return planFile
    }

    private struct Header: Decodable { var tool: String }

    /// Names the plan in a shared cache: a hash of its cells' keys.
    public var id: String {
        var hasher = SHA256()
        hasher.update(Array(keys.joined(separator: "\n").utf8))
        return String(hasher.finalize().hexString.prefix(12))
    }

    /// One line for choosing among plans: cells and axes.
    public var summary: String {
        let axes = [("X", plan.x), ("Y", plan.y), ("Z", plan.z)].filter { !$0.1.kinds.isEmpty }.map { "\($0.0): \($0.1.title) (\($0.1.count))" }
        return "\(plan.cells.count) cells" + (axes.isEmpty ? "" : ", " + axes.joined(separator: ", "))
    }

    /// The plan `assemble` draws from these caches: the one `choice` names (an
    /// id, its prefix, or a path), else the only one they hold; with several,
    /// an error listing them asks which.
    public static func choose(in caches: [CellCache], choice: String?) throws(ModelError) -> PlanFile {
        if let choice, FileManager.default.fileExists(atPath: choice), choice.hasSuffix(".json") { return try read(choice) }
        var byID: [String: (PlanFile, String)] = [:]
        for path in caches.flatMap({ $0.planPaths() }) {
            let plan = try read(path)
            if byID[plan.id] == nil { byID[plan.id] = (plan, path) }
        }
        guard !byID.isEmpty else {
            throw ModelError(.io, "no plan here (run lora-xyz with this --cache first)", file: caches.first?.folder)
        }
        let candidates = choice.map { c in byID.filter { $0.key.hasPrefix(c.lowercased()) } } ?? byID
        if candidates.count == 1 { return candidates.first!.value.0 }
        let list = byID.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value.0.summary))" }.joined(separator: "; ")
        if let choice, candidates.isEmpty {
            throw ModelError(.mismatch, "no plan '\(choice)' in the cache; it holds: \(list)", file: caches.first?.folder)
        }
        throw ModelError(.mismatch, "the cache holds \(byID.count) plans (runs with different settings); choose one with --plan: \(list)",
                         file: caches.first?.folder)
    }

    public func write(_ path: String) throws(ModelError) {
        try FileOutput.write(try FileOutput.json(self), to: path)
    }

    /// The infotext of a cell, as its PNG carries it.
    public func infotext(_ cell: PlannedCell, extra: [(String, String)] = []) -> Infotext {
        let s = cell.settings
        let checkpoint = catalog.checkpoints[s.checkpoint]
        var loraHashes: [(name: String, hash: String)] = []
        if let path = s.lora, let lora = catalog.loras[path], let name = s.loraName {
            loraHashes.append((name, lora.a1111Hash))
        }
        for spec in s.extraSpecs {
            if let lora = catalog.loras[spec.path] { loraHashes.append((LoRAEpochs.stem(spec.path), lora.a1111Hash)) }
        }
        let vae = s.vae.flatMap { catalog.vaes[$0] }.map { Infotext.Model(hash: $0.shortHash, name: $0.name) }
        return Infotext(s.generationParameters,
                        model: .init(hash: checkpoint?.shortHash ?? "", name: checkpoint?.name ?? LoRAEpochs.stem(s.checkpoint)),
                        vae: vae, loraHashes: loraHashes, version: "lora-tools \(version)",
                        // Not an A1111 field (A1111 computes in fp32 or fp16 on a GPU): says which cells are not exact fp32.
                        extra: (s.precision == .fp32 ? [] : [("Precision", s.precision.rawValue)]) + extra)
    }

    /// What the grid PNG carries: the first cell's parameters and the axes,
    /// as A1111's X/Y/Z script adds them.
    func gridInfotext(z: Int) -> Infotext? {
        guard let first = plan.cells.first(where: { $0.z == z }) else { return nil }
        var extra: [(String, String)] = [("Script", "X/Y/Z plot")]
        for (name, axis) in [("X", plan.x), ("Y", plan.y), ("Z", plan.z)] where !axis.kinds.isEmpty {
            extra.append(("\(name) Type", axis.title))
            extra.append(("\(name) Values", (0..<axis.count).map { i in axis.values[i].map(\.plainValue).joined(separator: " | ") }
                .map { $0.contains(",") ? "\"\($0)\"" : $0 }.joined(separator: ",")))
        }
        return infotext(first, extra: extra)
    }

    /// The shared settings (those on no axis), for the sheet's legend.
    public var legend: String {
        let onAxes = Set(plan.x.kinds + plan.y.kinds + plan.z.kinds)
        let b = plan.base
        var parts: [String] = []
        if !onAxes.contains(.checkpoint), let c = catalog.checkpoints[b.checkpoint] { parts.append("Model: \(c.name) [\(c.shortHash)]") }
        if !onAxes.contains(.vae), let vae = b.vae { parts.append("VAE: \((vae as NSString).lastPathComponent)") }
        if !onAxes.contains(.lora), let name = b.loraName { parts.append("LoRA: \(name)") }
        if !onAxes.contains(.weight), b.lora != nil { parts.append("Weight: \(Infotext.number(b.weight))") }
        if !onAxes.contains(.lbw), let lbw = b.blockWeights { parts.append("LBW: \(lbw)") }
        for spec in b.extraSpecs { parts.append("With: \(spec.summary)") }
        if !onAxes.contains(.sampler) { parts.append("Sampler: \(b.sampler.description)") }
        if !onAxes.contains(.steps) { parts.append("Steps: \(b.steps)") }
        if !onAxes.contains(.cfg) { parts.append("CFG: \(Infotext.number(b.cfg))") }
        if !onAxes.contains(.seed) { parts.append("Seed: \(b.seed)") }
        if !onAxes.contains(.clipSkip), b.clipSkip > 1 { parts.append("Clip skip: \(b.clipSkip)") }
        if b.noise != .avx2 { parts.append("Noise: \(b.noise.rawValue)") }
        if b.precision != .fp32 { parts.append("Precision: \(b.precision.rawValue)") }
        parts.append("Size: \(b.width)x\(b.height)")
        if !onAxes.contains(.prompt) && !onAxes.contains(.promptSR) {
            parts.append("Prompt: \(b.prompt)")
            if !b.negative.isEmpty { parts.append("Negative: \(b.negative)") }
        }
        return parts.joined(separator: "  ·  ")
    }
}
