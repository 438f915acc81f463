import Diffusion
import FixtureKit
import Foundation
import LoRACore
import XCTest

/// The golden data of Fixtures/golden/engine (made by make_engine_golden.py)
/// and the engine fixture models it was made from, regenerated here by the
/// deterministic generator and checked against the recorded sha256.
enum EngineGolden {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let folder = root + "/Fixtures/golden/engine"

    nonisolated(unsafe) static let info: [String: Any] = {
        let data = FileManager.default.contents(atPath: folder + "/engine.json")!
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    /// torch's noise kernel that produced the golden noise and sampler runs:
    /// recorded by the script ("noise_kernel"), or derived from the torch CPU
    /// capability it recorded (AVX2 and AVX512 both run normal_fill_AVX2).
    static var noiseVariant: TorchGenerator.Variant {
        if let recorded = info["noise_kernel"] as? String, let variant = TorchGenerator.Variant(rawValue: recorded) { return variant }
        let capability = (info["cpu_capability"] as? String ?? "").uppercased()
        return capability == "AVX2" || capability == "AVX512" ? .avx2 : .libm
    }

    static func golden(_ name: String) -> ModelFile {
        try! ModelFile.open(folder + "/" + name + ".safetensors")
    }

    static let tokenizer: BPETokenizer = try! BPETokenizer.load(root + "/Fixtures/tokenizer/clip_bpe_merges.txt.gz")

    private static let lock = NSLock()
    nonisolated(unsafe) private static var written: [String: String] = [:]
    static let fixtureFolder: String = {
        let folder = NSTemporaryDirectory() + "lora-tools-engine-\(getpid())"
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // Shared by every engine test of the run, so removed when the test process exits (XCTest ends with exit()).
        atexit { try? FileManager.default.removeItem(atPath: EngineGolden.fixtureFolder) }
        return folder
    }()

    /// Path of an engine fixture (written on first use), after checking it is
    /// the file the golden data was computed from.
    static func fixture(_ name: String) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let path = written[name] { return path }
        guard let item = FixtureSet.items.first(where: { $0.name == name }) else { throw XCTSkip("no fixture \(name)") }
        let path = fixtureFolder + "/" + name
        try item.write(path)
        if let shas = info["fixtures"] as? [String: String], let expected = shas[name] {
            let actual = Hashing.sha256(try MappedFile(path: path))
            guard actual == expected else {
                throw ModelError(.mismatch, "\(name) differs from the file the golden data was made from; re-run Fixtures/golden/make_engine_golden.py")
            }
        }
        written[name] = path
        return path
    }

    /// max |a − b| / max |b|: errors relative to the tensor's scale.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "\(a.count) vs \(b.count) values")
        var worst: Float = 0, scale: Float = 0
        for (x, y) in zip(a, b) {
            worst = max(worst, abs(x - y))
            scale = max(scale, abs(y))
        }
        return scale == 0 ? worst : worst / scale
    }
}
