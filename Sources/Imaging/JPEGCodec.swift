import CImaging
import CJPEG
import Foundation

/// Baseline JPEG: sheets too big for a sensible PNG (hundreds of cells) are
/// written as JPEG; training images are read from JPEG. Encoding only takes
/// in-memory pixels we made ourselves, so libjpeg's fatal error path (out of
/// memory) is the only one it can hit; decoding takes files from anywhere and
/// runs behind setjmp in CImaging, so a hostile file is an error, not an exit.
public enum JPEGCodec {
    /// Larger images are refused before any pixel is decoded.
    public static let maxPixels = 100_000_000

    public static func decode(_ bytes: [UInt8]) throws(ImageError) -> Bitmap {
        var pixels: UnsafeMutablePointer<UInt8>?
        var width: Int32 = 0, height: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { data in
            lt_jpeg_decode(data.baseAddress, data.count, maxPixels, &pixels, &width, &height, &message, message.count)
        }
        guard status == 0, let pixels else {
            throw ImageError("not a readable JPEG: " + String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        defer { free(pixels) }
        let count = Int(width) * Int(height) * 3
        return Bitmap(width: Int(width), height: Int(height), pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }

    public static func read(_ path: String) throws(ImageError) -> Bitmap {
        guard let data = FileManager.default.contents(atPath: path) else { throw ImageError("cannot read the file", path: path) }
        do {
            return try decode([UInt8](data))
        } catch {
            throw ImageError(error.message, path: path)
        }
    }

    public static func encode(_ bitmap: Bitmap, quality: Int = 92) throws(ImageError) -> [UInt8] {
        guard bitmap.width > 0, bitmap.height > 0, bitmap.width <= 65_500, bitmap.height <= 65_500 else {
            throw ImageError("JPEG cannot hold a \(bitmap.width)x\(bitmap.height) image (65,500 pixels per side at most)")
        }
        var info = jpeg_compress_struct()
        var errors = jpeg_error_mgr()
        info.err = jpeg_std_error(&errors)
        jpeg_CreateCompress(&info, JPEG_LIB_VERSION, MemoryLayout<jpeg_compress_struct>.size)
        var buffer: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        jpeg_mem_dest(&info, &buffer, &size)
        info.image_width = JDIMENSION(bitmap.width)
        info.image_height = JDIMENSION(bitmap.height)
        info.input_components = 3
        info.in_color_space = JCS_RGB
        jpeg_set_defaults(&info)
        jpeg_set_quality(&info, Int32(max(1, min(100, quality))), 1)
        jpeg_start_compress(&info, 1)
        bitmap.pixels.withUnsafeBufferPointer { pixels in
            while info.next_scanline < info.image_height {
                var row: JSAMPROW? = UnsafeMutablePointer(mutating: pixels.baseAddress! + Int(info.next_scanline) * bitmap.width * 3)
                _ = jpeg_write_scanlines(&info, &row, 1)
            }
        }
        jpeg_finish_compress(&info)
        jpeg_destroy_compress(&info)
        guard let buffer else { throw ImageError("libjpeg produced no data") }
        let bytes = [UInt8](UnsafeBufferPointer(start: buffer, count: Int(size)))
        free(buffer)
        return bytes
    }
}
