import Diffusion
import Foundation
import LoRACore
import Training
import XCTest

/// The LoRA module's backward against finite differences of a double
/// reference; AdamW and the learning-rate schedules against values torch and
/// diffusers computed (Fixtures/golden/make_training_golden.py).
final class TrainingTests: XCTestCase {
    nonisolated(unsafe) static let golden: [String: Any] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let data = try! Data(contentsOf: root.appendingPathComponent("Fixtures/golden/training/optimizer.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    struct Rng {
        var state: UInt64
        mutating func next() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 1_000_000
        }
        mutating func values(_ n: Int) -> [Double] { (0..<n).map { _ in next() } }
    }

    /// Central differences of `loss` at `point` vs `analytic`, relative to the largest gradient.
    func assertGradient(_ label: String, _ analytic: [Float], at point: [Double], loss: ([Double]) -> Double) {
        var p = point, worst = 0.0, largest = 0.0
        for i in point.indices {
            let h = 1e-6 * max(1, abs(point[i]))
            p[i] = point[i] + h
            let plus = loss(p)
            p[i] = point[i] - h
            let minus = loss(p)
            p[i] = point[i]
            let numeric = (plus - minus) / (2 * h)
            worst = max(worst, abs(Double(analytic[i]) - numeric))
            largest = max(largest, abs(numeric))
        }
        XCTAssertGreaterThan(largest, 0, label)
        XCTAssertLessThan(worst / largest, 1e-4, "\(label): worst \(worst) of \(largest)")
    }

    /// y = m·(α/r)·up·down·x (linear) and the LoCon conv form, dy = r.
    func testLoRAModuleGradientsLinearAndConv() {
        var rng = Rng(state: 9)
        let rows = 4, inputs = 6, outputs = 5, rank = 3, alpha: Float = 2, multiplier: Float = 0.7
        let x = rng.values(rows * inputs), down = rng.values(rank * inputs), up = rng.values(outputs * rank), r = rng.values(rows * outputs)
        var module = LoRAModule(name: "lora_unet_x", shape: .linear(in: inputs, out: outputs), rank: rank, alpha: alpha,
                                down: down.map(Float.init), up: up.map(Float.init))
        module.multiplier = multiplier
        func loss(_ x: [Double], _ down: [Double], _ up: [Double]) -> Double {
            var total = 0.0
            for row in 0..<rows {
                let h = (0..<rank).map { k in (0..<inputs).reduce(0.0) { $0 + down[k * inputs + $1] * x[row * inputs + $1] } }
                for o in 0..<outputs {
                    let y = Double(multiplier) * Double(alpha) / Double(rank) * (0..<rank).reduce(0.0) { $0 + up[o * rank + $1] * h[$1] }
                    total += r[row * outputs + o] * y
                }
            }
            return total
        }
        let (output, saved) = module.forward(Tensor(shape: [rows, inputs], values: x.map(Float.init)))
        XCTAssertEqual(Double(zip(output.values, r).reduce(Float(0)) { $0 + $1.0 * Float($1.1) }), loss(x, down, up), accuracy: 1e-4)
        let dx = module.backward(saved, outputGradient: Tensor(shape: [rows, outputs], values: r.map(Float.init)))
        assertGradient("LoRA dx", dx.values, at: x) { loss($0, down, up) }
        assertGradient("LoRA d down", module.down.gradient.values, at: down) { loss(x, $0, up) }
        assertGradient("LoRA d up", module.up.gradient.values, at: up) { loss(x, down, $0) }

        // LoCon 3×3 (stride 1, pad 1) on a 2-item batch.
        let c = 3, out = 4, h = 5, w = 4, batch = 2
        let cx = rng.values(batch * c * h * w), cdown = rng.values(rank * c * 9), cup = rng.values(out * rank), cr = rng.values(batch * out * h * w)
        let conv = LoRAModule(name: "lora_unet_conv", shape: .conv(in: c, out: out, kernel: 3, stride: 1, padding: 1), rank: rank, alpha: alpha,
                              down: cdown.map(Float.init), up: cup.map(Float.init))
        func convLoss(_ x: [Double], _ down: [Double], _ up: [Double]) -> Double {
            var total = 0.0
            for n in 0..<batch { for oy in 0..<h { for ox in 0..<w {
                var hidden = [Double](repeating: 0, count: rank)
                for k in 0..<rank { for ci in 0..<c { for ky in 0..<3 { for kx in 0..<3 {
                    let iy = oy - 1 + ky, ix = ox - 1 + kx
                    if iy >= 0 && iy < h && ix >= 0 && ix < w { hidden[k] += down[((k * c + ci) * 3 + ky) * 3 + kx] * x[((n * c + ci) * h + iy) * w + ix] }
                } } } }
                for o in 0..<out {
                    let y = Double(alpha) / Double(rank) * (0..<rank).reduce(0.0) { $0 + up[o * rank + $1] * hidden[$1] }
                    total += cr[((n * out + o) * h + oy) * w + ox] * y
                }
            } } }
            return total
        }
        let (_, convSaved) = conv.forward(Tensor(shape: [batch, c, h, w], values: cx.map(Float.init)))
        let cdx = conv.backward(convSaved, outputGradient: Tensor(shape: [batch, out, h, w], values: cr.map(Float.init)))
        assertGradient("LoCon dx", cdx.values, at: cx) { convLoss($0, cdown, cup) }
        assertGradient("LoCon d down", conv.down.gradient.values, at: cdown) { convLoss(cx, $0, cup) }
        assertGradient("LoCon d up", conv.up.gradient.values, at: cup) { convLoss(cx, cdown, $0) }
    }

    func testKohyaInitialisationBoundsAndZeroUp() {
        var draws: [Float] = [0, 1, 0.5, 0.25]
        var index = 0
        let module = LoRAModule.kohyaInitialized(name: "m", shape: .linear(in: 16, out: 8), rank: 2, alpha: 1) {
            defer { index += 1 }
            return draws[index % draws.count]
        }
        draws = []
        XCTAssertEqual(Array(module.down.values.prefix(4)), [-0.25, 0.25, 0, -0.125], "U(−1/√16, 1/√16)")
        XCTAssertTrue(module.up.values.allSatisfy { $0 == 0 }, "up starts at zero: training starts at the base model")
        XCTAssertEqual(module.scale, 0.5)
    }

    func testAdamWFollowsTorch() throws {
        let adamw = try XCTUnwrap(Self.golden["adamw"] as? [String: Any])
        let initial = try XCTUnwrap(adamw["initial"] as? [[Double]]), rates = try XCTUnwrap(adamw["learning_rates"] as? [Double])
        let expected = try XCTUnwrap(adamw["after_each_step"] as? [[[Double]]])
        let parameters = [Parameter(key: "a", shape: [3, 4], values: initial[0].map(Float.init)),
                          Parameter(key: "b", shape: [5], values: initial[1].map(Float.init))]
        var optimizer = AdamW(weightDecay: try XCTUnwrap(adamw["weight_decay"] as? Double))
        for step in 0..<expected.count {
            for p in parameters {
                for i in 0..<p.count {
                    // The golden script's gradient formula.
                    p.gradient.values[i] = Float(sin(0.37 * Double(step + 1) + 1.3 * Double(i)) * (1.0 + 0.1 * Double(i)) / Double(1 + step % 3))
                }
            }
            optimizer.update([ParameterGroup(name: "a", parameters: [parameters[0]], learningRate: rates[0]),
                              ParameterGroup(name: "b", parameters: [parameters[1]], learningRate: rates[1])])
            for (p, values) in zip(parameters, expected[step]) {
                for (a, b) in zip(p.values, values) { XCTAssertEqual(Double(a), b, accuracy: 1e-6, "step \(step + 1), \(p.key)") }
            }
        }
        XCTAssertEqual(optimizer.step, 10)
    }

    func testSchedulesFollowDiffusers() throws {
        let schedules = try XCTUnwrap(Self.golden["schedules"] as? [String: [String: Any]])
        XCTAssertEqual(Set(schedules.keys), Set(LearningRateSchedule.Kind.allCases.map(\.rawValue)))
        for (name, entry) in schedules {
            let kind = try XCTUnwrap(LearningRateSchedule.Kind(rawValue: name))
            var schedule = LearningRateSchedule(kind: kind, totalSteps: try XCTUnwrap(entry["total"] as? Int), warmupSteps: try XCTUnwrap(entry["warmup"] as? Int))
            let base = try XCTUnwrap(entry["base"] as? Double)
            if let cycles = entry["num_cycles"] as? Int { schedule.cycles = cycles }
            if let power = entry["power"] as? Double { schedule.power = power }
            schedule.polynomialInitial = base
            let rates = try XCTUnwrap(entry["rates"] as? [Double])
            for (k, rate) in rates.enumerated() {
                XCTAssertEqual(base * schedule.factor(at: k), rate, accuracy: 1e-12, "\(name) step \(k)")
            }
        }
    }

    func testGradientClippingAsTorch() {
        let a = Parameter(key: "a", shape: [2], values: [0, 0]), b = Parameter(key: "b", shape: [1], values: [0])
        a.gradient.values = [3, 0]
        b.gradient.values = [4]
        XCTAssertEqual(clipGradientNorm([a, b], maximum: 1), 5)
        XCTAssertEqual(Double(a.gradient.values[0]), 3 / (5 + 1e-6), accuracy: 1e-7)
        XCTAssertEqual(Double(b.gradient.values[0]), 4 / (5 + 1e-6), accuracy: 1e-7)
        XCTAssertEqual(clipGradientNorm([a, b], maximum: 2), 1, accuracy: 1e-5)
        XCTAssertEqual(Double(a.gradient.values[0]), 3 / (5 + 1e-6), accuracy: 1e-7, "below the maximum: unchanged")
    }
}
