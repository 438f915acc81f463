import Foundation
import LoRACore

/// kohya's face-centred crop augmentation, `face_crop_aug_range` (sd-scripts library/train_util.py
/// `load_image_with_face_info`, `crop_target`). The face's position is in the file name,
/// `<name>_<centre x>_<centre y>_<width>_<height>.png` in the original image's pixels (what kohya's
/// face-detection preprocessing wrote). At every step the image is scaled down at random so that the
/// face's larger side becomes between 1/b and 1/a of the crop's shorter side (never enlarged, never
/// below covering the crop), then cropped around the face. kohya applies it only to images it encodes
/// at every step *without* buckets; with buckets or cached latents it crops as if it were not set.
public enum FaceCrop {
    /// A face in the original image's pixels.
    public struct Box: Sendable, Equatable {
        public var centerX: Int, centerY: Int, width: Int, height: Int
        public init(centerX: Int, centerY: Int, width: Int, height: Int) {
            (self.centerX, self.centerY, self.width, self.height) = (centerX, centerY, width, height)
        }
        var size: Int { max(width, height) }
    }

    /// (a, b): how many times the face's larger side goes into the crop's shorter side, from a (face
    /// largest) to b (face smallest). a == b fixes the scale and turns off the small shift.
    public struct Range: Sendable, Equatable, CustomStringConvertible {
        public var lower: Double, upper: Double
        public init(lower: Double, upper: Double) {
            (self.lower, self.upper) = (lower, upper)
        }

        /// kohya's `--face_crop_aug_range "a,b"` (two floats, a ≤ b). Positive too: kohya divides by them.
        public init?(parsing text: String) {
            let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let a = parts[0], let b = parts[1] else { return nil }
            self.init(lower: a, upper: b)
            guard isUsable else { return nil }
        }

        public var isUsable: Bool { lower.isFinite && upper.isFinite && lower > 0 && lower <= upper }
        /// Python's str() of kohya's tuple, as `ss_face_crop_aug_range` records it: "(2.0, 4.0)".
        public var description: String { "(\(pythonFloat(lower)), \(pythonFloat(upper)))" }
    }

    /// The face in a file name: the last four of five or more `_`-separated parts of the name without its
    /// extension, read as Python's int() reads them. nil when the name has fewer parts or the centre x is
    /// not positive (kohya's "no face" test); an error where kohya's int() would stop the run, or where its
    /// arithmetic would divide by a zero face.
    public static func box(in path: String) throws(ModelError) -> Box? {
        let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        let tokens = stem.split(separator: "_", omittingEmptySubsequences: false)
        guard tokens.count >= 5 else { return nil }
        let numbers = tokens.suffix(4).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard let cx = numbers[0], let cy = numbers[1], let w = numbers[2], let h = numbers[3] else {
            throw ModelError(.invalid, "face_crop_aug_range reads a face from names of five or more '_'-separated parts "
                             + "(<name>_<centre x>_<centre y>_<width>_<height>), and this name's last four are not all integers "
                             + "(kohya stops on it too): rename the file or leave face_crop_aug_range out", file: path)
        }
        guard cx > 0 else { return nil }
        guard max(w, h) > 0 else {
            throw ModelError(.invalid, "the face in this file name has no size (width \(w), height \(h)); kohya would divide by zero", file: path)
        }
        return Box(centerX: cx, centerY: cy, width: w, height: h)
    }

    /// One step's scale and crop for an image of `image` size with `face` (`crop_target`'s arithmetic and
    /// draws, in its order): the size to resample the image to, and where the `target`-sized crop starts
    /// in it. An image already of the target's size is used as it is and draws nothing.
    /// The image must cover the target (the plan checks it: kohya's assertion).
    public static func draw(image: Resolution, face: Box, target: Resolution, range: Range, randomCrop: Bool,
                            random: inout some DataRandom) -> (scaled: Resolution, left: Int, top: Int) {
        if image == target { return (image, 0, 0) }
        let (height, width) = (Double(image.height), Double(image.width))
        let faceSize = face.size, size = min(target.width, target.height)
        var minScale = max(Double(target.height) / height, Double(target.width) / width)   // covers the target exactly
        minScale = min(1, max(minScale, Double(size) / (Double(faceSize) * range.upper)))     // the face at its smallest
        let maxScale = min(1, max(minScale, Double(size) / (Double(faceSize) * range.lower))) // the face at its largest
        let scale = minScale >= maxScale ? minScale : random.uniform(minScale, maxScale)
        // int(x + 0.5): Python's int() truncates toward zero, as Int() does.
        let scaled = Resolution(Int(width * scale + 0.5), Int(height * scale + 0.5))
        let faceX = Int(Double(face.centerX) * scale + 0.5), faceY = Int(Double(face.centerY) * scale + 0.5)
        var origin: [Int] = []
        for (targetSide, length, facePosition) in [(target.height, scaled.height, faceY), (target.width, scaled.width, faceX)] {
            var p = facePosition - targetSide / 2   // the face centred
            if randomCrop {
                // Towards the background too: two draws make a triangular spread around the centred crop.
                let reach = max(length - facePosition, facePosition)
                p += random.integer(in: 0...reach) + random.integer(in: 0...reach) - reach
            } else if range.lower != range.upper && faceSize > size / 10 && faceSize >= 40 {
                // kohya's randint(-face_size // 20, +face_size // 20): Python's // floors, so the low end is one further.
                p += random.integer(in: floorDivision(-faceSize, 20)...(faceSize / 20))
            }
            origin.append(max(0, min(p, length - targetSide)))
        }
        return (scaled, origin[1], origin[0])
    }

    static func floorDivision(_ a: Int, _ b: Int) -> Int { Int((Double(a) / Double(b)).rounded(.down)) }
}
