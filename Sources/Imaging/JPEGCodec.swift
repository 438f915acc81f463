import CJPEG
import Foundation

/// Baseline JPEG for sheets too big for a sensible PNG (hundreds of cells).
/// Only compresses in-memory pixels we made ourselves, so libjpeg's fatal
/// error path (out of memory) is the only one that can trigger.
public enum JPEGCodec {
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
