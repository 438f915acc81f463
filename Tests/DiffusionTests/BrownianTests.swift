@testable import Diffusion
import Foundation
import XCTest

/// DPM++ SDE's noise: numpy's SeedSequence and torchsde's Brownian tree,
/// against golden values from numpy and k-diffusion.
final class BrownianTests: XCTestCase {
    func testSeedSequenceMatchesNumpy() {
        for case let entry as [String: Any] in EngineGolden.info["seed_sequence"] as! [Any] {
            let entropy = (entry["entropy"] as! NSNumber).uint64Value
            let key = (entry["spawn_key"] as! [NSNumber]).map(\.uint64Value)
            let sequence = SeedSequence(entropy: entropy, spawnKey: key, poolSize: entry["pool_size"] as! Int)
            XCTAssertEqual(sequence.generateState(4).map(UInt64.init), (entry["state"] as! [NSNumber]).map(\.uint64Value), "\(entry)")
        }
    }

    func testBrownianNoiseMatchesKDiffusion() {
        let golden = EngineGolden.golden("brownian")
        let queries = EngineGolden.info["brownian_queries"] as! [[NSNumber]]
        let sigmas: [Float] = [14.6146, 10.7468, 7.3, 3.0, 1.0, 0.5, 0.1, 0.0292]
        var noise = BrownianNoise(seeds: [1234], elementsPerImage: 256, sigmaMin: sigmas.min()!, sigmaMax: sigmas.max()!)
        let x = Tensor(zeros: [1, 4, 8, 8])
        for (i, pair) in queries.enumerated() {
            let n = noise.noise(like: x, sigma: pair[0].floatValue, sigmaNext: pair[1].floatValue)
            XCTAssertLessThan(EngineGolden.relativeError(n.values, golden["query\(i)"]!.floats()), 1e-5, "query \(i): \(pair)")
        }
    }
}
