import Diffusion
import Foundation
import LoRACore
import XCTest
@testable import Training

/// `--scale_weight_norms` with lycoris.kohya against LyCORIS's own apply_max_norm_regularization
/// (lycoris_max_norm.json from make_training_golden.py): LoCon and LoHa move their scalar, LoKr its factors (a
/// Tucker core among them), (IA)^3 is left out; the report; what a file saves; and that the scalar enters the next forward and gradients.
final class LyCORISMaxNormTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    struct Case {
        let entry: [String: Any]
        let module: any TrainedModule
        var name: String { entry["name"] as! String }
    }

    func golden() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/Fixtures/golden/training/lycoris_max_norm.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The golden's modules built from their values before scaling.
    func modules(_ golden: [String: Any]) throws -> [Case] {
        try XCTUnwrap(golden["modules"] as? [[String: Any]]).map { entry in
            let name = try XCTUnwrap(entry["name"] as? String), before = try XCTUnwrap(entry["before"] as? [String: [Double]])
            let rank = try XCTUnwrap(entry["rank"] as? Int), alpha = Float(try XCTUnwrap(entry["alpha"] as? Double))
            let shape: LoRAModule.Shape = entry["kind"] as? String == "linear" ? .linear(in: 5, out: 6)
                                                                                : .conv(in: 3, out: 4, kernel: 3, stride: 1, padding: 1)
            func values(_ key: String) throws -> [Float] { try XCTUnwrap(before[key], "\(name).\(key)").map(Float.init) }
            let shapes = Dictionary(uniqueKeysWithValues: try XCTUnwrap(entry["parameters"] as? [[Any]]).map { ($0[0] as! String, $0[1] as! [Int]) })
            func parameter(_ key: String) throws -> Parameter {
                Parameter(key: name + "." + key, shape: try XCTUnwrap(shapes[key]), values: try values(key))
            }
            let module: any TrainedModule
            switch entry["algo"] as? String {
            case "locon":
                module = LoRAModule(name: name, shape: shape, rank: rank, alpha: alpha, down: try values("lora_down.weight"), up: try values("lora_up.weight"),
                                    mid: shapes["lora_mid.weight"] != nil ? try values("lora_mid.weight") : nil)
            case "loha":
                module = LoHaModule(name: name, shape: shape, rank: rank, alpha: alpha, w1a: try values("hada_w1_a"), w1b: try values("hada_w1_b"),
                                    w2a: try values("hada_w2_a"), w2b: try values("hada_w2_b"))
            case "kron":
                let w1: WeightFactor = shapes["lokr_w1"] != nil ? .full(try parameter("lokr_w1")) : .lowRank(try parameter("lokr_w1_a"), try parameter("lokr_w1_b"))
                let w2: WeightFactor = shapes["lokr_w2"] != nil ? .full(try parameter("lokr_w2"))
                    : shapes["lokr_t2"] != nil ? .tucker(core: try parameter("lokr_t2"), a: try parameter("lokr_w2_a"), b: try parameter("lokr_w2_b"))
                    : .lowRank(try parameter("lokr_w2_a"), try parameter("lokr_w2_b"))
                module = LoKrModule(name: name, shape: shape, rank: rank, alpha: alpha, w1: w1, w2: w2)
            case "ia3":
                module = IA3Module(name: name, shape: shape, values: try values("weight"))
            default:
                throw XCTSkip("unknown algorithm \(entry["algo"] ?? "-")")
            }
            return Case(entry: entry, module: module)
        }
    }

    func assertClose(_ ours: [Float], _ theirs: [Double]?, _ message: String, tolerance: Double = 1e-5, line: UInt = #line) throws {
        let theirs = try XCTUnwrap(theirs, message, line: line)
        XCTAssertEqual(ours.count, theirs.count, message, line: line)
        let largest = theirs.map(abs).max() ?? 0
        let worst = zip(ours, theirs).map { abs(Double($0) - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance * max(largest, 1e-3), "\(message): off by \(worst) of \(largest)", line: line)
    }

    func testScalingFollowsLyCORIS() throws {
        let golden = try golden()
        let none = try XCTUnwrap(golden["none"] as? [Double])
        // No module above the maximum: LyCORIS reports 0, 0, 0 and changes nothing.
        let untouched = try modules(golden)
        XCTAssertEqual(LoRANetwork.applyLyCORISMaxNorm(100, to: untouched.map(\.module)),
                       LoRANetwork.MaxNormReport(keysScaled: 0, averageNorm: none[1], maximumNorm: none[2]))
        XCTAssertEqual(none[0], 0)
        for c in untouched {
            for p in c.module.parameters { try assertClose(p.values, (c.entry["before"] as? [String: [Double]])?[String(p.key.dropFirst(c.name.count + 1))], p.key, tolerance: 1e-7) }
            XCTAssertEqual(c.module.lycorisScalar?.scalar.value ?? 1, 1)
        }

        let cases = try modules(golden)
        let report = LoRANetwork.applyLyCORISMaxNorm(try XCTUnwrap(golden["max"] as? Double), to: cases.map(\.module))
        XCTAssertEqual(report.keysScaled, golden["keys_scaled"] as? Int)
        XCTAssertEqual(report.keysScaled, 8, "the golden scales LoCon, LoHa and LoKr modules (two with Tucker cores) and leaves one below M/2 "
                       + "and one between M/2 and M")
        XCTAssertEqual(report.averageNorm, try XCTUnwrap(golden["average"] as? Double), accuracy: 1e-6)
        XCTAssertEqual(report.maximumNorm, try XCTUnwrap(golden["maximum"] as? Double), accuracy: 1e-6)
        for c in cases {
            let after = try XCTUnwrap(c.entry["after"] as? [String: [Double]]), saved = try XCTUnwrap(c.entry["saved"] as? [String: [Double]])
            let scalar = try XCTUnwrap(c.entry["scalar"] as? Double)
            XCTAssertEqual(Double(c.module.lycorisScalar?.scalar.value ?? 1), scalar, accuracy: 1e-6 * scalar, "\(c.name): scalar")
            for p in c.module.parameters {
                let key = String(p.key.dropFirst(c.name.count + 1))
                try assertClose(p.values, after[key], "\(c.name).\(key) after scaling")
            }
            // What a file holds: LyCORIS's state_dict, the scalar multiplied into lora_up / hada_w1_a.
            let network = LoRANetwork(modules: [c.module], targets: [try target()], maxNormRule: .lycoris)
            for tensor in network.fileTensors() where !c.module.fileScalars.contains(where: { tensor.name == c.name + "." + $0.suffix }) {
                try assertClose(tensor.values, saved[String(tensor.name.dropFirst(c.name.count + 1))], "\(tensor.name) as saved")
            }
        }
    }

    /// After scaling, the scalar is in LoCon's output and every gradient, and in LoHa's ΔW and gradients, as in
    /// LyCORIS's forward (LoKr's scaling is in its factors, so its ΔW and gradients follow from them).
    func testTheScalarEntersTheNextStep() throws {
        let golden = try golden()
        let cases = try modules(golden)
        LoRANetwork.applyLyCORISMaxNorm(try XCTUnwrap(golden["max"] as? Double), to: cases.map(\.module))
        var checked = 0
        for c in cases {
            let gradients = c.entry["gradients"] as? [String: [Double]]
            if let lora = c.module as? LoRAModule {
                let x = Tensor(shape: try XCTUnwrap(c.entry["x_shape"] as? [Int]), values: try XCTUnwrap(c.entry["x"] as? [Double]).map(Float.init))
                let (output, saved) = lora.forward(x)
                try assertClose(output.values, c.entry["output"] as? [Double], "\(c.name) output")
                _ = lora.backward(saved, outputGradient: Tensor(shape: output.shape, values: try XCTUnwrap(c.entry["dy"] as? [Double]).map(Float.init)))
            } else if let dense = c.module as? any WeightDeltaModule, !dense.readsBase {
                try assertClose(dense.delta(), c.entry["delta"] as? [Double], "\(c.name) ΔW")
                let g = try XCTUnwrap(c.entry["delta_gradient"] as? [Double]).map(Float.init)
                let zero = [Float](repeating: 0, count: g.count)
                g.withUnsafeBufferPointer { g in zero.withUnsafeBufferPointer { dense.accumulateGradients(delta: g, base: $0.baseAddress!) } }
            } else {
                continue
            }
            for p in c.module.parameters {
                try assertClose(p.gradient.values, gradients?[String(p.key.dropFirst(c.name.count + 1))], "\(p.key) gradient")
            }
            checked += 1
        }
        XCTAssertEqual(checked, 10)
    }

    /// Any LoRATarget: fileTensors reads only the modules.
    func target() throws -> LoRATarget {
        try XCTUnwrap(ModelLayout(.tiny(.sd1)).targets.first)
    }
}
