import Diffusion

extension LoHaModule {
    /// LyCORIS's LoHa initialisation (LohaModule.__init__, without use_scalar): w1_b ~ N(0, 1), w1_a ~ N(0, 0.1²),
    /// w2_b ~ N(0, 1), w2_a zeros, so ΔW starts at 0. An alpha of 0 means the rank (scale 1), as in LyCORIS.
    static func lycorisInitialized(name: String, shape: LoRAModule.Shape, rank: Int, alpha: Float, normal: (Int) -> [Float]) -> LoHaModule {
        let (out, columns) = (shape.outputs, shape.columns)
        let w1b = normal(rank * columns), w1a = normal(out * rank).map { $0 * 0.1 }, w2b = normal(rank * columns)
        return LoHaModule(name: name, shape: shape, rank: rank, alpha: alpha == 0 ? Float(rank) : alpha, w1a: w1a, w1b: w1b,
                          w2a: [Float](repeating: 0, count: out * rank), w2b: w2b)
    }
}
