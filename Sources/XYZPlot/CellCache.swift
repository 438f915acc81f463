import Diffusion
import Foundation
import LinearAlgebra
import Imaging
import LoRACore

/// What the cache keeps beside each cell's PNG.
struct CellRecord: Sendable, Codable {
    var key: String
    var settings: CellSettings
    var prompt: String
    var infotext: String
    var checkpointSHA256: String
    var loraSHA256: String?
    var renderSeconds: Double
    /// U-Net evaluations the cell took (steps × evaluations per step × 2 for CFG).
    var unetEvaluations: Int
    var width: Int
    var height: Int
}

/// Rendered cells by key: `cells/<key>.png` (with its infotext) and
/// `cells/<key>.json`. The key hashes every input that decides the pixels,
/// so a cell is rendered once across runs, shards and added epoch files.
public struct CellCache: Sendable {
    /// Bump when the engine's output for the same inputs changes.
    /// 2: the noise kernel joined the key (revision 1 used torch's scalar kernel on AVX-512 hosts).
    /// 3: Winograd F(4×4, 3×3) and oneDNN GEMMs (fp32 pixels differ in the last bits); precision joined the key.
    /// 4: attention on AVX-512 hosts sums in another order (AVX-512 exponentials, then the fused register-tile kernel).
    /// Not bumped when the register tiles' AVX2 instance replaced the older AVX2 fused kernel (2026-12-04): that runs
    /// only under LORA_TOOLS_GEMM=openblas; cells on the default routing came out byte-identical on both kernel paths.
    static let engineRevision = 4
    public let folder: String

    public init(folder: String) {
        self.folder = folder
    }

    /// What `key` makes: 32 lowercase hex digits. A plan.json from another
    /// machine may say anything; only such keys ever become paths.
    static func isValidKey(_ key: String) -> Bool {
        key.utf8.count == 32 && key.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// The plan of the last run into this cache (older versions wrote only this one).
    var planPath: String { folder + "/plan.json" }
    /// Every plan rendered into this cache, by id: runs with other settings
    /// may share a cache (their cells never collide), and each keeps its plan.
    var plansFolder: String { folder + "/plans" }
    func planPath(id: String) -> String { plansFolder + "/" + id + ".json" }

    /// The plans this cache holds: plans/*.json, or the lone plan.json of an older cache.
    func planPaths() -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: plansFolder))?.filter { $0.hasSuffix(".json") }.sorted() ?? []
        if !files.isEmpty { return files.map { plansFolder + "/" + $0 } }
        return FileManager.default.fileExists(atPath: planPath) ? [planPath] : []
    }
    var hashCachePath: String { folder + "/hashes.json" }
    func imagePath(_ key: String) -> String { folder + "/cells/" + key + ".png" }
    func recordPath(_ key: String) -> String { folder + "/cells/" + key + ".json" }

    /// SHA-256 over the canonical JSON of the cell's inputs: file contents by
    /// hash (not by path), the prompt as A1111 receives it, every number.
    static func key(_ s: CellSettings, catalog: Catalog) -> String {
        let lora = s.lora.flatMap { catalog.loras[$0]?.sha256 }
        var fields: [String: String] = [
            "engine": String(engineRevision),
            "checkpoint": catalog.checkpoints[s.checkpoint]?.sha256 ?? s.checkpoint,
            "prompt": s.finalPrompt,
            "negative": s.negative,
            "seed": String(s.seed),
            "steps": String(s.steps),
            "cfg": Infotext.number(s.cfg),
            "sampler": s.sampler.sampler.rawValue + "/" + s.sampler.schedule.rawValue,
            "size": "\(s.width)x\(s.height)",
            "clip_skip": String(s.clipSkip),
            "noise": s.noise.rawValue,
        ]
        if let vae = s.vae { fields["vae"] = catalog.vaes[vae]?.sha256 ?? vae }
        // bf16 pixels differ from fp32's; so do fp32's from another GEMM library's (summation order).
        if s.precision != .fp32 { fields["precision"] = s.precision.rawValue }
        if LinearAlgebra.routing != .measured { fields["gemm"] = LinearAlgebra.routing.description }
        if !s.extraLoRAs.isEmpty {
            // Content hash and options of each (the path part of the spec does not matter).
            fields["extra_loras"] = s.extraSpecs.map { spec in
                (catalog.loras[spec.path]?.sha256 ?? spec.path) + ":" + spec.summary.split(separator: ":").dropFirst().joined(separator: ":")
            }.joined(separator: "|")
        }
        if let lora, s.weight != 0 {
            fields["lora"] = lora
            fields["weight"] = Infotext.number(s.weight)
            if let lbw = s.blockWeights { fields["lbw"] = lbw }
        }
        let canonical = fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
        var hasher = SHA256()
        hasher.update(Array(canonical.utf8))
        return String(hasher.finalize().hexString.prefix(32))
    }

    public func contains(_ key: String) -> Bool {
        CellCache.isValidKey(key) && FileManager.default.fileExists(atPath: imagePath(key)) && FileManager.default.fileExists(atPath: recordPath(key))
    }

    func record(_ key: String) -> CellRecord? {
        guard CellCache.isValidKey(key), let data = FileManager.default.contents(atPath: recordPath(key)) else { return nil }
        return try? JSONDecoder().decode(CellRecord.self, from: data)
    }

    func image(_ key: String) throws(ImageError) -> Bitmap {
        try PNGCodec.read(imagePath(key))
    }

    /// Forget a cell (both files).
    func remove(_ key: String) {
        guard CellCache.isValidKey(key) else { return }
        try? FileManager.default.removeItem(atPath: recordPath(key))
        try? FileManager.default.removeItem(atPath: imagePath(key))
    }

    /// Image first, record second: a record always has its image.
    func store(_ key: String, png: [UInt8], record: CellRecord) throws(ModelError) {
        try FileOutput.write(png, to: imagePath(key))
        try FileOutput.write(try FileOutput.json(record), to: recordPath(key))
    }
}
