import Foundation

/// kohya's `--validation_split` (sd-scripts train_util.py `split_train_val`): each training
/// folder's images (regularization folders stay whole, in training only) shuffled by Python's
/// `random` seeded with the validation seed, the first ceil(n·(1 − split)) train and the last
/// round(n·split) (Python's round: half to even) validate. Those two counts can overlap by one
/// image (10 images at 0.15: 9 and 2); kohya keeps that image in both, and so do we, with a warning,
/// so the counts stay kohya's.
public struct ValidationSplit: Sendable, Equatable {
    public enum Side: Sendable { case training, validation }

    /// In (0, 1).
    public var fraction: Double
    /// kohya's `--validation_seed`, else `--seed` (as its help says; its code then shuffles with the
    /// global state instead, which can put an image on both sides).
    public var seed: UInt64

    public init(fraction: Double, seed: UInt64) {
        self.fraction = fraction
        self.seed = seed
    }

    public func part<T>(_ items: [T], side: Side) -> [T] {
        var shuffled = items
        var random = PythonRandom(seed: seed)
        random.shuffle(&shuffled)
        let n = Double(items.count)
        switch side {
        case .training: return Array(shuffled.prefix(Int((n * (1 - fraction)).rounded(.up))))
        case .validation: return Array(shuffled.suffix(Int((n * fraction).rounded(.toNearestOrEven))))
        }
    }

    /// Images kohya's counts put on both sides of a folder of `count`.
    public func overlap(count: Int) -> Int {
        let n = Double(count)
        return max(0, Int((n * (1 - fraction)).rounded(.up)) + Int((n * fraction).rounded(.toNearestOrEven)) - count)
    }
}
