import Foundation

/// The sinusoidal embedding of LDM/diffusers: frequencies exp(−ln(10000)·i/half),
/// `[cos(t·f), sin(t·f)]` (cos first), in float32 as PyTorch computes it. The
/// U-Net embeds (fractional) timesteps with it, SDXL also image sizes and crops.
public func timestepEmbedding(_ values: [Float], dim: Int, maxPeriod: Float = 10000) -> Tensor {
    let half = dim / 2
    var frequencies = [Float](repeating: 0, count: half)
    let logPeriod = Float(log(Double(maxPeriod)))
    for i in 0..<half { frequencies[i] = Foundation.exp(-logPeriod * Float(i) / Float(half)) }
    var out = Tensor(zeros: [values.count, dim])
    for (row, t) in values.enumerated() {
        for i in 0..<half {
            let argument = t * frequencies[i]
            out.values[row * dim + i] = Foundation.cos(argument)
            out.values[row * dim + half + i] = Foundation.sin(argument)
        }
    }
    return out
}
