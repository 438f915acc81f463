import Diffusion

extension LoHaModule {
    /// LyCORIS's LoHa initialisation (LohaModule.__init__, without use_scalar): w1_b ~ N(0, 1), w1_a ~ N(0, 0.1²),
    /// w2_b ~ N(0, 1), w2_a zeros, so ΔW starts at 0; with Tucker cores (`tucker` on a kernel wider than 1×1, as
    /// LyCORIS decides it) t1, t2 ~ N(0, 0.1²) first. An alpha of 0 means the rank (scale 1), as in LyCORIS.
    static func lycorisInitialized(name: String, shape: LoRAModule.Shape, rank: Int, alpha: Float, tucker: Bool = false,
                                   normal: (Int) -> [Float]) -> LoHaModule {
        let alpha = alpha == 0 ? Float(rank) : alpha
        if tucker, case let .conv(inputs, outputs, kernel, _, _) = shape, kernel > 1 {
            let core = rank * rank * kernel * kernel
            let t1 = normal(core).map { $0 * 0.1 }, t2 = normal(core).map { $0 * 0.1 }
            let w1b = normal(rank * inputs), w1a = normal(rank * outputs).map { $0 * 0.1 }, w2b = normal(rank * inputs)
            return LoHaModule(name: name, shape: shape, rank: rank, alpha: alpha,
                              tucker: (t1, w1a, w1b, t2, [Float](repeating: 0, count: rank * outputs), w2b))
        }
        let (out, columns) = (shape.outputs, shape.columns)
        let w1b = normal(rank * columns), w1a = normal(out * rank).map { $0 * 0.1 }, w2b = normal(rank * columns)
        return LoHaModule(name: name, shape: shape, rank: rank, alpha: alpha, w1a: w1a, w1b: w1b,
                          w2a: [Float](repeating: 0, count: out * rank), w2b: w2b)
    }
}
