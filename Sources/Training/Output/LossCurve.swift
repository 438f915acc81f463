import Foundation
import Imaging
import LoRACore

/// The loss curve beside the outputs (`NAME-loss.png`): each step's loss as
/// grey dots, kohya's `loss/average` (the mean over the last epoch's worth of
/// steps) as a line, epoch boundaries as faint verticals, the first and last
/// average and the step count as labels when a font is found; validation losses
/// (`--validation-split`) as orange squares where they were measured. Rewritten
/// after every epoch, so an interrupted run leaves its curve so far.
public enum LossCurve {
    public struct Point: Sendable {
        public var step: Int, epoch: Int, loss: Double, average: Double
        public init(step: Int, epoch: Int, loss: Double, average: Double) { (self.step, self.epoch, self.loss, self.average) = (step, epoch, loss, average) }
    }

    public static func render(_ points: [Point], validation: [Point] = [], width: Int = 800, height: Int = 400, title: String) -> Bitmap {
        var canvas = Bitmap(width: width, height: height, fill: .white)
        let (left, right, top, bottom) = (60, 20, 36, 30)
        let plotW = width - left - right, plotH = height - top - bottom
        canvas.fill(x: left, y: top, width: plotW, height: 1, color: RGB(200, 200, 200))
        canvas.fill(x: left, y: top + plotH, width: plotW, height: 1, color: RGB(120, 120, 120))
        canvas.fill(x: left, y: top, width: 1, height: plotH, color: RGB(120, 120, 120))
        let finite = points.filter { $0.loss.isFinite && $0.average.isFinite }
        guard let last = finite.last else { return canvas }
        let checks = validation.filter { $0.loss.isFinite && $0.step >= 1 && $0.step <= last.step }
        let values = finite.flatMap { [$0.loss, $0.average] } + checks.map(\.loss)
        let lo = min(0, values.min()!), hi = max(values.max()!, lo + 1e-6)
        func x(_ step: Int) -> Int { left + Int(Double(step - 1) / Double(max(1, last.step - 1)) * Double(plotW - 1)) }
        func y(_ v: Double) -> Int { top + plotH - 1 - Int((v - lo) / (hi - lo) * Double(plotH - 1)) }
        var epoch = finite.first!.epoch
        for p in finite where p.epoch != epoch {
            epoch = p.epoch
            canvas.fill(x: x(p.step), y: top, width: 1, height: plotH, color: RGB(225, 225, 235))
        }
        for p in finite { canvas.fill(x: x(p.step) - 1, y: y(p.loss) - 1, width: 3, height: 3, color: RGB(170, 170, 170)) }
        for (a, b) in zip(finite, finite.dropFirst()) {
            // The average as a line: one filled square per pixel column between consecutive steps.
            let (x0, x1, y0, y1) = (x(a.step), x(b.step), y(a.average), y(b.average))
            let n = max(1, abs(x1 - x0), abs(y1 - y0))
            for i in 0...n {
                let t = Double(i) / Double(n)
                canvas.fill(x: x0 + Int(Double(x1 - x0) * t) - 1, y: y0 + Int(Double(y1 - y0) * t) - 1, width: 2, height: 2, color: RGB(30, 90, 200))
            }
        }
        let orange = RGB(230, 120, 20)
        for p in checks { canvas.fill(x: x(p.step) - 2, y: y(p.loss) - 2, width: 5, height: 5, color: orange) }
        if let path = try? Font.locate(), let font = try? Font(path: path, pixelSize: 14) {
            font.draw(TerminalText.escape(title), into: &canvas, x: left, y: 8)
            font.draw(String(format: "%.4g", hi), into: &canvas, x: 4, y: top - 6)
            font.draw(String(format: "%.4g", lo), into: &canvas, x: 4, y: top + plotH - 10)
            font.draw("step \(last.step)", into: &canvas, x: left + plotW - 70, y: top + plotH + 8)
            font.draw(String(format: "loss/average %.4f → %.4f", finite.first!.average, last.average), into: &canvas, x: left + 10, y: top + plotH + 8,
                      color: RGB(30, 90, 200))
            if let check = checks.last {
                font.draw(String(format: "validation %.4f", check.loss), into: &canvas, x: left + 230, y: top + plotH + 8, color: orange)
            }
        }
        return canvas
    }

    public static func write(_ points: [Point], validation: [Point] = [], to path: String, title: String) throws(ModelError) {
        let png: [UInt8]
        do { png = try PNGCodec.encode(render(points, validation: validation, title: title)) } catch { throw ModelError(.io, error.message, file: path) }
        try AtomicOutput.write(png, to: path)
    }
}
