/// The U-Net wrapped as k-diffusion's CompVis(V)Denoiser with A1111's
/// classifier-free guidance: D = D_uncond + scale·(D_cond − D_uncond).
/// Cond and uncond run as one batch of two when their token counts match
/// (as A1111 batches them), otherwise one after the other.
public struct GuidedDenoiser: Denoiser {
    public let unet: UNet
    public let schedule: NoiseSchedule
    public let prediction: Prediction
    public let cond: Conditioning
    public let uncond: Conditioning
    /// SDXL's `y` for cond and uncond.
    public let condVector: Tensor?
    public let uncondVector: Tensor?
    public let scale: Float
    public let adapters: AdapterSet

    public init(unet: UNet, schedule: NoiseSchedule, prediction: Prediction, cond: Conditioning, uncond: Conditioning,
                condVector: Tensor? = nil, uncondVector: Tensor? = nil, scale: Float, adapters: AdapterSet = .empty) {
        self.unet = unet
        self.schedule = schedule
        self.prediction = prediction
        self.cond = cond
        self.uncond = uncond
        self.condVector = condVector
        self.uncondVector = uncondVector
        self.scale = scale
        self.adapters = adapters
    }

    /// The model output (ε or v) for the latents `x` (already scaled), cond then uncond.
    func outputs(_ x: Tensor, timestep: Float) -> (cond: Tensor, uncond: Tensor?) {
        guard scale != 1 else {
            return (unet.forward(x, timesteps: [timestep], context: cond.context, vector: condVector, adapters: adapters), nil)
        }
        if cond.context.shape == uncond.context.shape {
            let both = unet.forward(Tensor.stack([x, x]), timesteps: [timestep, timestep],
                                    context: Tensor.stack([cond.context, uncond.context]),
                                    vector: condVector.flatMap { c in uncondVector.map { Tensor.stack([c, $0]) } }, adapters: adapters)
            return (both.item(0), both.item(1))
        }
        let c = unet.forward(x, timesteps: [timestep], context: cond.context, vector: condVector, adapters: adapters)
        let u = unet.forward(x, timesteps: [timestep], context: uncond.context, vector: uncondVector, adapters: adapters)
        return (c, u)
    }

    public func denoised(_ x: Tensor, sigma: Float) -> Tensor {
        let cIn = 1 / (sigma * sigma + 1).squareRoot()
        var scaled = x
        for i in scaled.values.indices { scaled.values[i] *= cIn }
        let (c, u) = outputs(scaled, timestep: schedule.timestep(sigma: sigma))
        func denoise(_ out: Tensor) -> Tensor {
            var d = out
            switch prediction {
            case .epsilon:
                // x + ε·(−σ)
                let cOut = -sigma
                for i in d.values.indices { d.values[i] = x.values[i] + out.values[i] * cOut }
            case .v:
                let cSkip = 1 / (sigma * sigma + 1), cOut = -sigma / (sigma * sigma + 1).squareRoot()
                for i in d.values.indices { d.values[i] = out.values[i] * cOut + x.values[i] * cSkip }
            }
            return d
        }
        return combine(denoise(c), u.map(denoise))
    }

    public func epsilon(_ x: Tensor, timestep: Int) -> Tensor {
        let (c, u) = outputs(x, timestep: Float(timestep))
        func toEpsilon(_ out: Tensor) -> Tensor {
            guard prediction == .v else { return out }
            // A1111's CompVisTimestepsVDenoiser: ε = √ᾱ·v + √(1−ᾱ)·x.
            let a = schedule.alphasCumprod[timestep]
            let sa = a.squareRoot(), sb = (1 - a).squareRoot()
            var e = out
            for i in e.values.indices { e.values[i] = sa * out.values[i] + sb * x.values[i] }
            return e
        }
        return combine(toEpsilon(c), u.map(toEpsilon))
    }

    func combine(_ c: Tensor, _ u: Tensor?) -> Tensor {
        guard let u else { return c }
        var out = u
        for i in out.values.indices { out.values[i] = u.values[i] + (c.values[i] - u.values[i]) * scale }
        return out
    }
}
