import CPNG
import CZlib
import Foundation

/// PNG through libpng's simplified API (it keeps libpng's longjmp error
/// handling inside C and returns errors as values), plus the text chunks A1111
/// reads: `parameters` is written as PIL writes it, tEXt when the text is
/// Latin-1 and iTXt (uncompressed UTF-8) otherwise, right after IHDR.
public enum PNGCodec {
    /// Images larger than this are refused before any allocation (hostile headers).
    public static let maximumPixels = 1 << 28

    public static func encode(_ bitmap: Bitmap, text: [(key: String, value: String)] = []) throws(ImageError) -> [UInt8] {
        guard bitmap.width > 0, bitmap.height > 0 else { throw ImageError("cannot write an empty image") }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(bitmap.width)
        image.height = UInt32(bitmap.height)
        image.format = UInt32(PNG_FORMAT_RGB)
        var size: png_alloc_size_t = 0
        let stride = Int32(bitmap.width * 3)
        var ok = bitmap.pixels.withUnsafeBytes { png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, stride, nil) }
        guard ok != 0, size > 0 else { throw ImageError("libpng: \(message(image))") }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        ok = bitmap.pixels.withUnsafeBytes { pixels in
            bytes.withUnsafeMutableBytes { png_image_write_to_memory(&image, $0.baseAddress, &size, 0, pixels.baseAddress, stride, nil) }
        }
        png_image_free(&image)
        guard ok != 0 else { throw ImageError("libpng: \(message(image))") }
        bytes.removeSubrange(Int(size)...)
        guard !text.isEmpty else { return bytes }
        // Signature (8) + IHDR (4 length + 4 type + 13 data + 4 CRC).
        let afterHeader = 8 + 25
        var chunks: [UInt8] = []
        for (key, value) in text { chunks += textChunk(key: key, value: value) }
        bytes.insert(contentsOf: chunks, at: afterHeader)
        return bytes
    }

    /// A tEXt chunk when key and value are Latin-1, else iTXt — PIL's PngInfo.add_text.
    public static func textChunk(key: String, value: String) -> [UInt8] {
        let keyBytes = latin1(key) ?? Array(key.utf8)
        if let valueBytes = latin1(value) {
            return chunk("tEXt", keyBytes + [0] + valueBytes)
        }
        // keyword, NUL, compression flag 0, method 0, empty language, NUL, empty translated keyword, NUL.
        return chunk("iTXt", keyBytes + [0, 0, 0, 0, 0] + Array(value.utf8))
    }

    static func latin1(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            guard scalar.value < 256 else { return nil }
            out.append(UInt8(scalar.value))
        }
        return out
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let typeBytes = Array(type.utf8)
        let length = UInt32(data.count)
        var out: [UInt8] = [UInt8(length >> 24), UInt8(length >> 16 & 255), UInt8(length >> 8 & 255), UInt8(length & 255)]
        out += typeBytes + data
        let body = typeBytes + data
        let crc = body.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
        out += [UInt8(crc >> 24), UInt8(crc >> 16 & 255), UInt8(crc >> 8 & 255), UInt8(crc & 255)]
        return out
    }

    public static func decode(_ bytes: [UInt8], path: String? = nil) throws(ImageError) -> Bitmap {
        try decodeWithAlpha(bytes, path: path).image
    }

    /// The colours (as `decode`) and, when the file has an alpha channel or a transparent palette, the alpha plane.
    public static func decodeWithAlpha(_ bytes: [UInt8], path: String? = nil) throws(ImageError) -> (image: Bitmap, alpha: [UInt8]?) {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        let begun = bytes.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard begun != 0 else { throw ImageError("not a readable PNG (libpng: \(message(image)))", path: path) }
        let width = Int(image.width), height = Int(image.height)
        guard width > 0, height > 0, width * height <= maximumPixels else {
            png_image_free(&image)
            throw ImageError("PNG of \(width)x\(height) pixels is larger than this tool reads", path: path)
        }
        // Read with alpha, then split it off: an RGB read would composite transparent pixels onto black, where
        // PIL's convert("RGB") (kohya's image loading) keeps the stored colours of a transparent PNG.
        let hasAlpha = image.format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
        image.format = UInt32(PNG_FORMAT_RGB) | UInt32(PNG_FORMAT_FLAG_ALPHA)   // PNG_FORMAT_RGBA (a macro Swift does not import)
        var rgba = [UInt8](repeating: 0, count: width * height * 4)
        let done = rgba.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, Int32(width * 4), nil) }
        png_image_free(&image)
        guard done != 0 else { throw ImageError("damaged PNG (libpng: \(message(image)))", path: path) }
        let (colours, alpha) = Bitmap.splitting(rgba: rgba, width: width, height: height)
        return (colours, hasAlpha ? alpha : nil)
    }

    /// tEXt and uncompressed iTXt chunks, by keyword (what A1111 reads `parameters` from).
    public static func textChunks(_ bytes: [UInt8]) -> [String: String] {
        var result: [String: String] = [:]
        var offset = 8
        while offset + 12 <= bytes.count {
            let length = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
            let start = offset + 8
            guard length >= 0, length <= bytes.count - start - 4 else { break }
            let data = Array(bytes[start..<(start + length)])
            if type == "tEXt", let nul = data.firstIndex(of: 0) {
                let key = String(decoding: data[..<nul], as: UTF8.self)
                result[key] = String(String.UnicodeScalarView(data[(nul + 1)...].map { Unicode.Scalar($0) }))
            } else if type == "iTXt", let nul = data.firstIndex(of: 0), nul + 2 < data.count, data[nul + 1] == 0 {
                let key = String(decoding: data[..<nul], as: UTF8.self)
                var rest = data[(nul + 3)...]
                if let language = rest.firstIndex(of: 0) { rest = rest[(language + 1)...] } else { rest = [] }
                if let translated = rest.firstIndex(of: 0) { result[key] = String(decoding: rest[(translated + 1)...], as: UTF8.self) }
            } else if type == "IEND" {
                break
            }
            offset = start + length + 4
        }
        return result
    }

    public static func read(_ path: String) throws(ImageError) -> Bitmap {
        guard let data = FileManager.default.contents(atPath: path) else { throw ImageError("cannot read the file", path: path) }
        return try decode([UInt8](data), path: path)
    }

    private static func message(_ image: png_image) -> String {
        var copy = image.message
        return withUnsafeBytes(of: &copy) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }
}
