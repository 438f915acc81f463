import Foundation
import LoRACore
import XCTest

/// Mutates valid files thousands of times: every mutant must either read or be
/// refused with a ModelError, quickly. A crash kills the test process (fail);
/// a hang trips the per-input time bound.
final class FuzzTests: XCTestCase {
    private func mutate(_ input: [UInt8], _ rng: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        let mutations = Int.random(in: 1...4, using: &rng)
        for _ in 0..<mutations {
            guard !bytes.isEmpty else { break }
            let at = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<8, using: &rng) {
            case 0: bytes[at] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
            case 1: bytes[at] = [0, 0xFF, 0x7F, 0x80, UInt8(ascii: "{"), UInt8(ascii: "\""), UInt8(ascii: "."), UInt8(ascii: "]")].randomElement(using: &rng)!
            case 2: bytes.insert(contentsOf: (0..<Int.random(in: 1...16, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: at)
            case 3: bytes.removeSubrange(at..<min(bytes.count, at + Int.random(in: 1...64, using: &rng)))
            case 4: bytes = Array(bytes.prefix(at))
            case 5:
                let end = min(bytes.count, at + Int.random(in: 1...32, using: &rng))
                bytes.insert(contentsOf: bytes[at..<end], at: Int.random(in: 0..<bytes.count, using: &rng))
            case 6:
                // An 8-byte integer with a boundary value (lengths, offsets, counts).
                let values: [UInt64] = [0, 1, UInt64(Int32.max), UInt64(UInt32.max), 1 << 63, UInt64.max, UInt64(bytes.count), UInt64(bytes.count + 1)]
                let v = values.randomElement(using: &rng)!
                for k in 0..<8 where at + k < bytes.count { bytes[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
            default:
                // A 4-byte integer (zip and pickle lengths).
                let v = [UInt32.max, 0x7FFF_FFFF, 0, UInt32(bytes.count)].randomElement(using: &rng)!
                for k in 0..<4 where at + k < bytes.count { bytes[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(k))) }
            }
        }
        return bytes
    }

    /// Read, then run the downstream analysis too: parsed-but-odd files must not trap there either.
    private func exercise(_ bytes: [UInt8], name: String) -> Bool {
        do {
            let model = try ModelFile(file: MappedFile.inMemory(bytes, path: name))
            for t in model.tensors.prefix(64) where t.elementCount < 1 << 20 { _ = t.floats() }
            let network = try NetworkFile(model: model)
            if !network.modules.isEmpty { _ = try LoRAAnalysis.analyze(network, options: .init(scanValues: true, effectiveRank: true)) }
            else { _ = CheckpointAnalysis.analyze(model, stats: TensorScan.scan(model.tensors)) }
            return true
        } catch {
            XCTAssertFalse("\(error)".contains("\n"), "one-line errors")
            return false
        }
    }

    private func fuzz(_ fixture: String, iterations: Int, seed: UInt64, readable: Bool = true) throws {
        let input = Array(try Data(contentsOf: URL(fileURLWithPath: Repo.golden(fixture))))
        XCTAssertEqual(exercise(input, name: fixture), readable, "the unmutated fixture")
        var rng = SeededGenerator(seed: seed)
        var accepted = 0
        // LORA_TOOLS_FUZZ_SCALE=50 runs a longer campaign (e.g. with -c release) by hand.
        let scale = Int(ProcessInfo.processInfo.environment["LORA_TOOLS_FUZZ_SCALE"] ?? "") ?? 1
        for i in 0..<(iterations * max(1, scale)) {
            let mutant = mutate(input, &rng)
            let start = Date()
            if exercise(mutant, name: "\(fixture)#\(i)") { accepted += 1 }
            XCTAssertLessThan(Date().timeIntervalSince(start), 2.0, "\(fixture) mutant \(i) took too long")
        }
        print("fuzz \(fixture): \(iterations * max(1, scale)) mutants, \(accepted) still readable")
    }

    func testFuzzSafetensorsLoRA() throws { try fuzz("sd1_loha.safetensors", iterations: 3000, seed: 1) }
    func testFuzzSafetensorsLoCon() throws { try fuzz("sd1_locon.safetensors", iterations: 2000, seed: 2) }
    func testFuzzZipCheckpoint() throws { try fuzz("ckpt/nested_training.ckpt", iterations: 3000, seed: 3) }
    func testFuzzDeflatedZipCheckpoint() throws { try fuzz("ckpt/lora_deflated.ckpt", iterations: 1500, seed: 6) }
    func testFuzzLegacyCheckpoint() throws { try fuzz("ckpt/lora_legacy.pt", iterations: 1000, seed: 7) }
    func testFuzzDangerousPickle() throws { try fuzz("evil/subprocess_protocol4.ckpt", iterations: 2000, seed: 4, readable: false) }
    func testFuzzBarePickleStream() throws { try fuzz("evil/builtins_eval.pt", iterations: 1000, seed: 5, readable: false) }

    func testEveryTruncationOfACheckpointFailsCleanly() throws {
        let input = Array(try Data(contentsOf: URL(fileURLWithPath: Repo.golden("ckpt/nested_training.ckpt"))))
        for length in 0..<input.count {
            XCTAssertFalse(exercise(Array(input.prefix(length)), name: "truncated-\(length)"), "a truncated zip must not read (\(length))")
        }
    }
}
