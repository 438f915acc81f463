import Diffusion
import Foundation
import Imaging
import LoRACore

/// Which images are encoded at every step rather than cached, and how those are cropped: kohya's
/// `__getitem__` when an image has no cached latents (train_util.py). With buckets an image is resized to
/// cover its bucket and then cropped (centred, or at random with random_crop); without buckets kohya does
/// not resize it at all: random_crop takes a window of the image as it is, and face_crop_aug_range scales
/// it at random around the face in its name (`FaceCrop`).
extension DatasetPlan {
    /// Encoded by the VAE at every step: random_crop, color_aug, or a face to crop around.
    public func encodesEachStep(_ i: Int) -> Bool {
        let subset = subsets[images[i].subsetIndex]
        return subset.randomCrop || subset.colorAugment || images[i].face != nil
    }

    /// Cropped from the image as it is (no resizing to the bucket first): a face crop, or random_crop without buckets.
    public func cropsUnresized(_ i: Int) -> Bool {
        images[i].face != nil || (subsets[images[i].subsetIndex].randomCrop && !bucketing(ofSubset: images[i].subsetIndex).bucketed)
    }

    /// The bucketing of the dataset a subset belongs to.
    public func bucketing(ofSubset index: Int) -> BucketSet {
        parts.first { $0.subsets.contains(index) }?.bucketing ?? bucketing
    }

    /// One step's pixels of image `i`, which is encoded at every step, from its `stored` pixels (resized to
    /// cover its bucket, or as they are where `cropsUnresized`) and alpha, in `__getitem__`'s order: the flip
    /// is drawn first, then the crop (a random origin in the resized image; without buckets a window of the
    /// image as it is, or `crop_target`'s scale and origin around the face), then the colour change.
    /// [1, 3, h, w] in [-1, 1], whether it was mirrored, and the alpha at pixel size (not mirrored) if any.
    public func stepPixels(_ i: Int, stored: Bitmap, alpha storedAlpha: Bitmap?,
                           random: inout some DataRandom) throws(ModelError) -> (pixels: Tensor, flipped: Bool, pixelMask: [Float]?) {
        let image = images[i], subset = subsets[image.subsetIndex]
        let bucket = buckets[bucketOf[i]].resolution
        let flip = subset.flipAugment && random.uniform() < 0.5
        var pixels = stored, alpha = storedAlpha
        var origin: (left: Int, top: Int)?
        if let face = image.face, let range = subset.faceCropRange {
            let drawn = FaceCrop.draw(image: Resolution(stored.width, stored.height), face: face, target: bucket, range: range,
                                      randomCrop: subset.randomCrop, random: &random)
            pixels = stored.resampled(width: drawn.scaled.width, height: drawn.scaled.height, interpolation: subset.resizeInterpolation)
            alpha = alpha?.resampled(width: drawn.scaled.width, height: drawn.scaled.height, interpolation: subset.resizeInterpolation)
            origin = (drawn.left, drawn.top)
        } else if cropsUnresized(i) {
            origin = ImageAugmentation.unbucketedCropOrigin(width: stored.width, height: stored.height, target: bucket, random: &random)
        } else if subset.randomCrop {
            origin = ImageAugmentation.randomCropOrigin(width: stored.width, height: stored.height, bucket: bucket, random: &random)
        }
        if subset.colorAugment { ImageAugmentation.apply(ImageAugmentation.drawColorChange(random: &random), to: &pixels) }
        let input = try TrainingImage.pixels(pixels, path: image.path, bucket: bucket, flipped: flip, origin: origin)
        return (input, flip, alpha.map { AlphaMask.pixelMask($0, bucket: bucket, origin: origin) })
    }

    /// Faces from the file names of subsets with face_crop_aug_range, and the size checks kohya makes only
    /// when the first batch is drawn: without buckets a face crop or a random crop never enlarges, so the
    /// image must cover the resolution. kohya ignores face_crop_aug_range with buckets and with cached
    /// latents (`cachedLatents`, `--cache-latents`: it caches the centred crop); a warning says so.
    mutating func findFacesAndCheckCrops(cachedLatents: Bool) throws(ModelError) {
        let target = bucketing.resolution
        for (index, subset) in subsets.enumerated() where subset.faceCropRange != nil || subset.randomCrop {
            let members = images.indices.filter { images[$0].subsetIndex == index }
            guard !members.isEmpty else { continue }
            let ignored = bucketing.bucketed ? "with buckets: kohya crops bucketed images as if it were not set (leave --enable-bucket out"
                : cachedLatents ? "with --cache-latents: kohya caches the centred crop (leave --cache-latents out" : nil
            if let ignored {
                if subset.faceCropRange != nil {
                    warnings.append("face_crop_aug_range does nothing for \(subset.recordedName) \(ignored) to crop around faces)")
                }
                if bucketing.bucketed { continue }
            }
            var faceless = 0
            for i in members {
                if subset.faceCropRange != nil && ignored == nil {
                    images[i].face = try FaceCrop.box(in: images[i].path)
                    if images[i].face == nil { faceless += 1 }
                }
                guard cropsUnresized(i), images[i].width < target.width || images[i].height < target.height else { continue }
                let kind = images[i].face != nil ? "face_crop_aug_range" : "random_crop"
                throw ModelError(.mismatch, "this \(images[i].width)x\(images[i].height) image is smaller than the \(target.width)x\(target.height) "
                                 + "resolution: without buckets kohya's \(kind) crops the image as it is and never enlarges it (kohya stops on it "
                                 + "too); use a larger image, a smaller --resolution or --enable-bucket", file: images[i].path)
            }
            if faceless > 0 {
                warnings.append("\(faceless) of \(members.count) images in \(subset.recordedName) have no face in their file name "
                                + "(<name>_<centre x>_<centre y>_<width>_<height>): face_crop_aug_range leaves them as without it")
            }
        }
    }
}
