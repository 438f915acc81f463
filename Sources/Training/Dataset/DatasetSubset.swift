import Foundation
import Imaging
import LoRACore

/// One folder of images with how to use them: sd-scripts' DreamBooth-style
/// subset (library/config_util.py `DreamBoothSubsetParams`), either parsed
/// from a `<repeats>_<class tokens>` folder name or given by a dataset TOML;
/// or, with `metadataFile`, its fine-tuning subset (`FineTuningSubsetParams`:
/// the images and captions a metadata JSON lists, `MetadataListing`).
public struct DatasetSubset: Sendable, Equatable {
    /// The images' folder ("" for a metadata file whose paths are all absolute).
    public var imageDirectory: String
    /// kohya's `metadata_file` / `--in_json`: the subset lists its images and captions there, not in the folder.
    public var metadataFile: String?
    public var repeats: Int = 1
    /// The caption of images without a caption file (the text after the
    /// folder name's first underscore). nil: no class tokens (TOML without them).
    public var classTokens: String?
    public var isRegularization = false
    /// With its leading dot; sd-scripts' default is `.caption`, not `.txt`.
    public var captionExtension = ".caption"
    public var shuffleCaption = false
    public var captionSeparator = ","
    public var keepTokens = 0
    public var keepTokensSeparator = ""
    public var captionPrefix: String?
    public var captionSuffix: String?
    public var captionDropoutRate: Double = 0
    public var captionDropoutEveryNEpochs = 0
    public var captionTagDropoutRate: Double = 0
    public var flipAugment = false
    /// kohya's `random_crop` and `color_aug`: the image is cropped and coloured anew at every step, so
    /// its latents cannot be cached (train_util.py `is_latent_cacheable`).
    public var randomCrop = false
    public var colorAugment = false
    /// kohya's `face_crop_aug_range`: crops around the face named in each image's file name (`FaceCrop`), for
    /// images encoded at every step without buckets.
    public var faceCropRange: FaceCrop.Range?
    /// kohya's `resize_interpolation` (nil: area when shrinking, Lanczos otherwise).
    public var resizeInterpolation: Bitmap.Interpolation?
    /// kohya's `alpha_mask`: the images' alpha channel weights the loss (`AlphaMask`).
    public var alphaMask = false
    /// kohya's `enable_wildcard`: a random line of a multi-line caption file at each step, and `{a|b|c}` a random choice.
    public var enableWildcard = false
    /// kohya's `secondary_separator`: tags joined by it shuffle as one and become separate tags after.
    public var secondarySeparator: String?
    /// kohya's `token_warmup_min` / `token_warmup_step` (below 1: a fraction of the run's steps).
    public var tokenWarmupMin = 1
    public var tokenWarmupStep = 0.0
    /// The name kohya's metadata records the subset under (`ss_dataset_dirs`, `ss_tag_frequency`): its metadata file's, else its folder's.
    public var recordedName: String { ((metadataFile ?? imageDirectory) as NSString).lastPathComponent }

    public init(imageDirectory: String, repeats: Int = 1, classTokens: String? = nil, isRegularization: Bool = false) {
        self.imageDirectory = imageDirectory
        self.repeats = repeats
        self.classTokens = classTokens
        self.isRegularization = isRegularization
    }

    /// `--caption-extension` as sd-scripts normalises it: a leading dot added when missing.
    public static func normalizedExtension(_ text: String) -> String {
        text.isEmpty || text.hasPrefix(".") ? text : "." + text
    }

    /// The subsets kohya derives from the folders directly under `train` (and
    /// `regularization`): every sub-folder named `<integer>_<class tokens>`
    /// with a repeat count of at least 1 (config_util.py
    /// `generate_dreambooth_subsets_config_by_subdirs`). Folders kohya would
    /// skip come back in `skipped` with the reason, so the plan can say so.
    /// Folders are taken in name order (kohya: the file system's order, which
    /// only changes which regularization images fill the balance first).
    public static func fromFolders(train: String, regularization: String?) throws(ModelError)
        -> (subsets: [DatasetSubset], skipped: [(folder: String, reason: String)]) {
        var subsets: [DatasetSubset] = [], skipped: [(String, String)] = []
        for (parent, isReg) in [(train, false)] + (regularization.map { [($0, true)] } ?? []) {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ModelError(.io, "\(isReg ? "regularization" : "training") data folder not found", file: parent)
            }
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: parent).sorted() } catch {
                throw ModelError(.io, "cannot list the folder: \(error.localizedDescription)", file: parent)
            }
            for name in names where !name.hasPrefix(".") {
                let path = (parent as NSString).appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
                let tokens = name.split(separator: "_", omittingEmptySubsequences: false)
                guard let repeats = Int(tokens[0].trimmingCharacters(in: .whitespaces)) else {
                    skipped.append((path, "the name does not start with a repeat count (`<repeats>_<class tokens>`, e.g. 10_mychar)"))
                    continue
                }
                guard repeats >= 1 else {
                    skipped.append((path, "repeat count \(repeats) is less than 1"))
                    continue
                }
                subsets.append(DatasetSubset(imageDirectory: path, repeats: repeats, classTokens: tokens.dropFirst().joined(separator: "_"),
                                             isRegularization: isReg))
            }
        }
        return (subsets, skipped)
    }
}
