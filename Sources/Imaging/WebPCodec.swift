import CWebP

/// WebP images (lossy, lossless, with or without alpha) through libwebp, the library PIL uses for them
/// in kohya's runs. Alpha is dropped as PIL's `convert("RGB")` drops it; an animation is refused by name
/// (PIL would take its first frame).
public enum WebPCodec {
    /// "RIFF" size "WEBP".
    public static func isWebP(_ header: [UInt8]) -> Bool {
        header.count >= 12 && header.starts(with: Array("RIFF".utf8)) && Array(header[8..<12]) == Array("WEBP".utf8)
    }

    /// Width and height from the headers (the first chunks suffice).
    public static func size(_ bytes: [UInt8], path: String) throws(ImageError) -> (width: Int, height: Int) {
        let features = try self.features(bytes, path: path)
        return (Int(features.width), Int(features.height))
    }

    public static func decode(_ bytes: [UInt8], path: String) throws(ImageError) -> Bitmap {
        try decodeWithAlpha(bytes, path: path).image
    }

    /// The colours and, when the file has alpha, the alpha plane.
    public static func decodeWithAlpha(_ bytes: [UInt8], path: String) throws(ImageError) -> (image: Bitmap, alpha: [UInt8]?) {
        let features = try self.features(bytes, path: path)
        var width: Int32 = 0, height: Int32 = 0
        guard let pixels = bytes.withUnsafeBufferPointer({ WebPDecodeRGBA($0.baseAddress, $0.count, &width, &height) }) else {
            throw ImageError("damaged WebP data (libwebp could not decode it)", path: path)
        }
        defer { WebPFree(pixels) }
        guard width == features.width, height == features.height else {
            throw ImageError("WebP decoded to \(width)x\(height), its header says \(features.width)x\(features.height)", path: path)
        }
        let rgba = Array(UnsafeBufferPointer(start: pixels, count: Int(width) * Int(height) * 4))
        let (image, alpha) = Bitmap.splitting(rgba: rgba, width: Int(width), height: Int(height))
        return (image, features.has_alpha != 0 ? alpha : nil)
    }

    static func features(_ bytes: [UInt8], path: String) throws(ImageError) -> WebPBitstreamFeatures {
        var features = WebPBitstreamFeatures()
        let status = bytes.withUnsafeBufferPointer { WebPGetFeatures($0.baseAddress, $0.count, &features) }
        guard status == VP8_STATUS_OK else { throw ImageError("not a readable WebP header (libwebp status \(status.rawValue))", path: path) }
        guard features.has_animation == 0 else { throw ImageError("an animated WebP: save one frame as PNG or WebP", path: path) }
        guard features.width > 0, features.height > 0 else { throw ImageError("WebP header says \(features.width)x\(features.height) pixels", path: path) }
        return features
    }
}
