import Foundation
import Imaging
import LoRACore

/// A fine-tuning subset in the plan (sd-scripts train_util.py `FineTuningDataset`): its images and
/// captions from the metadata file, its tag counts under the file's name — kohya counts the entries'
/// "tags" there, not their captions.
extension DatasetPlan {
    mutating func metadataImages(_ subset: DatasetSubset, index: Int) throws(ModelError) -> [DatasetImage] {
        let entries = try MetadataListing.entries(of: subset)
        var images: [DatasetImage] = [], uncaptioned = 0
        for entry in entries {
            let size: (width: Int, height: Int)
            do { size = try ImageFile.size(entry.path) } catch { throw ModelError(.invalid, error.message, file: entry.path) }
            images.append(DatasetImage(path: entry.path, caption: entry.caption, captionSource: .metadata, subsetIndex: index, repeats: subset.repeats,
                                       isRegularization: false, width: size.width, height: size.height))
            if entry.caption.isEmpty { uncaptioned += 1 }
        }
        let file = subset.metadataFile!
        tagFrequency.append((subset.recordedName, Self.tagCounts(entries.compactMap(\.tags))))
        if uncaptioned > 0 {
            warnings.append("\(uncaptioned) of \(entries.count) images in \(file) have neither a caption nor tags: their caption is empty")
        }
        return images
    }
}
