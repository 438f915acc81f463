import Diffusion

extension LoRAModule {
    /// kohya's initialisation: down Kaiming-uniform with a = √5, i.e.
    /// U(−1/√fan_in, 1/√fan_in); up zeros, so training starts at the base model.
    /// (Values from `uniform`, a source of U(0, 1) draws; kohya's come from torch's generator.)
    /// `tucker` (LyCORIS's LoCon with use_tucker, on a kernel wider than 1×1): down a 1×1 kernel, then the core
    /// lora_mid [rank, rank, kh, kw], Kaiming-uniform as well (LoConModule.__init__).
    public static func kohyaInitialized(name: String, shape: Shape, rank: Int, alpha: Float, tucker: Bool = false, uniform: () -> Float) -> LoRAModule {
        func kaiming(_ count: Int, fanIn: Int) -> [Float] { kaimingUniform(count, fanIn: fanIn, uniform: uniform) }
        if tucker, case let .conv(inputs, outputs, kernel, _, _) = shape, kernel > 1 {
            let down = kaiming(rank * inputs, fanIn: inputs), mid = kaiming(rank * rank * kernel * kernel, fanIn: rank * kernel * kernel)
            return LoRAModule(name: name, shape: shape, rank: rank, alpha: alpha, down: down, up: [Float](repeating: 0, count: outputs * rank), mid: mid)
        }
        let fanIn: Int, outputs: Int
        switch shape {
        case let .linear(inputs, out): (fanIn, outputs) = (inputs, out)
        case let .conv(inputs, out, kernel, _, _): (fanIn, outputs) = (inputs * kernel * kernel, out)
        }
        let down = kaiming(rank * fanIn, fanIn: fanIn)
        return LoRAModule(name: name, shape: shape, rank: rank, alpha: alpha, down: down, up: [Float](repeating: 0, count: outputs * rank))
    }
}

/// torch's `kaiming_uniform_(w, a=√5)`, kohya's and LyCORIS's initialisation of their first factors: U(−1/√fan_in, 1/√fan_in)
/// (fan_in: a tensor's values per output row), `count` draws from `uniform`'s U(0, 1).
func kaimingUniform(_ count: Int, fanIn: Int, uniform: () -> Float) -> [Float] {
    let bound = 1 / Float(fanIn).squareRoot()
    return (0..<count).map { _ in (2 * uniform() - 1) * bound }
}
