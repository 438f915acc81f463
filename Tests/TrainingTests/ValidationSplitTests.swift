import Foundation
@testable import Training
import XCTest

/// `--validation_split`: Python's `random` seeded and shuffled as CPython does it, and the halves
/// sd-scripts' split_train_val gives (Fixtures/golden/make_python_random_golden.py, CPython 3.11).
final class ValidationSplitTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    nonisolated(unsafe) static let golden: [String: Any] = {
        let data = try! Data(contentsOf: URL(fileURLWithPath: root + "/Fixtures/golden/random/python_random.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    func testPythonRandomSeedsAndShufflesAsCPython() throws {
        let cases = try XCTUnwrap(Self.golden["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 7)
        for c in cases {
            let seed = try XCTUnwrap(UInt64(c["seed"] as! String))
            var random = PythonRandom(seed: seed)
            XCTAssertEqual((0..<8).map { _ in Int(random.bits(32)) }, c["getrandbits32"] as? [Int], "seed \(seed)")
            for (n, expected) in try XCTUnwrap(c["shuffles"] as? [String: [Int]]) {
                var items = Array(0..<Int(n)!)
                var random = PythonRandom(seed: seed)
                random.shuffle(&items)
                XCTAssertEqual(items, expected, "seed \(seed), n \(n)")
            }
        }
    }

    func testSplitIsKohyas() throws {
        let splits = try XCTUnwrap(Self.golden["splits"] as? [[String: Any]])
        XCTAssertEqual(splits.count, 5)
        for s in splits {
            let n = s["n"] as! Int, fraction = s["split"] as! Double, seed = UInt64(s["seed"] as! Int)
            let split = ValidationSplit(fraction: fraction, seed: seed)
            let items = Array(0..<n)
            XCTAssertEqual(split.part(items, side: .training), s["train"] as? [Int], "\(n) at \(fraction)")
            XCTAssertEqual(split.part(items, side: .validation), s["validation"] as? [Int], "\(n) at \(fraction)")
            let both = Set(s["train"] as! [Int]).intersection(s["validation"] as! [Int]).count
            XCTAssertEqual(split.overlap(count: n), both, "\(n) at \(fraction)")
        }
    }

    /// kohya's validation timesteps: numpy's linspace(min, max, 6, dtype=int)[1:-1] (values from numpy 2).
    func testValidationTimestepsAreNumpysLinspace() {
        XCTAssertEqual(LoRATrainer.validationTimesteps(min: 0, max: 1000), [200, 400, 600, 800])
        XCTAssertEqual(LoRATrainer.validationTimesteps(min: 100, max: 900), [260, 420, 580, 740])
        XCTAssertEqual(LoRATrainer.validationTimesteps(min: 0, max: 999), [199, 399, 599, 799])
        XCTAssertEqual(LoRATrainer.validationTimesteps(min: 1, max: 7), [2, 3, 4, 5])
    }
}
