import Diffusion
import Foundation
import Imaging
import LoRACore

/// Draws the grids of a plan from cached cells and writes them, the optional
/// combined sheet, the named cell copies and the manifest.
public struct SheetWriter {
    public var output: String
    public var fontPath: String
    public var combined = false
    /// Longest side a grid may have before its cells are scaled down.
    var maxGridSide = 16_384
    /// Longest side of a cell on the sheet (default: the image's own size, within maxGridSide).
    public var cellSize: Int?
    /// Sheets above this many pixels are written as JPEG instead of PNG.
    var jpegAbovePixels = 50_000_000
    public var cellsFolder: String?
    public var manifestPath: String?

    public init(output: String, fontPath: String) {
        self.output = output
        self.fontPath = fontPath
    }

    public struct Result: Sendable, Encodable {
        public var sheets: [String] = []
        /// Saved cell copies by cell index (not encoded: the manifest lists them per cell).
        public var cellCopies: [Int: String] = [:]
        public var missing = 0
        /// Cells drawn as "NaN in LoRA" boxes: their LoRA holds NaN or Inf.
        public var nonFinite = 0
        public var manifest: String?

        enum CodingKeys: String, CodingKey { case sheets, missing, nonFinite, manifest, savedCells }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(sheets, forKey: .sheets)
            try c.encode(missing, forKey: .missing)
            try c.encode(nonFinite, forKey: .nonFinite)
            try c.encodeIfPresent(manifest, forKey: .manifest)
            try c.encode(cellCopies.sorted { $0.key < $1.key }.map(\.value), forKey: .savedCells)
        }
    }

    /// Write everything; cells missing from every cache are drawn as gray boxes
    /// unless `requireAll`.
    public func write(_ planFile: PlanFile, caches: [CellCache], renderSeconds: [Int: Double] = [:],
                      requireAll: Bool = false) throws(ModelError) -> Result {
        var result = Result()
        let plan = planFile.plan
        func locate(_ key: String) -> CellCache? { caches.first { $0.contains(key) } }
        let marked = Set(plan.cells.filter { planFile.catalog.nonFiniteLoRA($0.settings) != nil }.map(\.index))
        let missing = plan.cells.filter { !marked.contains($0.index) && locate(planFile.keys[$0.index]) == nil }
        result.missing = missing.count
        result.nonFinite = marked.count
        if requireAll && !missing.isEmpty {
            throw ModelError(
                .mismatch, "\(missing.count) of \(plan.cells.count) cells are in none of the caches (render the other shards, or pass --allow-missing)")
        }
        let (cw, ch) = cellDimensions(plan)
        var grids: [Bitmap] = []
        var outputs: [(Bitmap, String, Infotext?)] = []
        for z in 0..<plan.z.count {
            var images: [Bitmap?] = []
            var marks: [Int: String] = [:]
            for cell in plan.cells where cell.z == z {
                let key = planFile.keys[cell.index]
                if marked.contains(cell.index) {
                    marks[images.count] = SheetWriter.nonFiniteMark
                    images.append(nil)
                    continue
                }
                guard let cache = locate(key) else {
                    images.append(nil)
                    continue
                }
                let image: Bitmap
                do {
                    image = try cache.image(key)
                } catch {
                    throw ModelError(.invalid, "cached cell is damaged (lora-xyz render with this cache renders it again): \(error.message)",
                                     file: cache.imagePath(key))
                }
                guard image.width == cell.settings.width, image.height == cell.settings.height else {
                    throw ModelError(
                        .invalid,
                        "cached cell is \(image.width)x\(image.height) but the plan says \(cell.settings.width)x\(cell.settings.height) (lora-xyz render "
                            + "with this cache renders it again)",
                                     file: cache.imagePath(key))
                }
                images.append(image)
            }
            let sheet = GridSheet(columns: plan.x.kinds.isEmpty ? [] : (0..<plan.x.count).map(plan.x.label),
                                  rows: plan.y.kinds.isEmpty ? [] : (0..<plan.y.count).map(plan.y.label),
                                  title: plan.z.kinds.isEmpty ? nil : plan.z.label(z), legend: planFile.legend,
                                  cells: images, cellWidth: cw, cellHeight: ch, marks: marks)
            let grid: Bitmap
            do { grid = try sheet.render(fontPath: fontPath) } catch { throw ModelError(.io, error.description) }
            grids.append(grid)
            if plan.z.count > 1 {
                outputs.append((grid, SheetWriter.numbered(output, z + 1, of: plan.z.count), planFile.gridInfotext(z: z)))
            } else {
                outputs.append((grid, output, planFile.gridInfotext(z: z)))
            }
        }
        if combined && grids.count > 1 {
            outputs.append((GridSheet.combine(grids, maxWidth: max(maxGridSide, grids.map(\.width).max() ?? 0)), output, planFile.gridInfotext(z: 0)))
        }
        for (image, path, info) in outputs {
            result.sheets.append(try writeImage(image, to: path, infotext: info))
        }
        if let folder = cellsFolder {
            for cell in plan.cells {
                let key = planFile.keys[cell.index]
                guard let cache = locate(key), let bytes = FileManager.default.contents(atPath: cache.imagePath(key)) else { continue }
                let name = SheetWriter.cellFileName(cell, plan: plan)
                try FileOutput.write([UInt8](bytes), to: folder + "/" + name)
                result.cellCopies[cell.index] = folder + "/" + name
            }
        }
        if let manifestPath {
            let manifest = Manifest(planFile: planFile, caches: caches, renderSeconds: renderSeconds, result: result)
            try FileOutput.write(try FileOutput.json(manifest), to: manifestPath)
            result.manifest = manifestPath
        }
        return result
    }

    /// What a cell of a LoRA holding NaN/Inf shows: a diverged epoch is what an
    /// epoch sheet is for, so it is marked rather than left out.
    public static let nonFiniteMark = "NaN in LoRA"

    /// Cell size on the sheet: the images' own, or smaller when the grid
    /// would exceed `maxGridSide` or the user asked for `cellSize`.
    func cellDimensions(_ plan: Plan) -> (Int, Int) {
        let w = plan.cells.map(\.settings.width).max() ?? 512, h = plan.cells.map(\.settings.height).max() ?? 512
        var scale = 1.0
        if let cellSize { scale = min(1, Double(cellSize) / Double(max(w, h))) }
        scale = min(scale, Double(maxGridSide) / Double(w * plan.x.count), Double(maxGridSide) / Double(h * plan.y.count))
        return (max(16, Int((Double(w) * scale).rounded())), max(16, Int((Double(h) * scale).rounded())))
    }

    /// PNG with the infotext, or JPEG when the sheet is huge; returns the path written.
    func writeImage(_ image: Bitmap, to path: String, infotext: Infotext?) throws(ModelError) -> String {
        var path = path
        let lower = path.lowercased()
        let wantsJPEG = lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg")
        var useJPEG = wantsJPEG
        if !wantsJPEG && image.width * image.height > jpegAbovePixels {
            useJPEG = true
            path = (path as NSString).deletingPathExtension + ".jpg"
        }
        let bytes: [UInt8]
        do {
            bytes = useJPEG ? try JPEGCodec.encode(image)
                : try PNGCodec.encode(image, text: infotext.map { [("parameters", $0.text)] } ?? [])
        } catch {
            throw ModelError(.io, error.description, file: path)
        }
        try FileOutput.write(bytes, to: path)
        return path
    }

    /// sheet.png → sheet-z1.png … (zero-padded when there are ten or more).
    public static func numbered(_ path: String, _ n: Int, of count: Int) -> String {
        let ext = (path as NSString).pathExtension
        let stem = (path as NSString).deletingPathExtension
        let digits = String(count).count
        let number = String(repeating: "0", count: max(0, digits - String(n).count)) + String(n)
        return "\(stem)-z\(number)" + (ext.isEmpty ? "" : ".\(ext)")
    }

    /// "0007-e4-Weight 0.8-Seed 1234.png": index, then the axis labels, made file-safe.
    static func cellFileName(_ cell: PlannedCell, plan: Plan) -> String {
        var parts = [String(format: "%04d", cell.index + 1)]
        for (axis, i) in [(plan.x, cell.x), (plan.y, cell.y), (plan.z, cell.z)] where !axis.kinds.isEmpty {
            parts.append(String(axis.label(i).prefix(40)))
        }
        let safe = parts.joined(separator: "-").replacingOccurrences(of: ": ", with: " ").map { c -> Character in
            c.isLetter || c.isNumber || c == "-" || c == "." || c == "_" || c == " " ? c : "_"
        }
        return String(safe) + ".png"
    }
}
