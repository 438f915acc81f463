import Diffusion

extension LoHaModule {
    /// LyCORIS's LoHa initialisation (LohaModule.__init__, without use_scalar): w1_b ~ N(0, 1), w1_a ~ N(0, 0.1²),
    /// w2_b ~ N(0, 1), w2_a zeros, so ΔW starts at 0; with Tucker cores (`tucker` on a kernel wider than 1×1, as
    /// LyCORIS decides it) t1, t2 ~ N(0, 0.1²) first. An alpha of 0 means the rank (scale 1), as in LyCORIS.
    /// `trainedScalar` (use_scalar): a trained scalar from 0, and w2_a ~ N(0, 0.1²) instead of zeros.
    static func lycorisInitialized(name: String, shape: LoRAModule.Shape, rank: Int, alpha: Float, tucker: Bool = false, trainedScalar: Bool = false,
                                   normal: (Int) -> [Float]) -> LoHaModule {
        let alpha = alpha == 0 ? Float(rank) : alpha
        let scalar = trainedScalar ? ModuleScalar(trainedAs: name) : ModuleScalar()
        func w2a(_ count: Int) -> [Float] { trainedScalar ? normal(count).map { $0 * 0.1 } : [Float](repeating: 0, count: count) }
        if tucker, case let .conv(inputs, outputs, kernel, _, _) = shape, kernel > 1 {
            let core = rank * rank * kernel * kernel
            let t1 = normal(core).map { $0 * 0.1 }, t2 = normal(core).map { $0 * 0.1 }
            let w1b = normal(rank * inputs), w1a = normal(rank * outputs).map { $0 * 0.1 }, w2b = normal(rank * inputs)
            return LoHaModule(name: name, shape: shape, rank: rank, alpha: alpha, tucker: (t1, w1a, w1b, t2, w2a(rank * outputs), w2b), scalar: scalar)
        }
        let (out, columns) = (shape.outputs, shape.columns)
        let w1b = normal(rank * columns), w1a = normal(out * rank).map { $0 * 0.1 }, w2b = normal(rank * columns)
        return LoHaModule(name: name, shape: shape, rank: rank, alpha: alpha, w1a: w1a, w1b: w1b, w2a: w2a(out * rank), w2b: w2b, scalar: scalar)
    }
}
