import Diffusion
import Foundation
import Imaging
import LoRACore

/// `--cache_latents_to_disk`: one `.npz` per image beside it, named and laid
/// out as sd-scripts writes them (library/strategy_sd.py, strategy_base.py:
/// `<image>_<WWWW>x<HHHH>_sd.npz` with the original size; `latents` unscaled
/// [4, h/8, w/8] float32, `original_size`, `crop_ltrb`, `latents_flipped`
/// with flip augmentation), so kohya and lora-train reuse each other's
/// caches. kohya only checks that the arrays exist; a file is used here when
/// its latents also fit the image's bucket, and — in files lora-train wrote,
/// which carry the SHA-256 of the image and of the VAE's weights and the
/// resized size — only when those still match: an edited image or another
/// VAE re-encodes, and so does a resized image under another `resize_interpolation`. An `alpha_mask` image's file holds `alpha_mask` too (alpha/255 at the
/// bucket's size), as kohya's. (crop_ltrb is written as integers; SD1/SD2
/// training does not read it.)
public struct DiskLatentCache: Sendable {
    /// SHA-256 over the VAE's tensors (name-sorted raw bytes) of the checkpoint.
    public let vaeHash: [UInt8]
    let scale: Float

    /// The VAE's hash: the checkpoint's VAE tensors, or with a separate VAE file (`--vae`) all of that file's.
    public init(model: StableDiffusionModel) throws(ModelError) {
        var hash = SHA256()
        let vaeFile = try model.vaePath.map { path throws(ModelError) in try ModelFile.open(path) }
        let tensors = vaeFile?.tensors ?? model.file.tensors.filter { $0.name.hasPrefix("first_stage_model.") || $0.name.hasPrefix("vae.") }
        for tensor in tensors.sorted(by: { $0.name < $1.name }) {
            hash.update(Array(tensor.name.utf8))
            hash.update(tensor.rawBytes)
        }
        vaeHash = hash.finalize()
        scale = model.config.vaeScaleFactor
    }

    public static func path(for image: DatasetImage) -> String {
        (image.path as NSString).deletingPathExtension + String(format: "_%04dx%04d_sd.npz", image.width, image.height)
    }

    /// The `resize_interpolation` a file was made with, as its name's bytes: none for kohya's default (so caches
    /// written before the option existed stay valid) or for an image used at its own size.
    static func resizeMethod(_ image: DatasetImage, _ resized: Resolution, _ interpolation: Bitmap.Interpolation?) -> [UInt8] {
        resized.width == image.width && resized.height == image.height ? [] : Array((interpolation?.rawValue ?? "").utf8)
    }

    static func imageHash(_ path: String) throws(ModelError) -> [UInt8] {
        let file = try MappedFile(path: path)
        var hash = SHA256()
        hash.update(file.bytes)
        return hash.finalize()
    }

    /// The cached latents (scaled for the U-Net), and with `alphaMask` the pixel mask, if the file fits, else nil.
    func load(_ image: DatasetImage, bucket: Resolution, resized: Resolution, flipped: Bool,
              alphaMask: Bool = false, interpolation: Bitmap.Interpolation? = nil) throws(ModelError) -> (Tensor, Tensor?, [Float]?)? {
        let path = DiskLatentCache.path(for: image)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let arrays: [String: NumpyArchive.Array]
        do { arrays = try NumpyArchive.read(path) } catch { return nil } // unreadable: re-encode and replace it
        let shape = [4, bucket.height / 8, bucket.width / 8]
        guard let latents = arrays["latents"], latents.shape == shape, let values = latents.values.floats else { return nil }
        var flippedValues: [Float]?
        if flipped {
            guard let f = arrays["latents_flipped"], f.shape == shape, let v = f.values.floats else { return nil }
            flippedValues = v
        }
        var mask: [Float]?
        if alphaMask {
            // kohya's is_disk_cached_latents_expected: an alpha_mask image's file must hold its mask.
            guard let m = arrays["alpha_mask"], m.shape == [bucket.height, bucket.width], let v = m.values.floats else { return nil }
            mask = v
        }
        if let stored = arrays["lora_tools_image_sha256"]?.values.bytes {
            guard stored == (try DiskLatentCache.imageHash(image.path)), arrays["lora_tools_vae_sha256"]?.values.bytes == vaeHash,
                  arrays["lora_tools_resized"]?.values.integers == [Int64(resized.width), Int64(resized.height)],
                  arrays["lora_tools_resize_interpolation"]?.values.bytes ?? [] == DiskLatentCache.resizeMethod(image, resized, interpolation)
            else { return nil }
        }
        func scaled(_ v: [Float]) -> Tensor { Tensor(shape: [1] + shape, values: v.map { $0 * scale }) }
        return (scaled(values), flippedValues.map(scaled), mask)
    }

    func save(_ image: DatasetImage, bucket: Resolution, resized: Resolution, latents: Tensor, flipped: Tensor?,
              alphaMask: [Float]? = nil, interpolation: Bitmap.Interpolation? = nil) throws(ModelError) {
        let shape = [4, bucket.height / 8, bucket.width / 8]
        func unscaled(_ t: Tensor) -> NumpyArchive.Array { .init(shape: shape, values: .float32(t.values.map { $0 / scale })) }
        // kohya's get_crop_ltrb, truncated to integers.
        let bucketAspect = Double(bucket.width) / Double(bucket.height), imageAspect = Double(image.width) / Double(image.height)
        let (w, h) = bucketAspect > imageAspect ? (Double(bucket.height) * imageAspect, Double(bucket.height))
                                                : (Double(bucket.width), Double(bucket.width) / imageAspect)
        let left = ((Double(bucket.width) - w) / 2).rounded(.down), top = ((Double(bucket.height) - h) / 2).rounded(.down)
        var arrays: [(name: String, array: NumpyArchive.Array)] = [
            ("latents", unscaled(latents)),
            ("original_size", .init(shape: [2], values: .int64([Int64(image.width), Int64(image.height)]))),
            ("crop_ltrb", .init(shape: [4], values: .int64([left, top, left + w, top + h].map { Int64($0) }))),
        ]
        if let flipped { arrays.append(("latents_flipped", unscaled(flipped))) }
        if let alphaMask { arrays.append(("alpha_mask", .init(shape: [bucket.height, bucket.width], values: .float32(alphaMask)))) }
        arrays += [("lora_tools_image_sha256", .init(shape: [32], values: .uint8(try DiskLatentCache.imageHash(image.path)))),
                   ("lora_tools_vae_sha256", .init(shape: [32], values: .uint8(vaeHash))),
                   ("lora_tools_resized", .init(shape: [2], values: .int64([Int64(resized.width), Int64(resized.height)])))]
        let method = DiskLatentCache.resizeMethod(image, resized, interpolation)
        if !method.isEmpty { arrays.append(("lora_tools_resize_interpolation", .init(shape: [method.count], values: .uint8(method)))) }
        try AtomicOutput.write(NumpyArchive.encode(arrays), to: DiskLatentCache.path(for: image))
    }
}
