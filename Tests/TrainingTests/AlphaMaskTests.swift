import Diffusion
import Foundation
import Imaging
@testable import Training
import XCTest

/// kohya's alpha masks (`apply_masked_loss`): the pixel mask averaged over 8×8 blocks (torch's
/// interpolate(mode="area") at an exact factor of 8), mirrored with a flipped sample, and multiplied
/// into every channel's element loss before the means; its gradient checked by finite differences.
final class AlphaMaskTests: XCTestCase {
    func testLatentMaskIsTheAreaMeanAndFlipsWithTheSample() {
        let bucket = Resolution(24, 16)
        let pixels = (0..<(24 * 16)).map { Float(($0 * 37) % 101) / 100 }
        let mask = AlphaMask.latentMask(pixels, bucket: bucket)
        XCTAssertEqual(mask.count, 3 * 2)
        for y in 0..<2 {
            for x in 0..<3 {
                var sum: Double = 0
                for py in (8 * y)..<(8 * y + 8) { for px in (8 * x)..<(8 * x + 8) { sum += Double(pixels[py * 24 + px]) } }
                XCTAssertEqual(Double(mask[y * 3 + x]), sum / 64, accuracy: 1e-6)
            }
        }
        let flipped = AlphaMask.latentMask(pixels, bucket: bucket, flipped: true)
        for y in 0..<2 { for x in 0..<3 { XCTAssertEqual(flipped[y * 3 + x], mask[y * 3 + 2 - x]) } }
    }

    func testPixelMaskCropsAsTheImage() {
        // A 10×8 alpha plane whose value is its column; the 8×8 bucket's centred crop starts at column 1.
        let plane = Bitmap(width: 10, height: 8, pixels: (0..<80).flatMap { i in [UInt8(i % 10 * 20), 0, 0] })
        XCTAssertEqual(AlphaMask.pixelMask(plane, bucket: Resolution(8, 8)).prefix(8).map { Int(($0 * 255).rounded()) }, [20, 40, 60, 80, 100, 120, 140, 160])
        XCTAssertEqual(AlphaMask.pixelMask(plane, bucket: Resolution(8, 8), origin: (2, 0)).first.map { Int(($0 * 255).rounded()) }, 40)
    }

    func testMaskedLossAndItsGradient() {
        var objective = DiffusionObjective()
        let shape = [2, 3, 2, 2]
        let prediction = Tensor(shape: shape, values: (0..<24).map { Float(sin(Double($0) * 1.3)) })
        let target = Tensor(shape: shape, values: (0..<24).map { Float(cos(Double($0) * 0.7)) })
        let mask: [Float] = [1, 0.5, 0, 0.25, 1, 1, 0.75, 0]
        for type in DiffusionObjective.LossType.allCases {
            objective.lossType = type
            let plain = objective.loss(prediction: prediction, target: target, timesteps: [10, 500]).loss
            let ones = objective.loss(prediction: prediction, target: target, timesteps: [10, 500], mask: [Float](repeating: 1, count: 8)).loss
            XCTAssertEqual(ones, plain, accuracy: 1e-12, "\(type): a mask of ones is no mask")
            let (loss, gradient) = objective.loss(prediction: prediction, target: target, timesteps: [10, 500], mask: mask)
            XCTAssertLessThan(loss, plain)
            for i in [0, 2, 5, 9, 13, 18, 23] {
                var up = prediction, down = prediction
                up.values[i] += 1e-3
                down.values[i] -= 1e-3
                let numeric = (objective.loss(prediction: up, target: target, timesteps: [10, 500], mask: mask).loss
                               - objective.loss(prediction: down, target: target, timesteps: [10, 500], mask: mask).loss) / 2e-3
                XCTAssertEqual(Double(gradient.values[i]), numeric, accuracy: 1e-3 * max(1, abs(numeric)), "\(type) element \(i)")
                if mask[(i / 12) * 4 + i % 4] == 0 { XCTAssertEqual(gradient.values[i], 0, "a transparent element does not train") }
            }
        }
    }
}
