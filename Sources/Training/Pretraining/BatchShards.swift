import Diffusion
import LoRACore

/// A training step's batch split into shards that run at once, one per core
/// (`Parallel.shards`), for a model too small to split each layer over the
/// cores (the tiny shapes model). Shard 0 adds its gradients into the
/// parameters' own buffers, every other shard into buffers of its own; `run`
/// then folds them into the parameters' buffers weighted by the shards' sizes,
/// so the buffers hold the gradient of the whole batch's mean loss, as an
/// unsharded step leaves them (up to rounding: each shard sums its own items).
///
/// The number of shards is the recipe's, not the machine's, and a shard runs
/// serially with single-threaded GEMMs: the same recipe computes the same
/// numbers on a machine with any number of cores (on one with fewer cores than
/// shards they take turns).
final class BatchShards {
    let count: Int
    private let parameters: [Parameter]
    /// Per shard: the tape its backward adds into.
    private let tapes: [TrainingTape]
    /// Shards 1…: their buffers, in `parameters`' order.
    private let buffers: [[Gradient]]

    init(_ parameters: [Parameter], count: Int) {
        precondition(count >= 1)
        self.count = count
        self.parameters = parameters
        buffers = (1..<count).map { _ in parameters.map { Gradient(count: $0.count) } }
        tapes = [TrainingTape(training: parameters)] + buffers.map { TrainingTape(training: parameters, into: $0) }
    }

    /// `0..<batch` in `count` contiguous parts, the later ones an item larger when `count` does not divide it
    /// (3 in 2: 0..<1 and 1..<3; parts are empty when the batch is smaller than `count`).
    func ranges(batch: Int) -> [Range<Int>] {
        (0..<count).map { (batch * $0 / count)..<(batch * ($0 + 1) / count) }
    }

    /// `make(range)` for each shard's items at once (no gradients: a frozen encoder's latents), joined in order.
    func map(batch: Int, _ make: (Range<Int>) -> Tensor) -> Tensor {
        let parts = ranges(batch: batch).filter { !$0.isEmpty }
        return Tensor.stack(Parallel.shards(parts.count) { make(parts[$0]) })
    }

    /// `step(range, tape)` for each shard at once, each returning per-shard means (its loss, …); returns their
    /// means over the whole batch, and leaves the whole batch's gradients in the parameters' buffers, which
    /// must be zero on entry (the trainer zeroes them after each optimizer step; no accumulation across calls).
    func run(batch: Int, _ step: (Range<Int>, TrainingTape) -> [Double]) -> [Double] {
        let parts = ranges(batch: batch)
        let results = Parallel.shards(count) { shard in parts[shard].isEmpty ? [] : step(parts[shard], tapes[shard]) }
        // Σ (items of shard / batch) · shard's gradient, into shard 0's buffers (the parameters' own).
        let weights = parts.map { Float($0.count) / Float(batch) }
        Parallel.forEach(parameters.count, cost: 1 << 16) { p in
            parameters[p].gradient.values.withUnsafeMutableBufferPointer { total in
                if weights[0] != 1 { for i in total.indices { total[i] *= weights[0] } }
                for shard in 1..<count where weights[shard] > 0 {
                    buffers[shard - 1][p].values.withUnsafeMutableBufferPointer { part in
                        for i in total.indices { total[i] += weights[shard] * part[i] }
                        part.update(repeating: 0)
                    }
                }
            }
        }
        var means: [Double] = []
        for (shard, values) in results.enumerated() where !values.isEmpty {
            if means.isEmpty { means = [Double](repeating: 0, count: values.count) }
            for i in values.indices { means[i] += Double(weights[shard]) * values[i] }
        }
        return means
    }
}
