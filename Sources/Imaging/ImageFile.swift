import Foundation

/// Training images by content, not by extension: PNG, JPEG and WebP (what Debian's
/// libpng, libjpeg and libwebp decode). Sizes come from the headers so a dataset's
/// buckets are planned without decoding a pixel (sd-scripts opens every image
/// with PIL for the same purpose).
public enum ImageFile {
    public enum Kind: String, Sendable { case png, jpeg, webp }

    /// The extensions sd-scripts lists (`IMAGE_EXTENSIONS`, lower and upper
    /// case); BMP is listed there too, so a folder holding BMPs is found and
    /// then refused by name rather than silently skipped.
    public static let datasetExtensions = [".png", ".jpg", ".jpeg", ".webp", ".bmp"]

    public static func kind(of header: [UInt8]) -> Kind? {
        if header.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if header.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        if WebPCodec.isWebP(header) { return .webp }
        return nil
    }

    /// Width and height from the file's header: PNG's IHDR, JPEG's first
    /// start-of-frame marker. Reads at most the first 1 MiB.
    public static func size(_ path: String) throws(ImageError) -> (width: Int, height: Int) {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ImageError("cannot open the file", path: path) }
        defer { try? handle.close() }
        let bytes = [UInt8]((try? handle.read(upToCount: 1 << 20)) ?? Data())
        switch kind(of: bytes) {
        case .png:
            guard bytes.count >= 24, String(decoding: bytes[12..<16], as: UTF8.self) == "IHDR" else {
                throw ImageError("PNG without an IHDR chunk at offset 12", path: path)
            }
            let width = bigEndian(bytes, 16, 4), height = bigEndian(bytes, 20, 4)
            guard width > 0, height > 0 else { throw ImageError("PNG header says \(width)x\(height) pixels", path: path) }
            return (width, height)
        case .jpeg:
            var offset = 2
            while offset + 4 <= bytes.count {
                guard bytes[offset] == 0xFF else { throw ImageError("JPEG marker expected at offset \(offset)", path: path) }
                let marker = bytes[offset + 1]
                if marker == 0xFF { offset += 1; continue }
                if marker == 0xD8 || (0xD0...0xD7).contains(marker) || marker == 0x01 { offset += 2; continue }
                let length = bigEndian(bytes, offset + 2, 2)
                // SOF0…SOF15 except DHT (C4), JPG (C8) and DAC (CC).
                if (0xC0...0xCF).contains(marker) && ![0xC4, 0xC8, 0xCC].contains(marker) {
                    guard offset + 9 <= bytes.count else { break }
                    let height = bigEndian(bytes, offset + 5, 2), width = bigEndian(bytes, offset + 7, 2)
                    guard width > 0, height > 0 else { throw ImageError("JPEG frame header says \(width)x\(height) pixels", path: path) }
                    return (width, height)
                }
                guard length >= 2 else { throw ImageError("JPEG segment of length \(length) at offset \(offset)", path: path) }
                offset += 2 + length
            }
            throw ImageError("JPEG without a frame header in its first MiB", path: path)
        case .webp:
            return try WebPCodec.size(bytes, path: path)
        case nil:
            throw ImageError("not a PNG, JPEG or WebP file (BMP and others are not read; convert them)", path: path)
        }
    }

    /// The decoded image, whatever its extension says.
    public static func read(_ path: String) throws(ImageError) -> Bitmap { try readWithAlpha(path).image }

    /// The image and its alpha plane (nil for JPEG and for files without alpha: kohya's convert("RGBA")
    /// makes those opaque).
    public static func readWithAlpha(_ path: String) throws(ImageError) -> (image: Bitmap, alpha: [UInt8]?) {
        guard let data = FileManager.default.contents(atPath: path) else { throw ImageError("cannot read the file", path: path) }
        let bytes = [UInt8](data)
        switch kind(of: Array(bytes.prefix(12))) {
        case .png: return try PNGCodec.decodeWithAlpha(bytes, path: path)
        case .jpeg:
            do { return (try JPEGCodec.decode(bytes), nil) } catch { throw ImageError(error.message, path: path) }
        case .webp: return try WebPCodec.decodeWithAlpha(bytes, path: path)
        case nil: throw ImageError("not a PNG, JPEG or WebP file (BMP and others are not read; convert them)", path: path)
        }
    }

    private static func bigEndian(_ bytes: [UInt8], _ offset: Int, _ count: Int) -> Int {
        (offset..<(offset + count)).reduce(0) { $0 << 8 | Int(bytes[$1]) }
    }
}
