import Diffusion

/// An exponential moving average of weights, as diffusion models are
/// usually released (LDM's LitEma, diffusers' EMAModel): after each step
/// a ← a − (1 − d)(a − p), with the decay warming up as
/// min(d, (1 + n)/(10 + n)) so the first steps' weights do not linger.
/// A small model trained for a few thousand steps samples visibly cleaner
/// from the average than from its last step's weights.
struct ExponentialMovingAverage {
    let decay: Double
    var updates = 0
    var averages: [[Float]]

    init(_ parameters: [Parameter], decay: Double) {
        self.decay = decay
        averages = parameters.map(\.values)
    }

    mutating func update(_ parameters: [Parameter]) {
        updates += 1
        let d = min(decay, Double(1 + updates) / Double(10 + updates)), keep = Float(1 - d)
        for (index, parameter) in parameters.enumerated() {
            averages[index].withUnsafeMutableBufferPointer { a in
                parameter.values.withUnsafeBufferPointer { p in
                    for i in a.indices { a[i] -= keep * (a[i] - p[i]) }
                }
            }
        }
    }

    func copy(into parameters: [Parameter]) {
        for (index, parameter) in parameters.enumerated() { parameter.values = averages[index] }
    }
}
