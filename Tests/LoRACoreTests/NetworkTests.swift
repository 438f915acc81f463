import Foundation
import LinearAlgebra
import LoRACore
import XCTest

/// ΔW for every algorithm against torch's own rebuild (golden.json).
final class NetworkTests: XCTestCase {
    func testDeltaWeightsMatchTorchForEveryAlgorithm() throws {
        var checked = 0
        for (name, file) in Golden.shared.files where file.kind == "lora" {
            let network = try NetworkFile(model: ModelFile.open(Repo.golden(name)))
            let modules = Dictionary(uniqueKeysWithValues: network.modules.map { ($0.name, $0) })
            for (moduleName, golden) in file.modules ?? [:] {
                let module = try XCTUnwrap(modules[moduleName], "\(name) \(moduleName)")
                XCTAssertEqual(module.algorithm.rawValue, golden.algorithm, moduleName)
                // Flattened LoHa conv factors do not carry the kernel shape (loaders take it from the base weight).
                XCTAssertEqual(module.deltaShape?.first, golden.shape.first, moduleName)
                XCTAssertEqual(module.deltaShape?.reduce(1, *), golden.shape.reduce(1, *), moduleName)
                XCTAssertClose(module.scale, golden.scale, relative: 1e-12, moduleName)
                if let rank = golden.rank { XCTAssertEqual(module.rank, rank, moduleName) }
                let delta = try module.delta()
                // Random projection: ΔW·x with x_i = sin(i + 1).
                let x = (0..<delta.cols).map { Float(sin(Double($0 + 1))) }
                let y = LinearAlgebra.multiply(delta, Matrix(rows: delta.cols, cols: 1, values: x))
                let scale = golden.projection.map(abs).max() ?? 1
                for (a, b) in zip(y.values, golden.projection) {
                    XCTAssertClose(Double(a), b, relative: 1e-4, absolute: 1e-5 * scale, "\(name) \(moduleName)")
                }
                if let full = golden.delta {
                    let peak = full.map(abs).max() ?? 1
                    for (a, b) in zip(delta.values, full) { XCTAssertClose(Double(a), b, relative: 1e-4, absolute: 1e-6 * peak, moduleName) }
                }
                XCTAssertClose(delta.frobeniusNorm, golden.norm, relative: 1e-5, absolute: 1e-9, moduleName)
                if let fast = try module.deltaNorm() { XCTAssertClose(fast, golden.norm, relative: 1e-4, absolute: 1e-9, "fast norm \(moduleName)") }
                let spectrum = try XCTUnwrap(module.deltaSingularValues())
                for (a, b) in zip(spectrum, golden.singular_values) where b > 1e-6 * (golden.singular_values.first ?? 1) {
                    XCTAssertClose(Double(a), b, relative: 1e-3, "σ \(moduleName)")
                }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 20)
    }

    func testFamilyDetectionFromTensorsAndMetadata() throws {
        for (name, file) in Golden.shared.files where file.kind == "lora" {
            guard let expected = file.family else { continue }
            let network = try NetworkFile(model: ModelFile.open(Repo.golden(name)))
            let guess = FamilyDetection.lora(network)
            XCTAssertEqual(guess.family?.rawValue, expected, name)
            XCTAssertEqual(guess.evidence, .tensors, name)
        }
    }

    func testIA3AndGLoRAUseTheBaseWeight() throws {
        let folder = TemporaryFolder()
        let path = folder.file("ia3.safetensors")
        try FixtureKitBridge.writeIA3(path)
        let network = try NetworkFile(model: ModelFile.open(path))
        let module = try XCTUnwrap(network.modules.first)
        XCTAssertEqual(module.algorithm, .ia3)
        let base = Matrix(rows: 2, cols: 3, values: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try module.delta(base: base).values, [0.5, 1, 1.5, -4, -5, -6])
        XCTAssertThrowsError(try module.delta())
    }
}

enum FixtureKitBridge {
    /// An (IA)^3 module scaling two output rows by 0.5 and -1.
    static func writeIA3(_ path: String) throws {
        let writer = try SafeTensorsWriter(path: path, metadata: Metadata(), entries: [
            .init(name: "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.weight", dtype: .f32, shape: [2]),
            .init(name: "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.on_input", dtype: .u8, shape: []),
        ])
        try [Float](arrayLiteral: 0.5, -1).withUnsafeBufferPointer {
            try writer.write(name: "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.weight", floats: $0)
        }
        try [UInt8](arrayLiteral: 0).withUnsafeBytes {
            try writer.write(name: "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.on_input", bytes: $0)
        }
        try writer.finish()
    }
}
