import Foundation

extension DatasetPlan {
    /// The batches of an epoch in training order: each bucket's entries shuffled and cut into batches of its
    /// dataset's size, then all batches shuffled (kohya's BucketManager.shuffle and the data loader's order),
    /// drawn from the run's seed and the epoch, so a resumed run sees the same batches.
    public func batches(epoch: Int, seed: UInt64) -> [[Int]] {
        var random = TrainingRandom(seed: seed &+ UInt64(epoch))
        var all: [[Int]] = []
        for bucket in buckets {
            var entries = bucket.entries
            random.shuffle(&entries)
            all += stride(from: 0, to: entries.count, by: bucket.batchSize).map { Array(entries[$0..<min($0 + bucket.batchSize, entries.count)]) }
        }
        random.shuffle(&all)
        return all
    }

    /// kohya's `--debug_dataset` (train_util.py `debug_dataset`), in its words: each batch of `epoch` in training
    /// order, and for each image its size, loss weight, caption as processed, SDXL's crop condition, bucket and flip. The order is
    /// the run's (`batches(epoch:seed:)`). Captions and flips are drawn from a source of their own
    /// seeded by the run's seed: they show what the subset's settings do (shuffle, dropout, wildcards, prefix …),
    /// while training draws its own among the noise it draws.
    public func debugLines(epoch: Int, seed: UInt64, totalSteps: Int, gradientAccumulationSteps: Int = 1, priorLossWeight: Double = 1) -> [String] {
        let order = batches(epoch: epoch, seed: seed)
        var random = TrainingRandom(seed: seed &+ 0xDEB6)
        var lines = ["epoch: \(epoch)"]
        for (index, batch) in order.enumerated() {
            let step = (epoch - 1) * order.count + index + 1
            lines.append("steps: \(step) (\(index + 1)/\(order.count))")
            for entry in batch {
                let image = images[entry], subset = subsets[image.subsetIndex]
                let bucket = buckets[bucketOf[entry]].resolution
                let caption = CaptionProcessing.process(image.caption, subset: subset, epoch: epoch, step: index / max(1, gradientAccumulationSteps),
                                                        totalSteps: totalSteps, random: &random)
                let flipped = subset.flipAugment && random.uniform() < 0.5
                let crop = Self.conditioningCrop(bucket: bucket, width: image.width, height: image.height, flipped: flipped)
                let weight = image.isRegularization ? priorLossWeight : 1
                // kohya's sizes here are (height, width), the image's own size (width, height).
                lines.append("\(image.path), size: (\(image.width), \(image.height)), loss weight: \(weight), caption: \"\(caption)\", "
                             + "original size: (\(image.height), \(image.width)), crop top left: (\(crop.top), \(crop.left)), "
                             + "target size: (\(bucket.height), \(bucket.width)), flipped: \(flipped ? "True" : "False")")
            }
        }
        return lines
    }

    /// The "crop top left" kohya reports (BucketManager.get_crop_ltrb, Stability AI's SDXL size conditioning):
    /// where the image, fitted inside the bucket, would sit; mirrored for a flipped image. Not the pixels' crop.
    static func conditioningCrop(bucket: Resolution, width: Int, height: Int, flipped: Bool) -> (top: Int, left: Int) {
        let bw = Double(bucket.width), bh = Double(bucket.height), aspect = Double(width) / Double(max(1, height))
        let (rw, rh) = bw / bh > aspect ? (bh * aspect, bh) : (bw, bw / aspect)
        let left = ((bw - rw) / 2).rounded(.down), top = ((bh - rh) / 2).rounded(.down)
        return (Int(top), Int(flipped ? bw - (left + rw) : left))
    }
}
