import Foundation

/// torchsde's `BrownianTree` (a `BrownianInterval` with a dyadic "halfway"
/// tree, tolerance 1e-6), as k-diffusion's `BrownianTreeNoiseSampler` uses it
/// for DPM++ SDE: the noise between two σ values is the Brownian increment over
/// that interval, divided by √|Δσ|. Every tree node draws its bridge sample from
/// torch.randn with a seed from numpy's SeedSequence, so the same seed gives
/// the same noise whatever the step count. Ported to give the same numbers.
final class BrownianTree {
    final class Node {
        let start: Double
        let end: Double
        unowned(unsafe) let parent: Node?
        let isLeft: Bool
        var midway: Double?
        var spawnKey: UInt64 = 0
        var depth: UInt64 = 0
        var seed: UInt32 = 0
        var left: Node?
        var right: Node?

        init(start: Double, end: Double, parent: Node?, isLeft: Bool) {
            self.start = start
            self.end = end
            self.parent = parent
            self.isLeft = isLeft
        }
    }

    let size: Int
    let entropy: UInt64
    let variant: TorchGenerator.Variant
    let root: Node
    private let rootIncrement: [Float]
    private var lastNode: Node
    private var cache: [ObjectIdentifier: [Float]] = [:]
    private var cacheOrder: [ObjectIdentifier] = []
    private static let cacheSize = 45
    private static let poolSize = 24

    init(t0: Double, t1: Double, size: Int, entropy: UInt64, variant: TorchGenerator.Variant) {
        self.size = size
        self.entropy = entropy
        self.variant = variant
        root = Node(start: BrownianTree.round(t0), end: BrownianTree.round(t1), parent: nil, isLeft: false)
        lastNode = root
        let seeds = SeedSequence(entropy: entropy, poolSize: BrownianTree.poolSize).generateState(3)
        let scale = Float((t1 - t0).squareRoot())
        var generator = TorchGenerator(seed: UInt64(seeds[0]), variant: variant)
        rootIncrement = generator.randn(size).map { $0 * scale }
    }

    /// Python's `round(x, 6)`: correctly rounded to six decimals (printf does the same).
    static func round(_ x: Double) -> Double {
        Double(String(format: "%.6f", x)) ?? x
    }

    /// W(tb) − W(ta) for ta ≤ tb, clamped to the tree's interval.
    func increment(_ a: Double, _ b: Double) -> [Float] {
        let ta = min(max(a, root.start), root.end), tb = min(max(b, root.start), root.end)
        if ta == tb { return [Float](repeating: 0, count: size) }
        var nodes: [Node] = []
        locate(lastNode, BrownianTree.round(ta), BrownianTree.round(tb), &nodes)
        lastNode = nodes.last!
        var total = value(nodes[0])
        for node in nodes.dropFirst() {
            let w = value(node)
            for i in total.indices { total[i] += w[i] }
        }
        return total
    }

    private func locate(_ node: Node, _ ta: Double, _ tb: Double, _ out: inout [Node]) {
        if ta < node.start || tb > node.end {
            locate(node.parent!, ta, tb, &out)
            return
        }
        if ta == node.start && tb == node.end {
            out.append(node)
            return
        }
        guard let midway = node.midway else {
            if ta == node.start {
                split(node, tb)
                locate(node.left!, ta, tb, &out)
            } else {
                split(node, ta)
                locate(node.right!, ta, tb, &out)
            }
            return
        }
        if tb <= midway {
            locate(node.left!, ta, tb, &out)
        } else if ta >= midway {
            locate(node.right!, ta, tb, &out)
        } else {
            locate(node.left!, ta, midway, &out)
            locate(node.right!, midway, tb, &out)
        }
    }

    /// Halfway splits down to the one at `target`.
    private func split(_ node: Node, _ target: Double) {
        splitExact(node, 0.5 * (node.end + node.start))
        guard let midway = node.midway else { return }
        if target > midway {
            split(node.right!, target)
        } else if target < midway {
            split(node.left!, target)
        }
    }

    private func splitExact(_ node: Node, _ point: Double) {
        let midway = BrownianTree.round(point)
        node.midway = midway
        if let parent = node.parent {
            node.spawnKey = 2 &* parent.spawnKey &+ (node.isLeft ? 0 : 1)
            node.depth = parent.depth + 1
        }
        node.seed = SeedSequence(entropy: entropy, spawnKey: [node.spawnKey, node.depth], poolSize: BrownianTree.poolSize)
            .generateState(4)[0]
        node.left = Node(start: node.start, end: midway, parent: node, isLeft: true)
        node.right = Node(start: midway, end: node.end, parent: node, isLeft: false)
    }

    /// The increment over a node: its parent's, split by a Brownian bridge sample.
    private func value(_ node: Node) -> [Float] {
        guard let parent = node.parent else { return rootIncrement }
        let id = ObjectIdentifier(node)
        if let hit = cache[id] { return hit }
        let w = value(parent)
        let midway = parent.midway!
        let reciprocal = 1 / (parent.end - parent.start)
        let leftDiff = midway - parent.start, rightDiff = parent.end - midway
        let variance = leftDiff * rightDiff * reciprocal
        var generator = TorchGenerator(seed: UInt64(parent.seed), variant: variant)
        let noise = generator.randn(size)
        let a = Float(leftDiff), r = Float(reciprocal), s = Float(variance.squareRoot())
        var out = [Float](repeating: 0, count: size)
        for i in 0..<size {
            let left = (a * w[i]) * r + s * noise[i]
            out[i] = node.isLeft ? left : w[i] - left
        }
        remember(id, out)
        return out
    }

    private func remember(_ id: ObjectIdentifier, _ value: [Float]) {
        if cache[id] == nil, cache.count >= BrownianTree.cacheSize, let oldest = cacheOrder.first {
            cacheOrder.removeFirst()
            cache[oldest] = nil
        }
        if cache[id] == nil { cacheOrder.append(id) }
        cache[id] = value
    }
}

/// k-diffusion's `BrownianTreeNoiseSampler` with one tree per image, seeded
/// with the image's seed (A1111 passes the batch's seeds).
public struct BrownianNoise: NoiseSource {
    private let trees: [BrownianTree]

    public init(seeds: [UInt64], elementsPerImage: Int, sigmaMin: Float, sigmaMax: Float, variant: TorchGenerator.Variant = .native) {
        let (low, high) = sigmaMin < sigmaMax ? (sigmaMin, sigmaMax) : (sigmaMax, sigmaMin)
        trees = seeds.map { BrownianTree(t0: Double(low), t1: Double(high), size: elementsPerImage, entropy: $0, variant: variant) }
    }

    public mutating func noise(like x: Tensor, sigma: Float, sigmaNext: Float) -> Tensor {
        let (low, high, sign): (Float, Float, Float) = sigma < sigmaNext ? (sigma, sigmaNext, 1) : (sigmaNext, sigma, -1)
        let scale = abs(sigmaNext - sigma).squareRoot()
        var values: [Float] = []
        values.reserveCapacity(x.count)
        for tree in trees {
            values += tree.increment(Double(low), Double(high)).map { $0 * sign / scale }
        }
        return Tensor(shape: x.shape, values: values)
    }
}
