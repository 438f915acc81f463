import CFreeType
import Foundation

/// A TrueType font rasterised by FreeType at one pixel size. Labels are short,
/// so glyphs are rendered on demand and cached per character.
public final class Font: @unchecked Sendable {
    /// Where Debian's fonts-dejavu-core puts the font; LORA_TOOLS_FONT overrides.
    public static let searchPaths = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/local/share/fonts/DejaVuSans.ttf",
    ]

    public static func locate(_ explicit: String? = nil) throws(ImageError) -> String {
        if let explicit {
            guard FileManager.default.fileExists(atPath: explicit) else { throw ImageError("font not found", path: explicit) }
            return explicit
        }
        let candidates = [ProcessInfo.processInfo.environment["LORA_TOOLS_FONT"]].compactMap { $0 } + searchPaths
        if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) { return found }
        throw ImageError("no label font found (looked in \(candidates.joined(separator: ", "))); install fonts-dejavu-core or pass --font")
    }

    struct Glyph {
        let width: Int, rows: Int, left: Int, top: Int, advance: Int
        let coverage: [UInt8]
    }

    private var library: FT_Library?
    private var face: FT_Face?
    private var glyphs: [Unicode.Scalar: Glyph] = [:]
    private let lock = NSLock()
    public let pixelSize: Int
    public let path: String

    public init(path: String, pixelSize: Int) throws(ImageError) {
        self.path = path
        self.pixelSize = max(4, pixelSize)
        guard FT_Init_FreeType(&library) == 0, let library else { throw ImageError("FreeType failed to initialise") }
        guard FT_New_Face(library, path, 0, &face) == 0, let face else {
            FT_Done_FreeType(library)
            self.library = nil
            throw ImageError("not a font FreeType can read", path: path)
        }
        FT_Set_Pixel_Sizes(face, 0, FT_UInt(self.pixelSize))
    }

    deinit {
        if let face { FT_Done_Face(face) }
        if let library { FT_Done_FreeType(library) }
    }

    /// Distance between baselines.
    public var lineHeight: Int { Int((Double(pixelSize) * 1.25).rounded()) }
    var ascent: Int { Int((Double(pixelSize) * 0.95).rounded()) }

    func glyph(_ scalar: Unicode.Scalar) -> Glyph {
        lock.lock(); defer { lock.unlock() }
        if let cached = glyphs[scalar] { return cached }
        var result = Glyph(width: 0, rows: 0, left: 0, top: 0, advance: pixelSize / 3, coverage: [])
        if let face, FT_Load_Char(face, FT_ULong(scalar.value), FT_Int32(FT_LOAD_RENDER)) == 0, let slot = face.pointee.glyph {
            let bitmap = slot.pointee.bitmap
            let width = Int(bitmap.width), rows = Int(bitmap.rows), pitch = Int(bitmap.pitch)
            var coverage = [UInt8](repeating: 0, count: width * rows)
            if let buffer = bitmap.buffer, pitch >= width {
                for y in 0..<rows { for x in 0..<width { coverage[y * width + x] = buffer[y * pitch + x] } }
            }
            result = Glyph(width: width, rows: rows, left: Int(slot.pointee.bitmap_left), top: Int(slot.pointee.bitmap_top),
                           advance: Int((slot.pointee.advance.x + 32) >> 6), coverage: coverage)
        }
        glyphs[scalar] = result
        return result
    }

    /// Width in pixels of one line of text.
    public func width(of text: String) -> Int {
        text.unicodeScalars.reduce(0) { $0 + glyph($1).advance }
    }

    /// Break text into lines no wider than `maxWidth`, at spaces (and commas)
    /// where possible, mid-word only when one word is wider than a line.
    public func wrap(_ text: String, maxWidth: Int) -> [String] {
        var lines: [String] = []
        for paragraph in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = ""
            for word in paragraph.split(separator: " ", omittingEmptySubsequences: false).map(String.init) {
                let candidate = line.isEmpty ? word : line + " " + word
                if width(of: candidate) <= maxWidth || line.isEmpty && width(of: word) <= maxWidth {
                    line = candidate
                    continue
                }
                if !line.isEmpty { lines.append(line) }
                // A word wider than the line is cut by characters.
                var piece = ""
                for ch in word {
                    if !piece.isEmpty && width(of: piece + String(ch)) > maxWidth {
                        lines.append(piece)
                        piece = ""
                    }
                    piece.append(ch)
                }
                line = piece
            }
            lines.append(line)
        }
        return lines
    }

    /// Draw one line with its top at `y`.
    public func draw(_ text: String, into canvas: inout Bitmap, x: Int, y: Int, color: RGB = .black) {
        var pen = x
        let baseline = y + ascent
        for scalar in text.unicodeScalars {
            let g = glyph(scalar)
            for row in 0..<g.rows {
                for column in 0..<g.width {
                    canvas.blend(x: pen + g.left + column, y: baseline - g.top + row, color: color, alpha: g.coverage[row * g.width + column])
                }
            }
            pen += g.advance
        }
    }

    /// Draw wrapped lines inside a box, centred; lines that do not
    /// fit are dropped with an ellipsis on the last one shown.
    public func drawBlock(_ text: String, into canvas: inout Bitmap, x: Int, y: Int, width: Int, height: Int,
                          color: RGB = .black) {
        var lines = wrap(text, maxWidth: width)
        let fit = max(1, height / lineHeight)
        if lines.count > fit {
            lines = Array(lines.prefix(fit))
            lines[fit - 1] += "…"
        }
        var top = y + max(0, (height - lines.count * lineHeight) / 2)
        for line in lines {
            let w = self.width(of: line)
            let left = x + max(0, (width - w) / 2)
            draw(line, into: &canvas, x: left, y: top, color: color)
            top += lineHeight
        }
    }
}
