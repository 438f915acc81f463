import FixtureKit
import Foundation
import LoRACore
import XCTest

/// The committed tiny models are exactly what the generator writes today.
final class FixtureTests: XCTestCase {
    func testCommittedFixturesAreReproducible() throws {
        let folder = TemporaryFolder()
        let committed = try FileManager.default.contentsOfDirectory(atPath: Repo.fixture("models")).filter { $0.hasSuffix(".safetensors") }
        XCTAssertFalse(committed.isEmpty)
        for item in FixtureSet.items where committed.contains(item.name) {
            try item.write(folder.file(item.name))
            let a = try Data(contentsOf: URL(fileURLWithPath: folder.file(item.name)))
            let b = try Data(contentsOf: URL(fileURLWithPath: Repo.fixture("models/" + item.name)))
            XCTAssertEqual(a, b, "\(item.name): regenerate with `swift run lora-bench fixtures`")
        }
    }
}
